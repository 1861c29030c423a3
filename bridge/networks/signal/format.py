"""Signal message text <-> the core's FormattedText. Pure code.

Signal sends a body plus ranges: text styles (BOLD, ITALIC, SPOILER, STRIKETHROUGH,
MONOSPACE) and mentions, whose text in the body is one U+FFFC placeholder. Ranges count
UTF-16 code units and may cross each other; the core's entities count code points and
only nest. Incoming, each placeholder becomes ``@Name`` with a mention entity and
crossing styles are split until they nest. Outgoing, each mention becomes a placeholder
again, and a link whose text is not its address gets the address added in brackets,
since Signal has no hidden links.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ...core.text import (
    Entity,
    EntityType,
    FormattedText,
    MentionTarget,
    code_point_at,
    utf16_starts,
)
from .ids import normalize_aci

PLACEHOLDER = "\ufffc"

STYLE_TO_ENTITY: dict[str, EntityType] = {
    "BOLD": EntityType.BOLD,
    "ITALIC": EntityType.ITALIC,
    "SPOILER": EntityType.SPOILER,
    "STRIKETHROUGH": EntityType.STRIKETHROUGH,
    "MONOSPACE": EntityType.CODE,
}
ENTITY_TO_STYLE: dict[EntityType, str] = {
    EntityType.BOLD: "BOLD",
    EntityType.ITALIC: "ITALIC",
    EntityType.SPOILER: "SPOILER",
    EntityType.STRIKETHROUGH: "STRIKETHROUGH",
    EntityType.CODE: "MONOSPACE",
    EntityType.PRE: "MONOSPACE",
}
SUPPORTED_ENTITIES = frozenset(ENTITY_TO_STYLE) | {EntityType.MENTION, EntityType.LINK}
"""What the connector declares it can render; LINK is rendered as text plus address."""


@dataclass(frozen=True)
class SignalText:
    """A body with its ranges, in signal-cli's ``send`` parameter syntax (UTF-16 units)."""

    body: str
    text_styles: tuple[str, ...] = ()
    """``start:length:STYLE``"""
    mentions: tuple[str, ...] = ()
    """``start:length:ACI``"""


# UTF-16 <-> code points ----------------------------------------------------------------------


utf16_offsets = utf16_starts


def _code_point_at(offsets: list[int], unit: int) -> int:
    return code_point_at(offsets, unit)


# Signal -> IR ----------------------------------------------------------------------------------


def _shown_name(name: str | None) -> bool:
    """Whether a name may be shown: signal-cli falls back to phone numbers, which may not."""
    if not name or not name.strip():
        return False
    digits = sum(c.isdigit() for c in name)
    return not (digits >= 6 and all(c.isdigit() or c in "+ -()./" for c in name.strip()))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ranges(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, dict) and _int(i.get("start")) is not None and _int(i.get("length"))]


def from_signal(
    body: str | None,
    text_styles: Any = None,
    mentions: Any = None,
    name_of: Callable[[str], str | None] | None = None,
) -> FormattedText:
    """A received message's text as FormattedText; malformed ranges are skipped.

    ``name_of(aci)`` names a mentioned person when signal-cli gave no name.
    """
    body = body or ""
    offsets = utf16_offsets(body)
    spans: list[tuple[int, int, str, str]] = []  # code point range, ACI, shown name
    for raw in _ranges(mentions):
        aci = normalize_aci(raw.get("uuid"))
        if aci is None:
            continue
        start = _code_point_at(offsets, raw["start"])
        end = max(start + 1, _code_point_at(offsets, raw["start"] + raw["length"]))
        if end > len(body) or any(s < end and start < e for s, e, _, _ in spans):
            continue
        name = raw.get("name") if isinstance(raw.get("name"), str) else None
        if not _shown_name(name) and name_of is not None:
            name = name_of(aci)
        name = name if _shown_name(name) else None
        spans.append((start, end, aci, name or "Unknown user"))
    spans.sort()

    # Rewrite the body, replacing each placeholder range with "@Name".
    pieces: list[str] = []
    entities: list[Entity] = []
    starts, ends = [0] * (len(body) + 1), [0] * (len(body) + 1)
    position, new_length = 0, 0
    for start, end, aci, name in spans + [(len(body), len(body), "", "")]:
        for i in range(position, start + 1):
            starts[i] = ends[i] = new_length + (i - position)
        pieces.append(body[position:start])
        new_length += start - position
        if start == end:
            break
        label = "@" + name
        for i in range(start + 1, end + 1):
            starts[i] = new_length if i < end else new_length + len(label)
            ends[i] = new_length + len(label)
        entities.append(
            Entity(EntityType.MENTION, new_length, len(label), mention=MentionTarget(remote_user_id=aci))
        )
        pieces.append(label)
        new_length += len(label)
        position = end
    text = "".join(pieces)

    styled: list[Entity] = []
    for raw in _ranges(text_styles):
        kind = STYLE_TO_ENTITY.get(str(raw.get("style", "")).upper())
        if kind is None:
            continue
        a = _code_point_at(offsets, raw["start"])
        b = _code_point_at(offsets, raw["start"] + raw["length"])
        new_start, new_end = starts[a], ends[b]
        if new_end > new_start:
            styled.append(Entity(kind, new_start, new_end - new_start))
    styled.sort(key=lambda e: (e.offset, -e.length, e.type.value))
    return FormattedText(text, tuple(untangle(entities, styled))).normalized()


def _crosses(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[0] < a[1] < b[1] or b[0] < a[0] < b[1] < a[1]


def untangle(fixed: list[Entity], extra: Iterable[Entity]) -> list[Entity]:
    """``fixed`` plus ``extra``, with each extra entity split where it would cross another.

    The result only nests, as the core requires. ``fixed`` must already nest.
    """
    accepted = list(fixed)
    for entity in extra:
        pieces = [(entity.offset, entity.end)]
        changed = True
        while changed:
            changed = False
            for other in accepted:
                span = (other.offset, other.end)
                for index, piece in enumerate(pieces):
                    if _crosses(piece, span):
                        cut = span[0] if piece[0] < span[0] < piece[1] else span[1]
                        pieces[index : index + 1] = [(piece[0], cut), (cut, piece[1])]
                        changed = True
                        break
                if changed:
                    break
        for start, end in pieces:
            accepted.append(Entity(entity.type, start, end - start, entity.url, entity.language, entity.mention))
    return accepted


# IR -> Signal ----------------------------------------------------------------------------------


def _link_suffix(text: str, entity: Entity) -> str:
    url = entity.url or ""
    shown = text[entity.offset : entity.end]
    if not url or url in (shown, "mailto:" + shown, "http://" + shown, "https://" + shown):
        return ""
    return f" ({url})"


def to_signal(text: FormattedText) -> SignalText:
    """FormattedText as a Signal body with style and mention ranges.

    Mentions need ``mention.remote_user_id`` (an ACI); others stay plain text. Entity types
    Signal lacks (underline, quote) leave their text unstyled.
    """
    source = text.normalized()
    body = source.text
    # Replacements: (start, end, new text), never overlapping.
    edits: list[tuple[int, int, str]] = []
    mention_starts: dict[int, str] = {}
    for e in source.entities:
        if e.type == EntityType.MENTION and e.mention and normalize_aci(e.mention.remote_user_id):
            if not any(s < e.end and e.offset < t for s, t, _ in edits):
                edits.append((e.offset, e.end, PLACEHOLDER))
                mention_starts[e.offset] = str(normalize_aci(e.mention.remote_user_id))
    for e in source.entities:
        if e.type == EntityType.LINK and (suffix := _link_suffix(body, e)):
            if not any(s < e.end < t for s, t, _ in edits):
                edits.append((e.end, e.end, suffix))
    edits.sort(key=lambda item: (item[0], item[1]))

    starts, ends = [0] * (len(body) + 1), [0] * (len(body) + 1)
    pieces: list[str] = []
    mention_at: dict[int, str] = {}
    position, new_length, after_insertion = 0, 0, False
    for start, end, replacement in edits + [(len(body), len(body), "")]:
        # After an insertion at ``position`` its maps are final; don't overwrite them.
        for i in range(position + after_insertion, start + 1):
            starts[i] = ends[i] = new_length + (i - position)
        pieces.append(body[position:start])
        new_length += start - position
        if start == len(body) and end == len(body) and not replacement:
            break
        if replacement == PLACEHOLDER and start in mention_starts and end > start:
            mention_at[new_length] = mention_starts[start]
        for i in range(start + 1, end + 1):
            starts[i] = new_length if i < end else new_length + len(replacement)
            ends[i] = new_length + len(replacement)
        after_insertion = end == start
        if after_insertion:
            # An insertion after a link: what ends here ends before it, what starts here after it.
            starts[start] = new_length + len(replacement)
        pieces.append(replacement)
        new_length += len(replacement)
        position = end
    new_body = "".join(pieces)
    offsets = utf16_offsets(new_body)

    styles: list[str] = []
    for e in source.entities:
        style = ENTITY_TO_STYLE.get(e.type)
        if style is None:
            continue
        a, b = starts[e.offset], ends[e.end]
        if b > a:
            styles.append(f"{offsets[a]}:{offsets[b] - offsets[a]}:{style}")
    mentions = [f"{offsets[pos]}:1:{aci}" for pos, aci in sorted(mention_at.items())]
    return SignalText(new_body, tuple(styles), tuple(mentions))


def parse_ranges(values: Iterable[str], kind: str) -> list[dict[str, Any]]:
    """``start:length:X`` strings as signal-cli's JSON range objects (``style`` or ``uuid``).

    Used by tests and the stub daemon to read back what the connector sent.
    """
    out: list[dict[str, Any]] = []
    for value in values:
        start, length, rest = value.split(":", 2)
        out.append({"start": int(start), "length": int(length), kind: rest})
    return out
