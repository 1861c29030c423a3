"""Matrix event content <-> the core's message objects."""

from __future__ import annotations

from typing import Any, Callable

from ..core.events import Location, MediaKind, MessageContent
from ..core.ids import EventID, RoomID, UserID
from ..core.matrix_events import MatrixMedia, MatrixMessage, MatrixReaction, MatrixRedaction
from ..core.text import FormattedText, MentionTarget
from . import html

ORIGIN_KEY = "org.hubbridge.origin"
"""Marks events a portal sent itself, so no portal relays its own messages back."""

MESSAGE_KEY = "org.hubbridge.message"
"""A hash of the remote message an event carries: after a crash mid-send, the bridge
finds the event by it instead of sending a second copy."""

_MSGTYPE_KIND = {
    "m.image": MediaKind.IMAGE,
    "m.video": MediaKind.VIDEO,
    "m.audio": MediaKind.AUDIO,
    "m.file": MediaKind.FILE,
}
_KIND_MSGTYPE = {
    MediaKind.IMAGE: "m.image",
    MediaKind.VIDEO: "m.video",
    MediaKind.AUDIO: "m.audio",
    MediaKind.VOICE: "m.audio",
    MediaKind.FILE: "m.file",
    MediaKind.STICKER: "m.image",
}

MentionRenderer = Callable[[MentionTarget], "tuple[str, str] | None"]


class ContentError(ValueError):
    """The event content is not something the bridge understands."""


def build_message(
    content: MessageContent,
    *,
    media_mxc: str | None = None,
    media_size: int | None = None,
    reply_to: EventID | None = None,
    mention_user: MentionRenderer | None = None,
    origin: str | None = None,
) -> dict[str, Any]:
    """The ``m.room.message`` (or ``m.sticker``) content for one message."""
    body, formatted = html.render(content.text, mention_user=mention_user)
    out: dict[str, Any]
    if content.media is not None and media_mxc is not None:
        media = content.media
        info: dict[str, Any] = {"mimetype": media.mime_type}
        if media_size is not None:
            info["size"] = media_size
        if media.width and media.height:
            info["w"], info["h"] = media.width, media.height
        if media.duration_ms:
            info["duration"] = media.duration_ms
        out = {
            "msgtype": _KIND_MSGTYPE[media.kind],
            "body": body or media.file_name,
            "url": media_mxc,
            "info": info,
        }
        if body:
            # A caption: the file name goes in `filename` (MSC2530).
            out["filename"] = media.file_name
            if formatted:
                out["format"] = "org.matrix.custom.html"
                out["formatted_body"] = formatted
        if media.kind == MediaKind.VOICE:
            out["org.matrix.msc3245.voice"] = {}
    elif content.location is not None:
        loc = content.location
        uri = f"geo:{loc.latitude},{loc.longitude}"
        text = loc.description or f"Location: {loc.latitude}, {loc.longitude}"
        out = {"msgtype": "m.location", "body": text, "geo_uri": uri}
    else:
        out = {"msgtype": "m.notice" if content.notice else "m.text", "body": body}
        if formatted:
            out["format"] = "org.matrix.custom.html"
            out["formatted_body"] = formatted
    if reply_to:
        out["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    if mentions := _mentioned_users(content.text, mention_user):
        out["m.mentions"] = {"user_ids": mentions}
    if origin:
        out[ORIGIN_KEY] = origin
    return out


def build_edit(new_content: dict[str, Any], target: EventID, origin: str | None) -> dict[str, Any]:
    """Wrap message content as an edit (``m.replace``) of ``target``."""
    inner = {k: v for k, v in new_content.items() if k not in ("m.relates_to", ORIGIN_KEY)}
    out = dict(inner)
    out["body"] = "* " + inner.get("body", "")
    if "formatted_body" in inner:
        out["formatted_body"] = "* " + inner["formatted_body"]
    out["m.new_content"] = inner
    out["m.relates_to"] = {"rel_type": "m.replace", "event_id": target}
    if origin:
        out[ORIGIN_KEY] = origin
    return out


def build_reaction(target: EventID, key: str, origin: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}
    }
    if origin:
        out[ORIGIN_KEY] = origin
    return out


def _mentioned_users(text: FormattedText, mention_user: MentionRenderer | None) -> list[str]:
    if mention_user is None:
        return []
    found: list[str] = []
    for entity in text.entities:
        if entity.mention is not None and (resolved := mention_user(entity.mention)):
            found.append(resolved[0])
    return found


def _geo(uri: str) -> Location | None:
    try:
        lat, lon = uri.removeprefix("geo:").split(";")[0].split(",")[:2]
        return Location(float(lat), float(lon))
    except ValueError:
        return None


def parse_message(event: dict[str, Any]) -> MatrixMessage:
    """An ``m.room.message`` or ``m.sticker`` event as the core sees it.

    Raises :class:`ContentError` for content the bridge can't use, with a reason fit for a
    notice.
    """
    content = event.get("content")
    if not isinstance(content, dict):
        raise ContentError("the event has no content")
    relates = content.get("m.relates_to") if isinstance(content.get("m.relates_to"), dict) else {}
    edits = None
    if relates.get("rel_type") == "m.replace" and isinstance(relates.get("event_id"), str):
        edits = EventID(relates["event_id"])
        if isinstance(content.get("m.new_content"), dict):
            content = content["m.new_content"]
    msgtype = "m.sticker" if event.get("type") == "m.sticker" else content.get("msgtype")
    body = content.get("body", "")
    if not isinstance(body, str):
        raise ContentError("the message body is not text")
    formatted = content.get("formatted_body")
    if content.get("format") == "org.matrix.custom.html" and isinstance(formatted, str):
        text = html.parse(formatted, fallback_body=body)
    else:
        text = FormattedText(html.strip_reply_fallback(body))
    media = None
    location = None
    if msgtype in _MSGTYPE_KIND or msgtype == "m.sticker":
        media = _parse_media(content, msgtype)
        file_name = media.file_name
        # Body is only a caption when a separate filename is given (MSC2530).
        if not content.get("filename") or body == file_name:
            text = FormattedText("")
    elif msgtype == "m.location":
        location = _geo(str(content.get("geo_uri", "")))
        if location is None:
            raise ContentError("the location has no valid geo: URI")
        location = Location(location.latitude, location.longitude, body)
        text = FormattedText("")
    elif msgtype not in ("m.text", "m.notice", "m.emote"):
        raise ContentError(f"messages of type {msgtype!r} can't be bridged")
    reply_to = None
    in_reply = relates.get("m.in_reply_to")
    if isinstance(in_reply, dict) and isinstance(in_reply.get("event_id"), str):
        reply_to = EventID(in_reply["event_id"])
    return MatrixMessage(
        room_id=RoomID(event["room_id"]),
        event_id=EventID(event["event_id"]),
        sender=UserID(event["sender"]),
        text=text,
        media=media,
        location=location,
        reply_to=reply_to,
        edits=edits,
        is_notice=msgtype == "m.notice",
        is_emote=msgtype == "m.emote",
        origin=event.get("content", {}).get(ORIGIN_KEY),
        timestamp_ms=int(event.get("origin_server_ts") or 0),
    )


def _parse_media(content: dict[str, Any], msgtype: str) -> MatrixMedia:
    info = content.get("info") if isinstance(content.get("info"), dict) else {}
    url = content.get("url")
    encrypted = content.get("file") if isinstance(content.get("file"), dict) else None
    if encrypted is not None:
        url = encrypted.get("url")
    if not isinstance(url, str) or not url.startswith("mxc://"):
        raise ContentError("the attachment has no mxc:// URL")
    kind = MediaKind.STICKER if msgtype == "m.sticker" else _MSGTYPE_KIND[msgtype]
    if kind == MediaKind.AUDIO and "org.matrix.msc3245.voice" in content:
        kind = MediaKind.VOICE
    name = content.get("filename") or content.get("body") or "file"

    def _int(key: str) -> int | None:
        value = info.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return MatrixMedia(
        kind=kind,
        mxc=url,
        mime_type=str(info.get("mimetype") or "application/octet-stream"),
        file_name=str(name),
        size=_int("size"),
        width=_int("w"),
        height=_int("h"),
        duration_ms=_int("duration"),
        encrypted_file=encrypted,
    )


def parse_reaction(event: dict[str, Any]) -> MatrixReaction | None:
    relates = (event.get("content") or {}).get("m.relates_to")
    if not isinstance(relates, dict) or relates.get("rel_type") != "m.annotation":
        return None
    target, key = relates.get("event_id"), relates.get("key")
    if not isinstance(target, str) or not isinstance(key, str) or not key:
        return None
    return MatrixReaction(
        room_id=RoomID(event["room_id"]),
        event_id=EventID(event["event_id"]),
        sender=UserID(event["sender"]),
        target=EventID(target),
        key=key,
        origin=event["content"].get(ORIGIN_KEY),
    )


def parse_redaction(event: dict[str, Any]) -> MatrixRedaction | None:
    content = event.get("content") or {}
    target = event.get("redacts") or content.get("redacts")
    if not isinstance(target, str):
        return None
    return MatrixRedaction(
        room_id=RoomID(event["room_id"]),
        event_id=EventID(event["event_id"]),
        sender=UserID(event["sender"]),
        target=EventID(target),
        origin=content.get(ORIGIN_KEY) if isinstance(content, dict) else None,
    )
