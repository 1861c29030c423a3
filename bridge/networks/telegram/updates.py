"""Telegram updates -> the core's remote events, and the checkpoints that make them safe.

:class:`UpdateConverter` turns one raw Telethon update into zero or more
:class:`RemoteEvent` objects. It is synchronous (no network calls), so updates are queued
into the core in exactly the order Telegram delivered them.

:class:`CheckpointTracker` stores an update state only once the core has handled every
event before it (see :mod:`.client`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from telethon.tl import types as tl

from ...core.events import (
    ChatInfo,
    MessageContent,
    RemoteChatUpdate,
    RemoteDelete,
    RemoteEdit,
    RemoteEvent,
    RemoteMemberChange,
    RemoteMessage,
    RemoteReaction,
    RemoteReadReceipt,
    RemoteTyping,
    Sender,
)
from ...core.text import FormattedText
from .convert import message_content, short_message_as_message
from .ids import GENERAL_TOPIC, ChatRef, chat_for_peer, message_id, sender_id, user_id

if TYPE_CHECKING:
    from .client import Checkpoint

log = logging.getLogger("bridge.networks.telegram.updates")

RECENT_LIMIT = 5000
"""How many recent private/basic-group messages are remembered to map deletions (Telegram
announces those by message id only) to their chat."""


class UpdateConverter:
    """Converts raw updates for one login. Holds the little state that needs:

    the chat of recent messages (for deletions) and the last known reactions per message
    (Telegram sends the full list, the core wants what changed).
    """

    def __init__(
        self,
        login_id: str,
        self_id: int,
        *,
        double_puppet: bool,
        share_contact_numbers: bool,
        fetch_media: Callable[[tl.Message], Awaitable[bytes]],
        resolve_username: Callable[[str], str | None],
    ) -> None:
        self.login_id = login_id
        self.self_id = self_id
        self.double_puppet = double_puppet
        self.share_contact_numbers = share_contact_numbers
        self.fetch_media = fetch_media
        self.resolve_username = resolve_username
        self.recent: OrderedDict[tuple[int, int], str] = OrderedDict()
        """(channel id or 0, message id) -> chat id of recently seen messages."""
        self._reactions: OrderedDict[tuple[str, int], frozenset[tuple[str, str]]] = OrderedDict()

    # Helpers ------------------------------------------------------------------------------

    def _sender(self, peer: tl.TypePeer | None) -> Sender | None:
        if peer is None:
            return None
        mine = isinstance(peer, tl.PeerUser) and peer.user_id == self.self_id
        return Sender(sender_id(peer), is_from_me=mine and self.double_puppet)

    def remember(self, msg_id: int, chat: ChatRef) -> None:
        key = (chat.peer_id if chat.kind == "channel" else 0, msg_id)
        self.recent[key] = chat.chat_id
        self.recent.move_to_end(key)
        while len(self.recent) > RECENT_LIMIT:
            self.recent.popitem(last=False)

    def chat_of(self, message: tl.Message | tl.MessageService, entities: dict[int, Any]) -> ChatRef:
        """The portal a message belongs to; forum topics get their own."""
        peer = message.peer_id
        topic = None
        if isinstance(peer, tl.PeerChannel):
            channel = entities.get(-1000000000000 - peer.channel_id)
            if getattr(channel, "forum", False):
                topic = topic_of(message)
        return chat_for_peer(peer, self.login_id, topic)

    def message_sender(self, message: tl.Message | tl.MessageService) -> tl.TypePeer:
        if message.from_id is not None:
            return message.from_id
        if message.out:
            return tl.PeerUser(self.self_id)
        return message.peer_id  # private chats and channel posts

    # Messages -----------------------------------------------------------------------------

    def message(self, message: tl.TypeMessage, entities: dict[int, Any]) -> list[RemoteEvent]:
        if isinstance(message, tl.MessageService):
            return self.service_message(message, entities)
        if not isinstance(message, tl.Message):
            return []
        chat = self.chat_of(message, entities)
        self.remember(message.id, chat)
        return [
            RemoteMessage(
                chat_id=chat.chat_id,
                sender=self._sender(self.message_sender(message)),
                timestamp_ms=int(message.date.timestamp() * 1000) if message.date else 0,
                message_id=message_id(message.id),
                content=self.content(message),
                reply_to=reply_target(message),
            )
        ]

    def content(self, message: tl.Message) -> MessageContent:
        return message_content(
            message,
            lambda: self.fetch_media(message),
            resolve_username=self.resolve_username,
            share_contact_numbers=self.share_contact_numbers,
        )

    def service_message(self, message: tl.MessageService, entities: dict[int, Any]) -> list[RemoteEvent]:
        chat = self.chat_of(message, entities)
        action = message.action
        ts = int(message.date.timestamp() * 1000) if message.date else 0
        actor = self.message_sender(message)
        if isinstance(action, tl.MessageActionChatEditTitle):
            return [RemoteChatUpdate(chat_id=chat.base.chat_id, timestamp_ms=ts,
                                     info=ChatInfo(chat.base.chat_id, name=action.title))]
        if isinstance(action, tl.MessageActionTopicCreate):
            topic = ChatRef("channel", chat.peer_id, topic_id=message.id)
            return [RemoteChatUpdate(chat_id=topic.chat_id, timestamp_ms=ts,
                                     info=ChatInfo(topic.chat_id, name=action.title))]
        if isinstance(action, tl.MessageActionTopicEdit) and action.title:
            return [RemoteChatUpdate(chat_id=chat.chat_id, timestamp_ms=ts,
                                     info=ChatInfo(chat.chat_id, name=action.title))]
        if isinstance(action, tl.MessageActionChatAddUser):
            return [RemoteMemberChange(chat_id=chat.chat_id, timestamp_ms=ts, user_id=user_id(u), joined=True)
                    for u in action.users]
        if isinstance(action, (tl.MessageActionChatJoinedByLink, tl.MessageActionChatJoinedByRequest)):
            return [RemoteMemberChange(chat_id=chat.chat_id, timestamp_ms=ts, user_id=sender_id(actor), joined=True)]
        if isinstance(action, tl.MessageActionChatDeleteUser):
            return [RemoteMemberChange(chat_id=chat.chat_id, timestamp_ms=ts, user_id=user_id(action.user_id), joined=False)]
        if isinstance(action, tl.MessageActionPinMessage):
            self.remember(message.id, chat)
            return [RemoteMessage(
                chat_id=chat.chat_id, sender=self._sender(actor), timestamp_ms=ts,
                message_id=message_id(message.id), reply_to=reply_target(message),
                content=MessageContent(text=FormattedText("pinned a message"), notice=True),
            )]
        return []  # photo changes are fetched by the login; others have no Matrix meaning

    # Everything else ----------------------------------------------------------------------

    def convert(self, update: Any) -> list[RemoteEvent]:
        entities: dict[int, Any] = getattr(update, "_entities", None) or {}
        if isinstance(update, (tl.UpdateNewMessage, tl.UpdateNewChannelMessage)):
            return self.message(update.message, entities)
        if isinstance(update, (tl.UpdateShortMessage, tl.UpdateShortChatMessage)):
            return self.message(short_message_as_message(update, self.self_id), entities)
        if isinstance(update, (tl.UpdateEditMessage, tl.UpdateEditChannelMessage)):
            return self.edit(update.message, entities)
        if isinstance(update, tl.UpdateDeleteMessages):
            return [RemoteDelete(chat_id=self.recent[(0, m)], message_id=message_id(m))
                    for m in update.messages if (0, m) in self.recent]
        if isinstance(update, tl.UpdateDeleteChannelMessages):
            return self.channel_deletes(update)
        if isinstance(update, tl.UpdateMessageReactions):
            return self.reactions(update, entities)
        if isinstance(update, tl.UpdateUserTyping):
            return self.typing(ChatRef("dm", update.user_id, self.login_id), tl.PeerUser(update.user_id), update.action)
        if isinstance(update, tl.UpdateChatUserTyping):
            return self.typing(ChatRef("group", update.chat_id, self.login_id), update.from_id, update.action)
        if isinstance(update, tl.UpdateChannelUserTyping):
            return self.typing(ChatRef("channel", update.channel_id, topic_id=update.top_msg_id),
                               update.from_id, update.action)
        if isinstance(update, tl.UpdateReadHistoryOutbox) and isinstance(update.peer, tl.PeerUser):
            # The other person read our messages up to max_id.
            chat = ChatRef("dm", update.peer.user_id, self.login_id)
            return [RemoteReadReceipt(chat_id=chat.chat_id, sender=self._sender(update.peer),
                                      up_to=message_id(update.max_id))]
        if isinstance(update, tl.UpdateChatParticipantAdd):
            chat = ChatRef("group", update.chat_id, self.login_id)
            return [RemoteMemberChange(chat_id=chat.chat_id, user_id=user_id(update.user_id), joined=True)]
        if isinstance(update, tl.UpdateChatParticipantDelete):
            chat = ChatRef("group", update.chat_id, self.login_id)
            return [RemoteMemberChange(chat_id=chat.chat_id, user_id=user_id(update.user_id), joined=False)]
        return []

    def edit(self, message: tl.TypeMessage, entities: dict[int, Any]) -> list[RemoteEvent]:
        if not isinstance(message, tl.Message) or message.edit_date is None:
            return []  # no edit date: e.g. only reactions or view counts changed
        chat = self.chat_of(message, entities)
        return [RemoteEdit(
            chat_id=chat.chat_id,
            sender=self._sender(self.message_sender(message)),
            timestamp_ms=int(message.edit_date.timestamp() * 1000),
            message_id=message_id(message.id),
            content=self.content(message),
        )]

    def channel_deletes(self, update: tl.UpdateDeleteChannelMessages) -> list[RemoteEvent]:
        # The update names no topic: use the one the message was seen in, if known.
        main = ChatRef("channel", update.channel_id).chat_id
        return [
            RemoteDelete(chat_id=self.recent.get((update.channel_id, m), main), message_id=message_id(m))
            for m in update.messages
        ]

    def reactions(self, update: tl.UpdateMessageReactions, entities: dict[int, Any]) -> list[RemoteEvent]:
        topic = update.top_msg_id
        peer = update.peer
        if isinstance(peer, tl.PeerChannel):
            channel = entities.get(-1000000000000 - peer.channel_id)
            if not getattr(channel, "forum", False):
                topic = None
            elif topic is None:
                topic = GENERAL_TOPIC
        chat = chat_for_peer(peer, self.login_id, topic)
        now: set[tuple[str, str]] = set()
        for recent in update.reactions.recent_reactions or []:
            if isinstance(recent.reaction, tl.ReactionEmoji):
                now.add((sender_id(recent.peer_id), recent.reaction.emoticon))
        key = (chat.chat_id, update.msg_id)
        before = self._reactions.get(key, frozenset())
        self._reactions[key] = frozenset(now)
        self._reactions.move_to_end(key)
        while len(self._reactions) > RECENT_LIMIT:
            self._reactions.popitem(last=False)
        events: list[RemoteEvent] = []
        for who, emoji in sorted(now - before):
            events.append(RemoteReaction(chat_id=chat.chat_id, sender=self._sender(_peer_of(who)),
                                         message_id=message_id(update.msg_id), emoji=emoji))
        for who, emoji in sorted(before - now):
            events.append(RemoteReaction(chat_id=chat.chat_id, sender=self._sender(_peer_of(who)),
                                         message_id=message_id(update.msg_id), emoji=emoji, removed=True))
        return events

    def typing(self, chat: ChatRef, who: tl.TypePeer, action: Any) -> list[RemoteEvent]:
        typing = not isinstance(action, tl.SendMessageCancelAction)
        return [RemoteTyping(chat_id=chat.chat_id, sender=self._sender(who), typing=typing)]


def _peer_of(remote: str) -> tl.TypePeer:
    from .ids import parse_sender_id

    return parse_sender_id(remote)


def topic_of(message: tl.Message | tl.MessageService) -> int:
    """The forum topic of a message in a forum supergroup (1 is "General")."""
    reply = message.reply_to
    if isinstance(message, tl.MessageService) and isinstance(message.action, tl.MessageActionTopicCreate):
        return message.id
    if isinstance(reply, tl.MessageReplyHeader) and reply.forum_topic:
        return reply.reply_to_top_id or reply.reply_to_msg_id or GENERAL_TOPIC
    return GENERAL_TOPIC


def reply_target(message: tl.Message | tl.MessageService):
    """The message this one replies to, if any (a topic's root is no reply)."""
    reply = message.reply_to
    if not isinstance(reply, tl.MessageReplyHeader) or reply.reply_to_msg_id is None:
        return None
    if reply.reply_to_peer_id is not None and reply.reply_to_peer_id != message.peer_id:
        return None  # a reply to another chat can't be linked
    if reply.forum_topic and reply.reply_to_top_id is None:
        return None  # just "posted in topic N"
    return message_id(reply.reply_to_msg_id)


class CheckpointTracker:
    """Stores an update state once every event queued before it has been handled."""

    def __init__(self, save: Callable[[Checkpoint], Awaitable[None]]) -> None:
        self._save = save
        self._futures: list[asyncio.Future[None]] = []
        self._pending: asyncio.Queue[tuple[list[asyncio.Future[None]], Checkpoint]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.blocked = False

    def add(self, future: asyncio.Future[None]) -> None:
        self._futures.append(future)

    def checkpoint(self, state: Checkpoint) -> None:
        futures, self._futures = self._futures, []
        self._pending.put_nowait((futures, state))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="telegram-checkpoints")

    async def _run(self) -> None:
        while not self._pending.empty():
            futures, state = self._pending.get_nowait()
            results = await asyncio.gather(*futures, return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                # Not handled: keep the old state so a restart fetches these again.
                log.warning("An update was not bridged (%s); not advancing the stored state",
                            type(failures[0]).__name__)
                self.blocked = True
                while not self._pending.empty():
                    self._pending.get_nowait()
                return
            if self.blocked:
                return
            try:
                await self._save(state)
            except Exception:
                log.exception("Could not store the Telegram update state")

    async def drain(self) -> None:
        """Wait until every checkpoint queued so far is stored (or given up)."""
        if self._task is not None:
            await asyncio.shield(self._task)
