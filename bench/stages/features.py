"""Stages that need features still being built: (d) encryption and (e) hub rooms.

Each looks for its feature the way an admin would (a config key, a bot command) and,
until it is there, reports ``None`` with the reason. To fill a stage in once its feature
lands, replace its body with the measurement described in its docstring; the (b) and
(c) stages are parameterised by ``stage`` and work on any ``BenchStack`` whose portal
rooms and Matrix client fit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bridge.config import BridgeConfig, Config
from bridge.core.commands.registry import COMMANDS_BY_NAME


def encryption_available() -> bool:
    """Whether the bridge has an encryption setting (config key ``encryption``)."""
    names = {f.name for f in dataclasses.fields(Config)} | {
        f.name for f in dataclasses.fields(BridgeConfig)
    }
    return "encryption" in names


def hub_rooms_available() -> bool:
    """Whether the bot has a ``link`` command (a room linked to several chats)."""
    return "link" in COMMANDS_BY_NAME


def encrypted(reason_if_missing: str = "encryption not merged yet") -> tuple[Any, str | None]:
    """(d) (b) and (c) in an encrypted room.

    To measure: a second ``BenchStack`` whose bridge config enables encryption and whose
    portals are encrypted, a Matrix client that decrypts (matrix-nio with its store, not
    the plain /sync watcher), then ``remote_to_matrix.flood_round/latency`` and
    ``matrix_to_remote.latency`` with stage names starting with ``d``.
    """
    if not encryption_available():
        return None, reason_if_missing
    return None, ("encryption is merged, but this stage does not measure it yet: "
                  "see bench/stages/features.py")


def hub_fanout(reason_if_missing: str = "hub rooms (the link command) not merged yet") -> tuple[
        Any, str | None]:
    """(e) One message into a room linked to three chats, until all the others hold it.

    To measure: link three loopback chats to one room with the ``link`` command, post
    into one chat at the latency rate, and time until the observer sees the message in
    the other two (and the Matrix client in the room).
    """
    if not hub_rooms_available():
        return None, reason_if_missing
    return None, ("the link command exists, but this stage does not measure it yet: "
                  "see bench/stages/features.py")
