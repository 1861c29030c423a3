"""Signal ids as the core sees them. Pure code.

* A person is their ACI (a UUID, lowercase): never a phone number.
* A message is ``{sent timestamp}:{author ACI}``: that pair is how Signal itself names a
  message in quotes, edits, deletes, reactions and receipts. The extra attachments of one
  Signal message become their own Matrix events, ``...#1``, ``...#2`` and so on.
* A group chat is ``g:{group id, base64}``; a direct chat is ``dm:{own ACI}:{peer ACI}``,
  so two logins chatting with the same person get separate portals.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from ...core.ids import RemoteChatID, RemoteMessageID, RemoteUserID

GROUP_PREFIX = "g:"
DIRECT_PREFIX = "dm:"


def normalize_aci(value: object) -> RemoteUserID | None:
    """The canonical form of an ACI, or None if ``value`` is not a plain UUID.

    signal-cli writes ``source`` as the UUID when a sender hides their number; a PNI has a
    ``PNI:`` prefix and is not an account id, so it is refused here.
    """
    if not isinstance(value, str):
        return None
    try:
        return RemoteUserID(str(uuid.UUID(value.strip())))
    except ValueError:
        return None


def message_id(timestamp: int, author: str, part: int = 0) -> RemoteMessageID:
    base = f"{int(timestamp)}:{author}"
    return RemoteMessageID(base if part == 0 else f"{base}#{part}")


_MESSAGE_ID = re.compile(r"^(\d+):([0-9a-f-]{36})(?:#(\d+))?$")


@dataclass(frozen=True)
class MessageRef:
    timestamp: int
    author: RemoteUserID
    part: int = 0


def parse_message_id(value: str) -> MessageRef | None:
    match = _MESSAGE_ID.match(value)
    if not match:
        return None
    return MessageRef(int(match.group(1)), RemoteUserID(match.group(2)), int(match.group(3) or 0))


def group_chat_id(group_id: str) -> RemoteChatID:
    return RemoteChatID(GROUP_PREFIX + group_id)


def direct_chat_id(own_aci: str, peer_aci: str) -> RemoteChatID:
    return RemoteChatID(f"{DIRECT_PREFIX}{own_aci}:{peer_aci}")


@dataclass(frozen=True)
class ChatRef:
    """Who a chat id addresses: a group id, or the peer of a direct chat."""

    group_id: str | None = None
    peer: RemoteUserID | None = None

    def recipient_params(self) -> dict[str, object]:
        """The ``groupId`` or ``recipient`` parameter of signal-cli's send-like methods."""
        if self.group_id is not None:
            return {"groupId": self.group_id}
        return {"recipient": [self.peer]}


def parse_chat_id(value: str, own_aci: str) -> ChatRef | None:
    """What a chat id refers to, for this login (None if it belongs to another login)."""
    if value.startswith(GROUP_PREFIX) and len(value) > len(GROUP_PREFIX):
        return ChatRef(group_id=value[len(GROUP_PREFIX):])
    if value.startswith(DIRECT_PREFIX):
        owner, _, peer = value[len(DIRECT_PREFIX):].partition(":")
        peer_aci = normalize_aci(peer)
        if owner == own_aci and peer_aci is not None:
            return ChatRef(peer=peer_aci)
    return None
