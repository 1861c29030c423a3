"""Matrix attachments -> Telegram's input media for sending."""

from __future__ import annotations

from typing import Any

from telethon.tl import types as tl

from ...core.connector import OutgoingMedia
from ...core.events import MediaKind


def input_media(media: OutgoingMedia, uploaded: Any) -> tl.TypeInputMedia:
    """Photos go as photos (Telegram recompresses them); everything else as a document
    whose attributes say how Telegram apps should show it."""
    if media.kind == MediaKind.IMAGE and media.mime_type in ("image/jpeg", "image/png", "image/webp"):
        return tl.InputMediaUploadedPhoto(file=uploaded)
    seconds = (media.duration_ms or 0) / 1000
    attributes: list[Any] = [tl.DocumentAttributeFilename(file_name=media.file_name)]
    if media.kind == MediaKind.VIDEO:
        attributes.append(tl.DocumentAttributeVideo(
            duration=seconds, w=media.width or 0, h=media.height or 0, supports_streaming=True,
        ))
    elif media.kind in (MediaKind.VOICE, MediaKind.AUDIO):
        attributes.append(tl.DocumentAttributeAudio(duration=int(seconds), voice=media.kind == MediaKind.VOICE))
    elif media.kind in (MediaKind.IMAGE, MediaKind.STICKER) and media.width and media.height:
        attributes.append(tl.DocumentAttributeImageSize(w=media.width, h=media.height))
    return tl.InputMediaUploadedDocument(
        file=uploaded, mime_type=media.mime_type or "application/octet-stream", attributes=attributes,
    )
