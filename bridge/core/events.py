"""Remote events: small typed objects a connector queues into the core.

A connector turns whatever its network pushes into these and calls
``BridgeHost.queue_remote_event``. The core handles the events of one chat strictly in
the order they were queued, and different chats in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Awaitable, Callable

from .ids import RemoteChatID, RemoteMessageID, RemoteUserID
from .text import FormattedText


class MediaKind(str, Enum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    VOICE = "voice"
    FILE = "file"
    STICKER = "sticker"


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    description: str = ""


@dataclass(frozen=True, slots=True)
class RemoteMedia:
    """Media on the network; the core calls ``fetch`` only when it bridges the message."""

    kind: MediaKind
    mime_type: str
    file_name: str
    size: int | None
    fetch: Callable[[], Awaitable[bytes]]
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Sender:
    user_id: RemoteUserID
    is_from_me: bool = False
    """True when the logged-in account itself sent it (e.g. from the phone)."""


@dataclass(frozen=True, slots=True)
class MessageContent:
    """What a message holds: text, media with an optional caption, or a location."""

    text: FormattedText = field(default_factory=lambda: FormattedText(""))
    media: RemoteMedia | None = None
    location: Location | None = None
    notice: bool = False
    """A service message (``m.notice``) rather than something a person typed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteEvent:
    chat_id: RemoteChatID
    sender: Sender | None = None
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteMessage(RemoteEvent):
    message_id: RemoteMessageID
    content: MessageContent
    reply_to: RemoteMessageID | None = None
    txn_id: str | None = None
    """The transaction id the bridge gave when it sent this message itself, if any."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteEdit(RemoteEvent):
    message_id: RemoteMessageID
    content: MessageContent


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteDelete(RemoteEvent):
    message_id: RemoteMessageID


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteReaction(RemoteEvent):
    message_id: RemoteMessageID
    emoji: str
    removed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteTyping(RemoteEvent):
    typing: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteReadReceipt(RemoteEvent):
    up_to: RemoteMessageID


@dataclass(frozen=True, slots=True)
class ChatInfo:
    """What the core needs to create or update a portal room."""

    chat_id: RemoteChatID
    name: str | None = None
    topic: str | None = None
    members: tuple[RemoteUserID, ...] = ()
    is_direct: bool = False
    avatar: RemoteMedia | None = None
    avatar_id: str | None = None
    """Changes whenever the avatar changes, so the core re-uploads only then."""
    read_only: bool = False
    """Only admins may post (e.g. a broadcast channel): power levels follow."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A remote person's public profile, as far as the network shows it."""

    user_id: RemoteUserID
    display_name: str | None = None
    avatar: RemoteMedia | None = None
    avatar_id: str | None = None
    phone: str | None = None
    """Never used in a Matrix id; shown only where the admin opts in."""
    username: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteChatUpdate(RemoteEvent):
    info: ChatInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteMemberChange(RemoteEvent):
    user_id: RemoteUserID
    joined: bool
