"""The connector interface: what a network package implements to plug into the core.

A network package provides one :class:`Connector` subclass. The core creates it once per
process with the network's config section and a :class:`BridgeHost` to talk back to, then
restores every stored login through :meth:`Connector.load_login`. Each login is a
:class:`NetworkLogin`: one account on the network, owned by one Matrix user.

Required of every connector: connect and disconnect a login, chat info, user info, send a
message, log out, and at least one login flow. Everything else is optional: a connector
declares what it can do in :attr:`Connector.capabilities`, and the core only calls an
optional method when the matching capability is declared (the defaults raise
:class:`Unsupported`).

Rules the core relies on:

* Ids are opaque strings produced by the connector and stable forever: the same remote chat,
  person or message always gets the same id. A login's ``login_id`` is the remote user id
  of the account itself, so the core can tell the user's own messages and membership. Never put a phone number in a user id unless
  the network has no other stable id; then hash it (``bridge.core.ids`` explains why).
  A direct chat whose id is only meaningful to one account (e.g. "the chat with user X")
  must include the login id in its chat id, so that two logins don't share one portal.
* Remote events go to :meth:`BridgeHost.queue_remote_event`, which returns a future that
  resolves when the core has handled (and durably recorded) the event. Acknowledge an event
  to the network only after that, so a crash can't lose it; the core drops duplicates.
* Connectors never touch Matrix, encryption or the database directly: they get and give
  typed objects, and keep their own state in :attr:`LoginRecord.metadata`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .events import ChatInfo, MediaKind, RemoteEvent, UserInfo
from .ids import LoginID, NetworkID, RemoteChatID, RemoteMessageID, UserID
from .text import EntityType, FormattedText

if TYPE_CHECKING:
    import asyncio


class Unsupported(Exception):
    """The network (or this login) can't do what was asked."""


class SendError(Exception):
    """The network refused or failed a send; ``reason`` is shown to the sender in Matrix.

    ``retry_after`` is set for rate limits: the core waits and tries again instead of
    giving up. ``permanent`` means retrying can't help (e.g. not allowed to post).
    """

    def __init__(self, reason: str, *, retry_after: float | None = None, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.permanent = permanent


class LoginState(str, Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BAD_CREDENTIALS = "bad_credentials"
    """The session was revoked or expired: the user must log in again."""
    TRANSIENT_ERROR = "transient_error"
    """Temporarily unreachable; the connector keeps retrying."""
    LOGGED_OUT = "logged_out"


@dataclass(frozen=True)
class Capabilities:
    """What a network can do beyond sending messages. The core asks, never assumes."""

    edits: bool = False
    reactions: bool = False
    redactions: bool = False
    typing: bool = False
    read_receipts: bool = False
    media: frozenset[MediaKind] = frozenset()
    formatting: frozenset[EntityType] = frozenset()
    """Entity types the network renders; the core leaves others out of outgoing text."""
    replies: bool = False
    backfill: bool = False
    group_management: bool = False
    """Create groups, change title/topic/avatar, add and remove members."""
    max_text_length: int | None = None


@dataclass
class LoginRecord:
    """A stored login; ``metadata`` is the connector's own JSON-serialisable session data."""

    network: NetworkID
    login_id: LoginID
    owner: UserID
    remote_name: str = ""
    state: LoginState = LoginState.CONNECTING
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutgoingMedia:
    kind: MediaKind
    mime_type: str
    file_name: str
    data: bytes
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None


@dataclass(frozen=True)
class OutgoingMessage:
    """A Matrix message on its way to the network."""

    text: FormattedText
    media: OutgoingMedia | None = None
    reply_to: RemoteMessageID | None = None
    txn_id: str = ""
    """Stable for one Matrix event: a network that dedupes by client id should use it."""


@dataclass(frozen=True)
class ChatChange:
    """A Matrix user changed a group's portal room; the same change for the remote group.

    Only the fields that changed are set. Members are remote user ids of ghosts the user
    invited into (or removed from) the room.
    """

    name: str | None = None
    topic: str | None = None
    avatar: OutgoingMedia | None = None
    add_members: tuple[str, ...] = ()
    remove_members: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendResult:
    message_id: RemoteMessageID
    timestamp_ms: int = 0


class NetworkLogin(abc.ABC):
    """One account on the network, owned by one Matrix user."""

    def __init__(self, record: LoginRecord) -> None:
        self.record = record

    @property
    def login_id(self) -> LoginID:
        return self.record.login_id

    # Required ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def connect(self) -> None:
        """Start receiving events. Must return quickly; reconnects are the login's job.

        Report progress with :meth:`BridgeHost.set_login_state`.
        """

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Stop receiving events and release connections (the session stays valid)."""

    @abc.abstractmethod
    async def get_chat_info(self, chat_id: RemoteChatID) -> ChatInfo:
        """Name, topic, avatar and members of a chat this login can see."""

    @abc.abstractmethod
    async def get_user_info(self, user_id: str) -> UserInfo:
        """A person's public profile as this login sees it."""

    @abc.abstractmethod
    async def send_message(self, chat_id: RemoteChatID, message: OutgoingMessage) -> SendResult:
        """Send a message; raise :class:`SendError` when the network refuses it."""

    @abc.abstractmethod
    async def logout(self) -> None:
        """End the session on the network (where possible) and forget it."""

    async def stop_receiving(self) -> None:
        """Stop taking new events from the network, and finish handing over what was taken.

        Called at shutdown before the core drains its queues, while sends still work. A
        network that can't deliver an event again after the login took it (e.g. the
        signal-cli daemon acknowledges to Signal on delivery) stops here so nothing is lost;
        others need not implement it.
        """

    # Optional, by capability ---------------------------------------------------------------

    async def list_chats(self) -> list[ChatInfo]:
        """Chats this login is in (used by ``sync`` and linking)."""
        raise Unsupported("listing chats")

    async def edit_message(
        self, chat_id: RemoteChatID, message_id: RemoteMessageID, text: FormattedText
    ) -> None:
        raise Unsupported("edits")

    async def delete_message(self, chat_id: RemoteChatID, message_id: RemoteMessageID) -> None:
        raise Unsupported("deletions")

    async def send_reaction(
        self, chat_id: RemoteChatID, message_id: RemoteMessageID, emoji: str
    ) -> None:
        raise Unsupported("reactions")

    async def remove_reaction(
        self, chat_id: RemoteChatID, message_id: RemoteMessageID, emoji: str
    ) -> None:
        raise Unsupported("reactions")

    async def set_typing(self, chat_id: RemoteChatID, typing: bool) -> None:
        raise Unsupported("typing")

    async def mark_read(self, chat_id: RemoteChatID, message_id: RemoteMessageID) -> None:
        raise Unsupported("read receipts")

    async def update_chat(self, chat_id: RemoteChatID, change: ChatChange) -> None:
        """Apply a Matrix-side room change to the group (``group_management``)."""
        raise Unsupported("changing groups")

    async def create_group(self, title: str, members: list[str]) -> tuple[RemoteChatID, str | None]:
        """Create a group; return its id and an invite link if the network has them."""
        raise Unsupported("creating groups")

    async def fetch_history(self, chat_id: RemoteChatID, limit: int) -> list[RemoteEvent]:
        """Up to ``limit`` of the newest messages of a chat, oldest first (``backfill``).

        Called once when a portal is created; the events go through the same path as
        live ones, so anything already bridged is skipped.
        """
        raise Unsupported("backfill")


@dataclass(frozen=True)
class LoginPrompt:
    """The next step of a login flow, shown to the user by the bot."""

    message: str
    """What to tell the user (Markdown-free plain text)."""
    expects_input: bool = True
    secret: bool = False
    """The answer is a password or code: the bot redacts the user's message after reading it."""
    qr_data: str | None = None
    """Shown as a QR code image in the management room."""


@dataclass(frozen=True)
class LoginComplete:
    record: LoginRecord
    message: str = ""


class LoginProcess(abc.ABC):
    """An interactive login, driven by bot commands in the management room."""

    @abc.abstractmethod
    async def start(self) -> LoginPrompt | LoginComplete:
        """Begin the flow and return the first prompt."""

    @abc.abstractmethod
    async def submit(self, text: str) -> LoginPrompt | LoginComplete:
        """Handle the user's answer. Raise :class:`LoginError` to report a problem and ask
        again (the process stays active), or return the next prompt."""

    async def cancel(self) -> None:
        """Abort the flow and release anything it holds."""


class LoginError(Exception):
    """Shown to the user; the login process stays at the same step."""


@dataclass(frozen=True)
class LoginFlow:
    id: str
    name: str
    description: str


class BridgeHost(Protocol):
    """What the core offers a connector."""

    def queue_remote_event(
        self, login: NetworkLogin, event: RemoteEvent
    ) -> asyncio.Future[None]:
        """Queue an event; the future resolves once it is handled (or dropped as duplicate)."""

    async def set_login_state(
        self, login: NetworkLogin, state: LoginState, error: str | None = None
    ) -> None:
        """Record and show a login's state (connected, logged out, error with reason)."""

    async def save_login(self, login: NetworkLogin) -> None:
        """Persist ``login.record`` (e.g. after the session data changed)."""

    async def update_ghost(self, network: NetworkID, info: UserInfo) -> None:
        """A person's profile changed: update their ghost's name and avatar."""

    async def login_progress(
        self, owner: UserID, step: LoginPrompt | LoginComplete | LoginError
    ) -> None:
        """A login process moved on by itself: a refreshed QR code, a scan that completed
        the login, or a failure. Shown in the owner's management room."""


class Connector(abc.ABC):
    """One network. Subclasses set the class attributes and implement the methods."""

    network: ClassVar[NetworkID]
    """Lowercase name used in config, commands and ghost user ids."""
    display_name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    config_class: ClassVar[type]
    """Dataclass for this network's section under ``networks:`` in the config."""

    def __init__(self, config: Any, host: BridgeHost, network: NetworkID | None = None) -> None:
        self.config = config
        self.host = host
        if network is not None:
            # One connector class may serve several networks (e.g. two loopback services).
            self.network = network

    async def start(self) -> None:
        """Check that the network (or its daemon) is reachable; raise with a clear reason."""

    async def stop(self) -> None:
        """Release shared resources after every login has been disconnected."""

    @abc.abstractmethod
    def login_flows(self) -> list[LoginFlow]:
        """The ways to log in, the first being the default."""

    @abc.abstractmethod
    def start_login(self, owner: UserID, flow_id: str) -> LoginProcess:
        """Create a login process for ``owner``; the core calls ``start`` on it."""

    @abc.abstractmethod
    def load_login(self, record: LoginRecord) -> NetworkLogin:
        """Recreate a login from its stored record (the core then calls ``connect``)."""
