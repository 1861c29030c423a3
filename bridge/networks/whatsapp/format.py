"""WhatsApp markup <-> the core's FormattedText. Pure code.

WhatsApp formats plain text with markers: ``*bold*``, ``_italic_``, ``~strike~``,
```` `code` ```` and ```` ```monospace block``` ````, and a line starting with ``"> "`` is
a quote. Lists (``* item``, ``- item``, ``1. item``) are plain text on WhatsApp and stay
plain text here. Mentions are ``@<number>`` in the text plus the mentioned JIDs beside it.

The parser follows WhatsApp's own rules as closely as they are known: a marker opens
only at the start of the text or after a character that is not a letter or digit, and
must be followed by a non-space; it closes at the first matching marker on the same line
that follows a non-space and is not followed by a letter or digit. Code spans are
literal. The renderer writes exactly the markers the parser reads, so parsing the
rendered text gives the same entities back (property-tested in
tests/whatsapp/test_format.py).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ...core.text import Entity, EntityType, FormattedText, MentionTarget

E = EntityType
_STYLE_MARKERS = {"*": E.BOLD, "_": E.ITALIC, "~": E.STRIKETHROUGH, "`": E.CODE}
_MARKER_OF = {kind: marker for marker, kind in _STYLE_MARKERS.items()}
FENCE = "```"
QUOTE_PREFIX = "> "
_MAX_DEPTH = 12
"""Deeper nesting is left as literal text: bounds the work on hostile input."""

SUPPORTED = frozenset({E.BOLD, E.ITALIC, E.STRIKETHROUGH, E.CODE, E.PRE, E.BLOCKQUOTE,
                       E.MENTION, E.LINK})  # fmt: skip
"""Entity types the renderer expresses (links as ``text (url)``)."""

_NESTING_RANK = {E.BLOCKQUOTE: 0, E.PRE: 2, E.CODE: 2, E.MENTION: 3}
_MENTION = re.compile(r"@([0-9]{5,20})")


@dataclass(frozen=True, slots=True)
class MentionedUser:
    """Who an ``@<number>`` in a WhatsApp text points at, and the name to show instead."""

    remote_user_id: str
    display_name: str


# ----------------------------------------------------------------------------- parsing


class _Scanner:
    """Positions of possible closing markers, so each opener finds its closer quickly."""

    def __init__(self, s: str) -> None:
        self.s = s
        self.newlines = [i for i, c in enumerate(s) if c == "\n"]
        self.closers: dict[str, list[int]] = {m: [] for m in _STYLE_MARKERS}
        n = len(s)
        for j, c in enumerate(s):
            if c in self.closers and j > 0 and not s[j - 1].isspace():
                if j + 1 == n or not s[j + 1].isalnum():
                    self.closers[c].append(j)

    def line_end(self, i: int) -> int:
        k = bisect_left(self.newlines, i)
        return self.newlines[k] if k < len(self.newlines) else len(self.s)

    def is_opener(self, i: int) -> bool:
        s = self.s
        if i > 0 and s[i - 1].isalnum():
            return False
        return i + 1 < len(s) and not s[i + 1].isspace() and s[i + 1] != s[i]

    def closer(self, marker: str, i: int, end: int) -> int | None:
        """The closing marker for an opener at ``i``, before ``end`` and the line's end."""
        candidates = self.closers[marker]
        k = bisect_left(candidates, i + 2)
        if k < len(candidates) and candidates[k] < min(end, self.line_end(i)):
            return candidates[k]
        return None


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.entities: list[Entity] = []

    def add(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.size += len(text)


def _parse_inline(sc: _Scanner, start: int, end: int, depth: int, out: _Builder) -> None:
    s = sc.s
    i = literal = start
    while i < end:
        c = s[i]
        if c not in _STYLE_MARKERS or depth >= _MAX_DEPTH:
            i += 1
            continue
        if s.startswith(FENCE, i):
            close = s.find(FENCE, i + 3, end)
            if close > i + 3:
                out.add(s[literal:i])
                offset = out.size
                out.add(s[i + 3 : close])
                out.entities.append(Entity(E.PRE, offset, out.size - offset))
                i = literal = close + 3
                continue
            i += 3  # an unmatched fence is literal text
            continue
        close = sc.closer(c, i, end) if sc.is_opener(i) else None
        if close is None:
            i += 1
            continue
        out.add(s[literal:i])
        literal = i
        offset = out.size
        kind = _STYLE_MARKERS[c]
        if kind is E.CODE:
            out.add(s[i + 1 : close])
        else:
            mark = (len(out.parts), len(out.entities))
            _parse_inline(sc, i + 1, close, depth + 1, out)
            content = "".join(out.parts[mark[0] :])
            if content[:1].isspace() or content[-1:].isspace():
                # e.g. "*```> ```*": the styled text would end with a space, which
                # WhatsApp markup can't express; read the marker as text instead.
                del out.parts[mark[0] :], out.entities[mark[1] :]
                out.size = offset
                i += 1
                continue
        out.entities.append(Entity(kind, offset, out.size - offset))
        i = literal = close + 1
    out.add(s[literal:end])


def _split_quotes(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Remove quote prefixes; return the text and the quoted regions in it."""
    lines = text.split("\n")
    out: list[str] = []
    regions: list[tuple[int, int]] = []
    pos = 0
    quote_start: int | None = None
    for index, line in enumerate(lines):
        quoted = line.startswith(QUOTE_PREFIX)
        if quoted:
            line = line[len(QUOTE_PREFIX) :]
            if quote_start is None:
                quote_start = pos
        elif quote_start is not None:
            regions.append((quote_start, pos - 1))
            quote_start = None
        out.append(line)
        pos += len(line) + (1 if index < len(lines) - 1 else 0)
    if quote_start is not None:
        regions.append((quote_start, pos))
    joined = "\n".join(out)
    trimmed = []
    for a, b in regions:
        # Empty quote lines at the end of a quote (but not of the text) are plain lines:
        # the renderer can't write them otherwise.
        while b < len(joined) and b > a and joined[b - 1] == "\n":
            b -= 1
        if b > a:
            trimmed.append((a, b))
    return joined, trimmed


def parse(text: str, mentions: Mapping[str, MentionedUser] | None = None) -> FormattedText:
    """A WhatsApp message text as FormattedText.

    ``mentions`` maps the user part of each mentioned JID (the digits after ``@`` in the
    text) to the person; their ``@<number>`` becomes ``@<name>`` with a mention entity,
    so no phone number reaches Matrix through a mention.
    """
    stripped, quotes = _split_quotes(text)
    sc = _Scanner(stripped)
    out = _Builder()
    bounds = sorted({0, len(stripped), *(p for region in quotes for p in region)})
    # Each quoted region and each stretch between them is parsed on its own, so no
    # entity crosses the edge of a quote.
    for a, b in zip(bounds, bounds[1:]):
        start = out.size
        _parse_inline(sc, a, b, 0, out)
        if (a, b) in quotes and out.size > start:
            out.entities.append(Entity(E.BLOCKQUOTE, start, out.size - start))
    result = FormattedText("".join(out.parts), tuple(out.entities))
    if mentions:
        result = _replace_mentions(result, mentions)
    return result.normalized()


def _replace_mentions(ft: FormattedText, mentions: Mapping[str, MentionedUser]) -> FormattedText:
    text = ft.text
    pieces: list[str] = []
    shifts: list[tuple[int, int, int]] = []  # (old start, old end, new length)
    added: list[tuple[int, int, str]] = []  # (new offset, new length, remote user id)
    last = 0
    new_pos = 0
    for match in _MENTION.finditer(text):
        who = mentions.get(match.group(1))
        if who is None:
            continue
        pieces.append(text[last : match.start()])
        new_pos += match.start() - last
        label = "@" + (who.display_name.strip() or "someone")
        pieces.append(label)
        shifts.append((match.start(), match.end(), len(label)))
        added.append((new_pos, len(label), who.remote_user_id))
        new_pos += len(label)
        last = match.end()
    if not shifts:
        return ft
    pieces.append(text[last:])

    def move(p: int, is_end: bool) -> int:
        delta = 0
        for start, end, length in shifts:
            if p >= end:
                delta += length - (end - start)
            elif p > start:  # inside a replaced number: snap to its edge
                return start + delta + (length if is_end else 0)
            else:
                break
        return p + delta

    entities = [
        Entity(e.type, (o := move(e.offset, False)), move(e.end, True) - o, e.url, e.language, e.mention)
        for e in ft.entities
    ]
    entities += [
        Entity(E.MENTION, offset, length, mention=MentionTarget(remote_user_id=user))
        for offset, length, user in added
    ]
    return FormattedText("".join(pieces), tuple(entities))


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    mentioned_jids: tuple[str, ...] = ()


MentionResolver = Callable[[str], "str | None"]
"""Remote user id -> JID string (``user@server``), or None when unknown."""


def _trim(text: str, e: Entity) -> list[Entity]:
    """Inline styles can't start or end with a space or span lines on WhatsApp: fix that."""
    if e.type is E.BLOCKQUOTE and e.end < len(text):
        # A quote's last line can only be empty at the end of the text.
        end = e.end
        while end > e.offset and text[end - 1] == "\n":
            end -= 1
        return [Entity(e.type, e.offset, end - e.offset)] if end > e.offset else []
    if e.type not in _MARKER_OF:
        return [e]
    out = []
    start = e.offset
    while start <= e.end:
        stop = text.find("\n", start, e.end)
        stop = e.end if stop < 0 else stop
        a, b = start, stop
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append(Entity(e.type, a, b - a))
        start = stop + 1
    return out


def _renderable(ft: FormattedText) -> list[Entity]:
    """Entities the renderer writes: nested properly, none inside code or mentions."""
    text = ft.text
    candidates = [t for e in ft.normalized().entities if e.type in SUPPORTED for t in _trim(text, e)]
    # Among equal spans, literal content (code, mentions) must be innermost.
    candidates.sort(key=lambda e: (e.offset, -e.length, _NESTING_RANK.get(e.type, 1), e.type.value))
    kept: list[Entity] = []
    open_: list[Entity] = []
    for e in candidates:
        while open_ and open_[-1].end <= e.offset:
            open_.pop()
        parent = open_[-1] if open_ else None
        if parent is not None:
            if e.end > parent.end:
                continue  # partial overlap: keep the first
            if parent.type is E.MENTION:
                continue  # a mention is written as one "@<number>"
            if parent.type in (E.CODE, E.PRE) and e.type is not E.MENTION:
                continue  # code is literal, except that a number in it is still a mention
            if e.type is E.BLOCKQUOTE and any(p.type is E.BLOCKQUOTE for p in open_):
                continue  # WhatsApp quotes don't nest
            if e.type is parent.type and e.type in _MARKER_OF:
                continue  # "*a *b* c*" can't be written
        kept.append(e)
        open_.append(e)
    return kept


def render(ft: FormattedText, mention_jid: MentionResolver | None = None) -> Rendered:
    """FormattedText as WhatsApp markup, with the JIDs its mentions point at."""
    text = ft.text
    n = len(text)
    entities = _renderable(ft)
    opens: dict[int, list[Entity]] = {}
    for e in entities:
        opens.setdefault(e.offset, []).append(e)
    starts = sorted(opens)
    out: list[str] = []
    mentioned: list[str] = []
    stack: list[Entity] = []
    quote_end = -1  # end of the open quote; its lines get the quote prefix
    pos = 0
    while True:
        while stack and stack[-1].end <= pos:
            out.append(_closer(text, stack.pop()))
        if quote_end >= 0 and pos >= quote_end:
            quote_end = -1
        if pos >= n:
            break
        skip_to = None
        for e in opens.get(pos, ()):
            stack.append(e)
            if e.type is E.BLOCKQUOTE:
                if pos > 0 and text[pos - 1] != "\n":
                    out.append("\n")  # a quote starts on its own line
                out.append(QUOTE_PREFIX)
                quote_end = e.end
            elif e.type is E.PRE:
                out.append(FENCE)
            elif e.type in _MARKER_OF:
                out.append(_MARKER_OF[e.type])
            elif e.type is E.MENTION:
                user = e.mention.remote_user_id if e.mention else None
                jid = mention_jid(user) if (mention_jid and user) else None
                if jid is not None:
                    out.append("@" + jid.split("@", 1)[0])
                    mentioned.append(jid)
                    skip_to = e.end  # the mention's text is replaced by the number
                    break
        if skip_to is not None:
            pos = skip_to
            continue
        k = bisect_left(starts, pos + 1)
        nxt = min(starts[k] if k < len(starts) else n, stack[-1].end if stack else n, n)
        chunk = text[pos:nxt]
        if quote_end >= 0:
            chunk = chunk.replace("\n", "\n" + QUOTE_PREFIX)
        out.append(chunk)
        pos = nxt
    return Rendered("".join(out), tuple(dict.fromkeys(mentioned)))


def _closer(text: str, e: Entity) -> str:
    if e.type is E.PRE:
        return FENCE
    if e.type in _MARKER_OF:
        return _MARKER_OF[e.type]
    if e.type is E.LINK:
        label = text[e.offset : e.end]
        if e.url and e.url != label and e.url not in label:
            return f" ({e.url})"
    return ""
