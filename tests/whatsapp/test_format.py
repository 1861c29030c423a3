"""WhatsApp markup <-> IR: examples, and hypothesis properties for both directions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.text import Entity, EntityType, FormattedText, MentionTarget
from bridge.matrix import html
from bridge.networks.whatsapp.format import MentionedUser, parse, render

E = EntityType


def ent(kind: EntityType, offset: int, length: int, **kw: object) -> Entity:
    return Entity(kind, offset, length, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- examples


def test_parse_reads_every_whatsapp_style() -> None:
    ft = parse("*bold* _it_ ~gone~ `x = 1` ```block\ncode```")
    assert ft == FormattedText("bold it gone x = 1 block\ncode", (
        ent(E.BOLD, 0, 4), ent(E.ITALIC, 5, 2), ent(E.STRIKETHROUGH, 8, 4),
        ent(E.CODE, 13, 5), ent(E.PRE, 19, 10),
    ))  # fmt: skip


def test_markers_inside_words_and_lists_stay_text() -> None:
    for text in ("snake_case_name", "2*3*4", "* milk\n* eggs\n- bread\n1. done", "a * b * c"):
        assert parse(text) == FormattedText(text)


def test_styles_nest_and_do_not_cross_lines() -> None:
    assert parse("*bold _and italic_*") == FormattedText(
        "bold and italic", (ent(E.BOLD, 0, 15), ent(E.ITALIC, 5, 10))
    )
    assert parse("*not\nbold*").entities == ()


def test_code_content_is_literal() -> None:
    assert parse("`*not bold*`") == FormattedText("*not bold*", (ent(E.CODE, 0, 10),))
    assert parse("```*x*\n_y_```") == FormattedText("*x*\n_y_", (ent(E.PRE, 0, 7),))


def test_quote_lines_become_one_blockquote() -> None:
    ft = parse("> first *line*\n> second\nreply")
    assert ft == FormattedText(
        "first line\nsecond\nreply", (ent(E.BLOCKQUOTE, 0, 17), ent(E.BOLD, 6, 4))
    )
    assert render(ft).text == "> first *line*\n> second\nreply"


def test_mention_numbers_are_replaced_by_names() -> None:
    who = {"4915112345678": MentionedUser("lid.77", "Bob")}
    ft = parse("*hey @4915112345678* look", who)
    assert ft.text == "hey @Bob look"
    assert "4915" not in ft.text
    assert ft.entities == (
        ent(E.BOLD, 0, 8),
        ent(E.MENTION, 4, 4, mention=MentionTarget(remote_user_id="lid.77")),
    )


def test_render_mentions_write_the_number_whatsapp_expects() -> None:
    ft = FormattedText("hi Bob (WhatsApp)!", (
        ent(E.MENTION, 3, 14, mention=MentionTarget(remote_user_id="lid.77")),
    ))  # fmt: skip
    out = render(ft, lambda user: "77@lid" if user == "lid.77" else None)
    assert out.text == "hi @77!"
    assert out.mentioned_jids == ("77@lid",)
    assert render(ft, lambda user: None).text == ft.text  # unknown: plain text


def test_render_moves_spaces_out_of_markers_and_splits_lines() -> None:
    ft = FormattedText("a bold \nnext x", (ent(E.BOLD, 1, 11),))
    assert render(ft).text == "a *bold* \n*next* x"


def test_render_drops_what_whatsapp_cannot_show() -> None:
    ft = FormattedText("under spoil link", (
        ent(E.UNDERLINE, 0, 5), ent(E.SPOILER, 6, 5), ent(E.LINK, 12, 4, url="https://x.org"),
    ))  # fmt: skip
    assert render(ft).text == "under spoil link (https://x.org)"


def test_hostile_input_is_linear_enough() -> None:
    text = "*_~" * 3000 + "a"
    assert parse(text).text  # no recursion error, no quadratic blow-up
    assert parse("*a " * 20000).text


# ----------------------------------------------------------------------- properties

_MARKUP = st.sampled_from(["*", "_", "~", "`", "```", "> ", "\n", " ", "@491512345678"])
_PLAIN = st.text(alphabet="ab1é😀.,!-(", min_size=1, max_size=4)
_WA_TEXT = st.lists(st.one_of(_MARKUP, _PLAIN), max_size=30).map("".join)


def _well_formed(ft: FormattedText) -> None:
    spans = sorted(ft.entities, key=lambda e: (e.offset, -e.length))
    for e in spans:
        assert 0 <= e.offset and e.length > 0 and e.end <= len(ft.text)
    for a in spans:
        for b in spans:
            assert not (a.offset < b.offset < a.end < b.end), f"{a} and {b} overlap partially"


@settings(max_examples=400, deadline=None)
@given(_WA_TEXT)
def test_parse_gives_well_formed_entities_and_render_is_its_inverse(text: str) -> None:
    who = {"491512345678": MentionedUser("pn.abc", "Al")}
    ft = parse(text, who)
    _well_formed(ft)
    assert not re.search(r"@491512345678(?![0-9])", ft.text)
    rendered = render(ft, lambda user: "491512345678@s.whatsapp.net")
    assert parse(rendered.text, who) == ft


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab *_~`>\n", max_size=40))
def test_rendering_a_parsed_text_reproduces_it_up_to_marker_order(text: str) -> None:
    once = render(parse(text)).text
    assert render(parse(once)).text == once
    if text.count("*") + text.count("_") + text.count("~") <= 1 and "> " not in text:
        assert once == text


# IR generated from a tree, the way a Matrix message would arrive: text with entities
# on word edges, properly nested.

_WORD = st.text(alphabet="abcXYZ019éß😀.,!?-()", min_size=1, max_size=6)
# Code inside a style can't hold that style's marker on WhatsApp ("*`*`*" is ambiguous),
# and Matrix HTML collapses runs of spaces in inline code: neither is generated.
_CODE_TEXT = st.text(alphabet="abc =+<&", min_size=1, max_size=8).filter(
    lambda s: not s[0].isspace() and not s[-1].isspace() and "  " not in s
)
_STYLES = (E.BOLD, E.ITALIC, E.STRIKETHROUGH)


@dataclass
class _Doc:
    text: str = ""
    entities: list[Entity] | None = None

    def __post_init__(self) -> None:
        self.entities = []

    def add(self, s: str) -> None:
        self.text += s


def _inline(depth: int, used: frozenset[EntityType]):
    leaf = _WORD.map(lambda w: ("text", w))
    code = _CODE_TEXT.map(lambda w: ("code", w))
    if depth == 0:
        return st.lists(st.one_of(leaf, code), min_size=1, max_size=3)
    styled = st.sampled_from([s for s in _STYLES if s not in used]).flatmap(
        lambda kind: _inline(depth - 1, used | {kind}).map(lambda kids: (kind, kids))
    )
    return st.lists(st.one_of(leaf, code, styled), min_size=1, max_size=3)


def _emit(doc: _Doc, nodes: list) -> None:
    for index, node in enumerate(nodes):
        if index:
            doc.add(" ")
        kind, value = node
        start = len(doc.text)
        if kind == "text":
            doc.add(value)
            continue
        if kind == "code":
            doc.add(value)
            doc.entities.append(Entity(E.CODE, start, len(value)))
            continue
        _emit(doc, value)
        doc.entities.append(Entity(kind, start, len(doc.text) - start))


_LINE = _inline(2, frozenset()).map(lambda nodes: ("line", nodes))
_QUOTE = st.lists(_inline(1, frozenset()), min_size=1, max_size=2).map(lambda ls: ("quote", ls))
_BLOCK = st.lists(st.text(alphabet="ab *_>=\n", min_size=1, max_size=10), min_size=1, max_size=2).map(
    lambda ls: ("pre", "\n".join(ls))
).filter(
    # A code block line that starts with "> " reads as a quote on WhatsApp too.
    lambda b: b[1].strip() and b[1][0] != "\n" and b[1][-1] != "\n"
    and not any(line.startswith("> ") for line in b[1].split("\n"))
)


@st.composite
def _documents(draw) -> FormattedText:
    blocks = draw(st.lists(st.one_of(_LINE, _QUOTE, _BLOCK), min_size=1, max_size=4))
    doc = _Doc()
    previous = None
    for index, (kind, value) in enumerate(blocks):
        if index:
            doc.add("\n")
        start = len(doc.text)
        if kind == "line":
            _emit(doc, value)
        elif kind == "pre":
            doc.add(value)
            doc.entities.append(Entity(E.PRE, start, len(value)))
        else:
            if previous == "quote":
                doc.add("x\n")  # two quotes in a row would merge into one
                start = len(doc.text)
            for line_index, line in enumerate(value):
                if line_index:
                    doc.add("\n")
                _emit(doc, line)
            doc.entities.append(Entity(E.BLOCKQUOTE, start, len(doc.text) - start))
        previous = kind
    return FormattedText(doc.text, tuple(doc.entities)).normalized()


@settings(max_examples=300, deadline=None)
@given(_documents())
def test_ir_survives_a_trip_through_whatsapp_markup(ft: FormattedText) -> None:
    assert parse(render(ft).text) == ft


@settings(max_examples=200, deadline=None)
@given(_documents())
def test_whatsapp_text_survives_a_trip_through_matrix_html(ft: FormattedText) -> None:
    markup = render(ft).text
    from_whatsapp = parse(markup)
    body, formatted = html.render(from_whatsapp)
    back = html.parse(formatted) if formatted is not None else FormattedText(body)
    assert back == from_whatsapp
    assert render(back).text == markup
