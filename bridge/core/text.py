"""The intermediate representation of formatted text.

Every connector converts its network's format to and from :class:`FormattedText`; the
Matrix side converts it to and from Matrix HTML (``bridge.matrix.html``). A message is
plain text plus a list of entities, each covering ``text[offset:offset + length]``
(offsets count Python code points; connectors whose network counts UTF-16 units, like
Telegram, convert at their edge). Entities may nest but never partially overlap.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field, replace
from enum import Enum


class EntityType(str, Enum):
    BOLD = "bold"
    ITALIC = "italic"
    UNDERLINE = "underline"
    STRIKETHROUGH = "strikethrough"
    SPOILER = "spoiler"
    CODE = "code"
    """Inline monospace."""
    PRE = "pre"
    """A code block; ``language`` may name its language."""
    LINK = "link"
    """A hyperlink; ``url`` holds the target."""
    MENTION = "mention"
    """A mention of a person; ``mention`` says who."""
    BLOCKQUOTE = "blockquote"


@dataclass(frozen=True, slots=True)
class MentionTarget:
    """Who a mention points at.

    On the way from Matrix, ``matrix_user_id`` is set; the core fills ``remote_user_id``
    when the Matrix user is a ghost of the target network. On the way from a network,
    the connector sets ``remote_user_id``; the core fills ``matrix_user_id``.
    """

    matrix_user_id: str | None = None
    remote_user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Entity:
    type: EntityType
    offset: int
    length: int
    url: str | None = None
    language: str | None = None
    mention: MentionTarget | None = None

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True, slots=True)
class FormattedText:
    text: str
    entities: tuple[Entity, ...] = field(default_factory=tuple)

    @classmethod
    def plain(cls, text: str) -> FormattedText:
        return cls(text=text)

    @property
    def is_plain(self) -> bool:
        return not self.entities

    def normalized(self) -> FormattedText:
        """Drop empty or out-of-range entities and sort the rest by position.

        Sorting puts an outer entity before the inner ones that start at the same offset,
        which is the order renderers need.
        """
        size = len(self.text)
        kept = [
            e
            for e in self.entities
            if e.length > 0 and e.offset >= 0 and e.offset + e.length <= size
        ]
        kept.sort(key=lambda e: (e.offset, -e.length, e.type.value))
        return replace(self, entities=tuple(kept))

    def __add__(self, other: FormattedText) -> FormattedText:
        shift = len(self.text)
        moved = tuple(replace(e, offset=e.offset + shift) for e in other.entities)
        return FormattedText(self.text + other.text, self.entities + moved)


def utf16_starts(text: str) -> list[int]:
    """``result[i]`` is the UTF-16 offset where code point ``i`` starts; one extra entry
    holds the total. Networks such as Telegram and Signal count offsets in UTF-16 units."""
    starts = [0] * (len(text) + 1)
    position = 0
    for index, char in enumerate(text):
        starts[index] = position
        position += 2 if ord(char) > 0xFFFF else 1
    starts[len(text)] = position
    return starts


def code_point_at(starts: list[int], unit: int, *, round_up: bool = False) -> int:
    """The code point index of a UTF-16 offset, given :func:`utf16_starts` of the text.

    An offset inside a surrogate pair is rounded down (or up); one outside the text is
    clamped to it.
    """
    unit = max(0, min(unit, starts[-1]))
    index = bisect_left(starts, unit)
    if starts[index] == unit or round_up:
        return index
    return index - 1
