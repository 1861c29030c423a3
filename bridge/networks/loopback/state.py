"""The loopback network's whole world: users, chats, messages, media and event logs.

Every operation is synchronous and finishes without awaiting, so each one is atomic on
the event loop (an idempotent send can't race with its own retry). Request bodies come
in as decoded JSON and are validated here, so the HTTP layer stays thin and the rules
can be tested without a server.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from .model import (
    CHAT_KINDS,
    MAX_EVENTS_PER_POLL,
    MISSING,
    TOKEN_PATTERN,
    ApiError,
    Attachment,
    Chat,
    EventLog,
    Faults,
    Media,
    Message,
    User,
    bad_request,
    decode_base64,
    forbidden,
    get_bool,
    get_id,
    get_id_list,
    get_int,
    get_str,
    image_mime,
    not_found,
    parse_media,
    require_object,
    validate_entities,
)

Listener = Callable[[str], None]
"""Called with a user id whenever that user's event log grows."""


class ServiceState:
    """In-memory state of one loopback network."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.users: dict[str, User] = {}
        self.tokens: dict[str, str] = {}
        self.chats: dict[str, Chat] = {}
        self.messages: dict[str, Message] = {}
        self.chat_messages: dict[str, list[str]] = {}
        self.media: dict[str, Media] = {}
        self.logs: dict[str, EventLog] = {}
        self.faults = Faults()
        self.listeners: list[Listener] = []
        # (sender, txn_id) -> message id; kept forever so late retries stay idempotent
        self._txns: dict[tuple[str, str], str] = {}
        self._counter = 0

    # --- helpers ---------------------------------------------------------------------

    def _next(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _store_media(self, data: bytes, mime: str, name: str | None = None) -> str:
        media_id = self._next("md")
        self.media[media_id] = Media(media_id, mime, data, name)
        return media_id

    def _avatar(self, value: Any) -> str | None:
        """Store a base64 PNG/JPEG avatar and return its media id; None clears it."""
        if value is None:
            return None
        data = decode_base64(value, "field 'avatar'")
        mime = image_mime(data)
        if mime is None:
            raise bad_request("field 'avatar' must be PNG or JPEG bytes")
        return self._store_media(data, mime, "avatar")

    def _emit(
        self, recipients: Iterable[str], type_: str, chat_id: str | None, **fields: Any
    ) -> None:
        ts = self._now_ms()
        for user_id in dict.fromkeys(recipients):
            self.logs[user_id].append({"type": type_, "chat_id": chat_id, "ts": ts, **fields})
            for listener in self.listeners:
                listener(user_id)

    def _existing_users(self, ids: list[str]) -> list[str]:
        for user_id in ids:
            if user_id not in self.users:
                raise bad_request(f"unknown user {user_id!r}")
        return ids

    def user(self, user_id: str) -> User:
        try:
            return self.users[user_id]
        except KeyError:
            raise not_found(f"no user {user_id!r}") from None

    def chat(self, chat_id: str) -> Chat:
        try:
            return self.chats[chat_id]
        except KeyError:
            raise not_found(f"no chat {chat_id!r}") from None

    def member_chat(self, caller: str, chat_id: str) -> Chat:
        chat = self.chat(chat_id)
        if caller not in chat.members:
            raise forbidden(f"you are not a member of chat {chat_id!r}")
        return chat

    def message(self, chat_id: str, message_id: str) -> Message:
        msg = self.messages.get(message_id)
        if msg is None or msg.chat_id != chat_id:
            raise not_found(f"no message {message_id!r} in chat {chat_id!r}")
        return msg

    def _own_message(self, caller: str, chat_id: str, message_id: str) -> Message:
        self.member_chat(caller, chat_id)
        msg = self.message(chat_id, message_id)
        if msg.sender != caller:
            raise forbidden("only the sender may change a message")
        return msg

    def authenticate(self, token: str | None) -> User:
        user_id = self.tokens.get(token) if token else None
        if user_id is None:
            raise ApiError(401, "LB_UNAUTHORIZED", "missing or unknown access token")
        return self.users[user_id]

    # --- users -----------------------------------------------------------------------

    def create_user(self, body: Any) -> User:
        body = require_object(body)
        user_id = get_id(body, "id")
        display_name = get_str(body, "display_name")
        phone = get_str(body, "phone", required=False)
        username = get_str(body, "username", required=False)
        token = get_str(body, "token", required=False)
        if user_id in self.users:
            raise ApiError(409, "LB_EXISTS", f"user {user_id!r} already exists")
        if isinstance(token, str):
            if not TOKEN_PATTERN.fullmatch(token):
                raise bad_request("field 'token' must match [A-Za-z0-9_.~-]{8,128}")
            if token in self.tokens:
                raise ApiError(409, "LB_EXISTS", "that token is already in use")
        else:
            token = secrets.token_urlsafe(24)
        avatar = self._avatar(body.get("avatar"))
        user = User(
            id=user_id,
            display_name=display_name,
            token=token,
            phone=phone if isinstance(phone, str) else None,
            username=username if isinstance(username, str) else None,
            avatar_media_id=avatar,
        )
        self.users[user_id] = user
        self.tokens[token] = user_id
        self.logs[user_id] = EventLog()
        return user

    def update_user(self, user_id: str, body: Any) -> User:
        user = self.user(user_id)
        body = require_object(body)
        name = get_str(body, "display_name", required=False)
        phone = get_str(body, "phone", required=False)
        username = get_str(body, "username", required=False)
        if name is None or name == "":
            raise bad_request("field 'display_name' must be a non-empty string")
        changes = [k for k in ("display_name", "avatar", "phone", "username") if k in body]
        if not changes:
            raise bad_request("nothing to change: give display_name, avatar, phone or username")
        if "avatar" in body:
            user.avatar_media_id = self._avatar(body["avatar"])
        if name is not MISSING:
            user.display_name = name
        if phone is not MISSING:
            user.phone = phone
        if username is not MISSING:
            user.username = username
        self._emit(self.contacts(user_id), "user_update", None, user=user.public())
        return user

    def contacts(self, user_id: str) -> list[str]:
        """The user and everyone who shares a chat with them."""
        seen = {user_id: None}
        for chat in self.chats.values():
            if user_id in chat.members:
                seen.update(dict.fromkeys(chat.members))
        return list(seen)

    def visible_user(self, caller: str, user_id: str) -> User:
        user = self.user(user_id)
        if user_id not in self.contacts(caller):
            raise forbidden(f"you share no chat with {user_id!r}")
        return user

    # --- chats -----------------------------------------------------------------------

    def create_chat(self, body: Any, creator: str | None = None) -> Chat:
        """Create a chat; ``creator`` is the calling user, None for the admin endpoint."""
        body = require_object(body)
        kind = get_str(body, "kind", required=False)
        kind = "group" if kind is MISSING or kind is None else kind
        if kind not in CHAT_KINDS:
            raise bad_request("field 'kind' must be 'group' or 'direct'")
        title = get_str(body, "title", required=kind == "group")
        topic = get_str(body, "topic", required=False)
        members = self._existing_users(get_id_list(body, "members"))
        if creator is not None and creator not in members:
            members.insert(0, creator)
        if kind == "direct" and len(members) != 2:
            raise bad_request("a direct chat has exactly two members")
        if not members:
            raise bad_request("field 'members' must not be empty")
        chat_id = get_id(body, "id", required=False) if creator is None else MISSING
        if isinstance(chat_id, str):
            if chat_id in self.chats:
                raise ApiError(409, "LB_EXISTS", f"chat {chat_id!r} already exists")
        else:
            chat_id = self._next("c")
            while chat_id in self.chats:  # an admin may have picked this id by hand
                chat_id = self._next("c")
        avatar = self._avatar(body.get("avatar"))
        chat = Chat(
            id=chat_id,
            title=title if isinstance(title, str) else "",
            kind=kind,
            members=members,
            topic=topic if isinstance(topic, str) else None,
            avatar_media_id=avatar,
        )
        self.chats[chat_id] = chat
        self.chat_messages[chat_id] = []
        self._emit(chat.members, "chat_created", chat_id, chat=chat.to_json())
        return chat

    def chats_of(self, caller: str) -> list[Chat]:
        return [c for c in self.chats.values() if caller in c.members]

    def update_chat(self, caller: str, chat_id: str, body: Any) -> Chat:
        chat = self.member_chat(caller, chat_id)
        body = require_object(body)
        title = get_str(body, "title", required=False)
        topic = get_str(body, "topic", required=False)
        if title is None or title == "":
            raise bad_request("field 'title' must be a non-empty string")
        if not any(k in body for k in ("title", "topic", "avatar")):
            raise bad_request("nothing to change: give title, topic or avatar")
        if "avatar" in body:
            chat.avatar_media_id = self._avatar(body["avatar"])
        if title is not MISSING:
            chat.title = title
        if topic is not MISSING:
            chat.topic = topic
        self._emit(chat.members, "chat_update", chat_id, chat=chat.to_json())
        return chat

    def add_member(self, caller: str, chat_id: str, body: Any) -> Chat:
        chat = self.member_chat(caller, chat_id)
        user_id = get_str(require_object(body), "user_id")
        self._existing_users([user_id])
        if chat.kind == "direct":
            raise bad_request("direct chats can't gain members")
        if user_id not in chat.members:  # adding twice is a no-op, so retries are safe
            chat.members.append(user_id)
            self._emit(chat.members, "member_join", chat_id, user_id=user_id, chat=chat.to_json())
        return chat

    def remove_member(self, caller: str, chat_id: str, user_id: str) -> None:
        chat = self.member_chat(caller, chat_id)
        if user_id not in chat.members:
            raise not_found(f"user {user_id!r} is not in chat {chat_id!r}")
        if chat.kind == "direct":
            raise bad_request("direct chats can't lose members")
        # the leaver gets the event too, so their client learns they are out
        self._emit(chat.members, "member_leave", chat_id, user_id=user_id)
        chat.members.remove(user_id)

    # --- messages --------------------------------------------------------------------

    def _attachment(self, value: Any) -> Attachment | None:
        if value is None:
            return None
        kind, name, mime, data = parse_media(value)
        media_id = self._store_media(data, mime, name)
        return Attachment(kind=kind, name=name, mime=mime, media_id=media_id, size=len(data))

    def post_message(self, caller: str, chat_id: str, body: Any) -> tuple[Message, bool]:
        """Post a message; returns it and whether it is new (False: a txn_id retry)."""
        chat = self.member_chat(caller, chat_id)
        body = require_object(body)
        txn_id = get_str(body, "txn_id", required=False)
        txn_id = txn_id if isinstance(txn_id, str) else None
        if txn_id is not None and (caller, txn_id) in self._txns:
            return self.messages[self._txns[(caller, txn_id)]], False
        text = get_str(body, "text", required=False)
        text = text if isinstance(text, str) else ""
        has_media = body.get("media") is not None
        if not text and not has_media:
            raise bad_request("field 'text' is required (and non-empty) unless 'media' is given")
        entities = validate_entities(body.get("entities"), text)
        reply_to = get_str(body, "reply_to", required=False)
        reply_to = reply_to if isinstance(reply_to, str) else None
        if reply_to is not None:
            target = self.messages.get(reply_to)
            if target is None or target.chat_id != chat_id:
                raise bad_request(f"reply_to: no message {reply_to!r} in chat {chat_id!r}")
        media = self._attachment(body.get("media"))  # last: stores bytes only once valid
        msg = Message(
            id=self._next("m"),
            chat_id=chat_id,
            sender=caller,
            text=text,
            ts=self._now_ms(),
            entities=entities,
            reply_to=reply_to,
            media=media,
            txn_id=txn_id,
        )
        self.messages[msg.id] = msg
        self.chat_messages[chat_id].append(msg.id)
        if txn_id is not None:
            self._txns[(caller, txn_id)] = msg.id
        self._emit(chat.members, "message", chat_id, message=msg.to_json())
        return msg, True

    def edit_message(self, caller: str, chat_id: str, message_id: str, body: Any) -> Message:
        msg = self._own_message(caller, chat_id, message_id)
        if msg.deleted:
            raise bad_request(f"message {message_id!r} is deleted")
        body = require_object(body)
        text = get_str(body, "text")
        if not text and msg.media is None:
            raise bad_request("field 'text' must not be empty")
        entities = validate_entities(body.get("entities"), text)
        msg.text, msg.entities, msg.edited = text, entities, True
        self._emit(
            self.chats[chat_id].members,
            "edit",
            chat_id,
            message_id=message_id,
            text=text,
            entities=[dict(e) for e in entities],
            sender=caller,
        )
        return msg

    def delete_message(self, caller: str, chat_id: str, message_id: str) -> Message:
        msg = self._own_message(caller, chat_id, message_id)
        if msg.deleted:
            return msg  # deleting twice is a no-op, so a retried delete is safe
        msg.deleted = True
        msg.text, msg.entities, msg.media, msg.reactions = "", [], None, {}
        self._emit(
            self.chats[chat_id].members, "delete", chat_id, message_id=message_id, sender=caller
        )
        return msg

    def set_reaction(
        self, caller: str, chat_id: str, message_id: str, emoji: str, on: bool
    ) -> Message:
        """Add (``on``) or remove the caller's reaction; repeating either is a no-op."""
        chat = self.member_chat(caller, chat_id)
        msg = self.message(chat_id, message_id)
        if not emoji or len(emoji) > 64:
            raise bad_request("the emoji must be 1 to 64 characters")
        if msg.deleted:
            raise bad_request(f"message {message_id!r} is deleted")
        users = msg.reactions.get(emoji, [])
        if on and caller not in users:
            msg.reactions[emoji] = [*users, caller]
            self._emit(
                chat.members, "reaction", chat_id, message_id=message_id, sender=caller, emoji=emoji
            )
        elif not on and caller in users:
            users.remove(caller)
            if not users:
                del msg.reactions[emoji]
            self._emit(
                chat.members,
                "reaction_removed",
                chat_id,
                message_id=message_id,
                sender=caller,
                emoji=emoji,
            )
        return msg

    def typing(self, caller: str, chat_id: str, body: Any) -> None:
        chat = self.member_chat(caller, chat_id)
        typing = get_bool(require_object(body), "typing")
        self._emit(chat.members, "typing", chat_id, sender=caller, typing=typing)

    def mark_read(self, caller: str, chat_id: str, body: Any) -> None:
        chat = self.member_chat(caller, chat_id)
        message_id = get_str(require_object(body), "message_id")
        target = self.messages.get(message_id)
        if target is None or target.chat_id != chat_id:
            raise bad_request(f"message_id: no message {message_id!r} in chat {chat_id!r}")
        self._emit(chat.members, "read", chat_id, sender=caller, message_id=message_id)

    def history(self, chat_id: str, limit: int = 50, before: str | None = None) -> list[Message]:
        """Up to ``limit`` messages of a chat, oldest first, optionally before a message."""
        ids = self.chat_messages[self.chat(chat_id).id]
        end = len(ids)
        if before is not None:
            target = self.messages.get(before)
            if target is None or target.chat_id != chat_id:
                raise bad_request(f"before: no message {before!r} in chat {chat_id!r}")
            end = ids.index(before)
        return [self.messages[i] for i in ids[max(0, end - limit) : end]]

    def get_media(self, media_id: str) -> Media:
        try:
            return self.media[media_id]
        except KeyError:
            raise not_found(f"no media {media_id!r}") from None

    # --- events and faults -----------------------------------------------------------

    def pending_events(
        self, user_id: str, limit: int = MAX_EVENTS_PER_POLL
    ) -> list[dict[str, Any]]:
        """The user's unacknowledged events, oldest first (at most ``limit``)."""
        return self.logs[user_id].unacked(limit)

    def ack(self, user_id: str, body: Any) -> int:
        up_to = get_int(require_object(body).get("up_to"), "field 'up_to'")
        log = self.logs[user_id]
        log.ack(up_to)
        return log.acked

    def set_faults(self, body: Any) -> Faults:
        """Apply a POST /admin/faults body: absent keys stay as they are, null clears."""
        updated = replace(self.faults)  # a copy, so a bad body changes nothing
        updated.apply(require_object(body))
        self.faults = updated
        return updated

    def clear_faults(self) -> None:
        self.faults = Faults()

    def load_seed(self, data: Any) -> None:
        """Create the users and chats of a seed document ``{"users": [...], "chats": [...]}``."""
        data = require_object(data)
        for key in ("users", "chats"):
            if not isinstance(data.get(key, []), list):
                raise bad_request(f"seed field '{key}' must be a list")
        for user in data.get("users", []):
            self.create_user(user)
        for chat in data.get("chats", []):
            self.create_chat(chat)
