"""Chat and user information from Telegram, as the core's ChatInfo and UserInfo."""

from __future__ import annotations

import logging
from typing import Any

from telethon import errors, functions, utils
from telethon.tl import types as tl

from ...core.events import ChatInfo, MediaKind, RemoteMedia, UserInfo
from ...core.ids import RemoteUserID
from .client import BridgeTelegramClient
from .ids import GENERAL_TOPIC, ChatRef, chat_for_peer, parse_sender_id, sender_id, user_id

log = logging.getLogger("bridge.networks.telegram.chats")

# Forum topic requests moved from channels.* to messages.* in Telethon 1.41 (layer 201).
_GET_TOPICS_BY_ID = getattr(functions.messages, "GetForumTopicsByIDRequest", None) or getattr(
    functions.channels, "GetForumTopicsByIDRequest"
)


def display_name(entity: Any) -> str:
    """A user's or chat's name; never falls back to a phone number."""
    if isinstance(entity, tl.User):
        name = " ".join(p for p in (entity.first_name, entity.last_name) if p)
        if entity.deleted:
            return "Deleted account"
        return name or (entity.username or "")
    return getattr(entity, "title", "") or ""


def _avatar(client: BridgeTelegramClient, entity: Any) -> tuple[RemoteMedia | None, str | None]:
    photo = getattr(entity, "photo", None)
    photo_id = getattr(photo, "photo_id", None)
    if not photo_id:
        return None, None

    async def fetch() -> bytes:
        data = await client.download_profile_photo(entity, file=bytes)
        if not data:
            raise LookupError("the profile photo is gone")
        return data

    media = RemoteMedia(kind=MediaKind.IMAGE, mime_type="image/jpeg", file_name="avatar.jpg",
                        size=None, fetch=fetch)
    return media, str(photo_id)


def user_info(client: BridgeTelegramClient, entity: Any) -> UserInfo:
    avatar, avatar_id = _avatar(client, entity)
    if isinstance(entity, tl.User):
        return UserInfo(
            user_id=user_id(entity.id),
            display_name=display_name(entity) or None,
            avatar=avatar,
            avatar_id=avatar_id,
            phone=entity.phone,
            username=entity.username,
        )
    # A channel or group posting as itself.
    return UserInfo(user_id=sender_id(utils.get_peer(entity)), display_name=display_name(entity) or None,
                    avatar=avatar, avatar_id=avatar_id)


async def get_user_info(client: BridgeTelegramClient, remote_id: str) -> UserInfo:
    entity = await client.get_entity(parse_sender_id(remote_id))
    return user_info(client, entity)


async def get_chat_info(client: BridgeTelegramClient, chat: ChatRef, self_id: int) -> ChatInfo:
    if chat.kind == "dm":
        user = await client.get_entity(tl.PeerUser(chat.peer_id))
        avatar, avatar_id = _avatar(client, user)
        members = (user_id(chat.peer_id),) if chat.peer_id == self_id else (user_id(chat.peer_id), user_id(self_id))
        return ChatInfo(chat.chat_id, name=display_name(user), members=members, is_direct=True,
                        avatar=avatar, avatar_id=avatar_id)
    if chat.kind == "group":
        full = await client(functions.messages.GetFullChatRequest(chat.peer_id))
        entity = next(c for c in full.chats if c.id == chat.peer_id)
        participants = getattr(full.full_chat.participants, "participants", None) or []
        avatar, avatar_id = _avatar(client, entity)
        return ChatInfo(
            chat.chat_id, name=entity.title, topic=full.full_chat.about or None,
            members=tuple(user_id(p.user_id) for p in participants),
            avatar=avatar, avatar_id=avatar_id,
        )
    return await _channel_info(client, chat)


async def _channel_info(client: BridgeTelegramClient, chat: ChatRef) -> ChatInfo:
    channel = await client.get_entity(tl.PeerChannel(chat.peer_id))
    full = await client(functions.channels.GetFullChannelRequest(channel))
    members: tuple[RemoteUserID, ...] = ()
    try:
        participants = await client.get_participants(channel, limit=200)
        members = tuple(user_id(p.id) for p in participants)
    except (errors.ChatAdminRequiredError, errors.ChannelPrivateError):
        pass  # broadcast channels list their members to admins only
    name = channel.title
    if chat.topic_id and chat.topic_id != GENERAL_TOPIC:
        name = f"{channel.title} / {await _topic_title(client, channel, chat.topic_id)}"
    avatar, avatar_id = _avatar(client, channel)
    return ChatInfo(
        chat.chat_id, name=name, topic=full.full_chat.about or None, members=members,
        avatar=avatar, avatar_id=avatar_id, read_only=not can_post(channel),
    )


async def _topic_title(client: BridgeTelegramClient, channel: Any, topic_id: int) -> str:
    try:
        result = await client(_GET_TOPICS_BY_ID(channel, [topic_id]))
        for topic in result.topics:
            if isinstance(topic, tl.ForumTopic) and topic.id == topic_id:
                return topic.title
    except (errors.RPCError, ValueError) as e:  # ValueError: Telethon gave up retrying
        log.info("Could not read the title of topic %s: %s", topic_id, e)
    return f"Topic {topic_id}"


def can_post(channel: Any) -> bool:
    """Whether this account may send messages in a channel or supergroup."""
    if getattr(channel, "creator", False):
        return True
    rights = getattr(channel, "admin_rights", None)
    if getattr(channel, "broadcast", False):
        return bool(rights and rights.post_messages)
    banned = getattr(channel, "banned_rights", None) or getattr(channel, "default_banned_rights", None)
    if rights is not None:
        return True
    return not (banned and banned.send_messages)


async def list_chats(client: BridgeTelegramClient, login_id: str, self_id: int, limit: int) -> list[ChatInfo]:
    out: list[ChatInfo] = []
    async for dialog in client.iter_dialogs(limit=limit):
        chat = chat_for_peer(utils.get_peer(dialog.entity), login_id)
        try:
            out.append(await get_chat_info(client, chat, self_id))
        except errors.RPCError as e:
            log.info("Skipping a chat whose details Telegram refused: %s", e)
    return out
