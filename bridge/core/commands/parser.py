"""Parsing command messages. Pure code: no I/O."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class ParsedCommand:
    name: str
    args: tuple[str, ...]
    raw_args: str
    """Everything after the command name, unsplit (for free text like a title)."""


MAX_COMMAND_LENGTH = 4096
_WHITESPACE = re.compile(r"\s+")


def parse_command(body: str, prefix: str, *, prefix_optional: bool) -> ParsedCommand | None:
    """Parse ``body`` as a command, or return None when it isn't one.

    In the management room the prefix may be left out (``prefix_optional``); elsewhere a
    message is a command only when it starts with the prefix followed by a space or its end.
    """
    text = body.strip()
    if len(text) > MAX_COMMAND_LENGTH:
        return None
    if text == prefix or (text.startswith(prefix) and text[len(prefix)] in " \n"):
        text = text[len(prefix) :].strip()
    elif not prefix_optional:
        return None
    if not text:
        return ParsedCommand("help", (), "")
    parts = _WHITESPACE.split(text, maxsplit=1)
    name = parts[0]
    rest = parts[1].strip() if len(parts) > 1 else ""
    try:
        args = tuple(shlex.split(rest))
    except ValueError:  # an unbalanced quote: fall back to plain splitting
        args = tuple(rest.split())
    return ParsedCommand(name.lower(), args, rest)
