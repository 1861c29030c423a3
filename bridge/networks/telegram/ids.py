"""Remote ids for Telegram: users, chats and messages as opaque strings.

* A person is their numeric Telegram user id (``"123456"``); a channel posting as itself
  is ``"channel-<id>"``. Never a phone number.
* A private chat is ``"dm:<login>:<user>"`` and a basic group ``"group:<login>:<chat>"``:
  Telegram numbers the messages of both per account, so two logins must not share their
  portals. Supergroups and channels have global message ids: ``"channel:<id>"``, and a
  forum topic other than "General" is ``"channel:<id>:topic:<topic id>"``.
* A message is its Telegram id, which is unique within each of those chats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from telethon.tl import types as tl

from ...core.ids import LoginID, RemoteChatID, RemoteMessageID, RemoteUserID

ChatKind = Literal["dm", "group", "channel"]
GENERAL_TOPIC = 1


@dataclass(frozen=True)
class ChatRef:
    kind: ChatKind
    peer_id: int
    """The user id (dm), basic group id (group) or channel id (channel)."""
    login_id: str | None = None
    topic_id: int | None = None

    @property
    def chat_id(self) -> RemoteChatID:
        if self.kind == "channel":
            if self.topic_id and self.topic_id != GENERAL_TOPIC:
                return RemoteChatID(f"channel:{self.peer_id}:topic:{self.topic_id}")
            return RemoteChatID(f"channel:{self.peer_id}")
        return RemoteChatID(f"{self.kind}:{self.login_id}:{self.peer_id}")

    @property
    def peer(self) -> tl.TypePeer:
        if self.kind == "dm":
            return tl.PeerUser(self.peer_id)
        if self.kind == "group":
            return tl.PeerChat(self.peer_id)
        return tl.PeerChannel(self.peer_id)

    @property
    def base(self) -> ChatRef:
        """The chat itself, without a topic."""
        return ChatRef(self.kind, self.peer_id, self.login_id)


def parse_chat_id(chat_id: str) -> ChatRef:
    parts = chat_id.split(":")
    if parts[0] in ("dm", "group") and len(parts) == 3:
        return ChatRef(parts[0], int(parts[2]), parts[1])  # type: ignore[arg-type]
    if parts[0] == "channel" and len(parts) == 2:
        return ChatRef("channel", int(parts[1]))
    if parts[0] == "channel" and len(parts) == 4 and parts[2] == "topic":
        return ChatRef("channel", int(parts[1]), topic_id=int(parts[3]))
    raise ValueError(f"not a Telegram chat id: {chat_id!r}")


def chat_for_peer(peer: tl.TypePeer, login_id: LoginID | str, topic_id: int | None = None) -> ChatRef:
    if isinstance(peer, tl.PeerUser):
        return ChatRef("dm", peer.user_id, str(login_id))
    if isinstance(peer, tl.PeerChat):
        return ChatRef("group", peer.chat_id, str(login_id))
    return ChatRef("channel", peer.channel_id, topic_id=topic_id)


def user_id(telegram_id: int) -> RemoteUserID:
    return RemoteUserID(str(telegram_id))


def sender_id(peer: tl.TypePeer) -> RemoteUserID:
    """Who sent something: a user, or a channel/group posting as itself."""
    if isinstance(peer, tl.PeerUser):
        return user_id(peer.user_id)
    if isinstance(peer, tl.PeerChannel):
        return RemoteUserID(f"channel-{peer.channel_id}")
    return RemoteUserID(f"chat-{peer.chat_id}")


def parse_sender_id(remote: str) -> tl.TypePeer:
    if remote.startswith("channel-"):
        return tl.PeerChannel(int(remote[len("channel-"):]))
    if remote.startswith("chat-"):
        return tl.PeerChat(int(remote[len("chat-"):]))
    return tl.PeerUser(int(remote))


def message_id(telegram_id: int) -> RemoteMessageID:
    return RemoteMessageID(str(telegram_id))
