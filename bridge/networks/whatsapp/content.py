"""WhatsApp message protobufs -> what a message means for the core. Pure code.

:func:`classify` tells a new message from an edit, a revoke or a reaction and turns the
content into a :class:`MessageContent`. Media is not downloaded here: the content gets a
``fetch`` that downloads it when (and only if) the core bridges the message.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from ...core.events import Location, MediaKind, MessageContent, RemoteMedia
from ...core.text import FormattedText
from . import format as wa_format
from .neonize_api import MessageKey, wa

Downloader = Callable[["wa.Message"], Awaitable[bytes]]

_WRAPPERS = ("ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2",
             "documentWithCaptionMessage")  # fmt: skip
_UNSUPPORTED = {
    "pollCreationMessage": "a poll", "pollCreationMessageV2": "a poll",
    "pollCreationMessageV3": "a poll", "eventMessage": "an event",
    "groupInviteMessage": "a group invitation", "listMessage": "a list",
    "buttonsMessage": "buttons", "templateMessage": "a template message",
    "interactiveMessage": "an interactive message", "productMessage": "a product",
    "orderMessage": "an order", "callLogMesssage": "a call", "requestPaymentMessage": "a payment request",
    "sendPaymentMessage": "a payment", "liveLocationMessage": None,
}  # fmt: skip
"""Messages a person sent that the bridge can't show: Matrix gets a notice instead."""


class Kind(str, Enum):
    MESSAGE = "message"
    EDIT = "edit"
    REVOKE = "revoke"
    REACTION = "reaction"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Classified:
    kind: Kind
    content: MessageContent | None = None
    context: wa.ContextInfo | None = None
    """Reply and mention information of a new message or an edit."""
    target: MessageKey | None = None
    """The message an edit, revoke or reaction is about."""
    emoji: str = ""
    mentioned: tuple[str, ...] = field(default_factory=tuple)


def unwrap(message: wa.Message) -> wa.Message:
    """Strip the containers WhatsApp puts around content (ephemeral, view-once...)."""
    for _ in range(6):
        for name in _WRAPPERS:
            if message.HasField(name) and getattr(message, name).HasField("message"):
                message = getattr(message, name).message
                break
        else:
            return message
    return message


def classify(
    message: wa.Message,
    mentions: Mapping[str, wa_format.MentionedUser],
    download: Downloader,
) -> Classified:
    """What a WhatsApp message is; ``mentions`` resolves the numbers in ``@`` mentions."""
    message = unwrap(message)
    if message.HasField("editedMessage"):
        return classify(message.editedMessage.message, mentions, download)
    if message.HasField("protocolMessage"):
        proto = message.protocolMessage
        if proto.type == wa.ProtocolMessage.REVOKE:
            return Classified(Kind.REVOKE, target=proto.key)
        if proto.type == wa.ProtocolMessage.MESSAGE_EDIT and proto.HasField("editedMessage"):
            inner = classify(proto.editedMessage, mentions, download)
            if inner.kind is Kind.MESSAGE:
                return Classified(Kind.EDIT, inner.content, inner.context, target=proto.key)
        return Classified(Kind.IGNORE)
    if message.HasField("reactionMessage"):
        reaction = message.reactionMessage
        return Classified(Kind.REACTION, target=reaction.key, emoji=reaction.text)
    return _content(message, mentions, download)


def mentioned_users(message: wa.Message) -> tuple[str, ...]:
    """The JID strings a message mentions (for resolving them before :func:`classify`)."""
    context = _context_of(unwrap(message))
    if context is None and message.HasField("protocolMessage"):
        context = _context_of(unwrap(message.protocolMessage.editedMessage))
    return tuple(context.mentionedJID) if context is not None else ()


def _context_of(message: wa.Message) -> wa.ContextInfo | None:
    for name in ("extendedTextMessage", "imageMessage", "videoMessage", "audioMessage",
                 "documentMessage", "stickerMessage", "locationMessage", "contactMessage",
                 "contactsArrayMessage", "ptvMessage"):  # fmt: skip
        if message.HasField(name):
            part = getattr(message, name)
            return part.contextInfo if part.HasField("contextInfo") else None
    return None


def _text(raw: str, mentions: Mapping[str, wa_format.MentionedUser]) -> FormattedText:
    return wa_format.parse(raw, mentions) if raw else FormattedText("")


def _content(
    m: wa.Message, mentions: Mapping[str, wa_format.MentionedUser], download: Downloader
) -> Classified:
    context = _context_of(m)

    def done(content: MessageContent) -> Classified:
        return Classified(Kind.MESSAGE, content, context)

    if m.conversation:
        return done(MessageContent(text=_text(m.conversation, mentions)))
    if m.HasField("extendedTextMessage"):
        return done(MessageContent(text=_text(m.extendedTextMessage.text, mentions)))
    for name, kind in (("imageMessage", MediaKind.IMAGE), ("videoMessage", MediaKind.VIDEO),
                       ("ptvMessage", MediaKind.VIDEO), ("audioMessage", MediaKind.AUDIO),
                       ("documentMessage", MediaKind.FILE), ("stickerMessage", MediaKind.STICKER)):  # fmt: skip
        if m.HasField(name):
            part = getattr(m, name)
            media = _media(m, name, part, kind, download)
            caption = getattr(part, "caption", "") if name != "stickerMessage" else ""
            return done(MessageContent(text=_text(caption, mentions), media=media))
    if m.HasField("locationMessage") or m.HasField("liveLocationMessage"):
        loc = m.locationMessage if m.HasField("locationMessage") else m.liveLocationMessage
        label = " - ".join(p for p in (getattr(loc, "name", ""), getattr(loc, "address", "")) if p)
        if m.HasField("liveLocationMessage"):
            label = label or "Live location (only the start is bridged)"
        return done(MessageContent(location=Location(loc.degreesLatitude, loc.degreesLongitude, label)))
    if m.HasField("contactMessage") or m.HasField("contactsArrayMessage"):
        cards = [m.contactMessage] if m.HasField("contactMessage") else list(m.contactsArrayMessage.contacts)
        names = ", ".join(c.displayName for c in cards if c.displayName) or "a contact"
        data = "\n".join(c.vcard.strip() for c in cards if c.vcard).encode("utf-8") + b"\n"
        file_name = (cards[0].displayName if len(cards) == 1 and cards[0].displayName else "contacts")
        media = RemoteMedia(
            kind=MediaKind.FILE, mime_type="text/vcard", file_name=f"{file_name}.vcf",
            size=len(data), fetch=_constant(data),
        )
        return done(MessageContent(text=FormattedText(f"Contact: {names}"), media=media))
    for name, what in _UNSUPPORTED.items():
        if what and m.HasField(name):
            note = f"[{what} was sent on WhatsApp; open WhatsApp to see it]"
            return done(MessageContent(text=FormattedText(note), notice=True))
    return Classified(Kind.IGNORE)


def _constant(data: bytes) -> Callable[[], Awaitable[bytes]]:
    async def fetch() -> bytes:
        return data

    return fetch


_DEFAULT_NAMES = {
    MediaKind.IMAGE: "image", MediaKind.VIDEO: "video", MediaKind.AUDIO: "audio",
    MediaKind.VOICE: "voice message", MediaKind.FILE: "file", MediaKind.STICKER: "sticker",
}  # fmt: skip
_DEFAULT_MIME = {
    MediaKind.IMAGE: "image/jpeg", MediaKind.VIDEO: "video/mp4", MediaKind.AUDIO: "audio/ogg",
    MediaKind.VOICE: "audio/ogg", MediaKind.FILE: "application/octet-stream",
    MediaKind.STICKER: "image/webp",
}  # fmt: skip


def _media(whole: wa.Message, name: str, part, kind: MediaKind, download: Downloader) -> RemoteMedia:
    if kind is MediaKind.AUDIO and part.PTT:
        kind = MediaKind.VOICE
    mime = (part.mimetype or _DEFAULT_MIME[kind]).split(";")[0].strip()
    file_name = getattr(part, "fileName", "") or getattr(part, "title", "")
    if not file_name:
        extension = mimetypes.guess_extension(mime) or ""
        if mime == "audio/ogg":
            extension = ".ogg"
        file_name = _DEFAULT_NAMES[kind] + extension
    seconds = getattr(part, "seconds", 0)
    only_this = wa.Message()
    getattr(only_this, name).CopyFrom(part)

    async def fetch() -> bytes:
        return await download(only_this)

    return RemoteMedia(
        kind=kind,
        mime_type=mime,
        file_name=file_name,
        size=int(part.fileLength) or None,
        fetch=fetch,
        width=getattr(part, "width", 0) or None,
        height=getattr(part, "height", 0) or None,
        duration_ms=seconds * 1000 if seconds else None,
    )
