"""Loopback entities (JSON) <-> the core's FormattedText. Pure code."""

from __future__ import annotations

from typing import Any

from ...core.text import Entity, EntityType, FormattedText, MentionTarget

_TYPES = {t.value: t for t in EntityType}


def from_loopback(text: str, entities: Any) -> FormattedText:
    """Parse a loopback message's entities, skipping any that are malformed."""
    out: list[Entity] = []
    if isinstance(entities, list):
        for raw in entities:
            entity = _entity(raw, len(text))
            if entity is not None:
                out.append(entity)
    return FormattedText(text, tuple(out)).normalized()


def _entity(raw: Any, size: int) -> Entity | None:
    if not isinstance(raw, dict) or raw.get("type") not in _TYPES:
        return None
    offset, length = raw.get("offset"), raw.get("length")
    if not isinstance(offset, int) or not isinstance(length, int):
        return None
    if offset < 0 or length <= 0 or offset + length > size:
        return None
    kind = _TYPES[raw["type"]]
    url = raw.get("url") if isinstance(raw.get("url"), str) else None
    language = raw.get("language") if isinstance(raw.get("language"), str) else None
    mention = None
    if kind == EntityType.MENTION:
        if not isinstance(raw.get("user_id"), str):
            return None
        mention = MentionTarget(remote_user_id=raw["user_id"])
    if kind == EntityType.LINK and url is None:
        return None
    return Entity(kind, offset, length, url=url, language=language, mention=mention)


def to_loopback(text: FormattedText) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in text.normalized().entities:
        item: dict[str, Any] = {"type": e.type.value, "offset": e.offset, "length": e.length}
        if e.url:
            item["url"] = e.url
        if e.language:
            item["language"] = e.language
        if e.type == EntityType.MENTION:
            if e.mention is None or not e.mention.remote_user_id:
                continue
            item["user_id"] = e.mention.remote_user_id
        out.append(item)
    return out
