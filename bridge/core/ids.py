"""Opaque, typed identifiers.

Remote ids are produced only by connectors and are never parsed by the core: the core
stores them, compares them and hands them back. Matrix ids are plain strings with a
NewType so that a remote id can't be passed where a Matrix id is expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

NetworkID = NewType("NetworkID", str)
"""Short lowercase name of a network, e.g. ``telegram`` or ``loopback``."""

RemoteChatID = NewType("RemoteChatID", str)
RemoteUserID = NewType("RemoteUserID", str)
RemoteMessageID = NewType("RemoteMessageID", str)
LoginID = NewType("LoginID", str)
"""Id of one login on a network, unique within that network (usually the account id)."""

UserID = NewType("UserID", str)
"""A Matrix user id (``@local:server``)."""
RoomID = NewType("RoomID", str)
EventID = NewType("EventID", str)


@dataclass(frozen=True, slots=True)
class PortalKey:
    """Identifies one remote chat: a portal links exactly one of these to a Matrix room."""

    network: NetworkID
    chat_id: RemoteChatID

    def __str__(self) -> str:
        return f"{self.network}:{self.chat_id}"


@dataclass(frozen=True, slots=True)
class GhostKey:
    """Identifies one remote person, shown in Matrix as a ghost user."""

    network: NetworkID
    user_id: RemoteUserID

    def __str__(self) -> str:
        return f"{self.network}:{self.user_id}"
