"""Matrix HTML to and from the intermediate representation (:mod:`bridge.core.text`).

:func:`render` turns a :class:`FormattedText` into the ``body``/``formatted_body`` pair of
an ``m.room.message``; :func:`parse` reads the HTML that Matrix clients send.

The parser is a small linear tokenizer plus an explicit element stack rather than
:class:`html.parser.HTMLParser`: on Python 3.11 that one is quadratic on input such as
``"<a x" * n`` and raises ``AssertionError`` on some ``<![`` declarations, and a bridge
must neither hang nor crash on what a remote user types.

Whitespace model, shared by both directions so that ``parse(render(x))`` gives ``x`` back
for ordinary text: outside ``<pre>``, runs of ASCII whitespace collapse to one space and
vanish at the start and end of a line, like in a browser; ``<br/>`` is a newline; a block
element (``p``, ``blockquote``, ``pre``, lists, headings...) starts on a fresh line and
the content after it goes on the next line, a ``<br/>`` right after the block providing
that line break rather than adding a blank line. The renderer writes spaces as they are
(so runs of spaces only survive in ``<pre>``) and every newline outside ``<pre>`` as
``<br/>``.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable
from html import escape, unescape
from typing import TypeVar
from urllib.parse import quote, unquote

from bridge.core.text import Entity, EntityType, FormattedText, MentionTarget

MentionResolver = Callable[[MentionTarget], "tuple[str, str] | None"]
T = TypeVar("T")

MATRIX_TO = "https://matrix.to/#/"
_SAFE_URL = re.compile(r"(?:https?://|mailto:|tel:)[^\s\x00-\x1f\x7f-\x9f]+", re.I)
_MXID = re.compile(r"@[^\s:]+:[^\s/?#]+")
_MATRIX_TO_USER = re.compile(r"https?://matrix\.to/#/((?:@|%40)[^?#]+)(?:\?.*)?", re.I | re.S)
_MATRIX_URI_USER = re.compile(r"matrix:u/([^?#/]+)(?:\?.*)?", re.I | re.S)

_SIMPLE_TAGS = {
    EntityType.BOLD: ("<strong>", "</strong>"),
    EntityType.ITALIC: ("<em>", "</em>"),
    EntityType.UNDERLINE: ("<u>", "</u>"),
    EntityType.STRIKETHROUGH: ("<del>", "</del>"),
    EntityType.SPOILER: ("<span data-mx-spoiler>", "</span>"),
    EntityType.CODE: ("<code>", "</code>"),
    EntityType.BLOCKQUOTE: ("<blockquote>", "</blockquote>"),
}


def is_safe_url(url: str) -> bool:
    """Whether ``url`` may become a clickable link: http(s), mailto or tel only.

    Whitespace and control characters are refused anywhere, since browsers ignore some
    of them inside a scheme (``java\\tscript:``).
    """
    return _SAFE_URL.fullmatch(url) is not None


def matrix_user_from_url(url: str) -> str | None:
    """The user ID a ``https://matrix.to/#/@user:server`` or ``matrix:u/user:server``
    link points at, or None when it is not a user link (rooms, events, other sites)."""
    match = _MATRIX_TO_USER.fullmatch(url) or _MATRIX_URI_USER.fullmatch(url)
    if match is None:
        return None
    mxid = unquote(match.group(1))
    if not mxid.startswith("@"):  # matrix:u/ URIs leave out the sigil
        mxid = "@" + mxid
    return mxid if _MXID.fullmatch(mxid) else None


def _default_mention(target: MentionTarget) -> tuple[str, str] | None:
    return (target.matrix_user_id, "") if target.matrix_user_id else None


def _laminar(items: list[tuple[int, int, str, T]]) -> list[tuple[int, int, T, bool]]:
    """Order ``(start, end, key, payload)`` spans outer-first and make them nest.

    A span that sticks out of its parent (invalid IR) is cut at the parent's end and the
    rest is queued as a span of its own, so the output is deterministic and every
    span is either inside or after the previous ones. The flag marks such pieces.
    """
    heap = [(s, s - e, k, i, e, p, False) for i, (s, e, k, p) in enumerate(items)]
    heapq.heapify(heap)
    seq = len(heap)
    ends: list[int] = []
    out: list[tuple[int, int, T, bool]] = []
    while heap:
        start, _, key, _, end, payload, piece = heapq.heappop(heap)
        while ends and ends[-1] <= start:
            ends.pop()
        if ends and end > ends[-1]:
            cut = ends[-1]
            heapq.heappush(heap, (cut, cut - end, key, seq, end, payload, True))
            seq += 1
            end, piece = cut, True
        out.append((start, end, payload, piece))
        ends.append(end)
    return out


def render(
    text: FormattedText, *, mention_user: MentionResolver | None = None
) -> tuple[str, str | None]:
    """Render ``text`` as ``(body, formatted_body)`` for an ``m.room.message``.

    ``formatted_body`` is None when no entity produces markup (only escaping and line
    breaks would remain), so the event can stay plain. ``mention_user`` maps a mention
    to ``(mxid, display name)``; without it a mention whose target already has a
    ``matrix_user_id`` becomes a pill showing its text. Links to anything but
    http(s)/mailto/tel and unresolved mentions are rendered as plain text.
    """
    ft = text.normalized()
    body = ft.text
    resolve = mention_user or _default_mention
    # payload: (opening html, closing html, replacement text or None, is a code block)
    items: list[tuple[int, int, str, tuple[str, str, str | None, bool]]] = []
    for e in ft.entities:
        display: str | None = None
        if e.type in _SIMPLE_TAGS:
            opener, closer = _SIMPLE_TAGS[e.type]
        elif e.type is EntityType.PRE:
            lang = e.language
            cls = f' class="language-{escape(lang)}"' if lang and not _has_space(lang) else ""
            opener, closer = f"<pre><code{cls}>", "</code></pre>"
        elif e.type is EntityType.LINK:
            if not e.url or not is_safe_url(e.url):
                continue  # safety: never a link to javascript:, data:, relative paths...
            opener, closer = f'<a href="{escape(e.url)}">', "</a>"
        else:  # MENTION
            target = resolve(e.mention) if e.mention else None
            if not target or not target[0] or not _MXID.fullmatch(target[0]):
                continue
            href = MATRIX_TO + quote(target[0], safe="@:")
            opener, closer = f'<a href="{escape(href)}">', "</a>"
            if target[1] and target[1] != body[e.offset : e.end]:
                display = target[1]
        is_pre = e.type is EntityType.PRE
        items.append((e.offset, e.end, e.type.value, (opener, closer, display, is_pre)))

    out: list[str] = []
    stack: list[tuple[int, str, bool]] = []  # (end, closing html, is a code block)
    pos = 0
    pre_depth = 0

    def flush(upto: int) -> None:
        nonlocal pos
        if upto > pos:
            chunk = escape(body[pos:upto], quote=False)
            out.append(chunk if pre_depth else chunk.replace("\n", "<br/>"))
            pos = upto

    def close() -> None:
        nonlocal pre_depth
        end, closer, is_pre = stack.pop()
        flush(end)
        if is_pre:
            pre_depth -= 1
            # The parser drops the final newline of a code block (Markdown clients always
            # add one), so a block that really ends with a newline gets an extra one.
            if not pre_depth and body[end - 1] == "\n":
                out.append("\n")
        out.append(closer)

    pieces = _laminar(items)
    for start, end, (opener, closer, display, is_pre), piece in pieces:
        if start < pos:
            continue  # inside a mention already written as its display name
        while stack and stack[-1][0] <= start:
            close()
        flush(start)
        out.append(opener)
        if display is not None and not piece:
            out.append(escape(display, quote=False).replace("\n", " ") + closer)
            pos = end
            continue
        pre_depth += is_pre
        stack.append((end, closer, is_pre))
    while stack:
        close()
    flush(len(body))
    return body, ("".join(out) if pieces else None)


def _has_space(value: str) -> bool:
    return any(c.isspace() for c in value)


# --------------------------------------------------------------------------- parsing

_WS = "\t\n\f\r "
_TOKEN = re.compile(r"[\t\n\f\r ]+|[^\t\n\f\r ]+")
_MARKUP = re.compile(r"<[A-Za-z/!?]")  # any other "<" is text
_NAME = re.compile(r"[^\t\n\f\r />]+")
_ATTR_NAME = re.compile(r"[^\t\n\f\r />][^\t\n\f\r />=]*")
_ATTR_GAP = re.compile(r"[\t\n\f\r /]*")
_ATTR_EQ = re.compile(r"[\t\n\f\r ]*=[\t\n\f\r ]*")
_UNQUOTED = re.compile(r"[^\t\n\f\r >]*")
# In attributes, HTML only decodes named references that end with ";" (think "&lang=")
_ATTR_REF = re.compile(r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;)")
_RAWTEXT_END = {t: re.compile(rf"</{t}(?=[\t\n\f\r />]|\Z)", re.I) for t in ("script", "style")}

_INLINE = {
    "strong": EntityType.BOLD, "b": EntityType.BOLD,
    "em": EntityType.ITALIC, "i": EntityType.ITALIC,
    "u": EntityType.UNDERLINE, "ins": EntityType.UNDERLINE,
    "del": EntityType.STRIKETHROUGH, "s": EntityType.STRIKETHROUGH,
    "strike": EntityType.STRIKETHROUGH, "code": EntityType.CODE,
}  # fmt: skip
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCK = _HEADINGS | frozenset(
    "p div blockquote pre ul ol li hr table tr thead tbody tfoot caption dl dt dd section"
    " article header footer aside nav main figure figcaption address details summary"
    " center fieldset form".split()
)
_HIDDEN = frozenset({"mx-reply", "script", "style", "template", "head", "title"})
_VOID = frozenset("br hr img wbr area base col embed input link meta param source track".split())
_MAX_INDENT = 8  # nested list levels that get indented; deeper ones share the last indent


class _Frame:
    """One open element."""

    __slots__ = ("tag", "start", "seq", "type", "url", "language", "mention", "block",
                 "pre", "hide", "list", "wrapper")  # fmt: skip

    def __init__(self, tag: str, start: int, seq: int) -> None:
        self.tag, self.start, self.seq = tag, start, seq
        self.type: EntityType | None = None
        self.url: str | None = None
        self.language: str | None = None
        self.mention: MentionTarget | None = None
        self.block = self.pre = self.hide = self.wrapper = False
        self.list: list[int] | None = None  # [is ordered, next number] for ul/ol


class _Parser:
    """Builds the IR from tokenizer callbacks; see the module docstring for whitespace."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.last = ""
        self.soft = False  # the last character is a collapsible space
        self.fresh = True  # nothing but indentation on the current line yet
        self.pending = False  # a block ended: the next content goes on a new line
        self.stack: list[_Frame] = []
        self.open: dict[str, int] = {}
        self.closed: list[list] = []  # [seq, type, start, end, url, language, mention]
        self.hidden = 0
        self.pre = 0
        self.lists: list[list[int]] = []
        self.seq = 0

    # -- output primitives
    def _append(self, s: str) -> None:
        self.parts.append(s)
        self.size += len(s)
        self.last = s[-1]
        self.soft = False
        self.fresh = self.last == "\n"

    def _drop_last(self) -> None:
        """Remove the last character, pulling back entities that reached past it."""
        chunk = self.parts.pop()
        if len(chunk) > 1:
            self.parts.append(chunk[:-1])
        self.size -= 1
        self.last = self.parts[-1][-1] if self.parts else ""
        self.soft = False
        self.fresh = self.last in ("", "\n")
        n = self.size
        for f in reversed(self.stack):  # starts grow towards the top of the stack
            if f.start <= n:
                break
            f.start = n
        for c in reversed(self.closed):  # ends grow in closing order
            if c[3] <= n:
                break
            c[2], c[3] = min(c[2], n), n

    def _strip_soft(self) -> None:
        if self.soft:
            self._drop_last()

    def _newline(self) -> None:
        """An implicit line break (block boundary), unless the line is still empty."""
        self._strip_soft()
        self.pending = False
        if self.fresh:
            return
        pos = self.size
        self._append("\n")
        # Inline elements opened right here start after the break, not before it.
        for f in reversed(self.stack):
            if f.start != pos:
                break
            f.start = pos + 1

    def _space(self) -> None:
        if not (self.soft or self.fresh or self.pending):
            self._append(" ")
            self.soft = True

    # -- tokenizer callbacks
    def text(self, data: str) -> None:
        if self.hidden or not data:
            return
        if self.pre:
            if self.pending and data[0] == "\n":
                self.pending = False  # the code's own newline ends the block's line
            elif self.pending:
                self._newline()
            self._append(data)
            return
        for match in _TOKEN.finditer(data):
            piece = match.group()
            if piece[0] in _WS:
                self._space()
            else:
                if self.pending:
                    self._newline()
                self._append(piece)

    def br(self) -> None:
        if not self.hidden:
            self._strip_soft()
            self.pending = False  # a <br/> right after a block is that block's line break
            self._append("\n")

    def start(self, tag: str, attrs: dict[str, str], self_closing: bool) -> None:
        if tag in _VOID:
            if not self.hidden:
                self._void(tag, attrs)
            return
        frame = _Frame(tag, self.size, self.seq)
        self.seq += 1
        if tag in _HIDDEN:
            frame.hide = True
            self.hidden += 1
        elif not self.hidden:
            self._setup(frame, attrs)
        self.stack.append(frame)
        self.open[tag] = self.open.get(tag, 0) + 1
        if self_closing:  # <span/>: an empty element (safer than HTML's "ignore the /")
            self.end(tag)

    def _void(self, tag: str, attrs: dict[str, str]) -> None:
        if tag == "br":
            self.br()
        elif tag == "hr":
            self._newline()
            self._append("---")
            self.pending = True
        elif tag == "img":  # custom emoji carry their shortcode as alt text
            self.text(attrs.get("alt", "").strip() or "[image]")

    def _setup(self, f: _Frame, attrs: dict[str, str]) -> None:
        tag = f.tag
        top = self.stack[-1] if self.stack else None
        if tag in _BLOCK:
            f.block = True
            self._newline()
            f.start = self.size
        if tag == "code" and top and top.pre and not top.wrapper and self.size == top.start:
            top.wrapper = True  # <pre><code class="language-x">: the code only names the language
            top.language = _language(attrs.get("class", "")) or top.language
            return
        f.type = _INLINE.get(tag)
        if tag == "a":
            href = attrs.get("href", "").strip()
            mxid = matrix_user_from_url(href)
            if mxid:
                f.type, f.mention = EntityType.MENTION, MentionTarget(matrix_user_id=mxid)
            elif is_safe_url(href):
                f.type, f.url = EntityType.LINK, href
        elif tag == "span" and "data-mx-spoiler" in attrs:
            f.type = EntityType.SPOILER
        elif tag == "pre":
            f.type, f.pre, f.language = EntityType.PRE, True, _language(attrs.get("class", ""))
            self.pre += 1
        elif tag == "blockquote":
            f.type = EntityType.BLOCKQUOTE
        elif tag in _HEADINGS:
            f.type = EntityType.BOLD
        elif tag in ("ul", "ol"):
            f.list = [tag == "ol", _int(attrs.get("start"), 1)]
            self.lists.append(f.list)
        elif tag == "li":
            current = self.lists[-1] if self.lists else [False, 0]
            marker = f"{current[1]}. " if current[0] else "• "
            current[1] += 1
            self._append("  " * min(max(len(self.lists) - 1, 0), _MAX_INDENT) + marker)
            self.fresh = True
            f.start = self.size
        elif tag in ("td", "th"):
            self._space()

    def end(self, tag: str) -> None:
        if tag in _VOID:
            if tag == "br":
                self.br()  # browsers read </br> as <br>
            return
        if not self.open.get(tag):
            return  # stray closer
        while True:
            frame = self.stack.pop()
            self.open[frame.tag] -= 1
            self._close(frame)
            if frame.tag == tag:
                return

    def _close(self, f: _Frame) -> None:
        if f.hide:
            self.hidden -= 1
            return
        if f.list is not None:
            self.lists.pop()
        if f.pre:
            self.pre -= 1
            if not self.pre and self.size > f.start and self.last == "\n":
                self._drop_last()  # Markdown clients end every code block with "\n"
        if f.block:
            self._strip_soft()
        if f.type is not None:
            self.closed.append([f.seq, f.type, f.start, self.size, f.url, f.language, f.mention])
        if f.block:
            self.pending = not self.fresh

    def finish(self) -> FormattedText:
        while self.stack:
            frame = self.stack.pop()
            self._close(frame)
        self._strip_soft()
        text = "".join(self.parts)
        closed = sorted(self.closed)  # opening order, so equal spans keep outer-first
        lead = len(text) - len(text.lstrip(_WS))
        stop = len(text.rstrip(_WS))
        for c in closed:  # whitespace inside a code block is content, keep it
            if c[1] is EntityType.PRE and c[3] > c[2]:
                lead, stop = min(lead, c[2]), max(stop, c[3])
        stop = max(stop, lead)
        entities = []
        for _, etype, s, e, url, language, mention in closed:
            s, e = min(max(s, lead), stop) - lead, min(max(e, lead), stop) - lead
            entities.append(Entity(etype, s, e - s, url, language, mention))
        return FormattedText(text[lead:stop], tuple(entities)).normalized()


def _language(classes: str) -> str | None:
    for name in classes.split():
        if name.startswith("language-") and len(name) > 9:
            return name[9:]
    return None


def _int(value: str | None, default: int) -> int:
    try:
        number = int(value or default)
    except ValueError:
        return default
    return number if abs(number) < 10**9 else default


def _tokenize(src: str, p: _Parser) -> None:
    """Feed ``src`` to ``p``; linear: every step consumes what it scanned."""
    i, n = 0, len(src)
    while i < n:
        opening = _MARKUP.search(src, i)
        if opening is None:
            p.text(unescape(src[i:]))
            return
        j = opening.start()
        if j > i:
            p.text(unescape(src[i:j]))
        i, c = j, src[j + 1 : j + 2]
        if c.isascii() and c.isalpha():
            m = _NAME.match(src, i + 1)
            tag, k = m.group().lower(), m.end()  # type: ignore[union-attr]
            attrs: dict[str, str] = {}
            while True:
                gap = _ATTR_GAP.match(src, k).end()  # type: ignore[union-attr]
                if gap >= n:
                    return  # end of input inside a tag: the tag is dropped
                if src[gap] == ">":
                    self_closing, k = gap > k and src[gap - 1] == "/", gap + 1
                    break
                m = _ATTR_NAME.match(src, gap)
                name, k = m.group().lower(), m.end()  # type: ignore[union-attr]
                value = ""
                eq = _ATTR_EQ.match(src, k)
                if eq:
                    k = eq.end()
                    if src[k : k + 1] in ('"', "'"):
                        close = src.find(src[k], k + 1)
                        if close < 0:
                            return
                        value, k = src[k + 1 : close], close + 1
                    else:
                        m = _UNQUOTED.match(src, k)
                        value, k = m.group(), m.end()  # type: ignore[union-attr]
                attrs.setdefault(name, _ATTR_REF.sub(lambda r: unescape(r.group()), value))
            p.start(tag, attrs, self_closing)
            i = k
            if tag in _RAWTEXT_END and not self_closing:  # script/style: skip raw content
                end = _RAWTEXT_END[tag].search(src, i)
                i = end.start() if end else n
        elif c == "/" and src[j + 2 : j + 3].isascii() and src[j + 2 : j + 3].isalpha():
            m = _NAME.match(src, i + 2)
            k = src.find(">", m.end())  # type: ignore[union-attr]
            if k < 0:
                return
            p.end(m.group().lower())  # type: ignore[union-attr]
            i = k + 1
        else:  # comments, doctypes, processing instructions, </>
            end_mark = "-->" if src.startswith("<!--", i) else ">"
            k = src.find(end_mark, i + 2)
            if k < 0:
                return
            i = k + len(end_mark)


def parse(formatted_body: str, *, fallback_body: str | None = None) -> FormattedText:
    """Convert Matrix HTML (``formatted_body``) to the IR.

    Accepts what Element, nheko, FluffyChat and friends send; never raises, never
    recurses, runs in linear time. The reply fallback (``<mx-reply>``) is dropped. When
    nothing visible remains and ``fallback_body`` is given, that plain body (minus its
    reply fallback) is used instead.
    """
    parser = _Parser()
    _tokenize(formatted_body.replace("\r\n", "\n").replace("\r", "\n"), parser)
    result = parser.finish()
    if not result.text and fallback_body:
        return FormattedText.plain(strip_reply_fallback(fallback_body).strip())
    return result


def strip_reply_fallback(body: str) -> str:
    """Remove the quoted ``> <@user:server> ...`` lines that start a reply's plain body."""
    if not body.startswith(("> <", "> * <")) or "\n" not in body:
        return body
    lines = body.split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i < len(lines) and not lines[i].strip():
        i += 1  # the blank line between the quote and the reply
    return "\n".join(lines[i:]) if i < len(lines) else body
