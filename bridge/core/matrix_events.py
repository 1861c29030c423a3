"""Matrix events as the core sees them, after ``bridge.matrix.content`` parsed them."""

from __future__ import annotations

from dataclasses import dataclass

from .events import Location, MediaKind
from .ids import EventID, RoomID, UserID
from .text import FormattedText


@dataclass(frozen=True, slots=True)
class MatrixMedia:
    kind: MediaKind
    mxc: str
    mime_type: str
    file_name: str
    size: int | None = None
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    encrypted_file: dict | None = None
    """The ``file`` object of an encrypted attachment (key, iv, hashes)."""


@dataclass(frozen=True, slots=True)
class MatrixMessage:
    room_id: RoomID
    event_id: EventID
    sender: UserID
    text: FormattedText
    media: MatrixMedia | None = None
    location: Location | None = None
    reply_to: EventID | None = None
    edits: EventID | None = None
    """Set when this event replaces (edits) an earlier one."""
    is_notice: bool = False
    is_emote: bool = False
    origin: str | None = None
    """The bridge's origin marker, present on events that a portal itself sent."""
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class MatrixReaction:
    room_id: RoomID
    event_id: EventID
    sender: UserID
    target: EventID
    key: str
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class MatrixRedaction:
    room_id: RoomID
    event_id: EventID
    sender: UserID
    target: EventID
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class MatrixChatChange:
    """A room state change by a Matrix user: name, topic, avatar, or a ghost invited or removed."""

    room_id: RoomID
    event_id: EventID
    sender: UserID
    name: str | None = None
    topic: str | None = None
    avatar_mxc: str | None = None
    avatar_mime: str = "image/png"
    invited: UserID | None = None
    removed: UserID | None = None
