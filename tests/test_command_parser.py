"""Command parsing: examples, then properties that hold for any text."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bridge.core.commands.parser import MAX_COMMAND_LENGTH, ParsedCommand, parse_command

PREFIX = "!bridge"


def outside(body: str, prefix: str = PREFIX) -> ParsedCommand | None:
    """Parse as in a shared room: the prefix is required."""
    return parse_command(body, prefix, prefix_optional=False)


def inside(body: str, prefix: str = PREFIX) -> ParsedCommand | None:
    """Parse as in the user's management room: the prefix is optional."""
    return parse_command(body, prefix, prefix_optional=True)


# --- examples -------------------------------------------------------------------------------


def test_outside_the_management_room_the_prefix_is_required() -> None:
    assert outside("!bridge login loopback") == ParsedCommand("login", ("loopback",), "loopback")
    assert outside("login loopback") is None
    assert outside("hello everyone") is None


def test_inside_the_management_room_the_prefix_is_optional() -> None:
    assert inside("login loopback") == ParsedCommand("login", ("loopback",), "loopback")
    assert inside("!bridge login loopback") == ParsedCommand("login", ("loopback",), "loopback")


def test_the_command_name_is_case_insensitive_but_arguments_keep_their_case() -> None:
    assert outside("!bridge LOGIN Loopback") == ParsedCommand("login", ("Loopback",), "Loopback")
    assert inside("Help") == ParsedCommand("help", (), "")


def test_quoted_arguments_stay_together_and_raw_args_keep_the_text() -> None:
    parsed = outside('!bridge set-name "My  Group" second')
    assert parsed == ParsedCommand("set-name", ("My  Group", "second"), '"My  Group" second')
    assert inside("title 'it''s' x").args == ("its", "x")  # shell-style quoting


def test_an_unbalanced_quote_falls_back_to_plain_splitting() -> None:
    parsed = outside('!bridge say "hello there')
    assert parsed == ParsedCommand("say", ('"hello', "there"), '"hello there')


@pytest.mark.parametrize("body", ["!bridge", "  !bridge  ", "!bridge\n", "!bridge   \n  "])
def test_the_prefix_followed_by_nothing_is_help(body: str) -> None:
    assert outside(body) == ParsedCommand("help", (), "")
    assert inside(body) == ParsedCommand("help", (), "")


def test_a_newline_may_separate_the_prefix_the_name_and_the_arguments() -> None:
    assert outside("!bridge\nlogin loopback") == ParsedCommand("login", ("loopback",), "loopback")
    assert outside("!bridge login\nloopback") == ParsedCommand("login", ("loopback",), "loopback")


@pytest.mark.parametrize("body", ["!bridgefoo", "!bridge-help", "!bridges are nice", "!bridge2 x"])
def test_a_message_that_merely_starts_with_the_prefix_text_is_not_a_command(body: str) -> None:
    assert outside(body) is None


def test_an_overlong_message_is_never_a_command() -> None:
    assert outside("!bridge " + "x" * MAX_COMMAND_LENGTH) is None
    assert inside("help " + "x" * MAX_COMMAND_LENGTH) is None


def test_a_tab_separates_the_command_name_from_its_arguments() -> None:
    assert outside("!bridge help\tme") == ParsedCommand("help", ("me",), "me")


# --- properties -----------------------------------------------------------------------------

prefixes = st.sampled_from([PREFIX, "!hb", "/bridge", "bot:"])


@settings(max_examples=300)
@given(body=st.text(), prefix=prefixes, optional=st.booleans())
def test_parsing_never_raises(body: str, prefix: str, optional: bool) -> None:
    parsed = parse_command(body, prefix, prefix_optional=optional)
    assert parsed is None or isinstance(parsed, ParsedCommand)


@settings(max_examples=300)
@given(body=st.text(), prefix=prefixes, optional=st.booleans())
@example(body="!bridge help\tme", prefix=PREFIX, optional=False)
def test_a_parsed_command_name_never_contains_whitespace(
    body: str, prefix: str, optional: bool
) -> None:
    parsed = parse_command(body, prefix, prefix_optional=optional)
    if parsed is not None:
        assert parsed.name
        assert not any(char.isspace() for char in parsed.name), repr(parsed.name)
        assert parsed.name == parsed.name.lower()


@settings(max_examples=300)
@given(body=st.text(), prefix=prefixes)
def test_outside_text_not_starting_with_the_prefix_is_never_a_command(body: str, prefix: str) -> None:
    if not body.strip().startswith(prefix):
        assert outside(body, prefix) is None


@settings(max_examples=300)
@given(
    rest=st.text().filter(lambda s: s[:1] != "" and not s[0].isspace()),
    prefix=prefixes,
)
def test_outside_the_prefix_glued_to_more_text_is_never_a_command(rest: str, prefix: str) -> None:
    assert outside(prefix + rest, prefix) is None


@settings(max_examples=200)
@given(
    name=st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,15}", fullmatch=True),
    args=st.lists(st.from_regex(r"[a-zA-Z0-9@:._/-]{1,12}", fullmatch=True), max_size=5),
)
def test_a_plain_command_parses_the_same_with_or_without_the_prefix(name: str, args: list[str]) -> None:
    body = " ".join([name, *args])
    expected = ParsedCommand(name.lower(), tuple(args), " ".join(args))
    assert outside(f"{PREFIX} {body}") == expected
    assert inside(f"{PREFIX} {body}") == expected
    assert inside(body) == expected
