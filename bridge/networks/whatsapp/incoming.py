"""neonize events -> the core's remote events, for one login."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ...core.events import (
    ChatInfo,
    RemoteChatUpdate,
    RemoteDelete,
    RemoteEdit,
    RemoteEvent,
    RemoteMedia,
    RemoteMemberChange,
    RemoteMessage,
    RemoteReaction,
    RemoteReadReceipt,
    RemoteTyping,
    Sender,
    UserInfo,
)
from ...core.ids import RemoteChatID, RemoteMessageID, RemoteUserID
from . import content as wa_content
from .format import MentionedUser
from .ids import GROUP_SERVER, USER_SERVER, IdScheme, Jid
from .neonize_api import (
    ChatPresenceEv,
    GroupInfoEv,
    HistorySyncEv,
    JoinedGroupEv,
    MessageEv,
    MessageKey,
    PictureEv,
    ReceiptEv,
    from_proto,
    history_proto,
    neonize_proto,
)

if TYPE_CHECKING:
    from .people import People

log = logging.getLogger("bridge.networks.whatsapp.incoming")

Converted = list[RemoteEvent | UserInfo]
Avatar = Callable[[Jid], Awaitable[tuple[RemoteMedia | None, str | None]]]


class Incoming:
    """Converts one login's events; the login supplies identity, downloads and avatars."""

    def __init__(
        self,
        login_id: RemoteUserID,
        own_users: Callable[[], set[str]],
        people: People,
        download: wa_content.Downloader,
        avatar: Avatar,
        reactions: dict[str, str],
    ) -> None:
        self.login_id = login_id
        self._own_users = own_users
        self.people = people
        self.download = download
        self.avatar = avatar
        self.reactions = reactions
        """``"<message id>|<sender id>"`` -> the emoji that person shows on that message
        (WhatsApp allows one; a new one replaces it and a removal doesn't name it)."""

    def is_me(self, jid: Jid | None) -> bool:
        return jid is not None and jid.user in self._own_users()

    async def person(self, jid: Jid | None, alt: Jid | None = None) -> RemoteUserID | None:
        if jid is None or not jid.is_user:
            return None
        if self.is_me(jid) or self.is_me(alt):
            return self.login_id
        return await self.people.user_id(jid, alt)

    async def chat_id(self, chat: Jid, peer_alt: Jid | None = None) -> RemoteChatID | None:
        if chat.server == GROUP_SERVER:
            return self.people.group_chat_id(chat)
        peer = await self.person(chat, peer_alt)
        if peer is None:
            return None  # status broadcasts, newsletters
        return IdScheme.direct_chat_id(self.login_id, peer)

    # Messages ------------------------------------------------------------------------

    async def message(self, ev: MessageEv) -> Converted:
        info = ev.Info
        src = info.MessageSource
        chat, sender = from_proto(src.Chat), from_proto(src.Sender)
        if chat is None:
            return []
        if src.IsFromMe:
            sender_id: RemoteUserID | None = self.login_id
            chat_id = await self.chat_id(chat, from_proto(src.RecipientAlt))
        else:
            sender_id = await self.person(sender, from_proto(src.SenderAlt))
            chat_id = await self.chat_id(chat, from_proto(src.SenderAlt) if not src.IsGroup else None)
        if chat_id is None or sender_id is None:
            return []
        out: Converted = []
        if info.Pushname and not src.IsFromMe and self.people.learn_push_name(sender_id, info.Pushname):
            out.append(await self.people.user_info(sender_id))
        raw = ev.Message if ev.HasField("Message") else ev.Raw
        mentions = await self._mentions(raw)
        what = wa_content.classify(raw, mentions, self.download)
        base = dict(
            chat_id=chat_id,
            sender=Sender(sender_id, is_from_me=sender_id == self.login_id),
            timestamp_ms=int(info.Timestamp) or int(time.time() * 1000),
        )
        kind = wa_content.Kind
        if what.kind is kind.MESSAGE and what.content is not None:
            out.append(RemoteMessage(
                **base,
                message_id=IdScheme.message_id(sender_id, info.ID),
                content=what.content,
                reply_to=await self._reply_to(what.context, chat, sender_id),
            ))  # fmt: skip
        elif what.kind is kind.EDIT and what.content is not None and what.target is not None:
            out.append(RemoteEdit(
                **base, message_id=IdScheme.message_id(sender_id, what.target.ID), content=what.content
            ))  # fmt: skip
        elif what.kind is kind.REVOKE and what.target is not None:
            target = await self.target_id(what.target, chat, sender_id)
            if target is not None:
                out.append(RemoteDelete(**base, message_id=target))
        elif what.kind is kind.REACTION and what.target is not None:
            target = await self.target_id(what.target, chat, sender_id)
            if target is not None:
                out.extend(self._reaction(base, target, sender_id, what.emoji))
        return out

    def _reaction(self, base: dict[str, Any], target: RemoteMessageID, sender: RemoteUserID, emoji: str) -> Converted:
        slot = f"{target}|{sender}"
        previous = self.reactions.get(slot)
        out: Converted = []
        if previous and previous != emoji:
            out.append(RemoteReaction(**base, message_id=target, emoji=previous, removed=True))
        if emoji and emoji != previous:
            out.append(RemoteReaction(**base, message_id=target, emoji=emoji))
        if emoji:
            self.reactions[slot] = emoji
        else:
            self.reactions.pop(slot, None)
        return out

    async def target_id(self, key: MessageKey, chat: Jid, event_sender: RemoteUserID) -> RemoteMessageID | None:
        """The id of the message a key points at, as seen by the key's author.

        ``fromMe`` in a key is relative to whoever sent the reaction or revoke.
        """
        if key.fromMe:
            target_sender: RemoteUserID | None = event_sender
        elif key.participant:
            target_sender = await self.person(Jid.parse(key.participant))
        elif chat.server != GROUP_SERVER:
            peer = await self.person(chat)
            target_sender = peer if event_sender == self.login_id else self.login_id
        else:
            target_sender = None
        if target_sender is None or not key.ID:
            return None
        return IdScheme.message_id(target_sender, key.ID)

    async def _reply_to(self, context: Any, chat: Jid, sender: RemoteUserID) -> RemoteMessageID | None:
        if context is None or not context.stanzaID:
            return None
        if context.participant:
            quoted = await self.person(Jid.parse(context.participant))
        elif chat.server != GROUP_SERVER:
            quoted = sender
        else:
            return None
        return IdScheme.message_id(quoted, context.stanzaID) if quoted else None

    async def _mentions(self, message: Any) -> dict[str, MentionedUser]:
        found: dict[str, MentionedUser] = {}
        for raw in wa_content.mentioned_users(message):
            try:
                jid = Jid.parse(raw)
            except ValueError:
                continue
            user = await self.person(jid)
            if user is None:
                continue
            info = await self.people.user_info(user)
            found[jid.user] = MentionedUser(user, info.display_name or "WhatsApp user")
        return found

    # Receipts, typing ----------------------------------------------------------------

    async def receipt(self, ev: ReceiptEv) -> Converted:
        src = ev.MessageSource
        if ev.Type != neonize_proto.Receipt.READ or src.IsFromMe or not ev.MessageIDs:
            return []  # delivery receipts, and our own reads on the phone
        chat = from_proto(src.Chat)
        reader = await self.person(from_proto(src.Sender), from_proto(src.SenderAlt))
        if chat is None or reader is None:
            return []
        chat_id = await self.chat_id(chat, from_proto(src.SenderAlt) if not src.IsGroup else None)
        if chat_id is None:
            return []
        # Receipts are about the receiving account's own messages.
        last = IdScheme.message_id(self.login_id, ev.MessageIDs[-1])
        return [RemoteReadReceipt(chat_id=chat_id, sender=Sender(reader), up_to=last)]

    async def typing(self, ev: ChatPresenceEv) -> Converted:
        src = ev.MessageSource
        chat = from_proto(src.Chat)
        who = await self.person(from_proto(src.Sender), from_proto(src.SenderAlt))
        if chat is None or who is None or who == self.login_id:
            return []
        chat_id = await self.chat_id(chat, from_proto(src.SenderAlt) if not src.IsGroup else None)
        if chat_id is None:
            return []
        typing = ev.State == neonize_proto.ChatPresence.COMPOSING
        return [RemoteTyping(chat_id=chat_id, sender=Sender(who), typing=typing)]

    # Groups --------------------------------------------------------------------------

    async def group_info(self, info: neonize_proto.GroupInfo) -> ChatInfo:
        jid = from_proto(info.JID)
        assert jid is not None
        members = []
        for p in info.Participants:
            member = from_proto(p.JID)
            alt = from_proto(p.LID) or from_proto(p.PhoneNumber)
            user = await self.person(member, alt)
            if user is not None:
                members.append(user)
        avatar, avatar_id = await self.avatar(jid)
        topic = info.GroupTopic.Topic if not info.GroupTopic.TopicDeleted else ""
        return ChatInfo(
            chat_id=self.people.group_chat_id(jid),
            name=info.GroupName.Name or None,
            topic=topic,
            members=tuple(dict.fromkeys(members)),
            avatar=avatar,
            avatar_id=avatar_id,
            read_only=info.GroupAnnounce.IsAnnounce,
        )

    async def group_change(self, ev: GroupInfoEv) -> Converted:
        jid = from_proto(ev.JID)
        if jid is None:
            return []
        chat_id = self.people.group_chat_id(jid)
        sender = await self.person(from_proto(ev.Sender))
        base = dict(chat_id=chat_id, sender=Sender(sender) if sender else None,
                    timestamp_ms=int(ev.Timestamp) * 1000 if ev.Timestamp else 0)  # fmt: skip
        out: Converted = []
        name = ev.Name.Name if ev.HasField("Name") else None
        topic = None
        if ev.HasField("Topic"):
            topic = "" if ev.Topic.TopicDeleted else ev.Topic.Topic
        if name is not None or topic is not None:
            out.append(RemoteChatUpdate(**base, info=ChatInfo(chat_id=chat_id, name=name, topic=topic)))
        for joined, people in ((True, ev.Join), (False, ev.Leave)):
            for raw in people:
                user = await self.person(from_proto(raw))
                if user is not None:
                    out.append(RemoteMemberChange(**base, user_id=user, joined=joined))
        return out

    async def joined_group(self, ev: JoinedGroupEv) -> Converted:
        info = await self.group_info(ev.GroupInfo)
        return [RemoteChatUpdate(chat_id=info.chat_id, info=info)]

    async def picture(self, ev: PictureEv) -> Converted:
        jid = from_proto(ev.JID)
        if jid is None or ev.Remove:
            return []
        if jid.server == GROUP_SERVER:
            avatar, avatar_id = await self.avatar(jid)
            if avatar is None:
                return []
            chat_id = self.people.group_chat_id(jid)
            return [RemoteChatUpdate(chat_id=chat_id, info=ChatInfo(chat_id=chat_id, avatar=avatar, avatar_id=avatar_id))]
        user = await self.person(jid)
        if user is None:
            return []
        return [await self.people.user_info(user, self.avatar)]

    # History -------------------------------------------------------------------------

    async def history(self, ev: HistorySyncEv, chats_left: int, per_chat: int, max_age_s: int) -> tuple[Converted, int]:
        """Messages of the most recent chats in a history sync, oldest first per chat.

        Returns the events and how many chats they cover.
        """
        data = ev.Data
        for mapping in data.phoneNumberToLidMappings:
            try:
                self.people.learn_pair(Jid.parse(mapping.pnJID), Jid.parse(mapping.lidJID))
            except ValueError:
                continue
        for push in data.pushnames:
            try:
                user = await self.person(Jid.parse(push.ID))
            except ValueError:
                continue
            if user is not None and user != self.login_id:
                self.people.learn_push_name(user, push.pushname)
        if chats_left <= 0 or data.syncType not in _MESSAGE_SYNCS:
            return [], 0
        cutoff = time.time() - max_age_s
        conversations = sorted(
            data.conversations,
            key=lambda c: c.conversationTimestamp or c.lastMsgTimestamp,
            reverse=True,
        )
        out: Converted = []
        used = 0
        for conversation in conversations:
            if used >= chats_left:
                break
            try:
                chat = Jid.parse(conversation.ID)
            except ValueError:
                continue
            if chat.server not in (GROUP_SERVER, USER_SERVER, "lid"):
                continue
            messages = sorted(
                (m.message for m in conversation.messages if m.message.messageTimestamp >= cutoff),
                key=lambda m: m.messageTimestamp,
            )[-per_chat:] if per_chat else []
            events: Converted = []
            for web in messages:
                events.extend(
                    e for e in await self.message(self._as_event(chat, web))
                    if isinstance(e, (RemoteMessage, UserInfo))
                )
            if any(isinstance(e, RemoteMessage) for e in events):
                out.extend(events)
                used += 1
        return out, used

    def _as_event(self, chat: Jid, web: Any) -> MessageEv:
        """A history message in the shape of a live one."""
        key = web.key
        is_group = chat.server == GROUP_SERVER
        if key.fromMe:
            sender = next(iter(self._own_users()), "")
            sender_jid = neonize_proto.JID(User=sender, Server=USER_SERVER)
        else:
            who = Jid.parse(key.participant or web.participant) if is_group and (
                key.participant or web.participant) else chat
            sender_jid = neonize_proto.JID(User=who.user, Server=who.server)
        source = neonize_proto.MessageSource(
            Chat=neonize_proto.JID(User=chat.user, Server=chat.server),
            Sender=sender_jid,
            IsFromMe=key.fromMe,
            IsGroup=is_group,
        )
        info = neonize_proto.MessageInfo(
            MessageSource=source, ID=key.ID, Pushname=web.pushName,
            Timestamp=int(web.messageTimestamp) * 1000,
        )  # fmt: skip
        return MessageEv(Info=info, Message=web.message)


_MESSAGE_SYNCS = {
    history_proto.HistorySync.INITIAL_BOOTSTRAP,
    history_proto.HistorySync.RECENT,
    history_proto.HistorySync.FULL,
    history_proto.HistorySync.ON_DEMAND,
}

