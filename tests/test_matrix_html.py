"""Matrix HTML <-> IR: examples from real clients plus property tests."""

from __future__ import annotations

import re
from html import unescape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.core.text import Entity, EntityType, FormattedText, MentionTarget
from bridge.matrix.html import is_safe_url, parse, render, strip_reply_fallback

E = EntityType
ALICE = MentionTarget(matrix_user_id="@alice:example.org")


def ent(t: EntityType, offset: int, length: int, **kw: object) -> Entity:
    return Entity(t, offset, length, **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------- rendering


def test_render_plain_text_has_no_formatted_body() -> None:
    assert render(FormattedText.plain("a < b & c\nnext")) == ("a < b & c\nnext", None)


def test_render_simple_styles() -> None:
    text = FormattedText("bold it und del spoil code", (
        ent(E.BOLD, 0, 4), ent(E.ITALIC, 5, 2), ent(E.UNDERLINE, 8, 3),
        ent(E.STRIKETHROUGH, 12, 3), ent(E.SPOILER, 16, 5), ent(E.CODE, 22, 4),
    ))  # fmt: skip
    body, html = render(text)
    assert body == text.text
    assert html == (
        "<strong>bold</strong> <em>it</em> <u>und</u> <del>del</del> "
        "<span data-mx-spoiler>spoil</span> <code>code</code>"
    )


def test_render_escapes_and_breaks_lines() -> None:
    text = FormattedText("<b>&\nx", (ent(E.BOLD, 5, 1),))
    assert render(text)[1] == "&lt;b&gt;&amp;<br/><strong>x</strong>"


def test_render_code_block_keeps_newlines_and_language() -> None:
    text = FormattedText("see\nif x:\n    y()", (ent(E.PRE, 4, 13, language="python"),))
    html = render(text)[1]
    assert html == 'see<br/><pre><code class="language-python">if x:\n    y()</code></pre>'
    assert parse(html) == text


def test_code_block_ending_with_newline_round_trips() -> None:
    text = FormattedText("a\n", (ent(E.PRE, 0, 2),))
    assert render(text)[1] == "<pre><code>a\n\n</code></pre>"
    assert parse(render(text)[1]) == text


def test_render_links_only_for_safe_schemes() -> None:
    text = FormattedText("ok bad", (
        ent(E.LINK, 0, 2, url="https://example.org/?a=1&b=2"),
        ent(E.LINK, 3, 3, url="javascript:alert(1)"),
    ))  # fmt: skip
    assert render(text)[1] == '<a href="https://example.org/?a=1&amp;b=2">ok</a> bad'
    only_bad = FormattedText("bad", (ent(E.LINK, 0, 3, url="JavaScript:alert(1)"),))
    assert render(only_bad) == ("bad", None)


def test_render_mentions() -> None:
    remote = MentionTarget(remote_user_id="tg:42")
    text = FormattedText("hi @bob and @carol", (ent(E.MENTION, 3, 4, mention=remote),
                                                ent(E.MENTION, 12, 6, mention=ALICE)))  # fmt: skip

    def resolve(target: MentionTarget) -> tuple[str, str] | None:
        return ("@tg_42:example.org", "Bob") if target == remote else None

    body, html = render(text, mention_user=resolve)
    assert body == "hi @bob and @carol"  # the body keeps the text as the network wrote it
    assert html == 'hi <a href="https://matrix.to/#/@tg_42:example.org">Bob</a> and @carol'
    # Without a resolver, a target that already has a Matrix ID becomes a pill.
    assert render(text)[1] == (
        'hi @bob and <a href="https://matrix.to/#/@alice:example.org">@carol</a>'
    )


def test_render_mention_display_name_replaces_inner_formatting() -> None:
    text = FormattedText("@bob!", (ent(E.MENTION, 0, 4, mention=ALICE), ent(E.BOLD, 1, 3)))
    html = render(text, mention_user=lambda t: ("@alice:example.org", "Alice <3"))[1]
    assert html == '<a href="https://matrix.to/#/@alice:example.org">Alice &lt;3</a>!'


def test_render_partial_overlap_is_split_deterministically() -> None:
    text = FormattedText("abcdef", (ent(E.BOLD, 0, 4), ent(E.ITALIC, 2, 4)))
    html = render(text)[1]
    assert html == "<strong>ab<em>cd</em></strong><em>ef</em>"
    assert html == render(FormattedText(text.text, text.entities[::-1]))[1]
    assert parse(html).text == "abcdef"


# ------------------------------------------------------------------------- parsing


def test_parse_element_reply_drops_fallback() -> None:
    html = (
        '<mx-reply><blockquote><a href="https://matrix.to/#/!room:example.org/$ev">In reply '
        'to</a> <a href="https://matrix.to/#/@alice:example.org">@alice:example.org</a><br>'
        "original <b>text</b></blockquote></mx-reply>my <em>answer</em>"
    )
    assert parse(html) == FormattedText("my answer", (ent(E.ITALIC, 3, 6),))


def test_parse_mention_pill_and_uri_forms() -> None:
    pill = 'Hey <a href="https://matrix.to/#/@alice:example.org">Alice</a>!'
    assert parse(pill) == FormattedText("Hey Alice!", (ent(E.MENTION, 4, 5, mention=ALICE),))
    encoded = '<a href="https://matrix.to/#/%40alice%3Aexample.org?via=x">A</a>'
    assert parse(encoded).entities[0].mention == ALICE
    uri = '<a href="matrix:u/alice:example.org?action=chat">A</a>'
    assert parse(uri).entities[0].mention == ALICE


def test_parse_room_link_stays_link() -> None:
    html = '<a href="https://matrix.to/#/#room:example.org">#room</a>'
    assert parse(html).entities == (
        ent(E.LINK, 0, 5, url="https://matrix.to/#/#room:example.org"),
    )


def test_parse_nested_bold_in_italic() -> None:
    html = "<em>it <strong>both</strong></em> <b>b</b> <i>i</i>"
    assert parse(html) == FormattedText("it both b i", (
        ent(E.ITALIC, 0, 7), ent(E.BOLD, 3, 4), ent(E.BOLD, 8, 1), ent(E.ITALIC, 10, 1),
    ))  # fmt: skip


def test_parse_element_code_block() -> None:
    html = (
        '<p>Look:</p>\n<pre><code class="language-python">def f():\n    return 1\n</code></pre>\n'
    )
    assert parse(html) == FormattedText(
        "Look:\ndef f():\n    return 1", (ent(E.PRE, 6, 21, language="python"),)
    )


def test_parse_emoji_before_formatting_counts_code_points() -> None:
    prefix = "👍🏽 👨‍👩‍👧 🏳️‍🌈 "
    result = parse(f"{prefix}<b>bold</b>")
    assert result.text == prefix + "bold"
    assert result.entities == (ent(E.BOLD, len(prefix), 4),)
    assert len(prefix) == 2 + 1 + 5 + 1 + 4 + 1


def test_parse_lists() -> None:
    html = "<ul>\n<li>one</li>\n<li>two<ul>\n<li>nested</li>\n</ul>\n</li>\n</ul>\n<p>after</p>"
    assert parse(html).text == "• one\n• two\n  • nested\nafter"
    assert parse("<ol><li>a</li><li><p>b</p></li></ol>").text == "1. a\n2. b"
    assert parse('<ol start="3"><li>c</li></ol>').text == "3. c"


def test_parse_blocks_and_paragraphs() -> None:
    assert parse("<p>one</p>\n<p>two</p>\n") == FormattedText.plain("one\ntwo")
    assert parse("<h1>Title</h1><p>text</p>") == FormattedText("Title\ntext", (ent(E.BOLD, 0, 5),))
    assert parse("a<hr>b").text == "a\n---\nb"
    quote = "<blockquote>\n<p>quoted</p>\n</blockquote>\n<p>reply</p>\n"
    assert parse(quote) == FormattedText("quoted\nreply", (ent(E.BLOCKQUOTE, 0, 6),))
    assert parse("<blockquote>q</blockquote><br/>a").text == "q\na"  # no blank line
    # An implicit line break goes before inline elements opened after the block.
    assert parse("<p>a</p><b>b</b>") == FormattedText("a\nb", (ent(E.BOLD, 2, 1),))


def test_parse_misc_elements() -> None:
    assert parse('<span data-mx-spoiler="why">secret</span>').entities == (ent(E.SPOILER, 0, 6),)
    assert parse("<del>a</del><s>b</s><strike>c</strike><u>d</u>").entities == (
        ent(E.STRIKETHROUGH, 0, 1), ent(E.STRIKETHROUGH, 1, 1),
        ent(E.STRIKETHROUGH, 2, 1), ent(E.UNDERLINE, 3, 1),
    )  # fmt: skip
    assert parse('<img data-mx-emoticon src="mxc://x/y" alt=":cat:">').text == ":cat:"
    assert parse('<img src="mxc://x/y">').text == "[image]"
    assert parse('<font color="red">red</font> <span data-mx-color="#f00">x</span>').text == (
        "red x"
    )
    assert parse("x<sup>2</sup> <table><tr><td>a</td><td>b</td></tr></table>").text == "x2\na b"
    assert parse("a<script>alert('<b>')</script>b<style>p{}</style>").text == "ab"
    assert parse("<custom-tag>kept</custom-tag>").text == "kept"


def test_parse_whitespace_and_entities() -> None:
    assert parse("  a \n\t  b  <br/>  c  ").text == "a b\nc"
    assert parse("&lt;b&gt; &amp; &quot;&#128512;&nbsp;").text == '<b> & "😀\u00a0'
    assert parse('<a href="https://e.org/?x=1&lang=en&amp;y">l</a>').entities[0].url == (
        "https://e.org/?x=1&lang=en&y"
    )


def test_parse_refuses_unsafe_links() -> None:
    hrefs = ("javascript:alert(1)", " JAVASCRIPT:x", "java&#9;script:x", "data:text/html,x", "/x")
    for href in hrefs:
        assert parse(f'<a href="{href}">x</a>') == FormattedText.plain("x")


def test_parse_malformed_markup() -> None:
    assert parse("<b>unclosed") == FormattedText("unclosed", (ent(E.BOLD, 0, 8),))
    assert parse("stray</i> closer</b>").text == "stray closer"
    assert parse("a < b > c <3 <").text == "a < b > c <3 <"
    assert parse("<b>x<i>y</b>z</i>") == FormattedText(
        "xyz", (ent(E.BOLD, 0, 2), ent(E.ITALIC, 1, 1))
    )
    assert parse("a<script>never closed <b>").text == "a"
    assert parse('<a href="x').text == ""
    assert parse("<!-- never closed").text == ""
    assert parse("<![<![<![").text == ""


def test_parse_fallback_body() -> None:
    html = "<mx-reply><blockquote>quoted</blockquote></mx-reply>"
    body = "> <@alice:example.org> quoted\n\nreal answer"
    assert parse(html, fallback_body=body) == FormattedText.plain("real answer")
    assert parse("<b>x</b>", fallback_body="ignored").text == "x"


def test_strip_reply_fallback() -> None:
    body = "> <@alice:example.org> first line\n> second line\n\nmy reply\nmore"
    assert strip_reply_fallback(body) == "my reply\nmore"
    assert strip_reply_fallback("> * <@bob:x> waves\n\nhi") == "hi"
    assert strip_reply_fallback("> just a quote\n\ntext") == "> just a quote\n\ntext"
    assert strip_reply_fallback("no reply") == "no reply"


def test_deep_nesting_and_huge_input() -> None:
    depth = 100_000
    assert parse("<blockquote>" * depth + "x" + "</blockquote>" * depth).text == "x"
    nested_lists = parse("<ul><li>" * depth + "x" + "</li></ul>" * depth).text
    assert nested_lists.endswith("  " * 8 + "• x")
    assert len(nested_lists) < 20 * depth  # indentation is capped, not quadratic
    deep = parse("<b>" * depth + "x")  # never closed
    assert deep.text == "x" and len(deep.entities) == depth
    # Inputs that make Python 3.11's html.parser quadratic or crash; 1 MB each. A
    # quadratic parser would take hours here (the run would never finish), a linear one
    # well under a second; the speed itself is measured in bench/, not asserted here.
    for unit in ("<a x", "<!--", "<![", "<", "a <b><br>", "<pre>\n"):
        result = parse(unit * (1_000_000 // len(unit)))
        assert isinstance(result.text, str), unit


# ---------------------------------------------------------------- property tests

# Words: any character but controls (which include \t \n \r) and the ASCII space, with
# HTML-significant characters and long emoji sequences mixed in on purpose.
WORD = st.one_of(
    st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=" "),
            min_size=1, max_size=5),
    st.sampled_from(["<b>", "&amp;", "&", "<", ">", '"', "👍🏽", "👨‍👩‍👧", "\u00a0", "\u3000"]),
)  # fmt: skip
SAFE_URLS = ["https://example.org/a?b=1&c=2", "http://x.y/#frag", "mailto:a@b.c",
             "tel:+123", "https://matrix.to/#/#room:example.org"]  # fmt: skip
LANGUAGES = [None, "python", "c++", "x-y", "ü"]


@st.composite
def well_formed(draw: st.DrawFn) -> FormattedText:
    """A valid IR whose text survives HTML whitespace rules.

    Narrowed where HTML cannot carry the text, and no further:
    * words are separated by exactly one space or newline and the text has no leading
      or trailing whitespace: outside <pre> the parser collapses whitespace like a
      browser and strips the whole result, so runs of ASCII spaces cannot survive;
    * code blocks and quotes cover whole lines: a block element always starts and ends
      a line, so one starting mid-line would gain a newline.
    Every other combination (any nesting, same-span entities, code inside code blocks,
    links and mentions around blocks...) is generated.
    """
    words = draw(st.lists(WORD, min_size=1, max_size=8))
    text = words[0] + "".join(draw(st.sampled_from([" ", "\n"])) + w for w in words[1:])
    size = len(text)
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    ends = [i for i, c in enumerate(text) if c == "\n"] + [size]
    entities: list[Entity] = []
    for index in range(draw(st.integers(0, 7))):
        kind = draw(st.sampled_from(list(EntityType)))
        if kind in (E.PRE, E.BLOCKQUOTE):
            first = draw(st.integers(0, len(starts) - 1))
            start, end = starts[first], ends[draw(st.integers(first, len(starts) - 1))]
        else:
            start = draw(st.integers(0, size - 1))
            end = draw(st.integers(start + 1, size))
        if any(start < e.offset < end < e.end or e.offset < start < e.end < end
               for e in entities):  # fmt: skip
            continue  # would overlap partially
        extra: dict[str, object] = {}
        if kind is E.LINK:
            extra["url"] = draw(st.sampled_from(SAFE_URLS))
        elif kind is E.PRE:
            extra["language"] = draw(st.sampled_from(LANGUAGES))
        elif kind is E.MENTION:
            local = draw(st.sampled_from(["u", "a/b", "x=y+z", "ü"]))
            extra["mention"] = MentionTarget(matrix_user_id=f"@{local}{index}:example.org")
        entities.append(Entity(kind, start, end - start, **extra))  # type: ignore[arg-type]
    return FormattedText(text, tuple(entities))


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(well_formed())
def test_render_then_parse_round_trips(text: FormattedText) -> None:
    # The display name is the mentioned text itself, so the pill keeps the text intact.
    names = {e.mention: text.text[e.offset : e.end] for e in text.entities if e.mention}

    def resolve(target: MentionTarget) -> tuple[str, str] | None:
        return (target.matrix_user_id or "", names[target])

    body, html = render(text, mention_user=resolve)
    assert body == text.text
    back = parse(html) if html is not None else FormattedText.plain(body)
    assert back == text.normalized()


TAG_SOUP = st.lists(st.one_of(
    st.sampled_from(["<b>", "</b>", "<i>", "</i>", "<pre>", "</pre>", "<code class='language-x'>",
                     "</code>", "<p>", "</p>", "<br>", "<br/>", "<ul>", "<ol>", "<li>", "</li>",
                     "</ul>", "<blockquote>", "</blockquote>", "<mx-reply>", "</mx-reply>",
                     "<a href='https://matrix.to/#/@a:b'>", "<a href=\"javascript:x\">", "</a>",
                     "<hr>", "<img alt='x'>", "<span data-mx-spoiler>", "</span>", "<!--",
                     "-->", "<", ">", "&", "&amp;", "&#", " ", "\n", "\r\n", "<script>",
                     "</script>", "<h2>", "</h2>", "<td>", "<![", "<?", "</", "'", '"', "=", "/>"]),
    st.text(max_size=4),
), max_size=40).map("".join)  # fmt: skip


def _assert_valid(result: FormattedText) -> None:
    for e in result.entities:
        assert e.length > 0 and 0 <= e.offset and e.end <= len(result.text)
    for a in result.entities:  # nested or disjoint, never partial overlap
        for b in result.entities:
            assert not (a.offset < b.offset < a.end < b.end)


@FAST
@given(st.one_of(st.text(), TAG_SOUP))
def test_parse_never_raises_and_yields_valid_ir(source: str) -> None:
    result = parse(source)
    _assert_valid(result)
    assert result.text == result.text.strip("\t\n\f\r ") or any(
        e.type is E.PRE for e in result.entities
    )


UNSAFE_URLS = ["javascript:alert(1)", " javascript:x", "JaVaScRiPt:x", "java\tscript:x",
               "data:text/html,<script>x</script>", "vbscript:x", "//evil.example",
               'https://ok" onclick="x', "https://ok\nx", "\x00javascript:x"]  # fmt: skip


@st.composite
def any_ir(draw: st.DrawFn) -> FormattedText:
    """Arbitrary IR, valid or not: any text, overlapping entities, hostile URLs."""
    text = draw(st.one_of(st.text(max_size=20), st.sampled_from(["<script>x</script>"])))
    size = max(len(text), 1)
    entities = [
        Entity(
            draw(st.sampled_from(list(EntityType))), draw(st.integers(-1, size)),
            draw(st.integers(0, size)), url=draw(st.sampled_from(UNSAFE_URLS + SAFE_URLS)),
            language=draw(st.sampled_from(['"><script>', "a b", None])),
            mention=draw(st.sampled_from([ALICE, MentionTarget(matrix_user_id="javascript:x")])),
        )
        for _ in range(draw(st.integers(0, 6)))
    ]  # fmt: skip
    return FormattedText(text, tuple(entities))


@FAST
@given(any_ir())
def test_render_is_safe_and_parseable(text: FormattedText) -> None:
    body, html = render(text)
    assert body == text.text
    if html is None:
        return
    assert "<script" not in html.lower()
    for href in re.findall(r'<a href="([^"]*)">', html):
        assert is_safe_url(unescape(href))
    assert all("javascript" not in h.lower() for h in re.findall(r'href="([^"]*)"', html))
    _assert_valid(parse(html))
