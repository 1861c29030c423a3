"""Telegram messages -> the core's MessageContent (text, media, location), no I/O.

Media is described here and fetched later through a callback, only if the core bridges
the message. Things Matrix has no event for (contacts, polls, dice...) become readable
text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from telethon.tl import types as tl

from ...core.events import Location, MediaKind, MessageContent, RemoteMedia
from ...core.text import Entity, EntityType, FormattedText
from .format import UsernameResolver, from_telegram

Fetcher = Callable[[], Awaitable[bytes]]


def message_content(
    message: tl.Message,
    fetch: Fetcher,
    *,
    resolve_username: UsernameResolver | None = None,
    share_contact_numbers: bool = False,
) -> MessageContent:
    """What a Telegram message holds, as the core's content."""
    text = from_telegram(message.message or "", message.entities, resolve_username=resolve_username)
    media = message.media
    if media is None or isinstance(media, (tl.MessageMediaEmpty, tl.MessageMediaWebPage)):
        return MessageContent(text=text)
    if isinstance(media, tl.MessageMediaPhoto) and isinstance(media.photo, tl.Photo):
        return MessageContent(text=text, media=_photo(media.photo, fetch))
    if isinstance(media, tl.MessageMediaDocument) and isinstance(media.document, tl.Document):
        return MessageContent(text=text, media=_document(media.document, fetch))
    if isinstance(media, (tl.MessageMediaGeo, tl.MessageMediaGeoLive, tl.MessageMediaVenue)):
        geo = media.geo
        if isinstance(geo, tl.GeoPoint):
            description = ""
            if isinstance(media, tl.MessageMediaVenue):
                description = ", ".join(p for p in (media.title, media.address) if p)
            return MessageContent(text=text, location=Location(geo.lat, geo.long, description))
    if isinstance(media, tl.MessageMediaContact):
        return MessageContent(text=_with_caption(_contact_text(media, share_contact_numbers), text))
    if isinstance(media, tl.MessageMediaPoll):
        return MessageContent(text=_with_caption(_poll_text(media.poll), text))
    if isinstance(media, tl.MessageMediaDice):
        return MessageContent(text=FormattedText(f"{media.emoticon} {media.value}"))
    kind = type(media).__name__.removeprefix("MessageMedia")
    note = FormattedText(f"[A Telegram {kind.lower() or 'message'} that Matrix can't show]")
    return MessageContent(text=_with_caption(note, text), notice=not text.text)


def _with_caption(first: FormattedText, caption: FormattedText) -> FormattedText:
    return first if not caption.text else first + FormattedText("\n") + caption


def _photo(photo: tl.Photo, fetch: Fetcher) -> RemoteMedia:
    sizes = [s for s in photo.sizes if isinstance(s, (tl.PhotoSize, tl.PhotoSizeProgressive))]
    best = max(sizes, key=lambda s: s.w * s.h, default=None)
    size = None
    if isinstance(best, tl.PhotoSize):
        size = best.size
    elif isinstance(best, tl.PhotoSizeProgressive) and best.sizes:
        size = max(best.sizes)
    return RemoteMedia(
        kind=MediaKind.IMAGE,
        mime_type="image/jpeg",
        file_name=f"photo_{photo.id}.jpg",
        size=size,
        fetch=fetch,
        width=best.w if best else None,
        height=best.h if best else None,
    )


_EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif",
    "video/mp4": "mp4", "video/webm": "webm", "audio/ogg": "ogg", "audio/mpeg": "mp3",
    "application/x-tgsticker": "tgs",
}


def _document(doc: tl.Document, fetch: Fetcher) -> RemoteMedia:
    mime = doc.mime_type or "application/octet-stream"
    kind = MediaKind.FILE
    name = None
    width = height = duration_ms = None
    for attr in doc.attributes:
        if isinstance(attr, tl.DocumentAttributeFilename):
            name = attr.file_name
        elif isinstance(attr, tl.DocumentAttributeSticker):
            kind = MediaKind.STICKER
        elif isinstance(attr, tl.DocumentAttributeAnimated) and kind != MediaKind.STICKER:
            kind = MediaKind.VIDEO  # a GIF: Telegram stores them as silent MP4s
        elif isinstance(attr, tl.DocumentAttributeVideo):
            if kind == MediaKind.FILE:
                kind = MediaKind.VIDEO
            width, height = attr.w, attr.h
            duration_ms = int(attr.duration * 1000)
        elif isinstance(attr, tl.DocumentAttributeAudio):
            kind = MediaKind.VOICE if attr.voice else MediaKind.AUDIO
            duration_ms = int(attr.duration * 1000)
        elif isinstance(attr, tl.DocumentAttributeImageSize):
            width, height = attr.w, attr.h
    if kind == MediaKind.FILE and mime.startswith("image/") and name is None:
        kind = MediaKind.IMAGE
    if name is None:
        name = f"{kind.value}_{doc.id}.{_EXTENSIONS.get(mime, 'bin')}"
    return RemoteMedia(
        kind=kind, mime_type=mime, file_name=name, size=doc.size, fetch=fetch,
        width=width, height=height, duration_ms=duration_ms,
    )


def _contact_text(media: tl.MessageMediaContact, share_numbers: bool) -> FormattedText:
    name = " ".join(p for p in (media.first_name, media.last_name) if p) or "someone"
    label = "Contact: "
    text = label + name
    if share_numbers and media.phone_number:
        text += f" ({media.phone_number})"
    return FormattedText(text, (Entity(EntityType.BOLD, 0, len(label) - 1),))


def _plain(value: object) -> str:
    """Poll texts are plain strings in older layers and TextWithEntities in newer ones."""
    return value.text if isinstance(value, tl.TextWithEntities) else str(value)


def _poll_text(poll: tl.Poll) -> FormattedText:
    head = "Quiz: " if poll.quiz else "Poll: "
    question = _plain(poll.question)
    lines = [head + question]
    for index, answer in enumerate(poll.answers, start=1):
        lines.append(f"{index}. {_plain(answer.text)}")
    if poll.closed:
        lines.append("(closed)")
    lines.append("(vote in a Telegram app)")
    return FormattedText("\n".join(lines), (Entity(EntityType.BOLD, 0, len(head) - 1),))


def short_message_as_message(update: tl.UpdateShortMessage | tl.UpdateShortChatMessage, self_id: int) -> tl.Message:
    """Telegram's compact private/group message updates, as ordinary messages."""
    if isinstance(update, tl.UpdateShortMessage):
        peer: tl.TypePeer = tl.PeerUser(update.user_id)
        sender = tl.PeerUser(self_id if update.out else update.user_id)
    else:
        peer = tl.PeerChat(update.chat_id)
        sender = tl.PeerUser(update.from_id)
    return tl.Message(
        id=update.id, peer_id=peer, date=update.date, message=update.message, out=update.out,
        from_id=sender, fwd_from=update.fwd_from, reply_to=update.reply_to, entities=update.entities,
    )
