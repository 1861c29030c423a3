"""Building the WhatsApp protobufs the bridge sends. Pure code.

Neonize has helpers for most of these, but they read files, probe media with ffmpeg or
compare JIDs in ways that break for LID-addressed chats; building the messages here keeps
them exact and testable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ...core.connector import OutgoingMedia
from ...core.events import MediaKind
from .format import Rendered
from .ids import GROUP_SERVER, Jid
from .neonize_api import MediaType, MessageKey, neonize_proto, wa


@dataclass(frozen=True, slots=True)
class Quote:
    """The message being replied to."""

    wa_id: str
    sender: Jid


def message_key(chat: Jid, wa_id: str, sender: Jid | None, from_me: bool) -> MessageKey:
    """The key WhatsApp uses to point at an existing message."""
    key = MessageKey(remoteJID=str(chat), fromMe=from_me, ID=wa_id)
    if chat.server == GROUP_SERVER and not from_me and sender is not None:
        key.participant = str(sender)
    return key


def _context(rendered: Rendered, quote: Quote | None) -> wa.ContextInfo | None:
    if not rendered.mentioned_jids and quote is None:
        return None
    context = wa.ContextInfo(mentionedJID=list(rendered.mentioned_jids))
    if quote is not None:
        context.stanzaID = quote.wa_id
        context.participant = str(quote.sender)
        # The bridge keeps no message bodies, so the quote carries none; WhatsApp shows
        # the original from the phone's own copy.
        context.quotedMessage.CopyFrom(wa.Message(conversation=""))
    return context


def text_message(rendered: Rendered, quote: Quote | None = None) -> wa.Message:
    context = _context(rendered, quote)
    if context is None:
        return wa.Message(conversation=rendered.text)
    return wa.Message(extendedTextMessage=wa.ExtendedTextMessage(text=rendered.text, contextInfo=context))


def upload_type(kind: MediaKind) -> MediaType:
    return {
        MediaKind.IMAGE: MediaType.MediaImage,
        MediaKind.STICKER: MediaType.MediaImage,
        MediaKind.VIDEO: MediaType.MediaVideo,
        MediaKind.AUDIO: MediaType.MediaAudio,
        MediaKind.VOICE: MediaType.MediaAudio,
        MediaKind.FILE: MediaType.MediaDocument,
    }[kind]


def media_message(
    media: OutgoingMedia,
    upload: neonize_proto.UploadResponse,
    caption: Rendered,
    quote: Quote | None = None,
) -> wa.Message:
    """A media message pointing at an uploaded (encrypted) file."""
    common = dict(
        URL=upload.url,
        directPath=upload.DirectPath,
        mediaKey=upload.MediaKey,
        fileEncSHA256=upload.FileEncSHA256,
        fileSHA256=upload.FileSHA256,
        fileLength=upload.FileLength or len(media.data),
        mimetype=media.mime_type,
        mediaKeyTimestamp=int(time.time()),
    )
    context = _context(caption, quote)
    seconds = (media.duration_ms or 0) // 1000
    kind = media.kind
    if kind is MediaKind.STICKER and media.mime_type != "image/webp":
        kind = MediaKind.IMAGE  # WhatsApp shows stickers only as WebP
    if kind is MediaKind.IMAGE:
        part = wa.ImageMessage(caption=caption.text, **common)
        _size(part, media)
        field = "imageMessage"
    elif kind is MediaKind.STICKER:
        part = wa.StickerMessage(**common)
        _size(part, media)
        field = "stickerMessage"
    elif kind is MediaKind.VIDEO:
        part = wa.VideoMessage(caption=caption.text, seconds=seconds, **common)
        _size(part, media)
        field = "videoMessage"
    elif kind in (MediaKind.AUDIO, MediaKind.VOICE):
        part = wa.AudioMessage(seconds=seconds, PTT=kind is MediaKind.VOICE, **common)
        field = "audioMessage"
    else:
        part = wa.DocumentMessage(fileName=media.file_name, title=media.file_name,
                                  caption=caption.text, **common)  # fmt: skip
        field = "documentMessage"
    if context is not None:
        part.contextInfo.CopyFrom(context)
    message = wa.Message()
    getattr(message, field).CopyFrom(part)
    return message


def _size(part, media: OutgoingMedia) -> None:
    if media.width and media.height:
        part.width, part.height = media.width, media.height


def needs_separate_caption(media: OutgoingMedia, caption: Rendered) -> bool:
    """Audio has no caption on WhatsApp: its text goes in a message of its own."""
    return media.kind in (MediaKind.AUDIO, MediaKind.VOICE) and bool(caption.text)


def edit_message(chat: Jid, wa_id: str, new: wa.Message) -> wa.Message:
    """An edit of one of the user's own messages (WhatsApp allows no others)."""
    return wa.Message(
        editedMessage=wa.FutureProofMessage(
            message=wa.Message(
                protocolMessage=wa.ProtocolMessage(
                    key=message_key(chat, wa_id, None, True),
                    type=wa.ProtocolMessage.MESSAGE_EDIT,
                    editedMessage=new,
                    timestampMS=int(time.time() * 1000),
                )
            )
        )
    )


def revoke_message(target: MessageKey) -> wa.Message:
    return wa.Message(protocolMessage=wa.ProtocolMessage(type=wa.ProtocolMessage.REVOKE, key=target))


def reaction_message(target: MessageKey, emoji: str) -> wa.Message:
    """A reaction; an empty ``emoji`` removes the sender's reaction."""
    return wa.Message(
        reactionMessage=wa.ReactionMessage(
            key=target, text=emoji, senderTimestampMS=int(time.time() * 1000)
        )
    )
