"""Signal text styles and mentions (UTF-16 ranges) <-> the core's FormattedText (code points)."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.text import Entity, EntityType, FormattedText, MentionTarget
from bridge.networks.signal.format import (
    PLACEHOLDER,
    from_signal,
    parse_ranges,
    to_signal,
    untangle,
    utf16_offsets,
)

STYLE_TYPES = [EntityType.BOLD, EntityType.ITALIC, EntityType.STRIKETHROUGH, EntityType.SPOILER, EntityType.CODE]
# Astral characters (emoji) take two UTF-16 units; U+FFFC is excluded since it is Signal's placeholder.
chars = st.characters(blacklist_categories=("Cs",), blacklist_characters=PLACEHOLDER)
texts = st.text(alphabet=st.one_of(chars, st.sampled_from("😀👍🏽𝄞")), max_size=30)


def back(text: FormattedText, names: dict[str, str] | None = None) -> FormattedText:
    signal = to_signal(text)
    return from_signal(
        signal.body, parse_ranges(signal.text_styles, "style"), parse_ranges(signal.mentions, "uuid"),
        (names or {}).get,
    )


def crossing(entities: tuple[Entity, ...]) -> bool:
    return any(a.offset < b.offset < a.end < b.end for a in entities for b in entities)


@st.composite
def styled(draw) -> FormattedText:
    text = draw(texts)
    ranges = draw(st.lists(st.tuples(st.integers(0, len(text)), st.integers(0, len(text)), st.sampled_from(STYLE_TYPES)), max_size=6))
    raw = [Entity(kind, min(a, b), abs(a - b)) for a, b, kind in ranges if a != b]
    raw.sort(key=lambda e: (e.offset, -e.length, e.type.value))
    return FormattedText(text, tuple(untangle([], raw))).normalized()


@given(styled())
@settings(max_examples=300, deadline=None)
def test_styles_survive_the_trip_to_signal_and_back(text: FormattedText) -> None:
    assert back(text) == text


@st.composite
def with_mentions(draw) -> tuple[FormattedText, dict[str, str]]:
    pieces = draw(st.lists(st.one_of(texts.filter(bool), st.builds(lambda n: ("mention", n), st.text("abcXYZé ", min_size=1, max_size=8).filter(str.strip))), min_size=1, max_size=6))
    text, entities, names, bounds = "", [], {}, [0]
    for piece in pieces:
        if isinstance(piece, tuple):
            aci = str(uuid.uuid4())
            names[aci] = piece[1]
            label = "@" + piece[1]
            entities.append(Entity(EntityType.MENTION, len(text), len(label), mention=MentionTarget(remote_user_id=aci)))
            text += label
        else:
            text += piece
        bounds.append(len(text))
    # Styles start and end between pieces, so none cuts a mention in half.
    picks = draw(st.lists(st.tuples(st.sampled_from(bounds), st.sampled_from(bounds), st.sampled_from(STYLE_TYPES)), max_size=4))
    styles = sorted((Entity(k, min(a, b), abs(a - b)) for a, b, k in picks if a != b), key=lambda e: (e.offset, -e.length))
    return FormattedText(text, tuple(untangle(entities, styles))).normalized(), names


@given(with_mentions())
@settings(max_examples=200, deadline=None)
def test_mentions_become_placeholders_and_come_back_as_the_same_names(case) -> None:
    text, names = case
    signal = to_signal(text)
    assert signal.body.count(PLACEHOLDER) == len(names)
    assert back(text, names) == text


@given(
    st.text(alphabet=st.one_of(chars, st.just(PLACEHOLDER), st.just("😀")), max_size=25),
    st.lists(st.fixed_dictionaries({"style": st.sampled_from(["BOLD", "ITALIC", "MONOSPACE", "SPOILER", "STRIKETHROUGH", "NONE"]),
                                    "start": st.integers(-2, 30), "length": st.integers(-1, 30)}), max_size=6),
    st.lists(st.fixed_dictionaries({"start": st.integers(-2, 30), "length": st.integers(-1, 3),
                                    "uuid": st.sampled_from([str(uuid.UUID(int=1)), str(uuid.UUID(int=2)), "not-a-uuid"])}), max_size=3),
)
@settings(max_examples=300, deadline=None)
def test_any_signal_ranges_give_entities_that_nest_and_stay_in_the_text(body, styles, mentions) -> None:
    result = from_signal(body, styles, mentions, lambda aci: "Zed")
    assert not crossing(result.entities)
    for entity in result.entities:
        assert 0 <= entity.offset < entity.end <= len(result.text)
        if entity.type == EntityType.MENTION:
            assert result.text[entity.offset] == "@"


def test_utf16_offsets_count_astral_characters_twice() -> None:
    assert utf16_offsets("a😀b") == [0, 1, 3, 4]


def test_ranges_after_an_emoji_are_converted_from_utf16_units() -> None:
    # "😀 bold": BOLD starts at UTF-16 offset 3 but code point 2.
    text = from_signal("😀 bold", [{"style": "BOLD", "start": 3, "length": 4}], None)
    assert text.entities == (Entity(EntityType.BOLD, 2, 4),)
    assert to_signal(text).text_styles == ("3:4:BOLD",)


def test_crossing_signal_styles_are_split_so_they_nest() -> None:
    text = from_signal("abcdef", [{"style": "BOLD", "start": 0, "length": 4}, {"style": "ITALIC", "start": 2, "length": 4}], None)
    assert text.entities == (Entity(EntityType.BOLD, 0, 4), Entity(EntityType.ITALIC, 2, 2), Entity(EntityType.ITALIC, 4, 2))


def test_a_mention_without_a_name_uses_the_lookup_and_never_a_phone_number() -> None:
    aci = str(uuid.UUID(int=7))
    named = from_signal(f"hi {PLACEHOLDER}", None, [{"start": 3, "length": 1, "uuid": aci, "name": "+49 151 2345678"}], {aci: "Dora"}.get)
    assert named.text == "hi @Dora"
    unnamed = from_signal(f"hi {PLACEHOLDER}", None, [{"start": 3, "length": 1, "uuid": aci, "name": None}], lambda a: None)
    assert unnamed.text == "hi @Unknown user"


def test_a_link_with_other_text_keeps_its_address_in_brackets_and_code_blocks_become_monospace() -> None:
    text = FormattedText("see the docs\nx = 1", (
        Entity(EntityType.LINK, 8, 4, url="https://example.org/docs"),
        Entity(EntityType.PRE, 13, 5),
    ))
    signal = to_signal(text)
    assert signal.body == "see the docs (https://example.org/docs)\nx = 1"
    assert signal.text_styles == ("40:5:MONOSPACE",)
    plain = to_signal(FormattedText("https://example.org", (Entity(EntityType.LINK, 0, 19, url="https://example.org"),)))
    assert plain.body == "https://example.org"
