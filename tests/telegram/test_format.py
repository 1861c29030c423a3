"""Telegram entities (UTF-16 offsets) <-> the IR (code points), and on through Matrix HTML."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from telethon.tl import types as tl

from bridge.core.text import Entity, EntityType, FormattedText, MentionTarget
from bridge.matrix.html import parse, render
from bridge.networks.telegram.format import from_telegram, to_telegram, utf16_length

E = EntityType
SIMPLE = {
    tl.MessageEntityBold: E.BOLD,
    tl.MessageEntityItalic: E.ITALIC,
    tl.MessageEntityUnderline: E.UNDERLINE,
    tl.MessageEntityStrike: E.STRIKETHROUGH,
    tl.MessageEntitySpoiler: E.SPOILER,
    tl.MessageEntityCode: E.CODE,
}
# Letters, an accent, emoji outside the BMP (two UTF-16 units each) and a ZWJ sequence part.
ALPHABET = st.sampled_from(list("abcXYZ09é.,!") + ["😀", "👍", "🇩", "🇪", "\u200d", "𝔘"])


def styles_per_unit(text: str, entities: list[tl.TypeMessageEntity]) -> list[frozenset]:
    """Which simple styles cover each code point, computed in UTF-16 units directly."""
    out = []
    pos = 0
    for ch in text:
        styles = frozenset(
            SIMPLE[type(e)] for e in entities
            if type(e) in SIMPLE and e.offset <= pos < e.offset + e.length
        )
        out.append(styles)
        pos += 2 if ord(ch) > 0xFFFF else 1
    return out


def styles_per_code_point(ft: FormattedText) -> list[frozenset]:
    return [
        frozenset(e.type for e in ft.entities if e.offset <= i < e.end and e.type in SIMPLE.values())
        for i in range(len(ft.text))
    ]


def is_laminar(entities: tuple[Entity, ...]) -> bool:
    for a in entities:
        for b in entities:
            if a.offset < b.offset < a.end < b.end:
                return False
    return True


@st.composite
def telegram_message(draw) -> tuple[str, list[tl.TypeMessageEntity]]:
    """Text plus simple-style entities on code point boundaries, overlapping freely."""
    chars = draw(st.lists(ALPHABET, min_size=1, max_size=30))
    text = "".join(chars)
    bounds = [utf16_length("".join(chars[:i])) for i in range(len(chars) + 1)]
    entities = []
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(chars) - 1))
        j = draw(st.integers(i + 1, len(chars)))
        kind = draw(st.sampled_from(list(SIMPLE)))
        entities.append(kind(offset=bounds[i], length=bounds[j] - bounds[i]))
    return text, entities


@st.composite
def laminar_ir(draw, kinds=(E.BOLD, E.ITALIC, E.UNDERLINE, E.STRIKETHROUGH, E.SPOILER, E.CODE,
                            E.LINK, E.MENTION)) -> FormattedText:
    """IR text whose entities nest (built as a tree of intervals)."""
    chars = draw(st.lists(ALPHABET, min_size=1, max_size=30))
    text = "".join(chars)
    entities: list[Entity] = []

    def fill(start: int, end: int, depth: int) -> None:
        pos = start
        while pos < end and depth < 3 and draw(st.booleans()):
            a = draw(st.integers(pos, end - 1))
            b = draw(st.integers(a + 1, end))
            kind = draw(st.sampled_from(kinds))
            if kind == E.LINK:
                entities.append(Entity(kind, a, b - a, url=f"https://example.org/{a}-{b}"))
            elif kind == E.MENTION:
                target = MentionTarget(remote_user_id=str(draw(st.integers(1, 10**10))))
                entities.append(Entity(kind, a, b - a, mention=target))
                pos = b
                continue  # nothing nests inside a mention
            else:
                entities.append(Entity(kind, a, b - a))
            fill(a, b, depth + 1)
            pos = b

    fill(0, len(text), 0)
    return FormattedText(text, tuple(entities)).normalized()


def input_user(user_id: str) -> tl.InputUser:
    return tl.InputUser(int(user_id), access_hash=7)


def resolved(text: str, entities: list) -> list:
    """What Telegram stores for a sent message: input mentions become plain mentions."""
    return [
        tl.MessageEntityMentionName(offset=e.offset, length=e.length, user_id=e.user_id.user_id)
        if isinstance(e, tl.InputMessageEntityMentionName) else e
        for e in entities
    ]


@settings(max_examples=300)
@given(telegram_message())
def test_every_character_keeps_its_styles_and_entities_nest(message) -> None:
    text, entities = message
    ft = from_telegram(text, entities)
    assert ft.text == text
    assert is_laminar(ft.entities)
    assert styles_per_code_point(ft) == styles_per_unit(text, entities)


@settings(max_examples=300)
@given(telegram_message())
def test_telegram_to_ir_to_telegram_is_stable(message) -> None:
    text, entities = message
    first = from_telegram(text, entities)
    back_text, back_entities = to_telegram(first)
    assert back_text == text
    assert styles_per_unit(back_text, back_entities) == styles_per_unit(text, entities)
    assert from_telegram(back_text, back_entities) == first


@settings(max_examples=300)
@given(laminar_ir())
def test_ir_to_telegram_and_back_is_identity(ft: FormattedText) -> None:
    text, entities = to_telegram(ft, input_user=input_user)
    for e in entities:  # offsets count UTF-16 units and stay inside the text
        assert 0 <= e.offset and e.offset + e.length <= utf16_length(text)
    assert from_telegram(text, resolved(text, entities)) == ft


@settings(max_examples=200)
@given(laminar_ir())
def test_whole_path_through_matrix_html(ft: FormattedText) -> None:
    """Telegram -> IR -> Matrix HTML -> IR -> Telegram gives the same message back."""
    text, entities = to_telegram(ft, input_user=input_user)
    entities = resolved(text, entities)
    ir = from_telegram(text, entities)

    def mention_user(target: MentionTarget):
        if target.remote_user_id:
            mxid = f"@hub_telegram_{target.remote_user_id}:example.org"
            return mxid, None
        return None

    body, html = render(ir, mention_user=lambda t: (mention_user(t)[0], "") if mention_user(t) else None)
    parsed = parse(html, fallback_body=body) if html else FormattedText(body)
    # Matrix brings mentions back as Matrix ids; the core maps ghosts back to remote ids.
    parsed = FormattedText(parsed.text, tuple(
        Entity(e.type, e.offset, e.length, url=e.url, language=e.language,
               mention=MentionTarget(remote_user_id=e.mention.matrix_user_id.split("_")[-1].split(":")[0]))
        if e.type == E.MENTION and e.mention and e.mention.matrix_user_id else e
        for e in parsed.entities
    ))
    again_text, again_entities = to_telegram(parsed, input_user=input_user)
    assert again_text == text
    assert from_telegram(again_text, resolved(again_text, again_entities)) == ir


def test_emoji_shift_offsets_by_utf16_units() -> None:
    text = "😀 bold 👍 x"
    # "😀 " is 3 UTF-16 units; "bold" starts there.
    ft = from_telegram(text, [tl.MessageEntityBold(offset=3, length=4)])
    assert ft.entities == (Entity(E.BOLD, 2, 4),)
    assert to_telegram(ft)[1] == [tl.MessageEntityBold(offset=3, length=4)]


def test_entity_boundary_inside_a_surrogate_pair_is_widened_to_the_whole_character() -> None:
    ft = from_telegram("a😀b", [tl.MessageEntityItalic(offset=2, length=1)])
    assert ft.entities == (Entity(E.ITALIC, 1, 1),)


def test_partial_overlap_is_split_into_nested_pieces() -> None:
    ft = from_telegram("abcdefgh", [
        tl.MessageEntityBold(offset=0, length=5), tl.MessageEntityItalic(offset=3, length=5),
    ])
    assert ft.entities == (
        Entity(E.BOLD, 0, 5), Entity(E.ITALIC, 3, 2), Entity(E.ITALIC, 5, 3),
    )


def test_code_block_language_links_and_mentions() -> None:
    text = "see code\nprint(1)\nand docs, ask Bob or @carol"
    entities = [
        tl.MessageEntityPre(offset=9, length=8, language="python"),
        tl.MessageEntityTextUrl(offset=22, length=4, url="https://docs.example/"),
        tl.MessageEntityMentionName(offset=32, length=3, user_id=42),
        tl.MessageEntityMention(offset=39, length=6),
        tl.MessageEntityBlockquote(offset=0, length=8),
    ]
    ft = from_telegram(text, entities, resolve_username=lambda name: "77" if name == "carol" else None)
    assert ft.entities == (
        Entity(E.BLOCKQUOTE, 0, 8),
        Entity(E.PRE, 9, 8, language="python"),
        Entity(E.LINK, 22, 4, url="https://docs.example/"),
        Entity(E.MENTION, 32, 3, mention=MentionTarget(remote_user_id="42")),
        Entity(E.MENTION, 39, 6, mention=MentionTarget(remote_user_id="77")),
    )
    body, html = render(ft, mention_user=lambda t: (f"@hub_telegram_{t.remote_user_id}:x.org", ""))
    assert '<pre><code class="language-python">print(1)</code></pre>' in html
    assert "<blockquote>see code</blockquote>" in html
    assert 'href="https://matrix.to/#/@hub_telegram_42:x.org"' in html


def test_plain_urls_and_emails_round_trip_as_their_own_entity_types() -> None:
    text = "mail me@example.org or example.org"
    entities = [tl.MessageEntityEmail(offset=5, length=14), tl.MessageEntityUrl(offset=23, length=11)]
    ft = from_telegram(text, entities)
    assert [e.url for e in ft.entities] == ["mailto:me@example.org", "https://example.org"]
    assert to_telegram(ft)[1] == entities


def test_entities_without_an_ir_equivalent_leave_plain_text() -> None:
    text = "#tag /start $USD @nobody"
    entities = [
        tl.MessageEntityHashtag(offset=0, length=4), tl.MessageEntityBotCommand(offset=5, length=6),
        tl.MessageEntityCashtag(offset=12, length=4), tl.MessageEntityMention(offset=17, length=7),
    ]
    assert from_telegram(text, entities) == FormattedText(text)


def test_mention_without_a_known_user_is_left_as_text_when_sending() -> None:
    ft = FormattedText("hi Bob", (Entity(E.MENTION, 3, 3, mention=MentionTarget(remote_user_id="5")),))
    assert to_telegram(ft, input_user=lambda _: None) == ("hi Bob", [])
