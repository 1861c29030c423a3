"""Telegram message entities <-> the core's FormattedText. Pure code, no I/O.

Telegram counts entity offsets and lengths in UTF-16 code units; the core counts Python
code points. Telegram also allows entities to overlap partially (bold 0-5, italic 3-8),
which the core's IR does not: such an entity is split into pieces that nest, so every
character keeps exactly the styles it had.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from telethon.tl import types as tl

from ...core.text import (
    Entity,
    EntityType,
    FormattedText,
    MentionTarget,
    code_point_at,
    utf16_starts,
)

UsernameResolver = Callable[[str], "str | None"]
"""Maps a ``@username`` (without the ``@``) to a user id, when it is known."""

InputUserResolver = Callable[[str], "tl.TypeInputUser | None"]
"""Maps a user id to the InputUser Telegram needs for a mention."""

_SIMPLE_IN: dict[type, EntityType] = {
    tl.MessageEntityBold: EntityType.BOLD,
    tl.MessageEntityItalic: EntityType.ITALIC,
    tl.MessageEntityUnderline: EntityType.UNDERLINE,
    tl.MessageEntityStrike: EntityType.STRIKETHROUGH,
    tl.MessageEntitySpoiler: EntityType.SPOILER,
    tl.MessageEntityCode: EntityType.CODE,
    tl.MessageEntityBlockquote: EntityType.BLOCKQUOTE,
}
_SIMPLE_OUT: dict[EntityType, type] = {v: k for k, v in _SIMPLE_IN.items()}


# ------------------------------------------------------------------- UTF-16 offsets


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


_utf16_starts = utf16_starts


def _to_code_points(starts: list[int], utf16_offset: int, round_up: bool) -> int:
    return code_point_at(starts, utf16_offset, round_up=round_up)


# ------------------------------------------------------------------ Telegram -> IR


def from_telegram(
    text: str,
    entities: Sequence[tl.TypeMessageEntity] | None,
    *,
    resolve_username: UsernameResolver | None = None,
) -> FormattedText:
    """Convert a Telegram message's text and entities to the IR.

    Entities the IR has no notion of (hashtags, bot commands, custom emoji...) leave
    their text as it is. ``@username`` mentions become mentions when
    ``resolve_username`` knows the user, plain text otherwise.
    """
    if not entities:
        return FormattedText(text)
    starts = _utf16_starts(text)
    total = starts[-1]
    converted: list[Entity] = []
    for raw in entities:
        begin16 = max(0, raw.offset)
        end16 = min(total, raw.offset + raw.length)
        if end16 <= begin16:
            continue
        begin = _to_code_points(starts, begin16, round_up=False)
        end = _to_code_points(starts, end16, round_up=True)
        entity = _entity_from_telegram(raw, text, begin, end, resolve_username)
        if entity is not None and entity.length > 0:
            converted.append(entity)
    return FormattedText(text, tuple(make_laminar(converted)))


def _entity_from_telegram(
    raw: tl.TypeMessageEntity,
    text: str,
    begin: int,
    end: int,
    resolve_username: UsernameResolver | None,
) -> Entity | None:
    length = end - begin
    kind = _SIMPLE_IN.get(type(raw))
    if kind is not None:
        return Entity(kind, begin, length)
    if isinstance(raw, tl.MessageEntityPre):
        return Entity(EntityType.PRE, begin, length, language=raw.language or None)
    if isinstance(raw, tl.MessageEntityTextUrl):
        return Entity(EntityType.LINK, begin, length, url=raw.url)
    if isinstance(raw, tl.MessageEntityUrl):
        covered = text[begin:end]
        url = covered if "://" in covered else "https://" + covered
        return Entity(EntityType.LINK, begin, length, url=url)
    if isinstance(raw, tl.MessageEntityEmail):
        return Entity(EntityType.LINK, begin, length, url="mailto:" + text[begin:end])
    if isinstance(raw, tl.MessageEntityMentionName):
        target = MentionTarget(remote_user_id=str(raw.user_id))
        return Entity(EntityType.MENTION, begin, length, mention=target)
    if isinstance(raw, tl.MessageEntityMention) and resolve_username is not None:
        user_id = resolve_username(text[begin:end].lstrip("@"))
        if user_id is not None:
            target = MentionTarget(remote_user_id=user_id)
            return Entity(EntityType.MENTION, begin, length, mention=target)
    return None


def make_laminar(entities: list[Entity]) -> list[Entity]:
    """Split partially overlapping entities so that the result nests properly.

    Entities are taken outer-first (earlier start, then longer); one that sticks out of
    an entity opened before it is cut at that entity's end, and the rest is placed again
    after it, so each character keeps the same set of styles. Links, mentions and code
    blocks are atomic (a second half would change their meaning), so they are cut only.
    """
    pending = sorted(entities, key=lambda e: (e.offset, -e.length, e.type.value))
    placed: list[Entity] = []
    while pending:
        entity = pending.pop(0)
        cut = entity.end
        for other in placed:
            if other.offset <= entity.offset < other.end < entity.end:
                cut = min(cut, other.end)
        if cut < entity.end:
            if entity.type not in (EntityType.LINK, EntityType.MENTION, EntityType.PRE):
                rest = replace(entity, offset=cut, length=entity.end - cut)
                pending.append(rest)
                pending.sort(key=lambda e: (e.offset, -e.length, e.type.value))
            entity = replace(entity, length=cut - entity.offset)
        placed.append(entity)
    return sorted(placed, key=lambda e: (e.offset, -e.length, e.type.value))


# ------------------------------------------------------------------ IR -> Telegram


def to_telegram(
    text: FormattedText, *, input_user: InputUserResolver | None = None
) -> tuple[str, list[tl.TypeMessageEntity]]:
    """Convert IR text to Telegram's text and entities (UTF-16 offsets).

    A mention needs the user's InputUser; when ``input_user`` can't give one, the
    mention stays plain text.
    """
    ft = text.normalized()
    starts = _utf16_starts(ft.text)
    out: list[tl.TypeMessageEntity] = []
    for e in ft.entities:
        offset = starts[e.offset]
        length = starts[e.end] - offset
        converted = _entity_to_telegram(e, ft.text, offset, length, input_user)
        if converted is not None:
            out.append(converted)
    return ft.text, out


def _entity_to_telegram(
    e: Entity, text: str, offset: int, length: int, input_user: InputUserResolver | None
) -> tl.TypeMessageEntity | None:
    simple = _SIMPLE_OUT.get(e.type)
    if simple is not None:
        return simple(offset=offset, length=length)
    if e.type == EntityType.PRE:
        return tl.MessageEntityPre(offset=offset, length=length, language=e.language or "")
    if e.type == EntityType.LINK:
        if not e.url:
            return None
        covered = text[e.offset : e.end]
        if e.url == "mailto:" + covered:
            return tl.MessageEntityEmail(offset=offset, length=length)
        if e.url == covered or e.url == "https://" + covered:
            return tl.MessageEntityUrl(offset=offset, length=length)
        return tl.MessageEntityTextUrl(offset=offset, length=length, url=e.url)
    if e.type == EntityType.MENTION:
        user_id = e.mention.remote_user_id if e.mention else None
        if not user_id or input_user is None:
            return None
        target = input_user(user_id)
        if target is None:
            return None
        return tl.InputMessageEntityMentionName(offset=offset, length=length, user_id=target)
    return None
