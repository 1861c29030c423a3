"""Records, request validation, per-user event logs and fault settings of the loopback network.

Pure logic: nothing here touches the network or the event loop, so ``state`` and the
tests can use it directly.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
TOKEN_PATTERN: Final = re.compile(r"[A-Za-z0-9_.~-]{8,128}")
MEDIA_KINDS: Final = frozenset({"image", "video", "audio", "voice", "file", "sticker"})
CHAT_KINDS: Final = frozenset({"group", "direct"})
MAX_EVENTS_PER_POLL: Final = 100


class _Missing:
    """Marks a field absent from a request body (as opposed to present and null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class ApiError(Exception):
    """An error answer: the HTTP status, the ``LB_*`` errcode and a readable message."""

    def __init__(
        self, status: int, errcode: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message
        self.retry_after = retry_after

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"errcode": self.errcode, "error": self.message}
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        return body


def bad_request(message: str) -> ApiError:
    return ApiError(400, "LB_BAD_REQUEST", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "LB_NOT_FOUND", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "LB_FORBIDDEN", message)


# --- request body fields -------------------------------------------------------------


def require_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise bad_request("request body must be a JSON object")
    return data


def get_str(body: dict[str, Any], key: str, *, required: bool = True) -> Any:
    """Return the string at ``key``; ``MISSING`` if absent and optional, None if null."""
    if key not in body:
        if required:
            raise bad_request(f"field '{key}' is required")
        return MISSING
    value = body[key]
    if value is None:
        if required:
            raise bad_request(f"field '{key}' must be a string, not null")
        return None
    if not isinstance(value, str):
        raise bad_request(f"field '{key}' must be a string")
    return value


def get_id(body: dict[str, Any], key: str, *, required: bool = True) -> Any:
    value = get_str(body, key, required=required)
    if isinstance(value, str) and not ID_PATTERN.fullmatch(value):
        raise bad_request(f"field '{key}' must match [A-Za-z0-9_.-]{{1,64}}, got {value!r}")
    return value


def get_id_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, MISSING)
    if value is MISSING:
        raise bad_request(f"field '{key}' is required")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"field '{key}' must be a list of user ids (strings)")
    return list(dict.fromkeys(value))  # drop duplicates, keep order


def get_bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, MISSING)
    if value is MISSING:
        raise bad_request(f"field '{key}' is required")
    if not isinstance(value, bool):
        raise bad_request(f"field '{key}' must be true or false")
    return value


def get_int(value: Any, what: str, *, minimum: int = 0) -> int:
    # bool is an int subclass in Python, but true/false is never a valid count
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{what} must be an integer")
    if value < minimum:
        raise bad_request(f"{what} must be >= {minimum}")
    return value


def decode_base64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise bad_request(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{what} is not valid base64") from None


def image_mime(data: bytes) -> str | None:
    """The MIME type of PNG or JPEG bytes, None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def parse_media(value: Any) -> tuple[str, str, str, bytes]:
    """Validate a message's ``media`` object; returns kind, name, mime and the bytes."""
    if not isinstance(value, dict):
        raise bad_request("field 'media' must be an object or null")
    kind = get_str(value, "kind")
    if kind not in MEDIA_KINDS:
        raise bad_request(f"media.kind must be one of {', '.join(sorted(MEDIA_KINDS))}")
    name = get_str(value, "name")
    mime = get_str(value, "mime")
    if "/" not in mime:
        raise bad_request("media.mime must be a MIME type like image/png")
    return kind, name, mime, decode_base64(value.get("data"), "media.data")


def validate_entities(value: Any, text: str) -> list[dict[str, Any]]:
    """Check entities are objects with a string type and an int range inside ``text``.

    Offsets count Python code points, like ``bridge.core.text``. Entities are stored and
    echoed exactly as given (extra keys included).
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request("field 'entities' must be a list of objects")
    for i, entity in enumerate(value):
        if not isinstance(entity, dict):
            raise bad_request(f"entities[{i}] must be an object")
        if not isinstance(entity.get("type"), str):
            raise bad_request(f"entities[{i}].type must be a string")
        offset = get_int(entity.get("offset"), f"entities[{i}].offset")
        length = get_int(entity.get("length"), f"entities[{i}].length")
        if offset + length > len(text):
            raise bad_request(
                f"entities[{i}] covers {offset}..{offset + length} but the text has "
                f"only {len(text)} characters"
            )
    return [dict(e) for e in value]


# --- records -------------------------------------------------------------------------


@dataclass(slots=True)
class Media:
    """Stored bytes: an avatar or a message attachment."""

    id: str
    mime: str
    data: bytes
    name: str | None = None


@dataclass(slots=True)
class User:
    id: str
    display_name: str
    token: str
    phone: str | None = None
    username: str | None = None
    avatar_media_id: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "display_name": self.display_name,
            "phone": self.phone,
            "username": self.username,
            "avatar_media_id": self.avatar_media_id,
        }

    def with_token(self) -> dict[str, Any]:
        return {**self.public(), "token": self.token}


@dataclass(slots=True)
class Chat:
    id: str
    title: str
    kind: str
    members: list[str]
    topic: str | None = None
    avatar_media_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "topic": self.topic,
            "kind": self.kind,
            "members": list(self.members),
            "avatar_media_id": self.avatar_media_id,
        }


@dataclass(frozen=True, slots=True)
class Attachment:
    """What a message says about its media; the bytes live in the media store."""

    kind: str
    name: str
    mime: str
    media_id: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "mime": self.mime,
            "media_id": self.media_id,
            "size": self.size,
        }


@dataclass(slots=True)
class Message:
    id: str
    chat_id: str
    sender: str
    text: str
    ts: int
    entities: list[dict[str, Any]] = field(default_factory=list)
    reply_to: str | None = None
    media: Attachment | None = None
    txn_id: str | None = None
    edited: bool = False
    deleted: bool = False
    # emoji -> user ids in the order they reacted; dicts keep emoji in first-use order
    reactions: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chat_id": self.chat_id,
            "sender": self.sender,
            "text": self.text,
            "entities": [dict(e) for e in self.entities],
            "reply_to": self.reply_to,
            "media": self.media.to_json() if self.media else None,
            "edited": self.edited,
            "deleted": self.deleted,
            "reactions": {emoji: list(users) for emoji, users in self.reactions.items()},
            "ts": self.ts,
            "txn_id": self.txn_id,
        }


# --- delivery and faults -------------------------------------------------------------


@dataclass(slots=True)
class EventLog:
    """One user's events. Events stay here until acknowledged: at-least-once delivery."""

    pending: deque[dict[str, Any]] = field(default_factory=deque)
    last_seq: int = 0
    acked: int = 0

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        self.last_seq += 1
        stored = {"seq": self.last_seq, **event}
        self.pending.append(stored)
        return stored

    def unacked(self, limit: int = MAX_EVENTS_PER_POLL) -> list[dict[str, Any]]:
        return [self.pending[i] for i in range(min(limit, len(self.pending)))]

    def ack(self, up_to: int) -> None:
        # Never past what was handed out: acking future seqs would silently lose events.
        self.acked = max(self.acked, min(up_to, self.last_seq))
        while self.pending and self.pending[0]["seq"] <= self.acked:
            self.pending.popleft()


@dataclass(slots=True)
class Faults:
    """Injected faults: a budget of calls to refuse, and a one-shot event-stream drop."""

    rate_limit_count: int = 0
    retry_after: float = 1.0
    fail_count: int = 0
    fail_error: str = "injected failure"
    drop_event_streams: bool = False

    def take_send_fault(self) -> ApiError | None:
        """Consume one refusal for a send/edit/delete/react call, if any is left."""
        if self.rate_limit_count > 0:
            self.rate_limit_count -= 1
            return ApiError(
                429, "LB_RATE_LIMITED", "rate limited (injected)", retry_after=self.retry_after
            )
        if self.fail_count > 0:
            self.fail_count -= 1
            return ApiError(500, "LB_FAILED", self.fail_error)
        return None

    def apply(self, body: dict[str, Any]) -> None:
        """Apply a POST /admin/faults body: absent keys stay as they are, null clears."""
        if "rate_limit" in body:
            value = body["rate_limit"]
            if isinstance(value, dict):
                retry_after = value.get("retry_after", 1.0)
                if isinstance(retry_after, bool) or not isinstance(retry_after, (int, float)):
                    raise bad_request("rate_limit.retry_after must be a number of seconds")
                if retry_after < 0:
                    raise bad_request("rate_limit.retry_after must be >= 0")
                self.rate_limit_count = get_int(value.get("count"), "rate_limit.count")
                self.retry_after = float(retry_after)
            elif value is None:
                self.rate_limit_count = 0
            else:
                raise bad_request("field 'rate_limit' must be an object or null")
        if "fail_sends" in body:
            value = body["fail_sends"]
            if isinstance(value, dict):
                error = get_str(value, "error", required=False)
                self.fail_count = get_int(value.get("count"), "fail_sends.count")
                self.fail_error = error if isinstance(error, str) else "injected failure"
            elif value is None:
                self.fail_count = 0
            else:
                raise bad_request("field 'fail_sends' must be an object or null")
        if "drop_event_streams" in body:
            self.drop_event_streams = get_bool(body, "drop_event_streams")

    def to_json(self) -> dict[str, Any]:
        return {
            "rate_limit": (
                {"count": self.rate_limit_count, "retry_after": self.retry_after}
                if self.rate_limit_count
                else None
            ),
            "fail_sends": (
                {"count": self.fail_count, "error": self.fail_error} if self.fail_count else None
            ),
            "drop_event_streams": self.drop_event_streams,
        }
