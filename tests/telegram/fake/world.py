"""The state of a fake Telegram: accounts, chats, messages, files and update logs.

Tests act as other Telegram users through the methods here (``send``, ``edit``,
``react``...); the bridge's Telethon client talks to the same world over MTProto through
the request handlers in :mod:`.handlers`. Each account has its own message box and pts,
each channel its own messages and pts, as on Telegram, so ``updates.getDifference`` and
``updates.getChannelDifference`` answer from real logs.
"""

from __future__ import annotations

import itertools
import os
import random
from dataclasses import dataclass, field
from typing import Any

from telethon.tl import types as tl

from .handshake import ServerRsaKey
from .mtproto import MTProtoServer, ServerConnection
from .tlmake import make, now

DC_ID = 2


@dataclass
class Account:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    phone: str | None = None
    password: str | None = None
    photo_id: int | None = None
    access_hash: int = field(default_factory=lambda: random.randrange(1, 2**62))
    pts: int = 1  # real accounts and channels never have pts 0 (Telethon treats it as "unknown")
    next_msg_id: int = 1
    box: dict[int, Any] = field(default_factory=dict)
    log: list[tuple[int, int, Any]] = field(default_factory=list)
    random_ids: dict[int, Any] = field(default_factory=dict)


@dataclass
class BasicGroup:
    id: int
    title: str
    members: list[int]
    about: str = ""
    photo_id: int | None = None
    admins: set[int] | None = None
    """Who may change the group's info and members; None: every member (Telegram's default)."""


@dataclass
class Channel:
    id: int
    title: str
    members: list[int]
    creator: int
    broadcast: bool = False
    forum: bool = False
    about: str = ""
    admins: set[int] = field(default_factory=set)
    banned: set[int] = field(default_factory=set)
    photo_id: int | None = None
    access_hash: int = field(default_factory=lambda: random.randrange(1, 2**62))
    pts: int = 1  # real accounts and channels never have pts 0 (Telethon treats it as "unknown")
    next_msg_id: int = 2  # 1 is the forum's "General" topic, as on Telegram
    messages: dict[int, Any] = field(default_factory=dict)
    log: list[tuple[int, int, Any, Any]] = field(default_factory=list)
    """(pts, pts_count, update, date)"""
    topics: dict[int, str] = field(default_factory=dict)


Owner = Any  # an account id (int) or ("channel", id)


class World:
    def __init__(self, rsa_key: ServerRsaKey | None = None) -> None:
        self.server = MTProtoServer(self, rsa_key)  # type: ignore[arg-type]
        self._ids = itertools.count(1000)
        self.accounts: dict[int, Account] = {}
        self.groups: dict[int, BasicGroup] = {}
        self.channels: dict[int, Channel] = {}
        self.files: dict[int, bytes] = {}
        self.uploads: dict[tuple[int, int], dict[int, bytes]] = {}
        self.copies: dict[tuple[Owner, int], dict[Owner, int]] = {}
        """Every copy of one logical message: (owner, id) -> {owner: id}."""
        self.reactions: dict[tuple[Owner, int], dict[int, str]] = {}
        self.codes: dict[str, tuple[str, str]] = {}
        self.login_tokens: dict[bytes, int] = {}
        self.flood_next: dict[str, int] = {}
        self.requests: list[str] = []
        self.offline_users: set[int] = set()
        self.open_registration = False
        """Numbers without an account get a code, and ``auth.signUp`` creates the account."""
        self.signed_up: list[int] = []
        self.sign_up_answer = "error"
        """How ``auth.signIn`` answers a new number: ``error`` (PHONE_NUMBER_UNOCCUPIED, as
        before layer 104 and on some servers) or ``object`` (auth.authorizationSignUpRequired)."""

    def new_id(self) -> int:
        return next(self._ids)

    # Setup -------------------------------------------------------------------------------

    def add_account(self, first_name: str, **kw: Any) -> Account:
        account = Account(self.new_id(), first_name, **kw)
        self.accounts[account.id] = account
        return account

    def add_group(self, title: str, members: list[Account], about: str = "") -> BasicGroup:
        group = BasicGroup(self.new_id(), title, [m.id for m in members], about)
        self.groups[group.id] = group
        return group

    def add_channel(self, title: str, creator: Account, members: list[Account], **kw: Any) -> Channel:
        channel = Channel(self.new_id(), title, [m.id for m in members], creator.id, **kw)
        self.channels[channel.id] = channel
        return channel

    def add_topic(self, channel: Channel, title: str, creator: Account) -> int:
        action = tl.MessageActionTopicCreate(title=title, icon_color=0)
        msg_id = self._channel_message(channel, creator, "", action=action)
        channel.topics[msg_id] = title
        return msg_id

    def add_file(self, data: bytes) -> int:
        file_id = self.new_id()
        self.files[file_id] = data
        return file_id

    def photo(self, data: bytes, w: int = 64, h: int = 64) -> tl.Photo:
        file_id = self.add_file(data)
        size = tl.PhotoSize(type="y", w=w, h=h, size=len(data))
        return make(tl.Photo, id=file_id, access_hash=1, file_reference=b"", date=now(),
                    sizes=[size], dc_id=DC_ID)

    def document(self, data: bytes, mime: str, attributes: list[Any]) -> tl.Document:
        file_id = self.add_file(data)
        return make(tl.Document, id=file_id, access_hash=1, file_reference=b"", date=now(),
                    mime_type=mime, size=len(data), dc_id=DC_ID, attributes=attributes)

    def set_profile_photo(self, account: Account, data: bytes) -> None:
        account.photo_id = self.add_file(data)

    # Entities as a viewer sees them ------------------------------------------------------

    def user(self, account: Account, viewer: int) -> tl.User:
        photo = (tl.UserProfilePhoto(photo_id=account.photo_id, dc_id=DC_ID)
                 if account.photo_id else tl.UserProfilePhotoEmpty())
        return tl.User(
            id=account.id, is_self=account.id == viewer, access_hash=account.access_hash,
            first_name=account.first_name, last_name=account.last_name, username=account.username,
            phone=account.phone if account.id == viewer else None, photo=photo,
        )

    def chat_entity(self, chat: BasicGroup | Channel, viewer: int) -> Any:
        photo = (make(tl.ChatPhoto, photo_id=chat.photo_id, dc_id=DC_ID)
                 if chat.photo_id else tl.ChatPhotoEmpty())
        if isinstance(chat, BasicGroup):
            return make(tl.Chat, id=chat.id, title=chat.title, photo=photo,
                        participants_count=len(chat.members), date=now(), version=1)
        rights = None
        if viewer in chat.admins or viewer == chat.creator:
            rights = make(tl.ChatAdminRights, post_messages=True, edit_messages=True, delete_messages=True)
        return make(
            tl.Channel, id=chat.id, title=chat.title, photo=photo, date=now(),
            access_hash=chat.access_hash, megagroup=not chat.broadcast, broadcast=chat.broadcast,
            forum=chat.forum or None, creator=viewer == chat.creator, admin_rights=rights,
        )

    def entities_for(self, viewer: int, user_ids: set[int], chat_ids: set[int]) -> tuple[list, list]:
        users = [self.user(self.accounts[u], viewer) for u in sorted(user_ids) if u in self.accounts]
        chats = []
        for c in sorted(chat_ids):
            chat = self.groups.get(c) or self.channels.get(c)
            if chat is not None:
                chats.append(self.chat_entity(chat, viewer))
        return users, chats

    def entities_of(self, viewer: int, items: list[Any]) -> tuple[list, list]:
        """Users and chats mentioned by some messages or updates."""
        users: set[int] = {viewer}
        chats: set[int] = set()

        def visit(peer: Any) -> None:
            if isinstance(peer, tl.PeerUser):
                users.add(peer.user_id)
            elif isinstance(peer, tl.PeerChat):
                chats.add(peer.chat_id)
            elif isinstance(peer, tl.PeerChannel):
                chats.add(peer.channel_id)

        for item in items:
            message = getattr(item, "message", item)
            for attr in ("peer_id", "from_id", "peer"):
                visit(getattr(message, attr, None))
            visit(getattr(item, "peer", None))
            if isinstance(item, (tl.UpdateDeleteChannelMessages, tl.UpdateChannelUserTyping)):
                chats.add(item.channel_id)
            for attr in ("user_id", "from_id"):
                value = getattr(item, attr, None)
                if isinstance(value, int):
                    users.add(value)
                else:
                    visit(value)
            action = getattr(message, "action", None)
            for u in getattr(action, "users", None) or []:
                users.add(u)
            for entity in getattr(message, "entities", None) or []:
                if isinstance(entity, tl.MessageEntityMentionName):
                    users.add(entity.user_id)
            reactions = getattr(item, "reactions", None)
            for r in getattr(reactions, "recent_reactions", None) or []:
                visit(r.peer_id)
        return self.entities_for(viewer, users, chats)

    # Delivery ----------------------------------------------------------------------------

    async def push(self, account_id: int, update: Any, *, skip: ServerConnection | None = None) -> None:
        if account_id in self.offline_users:
            return
        users, chats = self.entities_of(account_id, [update])
        payload = bytes(tl.Updates(updates=[update], users=users, chats=chats, date=now(), seq=0))
        for conn in self.server.connections_of(account_id):
            if conn is skip:
                continue
            try:
                await conn.send_object(payload)
            except (ConnectionError, OSError):
                pass

    def account_update(self, account: Account, make_update: Any, count: int = 1) -> Any:
        """Add a pts-bearing update to an account's log; ``make_update(pts, count)``."""
        account.pts += count
        update = make_update(account.pts, count)
        account.log.append((account.pts, count, update))
        return update

    def channel_update(self, channel: Channel, make_update: Any, count: int = 1) -> Any:
        channel.pts += count
        update = make_update(channel.pts, count)
        channel.log.append((channel.pts, count, update, now()))
        return update

    def _box_message(self, owner: Account, sender: Account, peer: Any, text: str, **kw: Any) -> tl.Message:
        msg_id = owner.next_msg_id
        owner.next_msg_id += 1
        message = make(tl.Message, id=msg_id, peer_id=peer, date=now(), message=text,
                       out=owner.id == sender.id, from_id=tl.PeerUser(sender.id), **kw)
        owner.box[msg_id] = message
        return message

    async def deliver(self, sender: Account, target: Account | BasicGroup | Channel, text: str = "",
                      *, skip: ServerConnection | None = None, reply_to: int | None = None,
                      topic: int | None = None, random_id: int | None = None, **kw: Any) -> dict[Owner, Any]:
        """A message from ``sender``; returns each copy by owner. ``reply_to`` is the id in
        the sender's view; ``kw`` are further Message fields (media, entities...)."""
        copies: dict[Owner, Any] = {}
        if isinstance(target, Channel):
            msg_id = self._channel_message(target, sender, text, reply_to=reply_to, topic=topic, **kw)
            copies[("channel", target.id)] = target.messages[msg_id]
            self.copies[(("channel", target.id), msg_id)] = {("channel", target.id): msg_id}
            await self._push_channel(target, target.log[-1][2], skip=skip)
            return copies
        owners = [sender, target] if isinstance(target, Account) else [self.accounts[m] for m in target.members]
        if isinstance(target, Account) and target.id == sender.id:
            owners = [sender]
        for owner in owners:
            if isinstance(target, Account):
                peer = tl.PeerUser(target.id if owner.id == sender.id else sender.id)
            else:
                peer = tl.PeerChat(target.id)
            reply = None
            if reply_to is not None:
                mapped = self.copies.get((sender.id, reply_to), {}).get(owner.id)
                if mapped is not None:
                    reply = make(tl.MessageReplyHeader, reply_to_msg_id=mapped)
            copies[owner.id] = self._box_message(owner, sender, peer, text, reply_to=reply, **kw)
        ids = {o: m.id for o, m in copies.items()}
        for o, m in copies.items():
            self.copies[(o, m.id)] = ids
        for owner in owners:
            message = copies[owner.id]
            update = self.account_update(owner, lambda pts, c, m=message: tl.UpdateNewMessage(m, pts, c))
            if owner.id == sender.id and random_id is not None:
                sender.random_ids[random_id] = message
            await self.push(owner.id, update, skip=skip if owner.id == sender.id else None)
        return copies

    def _channel_message(self, channel: Channel, sender: Account, text: str, *, reply_to: int | None = None,
                         topic: int | None = None, action: Any = None, **kw: Any) -> int:
        msg_id = channel.next_msg_id
        channel.next_msg_id += 1
        reply = None
        if topic is not None and reply_to is None:
            reply = make(tl.MessageReplyHeader, forum_topic=True, reply_to_msg_id=topic)
        elif reply_to is not None:
            reply = make(tl.MessageReplyHeader, forum_topic=True if topic else None,
                         reply_to_msg_id=reply_to, reply_to_top_id=topic)
        from_id = None if channel.broadcast else tl.PeerUser(sender.id)
        common = dict(id=msg_id, peer_id=tl.PeerChannel(channel.id), date=now(), from_id=from_id, reply_to=reply)
        if action is not None:
            message = make(tl.MessageService, action=action, **common)
        else:
            message = make(tl.Message, message=text, post=channel.broadcast or None, **common, **kw)
        channel.messages[msg_id] = message
        self.channel_update(channel, lambda pts, c: tl.UpdateNewChannelMessage(message, pts, c))
        return msg_id

    async def _push_channel(self, channel: Channel, update: Any, skip: ServerConnection | None = None) -> None:
        for member in channel.members:
            await self.push(member, update, skip=skip)

    # What other people do (tests call these) ----------------------------------------------

    async def send(self, sender: Account, target: Any, text: str = "", **kw: Any) -> int:
        """Send as ``sender``; returns the message id as ``sender`` sees it."""
        copies = await self.deliver(sender, target, text, **kw)
        key = ("channel", target.id) if isinstance(target, Channel) else sender.id
        return copies[key].id

    def copy_id(self, owner: Account, sender: Account, sender_msg_id: int) -> int:
        """The id ``owner`` sees for a message ``sender`` knows as ``sender_msg_id``."""
        return self.copies[(sender.id, sender_msg_id)][owner.id]

    async def edit(self, editor: Account, owner_key: Owner, msg_id: int, text: str, entities=None) -> None:
        for owner, copy_id in self.copies[(owner_key, msg_id)].items():
            if isinstance(owner, tuple):
                channel = self.channels[owner[1]]
                message = channel.messages[copy_id]
                message.message, message.entities, message.edit_date = text, entities, now()
                update = self.channel_update(channel, lambda pts, c, m=message: tl.UpdateEditChannelMessage(m, pts, c))
                await self._push_channel(channel, update)
            else:
                account = self.accounts[owner]
                message = account.box[copy_id]
                message.message, message.entities, message.edit_date = text, entities, now()
                update = self.account_update(account, lambda pts, c, m=message: tl.UpdateEditMessage(m, pts, c))
                await self.push(owner, update)

    async def delete(self, owner_key: Owner, msg_id: int, skip: ServerConnection | None = None) -> None:
        for owner, copy_id in self.copies.pop((owner_key, msg_id), {}).items():
            if isinstance(owner, tuple):
                channel = self.channels[owner[1]]
                channel.messages.pop(copy_id, None)
                update = self.channel_update(
                    channel, lambda pts, c, i=copy_id: tl.UpdateDeleteChannelMessages(channel.id, [i], pts, c))
                await self._push_channel(channel, update, skip=skip)
            else:
                account = self.accounts[owner]
                account.box.pop(copy_id, None)
                update = self.account_update(account, lambda pts, c, i=copy_id: tl.UpdateDeleteMessages([i], pts, c))
                await self.push(owner, update, skip=skip if owner == owner_key else None)

    async def react(self, who: Account, owner_key: Owner, msg_id: int, emoji: str | None) -> None:
        copies = self.copies[(owner_key, msg_id)]
        logical = next(iter(sorted(copies.items(), key=str)))
        reactions = self.reactions.setdefault(logical, {})
        if emoji:
            reactions[who.id] = emoji
        else:
            reactions.pop(who.id, None)
        for owner, copy_id in copies.items():
            recent = [make(tl.MessagePeerReaction, peer_id=tl.PeerUser(u), date=now(),
                           reaction=tl.ReactionEmoji(e), my=(u == owner) or None)
                      for u, e in sorted(reactions.items())]
            counts: dict[str, int] = {}
            for e in reactions.values():
                counts[e] = counts.get(e, 0) + 1
            results = [make(tl.ReactionCount, reaction=tl.ReactionEmoji(e), count=n) for e, n in counts.items()]
            value = make(tl.MessageReactions, results=results, recent_reactions=recent)
            if isinstance(owner, tuple):
                update = tl.UpdateMessageReactions(peer=tl.PeerChannel(owner[1]), msg_id=copy_id, reactions=value)
                for member in self.channels[owner[1]].members:
                    await self.push(member, update)
            else:
                peer = self.accounts[owner].box[copy_id].peer_id
                await self.push(owner, tl.UpdateMessageReactions(peer=peer, msg_id=copy_id, reactions=value))

    async def typing(self, who: Account, to: Account) -> None:
        await self.push(to.id, tl.UpdateUserTyping(user_id=who.id, action=tl.SendMessageTypingAction()))

    async def read(self, reader: Account, other: Account, up_to_reader_id: int) -> None:
        """``reader`` reads the private chat with ``other`` up to a message."""
        other_id = self.copies[(reader.id, up_to_reader_id)][other.id]
        update = self.account_update(other, lambda pts, c: tl.UpdateReadHistoryOutbox(
            peer=tl.PeerUser(reader.id), max_id=other_id, pts=pts, pts_count=c))
        await self.push(other.id, update)

    async def rename_group(self, who: Account, group: BasicGroup, title: str) -> None:
        group.title = title
        for member in group.members:
            owner = self.accounts[member]
            msg_id = owner.next_msg_id
            owner.next_msg_id += 1
            message = make(tl.MessageService, id=msg_id, peer_id=tl.PeerChat(group.id), date=now(),
                           from_id=tl.PeerUser(who.id), action=tl.MessageActionChatEditTitle(title))
            owner.box[msg_id] = message
            update = self.account_update(owner, lambda pts, c, m=message: tl.UpdateNewMessage(m, pts, c))
            await self.push(member, update)

    def revoke_sessions(self, account: Account) -> None:
        """The user ends the bridge's session from another app."""
        for record in self.server.auth_keys.values():
            if record.user_id == account.id:
                record.user_id = None
                record.data["revoked"] = True
        self.server.drop_all_connections()

    def flood_once(self, request_name: str, seconds: int) -> None:
        self.flood_next[request_name] = seconds

    def random_bytes(self, n: int = 32) -> bytes:
        return os.urandom(n)
