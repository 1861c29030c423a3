"""signal-cli ``receive`` envelopes -> the core's remote events, plus hints for the login.

Pure code: media is fetched later through the callables of a :class:`MediaSource`. The
envelope shapes are those of signal-cli 0.13.19 (``JsonMessageEnvelope``): one of
``dataMessage``, ``editMessage``, ``syncMessage``, ``receiptMessage`` or
``typingMessage``; ``syncMessage.sentMessage`` is a data message (its fields flattened)
plus ``destinationUuid``. Some things need the daemon or the login's state, so they come
out as hints instead of events: group changes (the envelope only says "changed"), timer
values, receipts (which name no chat), deletions (which may span several parts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

from ...core.events import (
    MediaKind,
    MessageContent,
    RemoteEdit,
    RemoteEvent,
    RemoteMedia,
    RemoteMessage,
    RemoteReaction,
    RemoteTyping,
    Sender,
)
from ...core.ids import RemoteChatID, RemoteMessageID, RemoteUserID
from ...core.text import FormattedText
from .format import from_signal
from .ids import direct_chat_id, group_chat_id, message_id, normalize_aci

log = logging.getLogger("bridge.networks.signal.envelope")

Fetch = Callable[[], Awaitable[bytes]]


class MediaSource(Protocol):
    def attachment(self, attachment_id: str) -> Fetch: ...

    def sticker(self, pack_id: str, sticker_id: int) -> Fetch: ...


# Hints: things the login resolves with its own state or the daemon ---------------------------


@dataclass(frozen=True)
class GroupChanged:
    """A group update message: name, description, avatar, members or timer may differ now."""

    chat_id: RemoteChatID
    group_id: str
    sender: Sender
    timestamp_ms: int


@dataclass(frozen=True)
class TimerSeen:
    """The disappearing-message timer a direct chat's message carried."""

    chat_id: RemoteChatID
    seconds: int
    sender: Sender
    timestamp_ms: int
    message_id: RemoteMessageID
    explicit: bool
    """A timer-only message (someone changed the setting), not a timer on a normal message."""


@dataclass(frozen=True)
class Expiring:
    """Messages that disappear ``seconds`` after ``timestamp_ms``."""

    chat_id: RemoteChatID
    message_ids: tuple[RemoteMessageID, ...]
    timestamp_ms: int
    seconds: int


@dataclass(frozen=True)
class MessageDeleted:
    """A remote delete of a message, which may have been bridged as several parts."""

    chat_id: RemoteChatID
    sender: Sender
    message_id: RemoteMessageID
    timestamp_ms: int


@dataclass(frozen=True)
class PartsSent:
    """One Signal message became ``count`` Matrix events (one per attachment)."""

    message_id: RemoteMessageID
    count: int


@dataclass(frozen=True)
class ReceiptSeen:
    """``sender`` read our messages sent at ``timestamps`` (receipts name no chat)."""

    sender: Sender
    timestamps: tuple[int, ...]


@dataclass(frozen=True)
class OwnMessageSeen:
    """The account sent a message (from the phone) to ``chat_id`` at ``timestamp_ms``."""

    chat_id: RemoteChatID
    timestamp_ms: int


@dataclass(frozen=True)
class NameSeen:
    """signal-cli's name for a sender; a change means their ghost should be refreshed."""

    user_id: RemoteUserID
    name: str


@dataclass(frozen=True)
class ContactsSynced:
    """The phone sent its contact list: names may have changed."""


Hint = GroupChanged | TimerSeen | Expiring | MessageDeleted | PartsSent | ReceiptSeen | OwnMessageSeen | NameSeen | ContactsSynced
Output = RemoteEvent | Hint


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class EnvelopeReader:
    """Converts the envelopes of one account. ``own_aci`` is the account's ACI."""

    def __init__(self, own_aci: str, media: MediaSource, name_of: Callable[[str], str | None]) -> None:
        self.own_aci = own_aci
        self.media = media
        self.name_of = name_of

    def read(self, envelope: dict[str, Any]) -> list[Output]:
        """Everything one envelope means; an empty list for what the bridge doesn't show."""
        sender_id = normalize_aci(envelope.get("sourceUuid")) or normalize_aci(envelope.get("source"))
        if sender_id is None:
            log.info("Skipping an envelope without a sender ACI")
            return []
        sender = Sender(sender_id, is_from_me=sender_id == self.own_aci)
        out: list[Output] = []
        name = envelope.get("sourceName")
        if isinstance(name, str) and name and not sender.is_from_me:
            out.append(NameSeen(sender_id, name))
        ts = _int(envelope.get("timestamp"))
        if isinstance(envelope.get("dataMessage"), dict):
            data = envelope["dataMessage"]
            out += self._data(data, sender, self._chat_of(data, sender_id), _int(data.get("timestamp"), ts))
        elif isinstance(envelope.get("editMessage"), dict):
            out += self._edit(envelope["editMessage"], sender, sender_id)
        elif isinstance(envelope.get("syncMessage"), dict):
            out += self._sync(envelope["syncMessage"], sender)
        elif isinstance(envelope.get("typingMessage"), dict):
            out += self._typing(envelope["typingMessage"], sender)
        elif isinstance(envelope.get("receiptMessage"), dict):
            receipt = envelope["receiptMessage"]
            if receipt.get("isRead") or receipt.get("isViewed"):
                stamps = tuple(t for t in _list(receipt.get("timestamps")) if isinstance(t, int))
                if stamps:
                    out.append(ReceiptSeen(sender, stamps))
        return out

    # Chats -------------------------------------------------------------------------------------

    def _chat_of(self, data: dict[str, Any], peer: str) -> RemoteChatID:
        group_id = _dict(data.get("groupInfo")).get("groupId")
        if isinstance(group_id, str) and group_id:
            return group_chat_id(group_id)
        return direct_chat_id(self.own_aci, peer)

    # Data messages -----------------------------------------------------------------------------

    def _data(self, data: dict[str, Any], sender: Sender, chat: RemoteChatID, ts: int) -> list[Output]:
        group = _dict(data.get("groupInfo"))
        base_id = message_id(ts, sender.user_id)
        if group.get("type") == "UPDATE" and isinstance(group.get("groupId"), str):
            return [GroupChanged(chat, group["groupId"], sender, ts)]
        if isinstance(data.get("reaction"), dict):
            return self._reaction(data["reaction"], sender, chat, ts)
        if isinstance(data.get("remoteDelete"), dict):
            target = _int(data["remoteDelete"].get("timestamp"))
            return [MessageDeleted(chat, sender, message_id(target, sender.user_id), ts)] if target else []
        out: list[Output] = []
        expires = _int(data.get("expiresInSeconds"))
        has_content = bool(
            data.get("message") or _list(data.get("attachments")) or data.get("sticker")
            or _list(data.get("contacts")) or data.get("payment")
        )
        if not group:
            out.append(TimerSeen(chat, expires, sender, ts, base_id, explicit=not has_content))
        if not has_content:
            return out
        messages = self._messages(data, sender, chat, ts)
        out += messages
        if len(messages) > 1:
            out.append(PartsSent(base_id, len(messages)))
        if sender.is_from_me:
            out.append(OwnMessageSeen(chat, ts))
        if expires > 0:
            out.append(Expiring(chat, tuple(m.message_id for m in messages), ts, expires))
        return out

    def _text(self, data: dict[str, Any]) -> FormattedText:
        return from_signal(data.get("message"), data.get("textStyles"), data.get("mentions"), self.name_of)

    def _reply_to(self, data: dict[str, Any]) -> RemoteMessageID | None:
        quote = _dict(data.get("quote"))
        author = normalize_aci(quote.get("authorUuid")) or normalize_aci(quote.get("author"))
        target = _int(quote.get("id"))
        return message_id(target, author) if author and target else None

    def _messages(self, data: dict[str, Any], sender: Sender, chat: RemoteChatID, ts: int) -> list[RemoteMessage]:
        text = self._text(data)
        media = self._media(data)
        notice = False
        if data.get("viewOnce") and media:
            # View-once media must not stay in Matrix history: say where to see it instead.
            media, notice = [], True
            text = FormattedText("A view-once photo or video was sent: open it on your phone.")
        elif data.get("payment"):
            text, notice = FormattedText("A payment was sent: see it on your phone."), True
        elif _list(data.get("contacts")) and not media and not text.text:
            text, notice = FormattedText("A contact card was shared: see it on your phone."), True
        reply_to = self._reply_to(data)
        if not media:
            return [
                RemoteMessage(
                    chat_id=chat, sender=sender, timestamp_ms=ts, message_id=message_id(ts, sender.user_id),
                    content=MessageContent(text=text, notice=notice), reply_to=reply_to,
                )
            ]
        out = []
        for part, item in enumerate(media):
            caption = text if part == 0 else FormattedText("")
            out.append(
                RemoteMessage(
                    chat_id=chat, sender=sender, timestamp_ms=ts, message_id=message_id(ts, sender.user_id, part),
                    content=MessageContent(text=caption, media=item), reply_to=reply_to if part == 0 else None,
                )
            )
        return out

    def _media(self, data: dict[str, Any]) -> list[RemoteMedia]:
        out: list[RemoteMedia] = []
        sticker = _dict(data.get("sticker"))
        if isinstance(sticker.get("packId"), str) and isinstance(sticker.get("stickerId"), int):
            out.append(
                RemoteMedia(
                    kind=MediaKind.STICKER, mime_type="image/webp", file_name="sticker.webp", size=None,
                    fetch=self.media.sticker(sticker["packId"], sticker["stickerId"]),
                )
            )
        for raw in _list(data.get("attachments")):
            if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
                continue
            mime = str(raw.get("contentType") or "application/octet-stream")
            name = raw.get("filename") if isinstance(raw.get("filename"), str) and raw.get("filename") else None
            out.append(
                RemoteMedia(
                    kind=media_kind(mime, name),
                    mime_type=mime,
                    file_name=name or default_file_name(mime),
                    size=_int(raw.get("size")) or None,
                    fetch=self.media.attachment(raw["id"]),
                    width=_int(raw.get("width")) or None,
                    height=_int(raw.get("height")) or None,
                )
            )
        return out

    def _reaction(self, reaction: dict[str, Any], sender: Sender, chat: RemoteChatID, ts: int) -> list[Output]:
        author = normalize_aci(reaction.get("targetAuthorUuid")) or normalize_aci(reaction.get("targetAuthor"))
        target = _int(reaction.get("targetSentTimestamp"))
        emoji = reaction.get("emoji")
        if not author or not target or not isinstance(emoji, str) or not emoji:
            return []
        return [
            RemoteReaction(
                chat_id=chat, sender=sender, timestamp_ms=ts, message_id=message_id(target, author),
                emoji=emoji, removed=bool(reaction.get("isRemove")),
            )
        ]

    # Edits, sync, typing -----------------------------------------------------------------------

    def _edit(self, edit: dict[str, Any], sender: Sender, peer: str) -> list[Output]:
        data = _dict(edit.get("dataMessage"))
        target = _int(edit.get("targetSentTimestamp"))
        if not target or not data:
            return []
        chat = self._chat_of(data, peer)
        return [
            RemoteEdit(
                chat_id=chat, sender=sender, timestamp_ms=_int(data.get("timestamp")),
                message_id=message_id(target, sender.user_id), content=MessageContent(text=self._text(data)),
            )
        ]

    def _sync(self, sync: dict[str, Any], sender: Sender) -> list[Output]:
        if sync.get("type") == "CONTACTS_SYNC":
            return [ContactsSynced()]
        sent = sync.get("sentMessage")
        if not isinstance(sent, dict):
            return []  # read markers, blocks and the like: nothing to show
        peer = normalize_aci(sent.get("destinationUuid")) or normalize_aci(sent.get("destination"))
        if isinstance(sent.get("editMessage"), dict):
            return self._edit(sent["editMessage"], sender, peer or self.own_aci)
        group_id = _dict(sent.get("groupInfo")).get("groupId")
        if not group_id and peer is None:
            return []
        chat = self._chat_of(sent, peer or self.own_aci)
        return self._data(sent, sender, chat, _int(sent.get("timestamp")))

    def _typing(self, typing: dict[str, Any], sender: Sender) -> list[Output]:
        group_id = typing.get("groupId")
        chat = group_chat_id(group_id) if isinstance(group_id, str) and group_id else direct_chat_id(self.own_aci, sender.user_id)
        return [RemoteTyping(chat_id=chat, sender=sender, typing=typing.get("action") == "STARTED")]


_EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
    "video/mp4": "mp4", "audio/aac": "aac", "audio/mpeg": "mp3", "audio/ogg": "ogg",
    "application/pdf": "pdf",
}


def media_kind(mime: str, file_name: str | None) -> MediaKind:
    """Signal marks voice notes with a flag signal-cli doesn't show; they are audio without a name."""
    major = mime.split("/", 1)[0]
    if major == "image":
        return MediaKind.IMAGE
    if major == "video":
        return MediaKind.VIDEO
    if major == "audio":
        return MediaKind.VOICE if file_name is None else MediaKind.AUDIO
    return MediaKind.FILE


def default_file_name(mime: str) -> str:
    kind = mime.split("/", 1)[0]
    stem = {"image": "image", "video": "video", "audio": "voice-message"}.get(kind, "file")
    return f"{stem}.{_EXTENSIONS.get(mime, 'bin')}"
