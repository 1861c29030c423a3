"""The RPC methods of the fake Telegram, answered from :class:`~.world.World`."""

from __future__ import annotations

import hashlib
import os
import random
import string
from typing import Any

from telethon import password as pw
from telethon.tl import types as tl
from telethon.tl.tlobject import TLObject

from .handshake import ServerRsaKey, good_prime
from .mtproto import RpcFailure, ServerConnection
from .tlmake import make, now
from .world import DC_ID, Account, BasicGroup, Channel, World

_PUBLIC = {
    "GetConfigRequest", "GetNearestDcRequest", "SendCodeRequest", "SignInRequest", "GetPasswordRequest",
    "CheckPasswordRequest", "ExportLoginTokenRequest", "GetStateRequest_unauth", "SignUpRequest",
}


def _sha(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


class FakeTelegram(World):
    """A fake Telegram server on 127.0.0.1 for Telethon clients.

    With ``rsa_key`` it runs the real auth key exchange for clients that know the key.
    """

    def __init__(self, rsa_key: ServerRsaKey | None = None) -> None:
        super().__init__(rsa_key)
        self._srp: dict[int, tuple[Account, int, int]] = {}

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def handle(self, conn: ServerConnection, request: TLObject) -> Any:
        name = type(request).__name__
        self.requests.append(name)
        if name in self.flood_next:
            raise RpcFailure(420, f"FLOOD_WAIT_{self.flood_next.pop(name)}")
        method = getattr(self, "rpc_" + name, None)
        if method is None:
            raise RpcFailure(400, f"FAKE_UNSUPPORTED_{name}")
        if name not in _PUBLIC and (conn.auth is None or conn.auth.user_id is None):
            revoked = conn.auth is not None and conn.auth.data.get("revoked")
            raise RpcFailure(401, "SESSION_REVOKED" if revoked else "AUTH_KEY_UNREGISTERED")
        return await method(conn, request)

    def me(self, conn: ServerConnection) -> Account:
        assert conn.auth is not None and conn.auth.user_id is not None
        return self.accounts[conn.auth.user_id]

    def target(self, me: Account, peer: Any) -> Account | BasicGroup | Channel:
        if isinstance(peer, (tl.InputPeerUser, tl.InputUser)):
            return self.accounts[peer.user_id]
        if isinstance(peer, (tl.InputPeerSelf, tl.InputUserSelf)):
            return me
        if isinstance(peer, tl.InputPeerChat):
            return self.groups[peer.chat_id]
        if isinstance(peer, (tl.InputPeerChannel, tl.InputChannel)):
            channel = self.channels.get(peer.channel_id)
            if channel is None or channel.access_hash != peer.access_hash:
                raise RpcFailure(400, "CHANNEL_INVALID")
            return channel
        raise RpcFailure(400, "PEER_ID_INVALID")

    def owner_key(self, me: Account, target: Any) -> Any:
        return ("channel", target.id) if isinstance(target, Channel) else me.id

    def updates(self, me: Account, items: list[Any]) -> tl.Updates:
        users, chats = self.entities_of(me.id, items)
        return tl.Updates(updates=items, users=users, chats=chats, date=now(), seq=0)

    # Connection, state ----------------------------------------------------------------------

    async def rpc_GetConfigRequest(self, conn, req):
        option = make(tl.DcOption, id=DC_ID, ip_address="127.0.0.1", port=self.port)
        return make(tl.Config, date=now(), expires=now(), this_dc=DC_ID, dc_options=[option],
                    chat_size_max=200, megagroup_size_max=200000)

    async def rpc_GetStateRequest(self, conn, req):
        me = self.me(conn)
        return make(tl.updates.State, pts=me.pts, qts=0, date=now(), seq=0, unread_count=0)

    async def rpc_GetDifferenceRequest(self, conn, req):
        me = self.me(conn)
        news, others = [], []
        for pts, _count, update in me.log:
            if pts > req.pts:
                (news if isinstance(update, tl.UpdateNewMessage) else others).append(update)
        for channel in self.channels.values():
            if me.id in channel.members:
                others.extend(u for _p, _c, u, date in channel.log if date >= req.date)
        if not news and not others:
            return make(tl.updates.DifferenceEmpty, date=now(), seq=0)
        messages = [u.message for u in news]
        users, chats = self.entities_of(me.id, messages + others)
        state = make(tl.updates.State, pts=me.pts, qts=0, date=now(), seq=0, unread_count=0)
        return make(tl.updates.Difference, new_messages=messages, new_encrypted_messages=[], other_updates=others,
                                     chats=chats, users=users, state=state)

    async def rpc_GetChannelDifferenceRequest(self, conn, req):
        me = self.me(conn)
        channel = self.target(me, req.channel)
        assert isinstance(channel, Channel)
        entries = [u for pts, _c, u, _d in channel.log if pts > req.pts]
        if not entries:
            return make(tl.updates.ChannelDifferenceEmpty, final=True, pts=channel.pts)
        news = [u.message for u in entries if isinstance(u, tl.UpdateNewChannelMessage)]
        others = [u for u in entries if not isinstance(u, tl.UpdateNewChannelMessage)]
        users, chats = self.entities_of(me.id, news + others)
        return make(tl.updates.ChannelDifference, final=True, pts=channel.pts, new_messages=news,
                    other_updates=others, chats=chats, users=users)

    # Login ----------------------------------------------------------------------------------

    def account_by_phone(self, phone: str) -> Account:
        digits = "".join(c for c in phone if c.isdigit())
        for account in self.accounts.values():
            if account.phone and "".join(c for c in account.phone if c.isdigit()) == digits:
                return account
        raise RpcFailure(400, "PHONE_NUMBER_INVALID")

    def login_code(self, phone: str) -> str:
        """What the user reads in their Telegram app."""
        return self.codes["".join(c for c in phone if c.isdigit())][1]

    def _registered(self, phone: str) -> bool:
        try:
            self.account_by_phone(phone)
            return True
        except RpcFailure:
            if not self.open_registration:
                raise
            return False

    def _check_code(self, phone: str, code_hash: str, code: str | None) -> None:
        expected_hash, expected_code = self.codes.get("".join(c for c in phone if c.isdigit()), ("", ""))
        if code_hash != expected_hash:
            raise RpcFailure(400, "PHONE_CODE_EXPIRED")
        if code is not None and code != expected_code:
            raise RpcFailure(400, "PHONE_CODE_INVALID")

    async def rpc_SendCodeRequest(self, conn, req):
        self._registered(req.phone_number)
        phone = "".join(c for c in req.phone_number if c.isdigit())
        code_hash = "".join(random.choices(string.ascii_lowercase, k=12))
        self.codes[phone] = (code_hash, "".join(random.choices(string.digits, k=5)))
        return make(tl.auth.SentCode, type=tl.auth.SentCodeTypeApp(length=5), phone_code_hash=code_hash)

    def _authorize(self, conn: ServerConnection, account: Account) -> tl.auth.Authorization:
        assert conn.auth is not None
        conn.auth.user_id = account.id
        conn.auth.data.pop("revoked", None)
        return make(tl.auth.Authorization, user=self.user(account, account.id))

    async def rpc_SignInRequest(self, conn, req):
        registered = self._registered(req.phone_number)
        self._check_code(req.phone_number, req.phone_code_hash, req.phone_code)
        if not registered:
            if self.sign_up_answer == "object":
                return tl.auth.AuthorizationSignUpRequired()
            raise RpcFailure(400, "PHONE_NUMBER_UNOCCUPIED")
        account = self.account_by_phone(req.phone_number)
        if account.password:
            conn.auth.data["password_for"] = account.id
            raise RpcFailure(401, "SESSION_PASSWORD_NEEDED")
        return self._authorize(conn, account)

    async def rpc_SignUpRequest(self, conn, req):
        if not self.open_registration:
            raise RpcFailure(400, "PHONE_NUMBER_INVALID")
        if self._registered(req.phone_number):
            raise RpcFailure(400, "PHONE_NUMBER_OCCUPIED")
        self._check_code(req.phone_number, req.phone_code_hash, None)
        if not req.first_name.strip() or len(req.first_name) > 64:
            raise RpcFailure(400, "FIRSTNAME_INVALID")
        if len(req.last_name) > 64:
            raise RpcFailure(400, "LASTNAME_INVALID")
        account = self.add_account(req.first_name, last_name=req.last_name or None, phone=req.phone_number)
        self.signed_up.append(account.id)
        return self._authorize(conn, account)

    def _algo(self, account: Account) -> Any:
        salt1 = hashlib.sha256(b"salt1" + str(account.id).encode()).digest()[:8]
        salt2 = hashlib.sha256(b"salt2" + str(account.id).encode()).digest()[:16]
        return tl.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=salt1, salt2=salt2, g=3, p=good_prime())

    async def rpc_GetPasswordRequest(self, conn, req):
        account = self.accounts[conn.auth.data["password_for"]]
        algo = self._algo(account)
        p = int.from_bytes(algo.p, "big")
        x = int.from_bytes(pw.compute_hash(algo, account.password or ""), "big")
        v = pow(algo.g, x, p)
        k = int.from_bytes(_sha(algo.p, pw.big_num_for_hash(algo.g)), "big")
        b = int.from_bytes(os.urandom(256), "big")
        big_b = (k * v + pow(algo.g, b, p)) % p
        srp_id = random.randrange(1, 2**62)
        self._srp[srp_id] = (account, b, v)
        return make(tl.account.Password, has_password=True, current_algo=algo,
                    srp_B=pw.big_num_for_hash(big_b), srp_id=srp_id,
                    new_algo=tl.PasswordKdfAlgoUnknown(), new_secure_algo=tl.SecurePasswordKdfAlgoUnknown(),
                    secure_random=os.urandom(32))

    async def rpc_CheckPasswordRequest(self, conn, req):
        check = req.password
        account, b, v = self._srp.pop(check.srp_id)
        algo = self._algo(account)
        p = int.from_bytes(algo.p, "big")
        a_bytes = check.A
        big_a = int.from_bytes(a_bytes, "big")
        k = int.from_bytes(_sha(algo.p, pw.big_num_for_hash(algo.g)), "big")
        big_b = (k * v + pow(algo.g, b, p)) % p
        b_bytes = pw.big_num_for_hash(big_b)
        u = int.from_bytes(_sha(a_bytes, b_bytes), "big")
        s = pow(big_a * pow(v, u, p), b, p)
        key = _sha(pw.big_num_for_hash(s))
        m1 = _sha(pw.xor(_sha(algo.p), _sha(pw.big_num_for_hash(algo.g))), _sha(algo.salt1), _sha(algo.salt2),
                  a_bytes, b_bytes, key)
        if m1 != check.M1:
            raise RpcFailure(400, "PASSWORD_HASH_INVALID")
        return self._authorize(conn, account)

    async def rpc_ExportLoginTokenRequest(self, conn, req):
        accepted = conn.auth.data.pop("qr_accepted", None)
        if accepted is not None:
            account = self.accounts[accepted]
            if account.password:
                conn.auth.data["password_for"] = account.id
                raise RpcFailure(401, "SESSION_PASSWORD_NEEDED")
            return tl.auth.LoginTokenSuccess(self._authorize(conn, account))
        token = os.urandom(16)
        self.login_tokens[token] = conn.auth.key_id
        conn.auth.data["qr_expires"] = now()
        return tl.auth.LoginToken(expires=now().__class__.fromtimestamp(now().timestamp() + self.qr_lifetime,
                                                                         tz=now().tzinfo), token=token)

    qr_lifetime = 30

    async def scan_qr(self, token: bytes, account: Account) -> None:
        """A logged-in Telegram app scans the QR code."""
        key_id = self.login_tokens.pop(token)
        record = self.server.auth_keys[key_id]
        record.data["qr_accepted"] = account.id
        for conn in list(self.server.connections):
            if conn.auth is record:
                await conn.send_object(bytes(tl.UpdateShort(update=tl.UpdateLoginToken(), date=now())))

    async def rpc_LogOutRequest(self, conn, req):
        conn.auth.user_id = None
        return make(tl.auth.LoggedOut)

    # Users and chats ------------------------------------------------------------------------

    async def rpc_GetUsersRequest(self, conn, req):
        me = self.me(conn)
        out = []
        for item in req.id:
            target = self.target(me, item)
            out.append(self.user(target, me.id) if isinstance(target, Account) else tl.UserEmpty(item.user_id))
        return out

    async def rpc_GetFullUserRequest(self, conn, req):
        me = self.me(conn)
        target = self.target(me, req.id)
        full = make(tl.UserFull, id=target.id, settings=tl.PeerSettings(),
                    notify_settings=tl.PeerNotifySettings(), common_chats_count=0)
        return make(tl.users.UserFull, full_user=full, chats=[], users=[self.user(target, me.id)])

    async def rpc_GetChatsRequest(self, conn, req):
        me = self.me(conn)
        return make(tl.messages.Chats, chats=[self.chat_entity(self.groups[i], me.id) for i in req.id])

    async def rpc_GetChannelsRequest(self, conn, req):
        me = self.me(conn)
        return make(tl.messages.Chats, chats=[self.chat_entity(self.target(me, c), me.id) for c in req.id])

    async def rpc_GetFullChatRequest(self, conn, req):
        me = self.me(conn)
        group = self.groups[req.chat_id]
        parts = [make(tl.ChatParticipant, user_id=u, inviter_id=group.members[0], date=now()) for u in group.members]
        full = make(tl.ChatFull, id=group.id, about=group.about,
                    participants=tl.ChatParticipants(chat_id=group.id, participants=parts, version=1),
                    notify_settings=tl.PeerNotifySettings())
        users, chats = self.entities_for(me.id, set(group.members), {group.id})
        return make(tl.messages.ChatFull, full_chat=full, chats=chats, users=users)

    async def rpc_GetFullChannelRequest(self, conn, req):
        me = self.me(conn)
        channel = self.target(me, req.channel)
        full = make(tl.ChannelFull, id=channel.id, about=channel.about, chat_photo=tl.PhotoEmpty(0),
                    notify_settings=tl.PeerNotifySettings(), pts=channel.pts)
        users, chats = self.entities_for(me.id, {me.id}, {channel.id})
        return make(tl.messages.ChatFull, full_chat=full, chats=chats, users=users)

    async def rpc_GetParticipantsRequest(self, conn, req):
        me = self.me(conn)
        channel = self.target(me, req.channel)
        if channel.broadcast and me.id not in channel.admins and me.id != channel.creator:
            raise RpcFailure(400, "CHAT_ADMIN_REQUIRED")
        members = channel.members[req.offset: req.offset + req.limit]
        parts = [make(tl.ChannelParticipant, user_id=u, date=now()) for u in members]
        users, _ = self.entities_for(me.id, set(members), set())
        return make(tl.channels.ChannelParticipants, count=len(channel.members), participants=parts, chats=[], users=users)

    async def rpc_GetForumTopicsByIDRequest(self, conn, req):
        me = self.me(conn)
        channel = self.target(me, req.channel if hasattr(req, "channel") else req.peer)
        extra = {"peer": tl.PeerChannel(channel.id)} if "peer" in tl.ForumTopic.__init__.__code__.co_varnames else {}
        topics = [make(tl.ForumTopic, **extra, id=t, date=now(), title=channel.topics[t], icon_color=0, top_message=t,
                       from_id=tl.PeerUser(channel.creator), notify_settings=tl.PeerNotifySettings())
                  for t in req.topics if t in channel.topics]
        users, chats = self.entities_for(me.id, {me.id}, {channel.id})
        return make(tl.messages.ForumTopics, count=len(topics), topics=topics, messages=[], chats=chats,
                    users=users, pts=channel.pts)

    async def rpc_GetDialogsRequest(self, conn, req):
        me = self.me(conn)
        peers: dict[Any, Any] = {}
        for message in me.box.values():
            peers[str(message.peer_id)] = message
        for channel in self.channels.values():
            if me.id in channel.members and channel.messages:
                last = channel.messages[max(channel.messages)]
                peers[str(last.peer_id)] = last
        messages = list(peers.values())
        dialogs = [make(tl.Dialog, peer=m.peer_id, top_message=m.id, notify_settings=tl.PeerNotifySettings())
                   for m in messages]
        users, chats = self.entities_of(me.id, messages)
        return make(tl.messages.Dialogs, dialogs=dialogs, messages=messages, chats=chats, users=users)

    # History --------------------------------------------------------------------------------

    def _history(self, me: Account, target: Any) -> list[Any]:
        if isinstance(target, Channel):
            return [m for _, m in sorted(target.messages.items())]
        peer = tl.PeerUser(target.id) if isinstance(target, Account) else tl.PeerChat(target.id)
        return [m for _, m in sorted(me.box.items()) if m.peer_id == peer]

    def _page(self, me: Account, target: Any, messages: list[Any], req: Any) -> Any:
        if req.offset_id:
            messages = [m for m in messages if m.id < req.offset_id]
        page = list(reversed(messages))[: req.limit]
        users, chats = self.entities_of(me.id, page)
        if isinstance(target, Channel):
            return make(tl.messages.ChannelMessages, pts=target.pts, count=len(messages), messages=page,
                        topics=[], chats=chats, users=users)
        return make(tl.messages.Messages, messages=page, chats=chats, users=users)

    async def rpc_GetHistoryRequest(self, conn, req):
        me = self.me(conn)
        target = self.target(me, req.peer)
        return self._page(me, target, self._history(me, target), req)

    async def rpc_GetRepliesRequest(self, conn, req):
        me = self.me(conn)
        channel = self.target(me, req.peer)

        def in_topic(m: Any) -> bool:
            r = m.reply_to
            return m.id == req.msg_id or bool(
                r and r.forum_topic and (r.reply_to_top_id or r.reply_to_msg_id) == req.msg_id)

        return self._page(me, channel, [m for m in self._history(me, channel) if in_topic(m)], req)

    # Sending --------------------------------------------------------------------------------

    async def _send(self, conn, req, **fields) -> tl.Updates:
        me = self.me(conn)
        if req.random_id in me.random_ids:
            raise RpcFailure(400, "RANDOM_ID_DUPLICATE")
        target = self.target(me, req.peer)
        reply = req.reply_to
        reply_id = getattr(reply, "reply_to_msg_id", None)
        topic = getattr(reply, "top_msg_id", None)
        if isinstance(target, Channel) and target.forum and reply_id in target.topics and topic is None:
            topic, reply_id = reply_id, None
        if isinstance(target, Channel) and target.broadcast and me.id not in target.admins and me.id != target.creator:
            raise RpcFailure(403, "CHAT_WRITE_FORBIDDEN")
        entities = [tl.MessageEntityMentionName(e.offset, e.length, e.user_id.user_id)
                    if isinstance(e, tl.InputMessageEntityMentionName) else e for e in (req.entities or [])]
        copies = await self.deliver(me, target, req.message, skip=conn, reply_to=reply_id, topic=topic,
                                    random_id=req.random_id, entities=entities or None, **fields)
        message = copies[self.owner_key(me, target)]
        me.random_ids[req.random_id] = message
        if isinstance(target, Channel):
            update: Any = tl.UpdateNewChannelMessage(message, target.pts, 1)
        else:
            update = tl.UpdateNewMessage(message, me.pts, 1)
        return self.updates(me, [tl.UpdateMessageID(id=message.id, random_id=req.random_id), update])

    async def rpc_SendMessageRequest(self, conn, req):
        return await self._send(conn, req)

    async def rpc_SaveFilePartRequest(self, conn, req):
        self.uploads.setdefault((conn.auth.key_id, req.file_id), {})[req.file_part] = req.bytes
        return True

    async def rpc_SaveBigFilePartRequest(self, conn, req):
        return await self.rpc_SaveFilePartRequest(conn, req)

    async def rpc_SendMediaRequest(self, conn, req):
        media = req.media
        parts = self.uploads.pop((conn.auth.key_id, media.file.id))
        data = b"".join(parts[i] for i in sorted(parts))
        if isinstance(media, tl.InputMediaUploadedPhoto):
            result: Any = make(tl.MessageMediaPhoto, photo=self.photo(data))
        else:
            result = make(tl.MessageMediaDocument, document=self.document(data, media.mime_type, media.attributes))
        return await self._send(conn, req, media=result)

    async def rpc_GetFileRequest(self, conn, req):
        loc = req.location
        file_id = getattr(loc, "id", None) or getattr(loc, "photo_id", None)
        data = self.files[file_id]
        chunk = data[req.offset: req.offset + req.limit]
        return make(tl.upload.File, type=tl.storage.FileUnknown(), mtime=0, bytes=chunk)

    async def rpc_EditMessageRequest(self, conn, req):
        me = self.me(conn)
        target = self.target(me, req.peer)
        key = self.owner_key(me, target)
        entities = [tl.MessageEntityMentionName(e.offset, e.length, e.user_id.user_id)
                    if isinstance(e, tl.InputMessageEntityMentionName) else e for e in (req.entities or [])]
        await self.edit(me, key, req.id, req.message, entities or None)
        return self.updates(me, [])

    async def rpc_DeleteMessagesRequest(self, conn, req):
        me = self.me(conn)
        if hasattr(req, "channel"):
            channel = self.target(me, req.channel)
            for i in req.id:
                await self.delete(("channel", channel.id), i, skip=conn)
            return make(tl.messages.AffectedMessages, pts=channel.pts, pts_count=len(req.id))
        for i in req.id:
            await self.delete(me.id, i, skip=conn)
        return make(tl.messages.AffectedMessages, pts=me.pts, pts_count=len(req.id))

    async def rpc_SendReactionRequest(self, conn, req):
        me = self.me(conn)
        target = self.target(me, req.peer)
        emoji = req.reaction[0].emoticon if req.reaction else None
        await self.react(me, self.owner_key(me, target), req.msg_id, emoji)
        return self.updates(me, [])

    async def rpc_SetTypingRequest(self, conn, req):
        me = self.me(conn)
        target = self.target(me, req.peer)
        self.typing_seen = (me.id, target.id, type(req.action).__name__)
        if isinstance(target, Account) and target.id != me.id:
            await self.push(target.id, tl.UpdateUserTyping(user_id=me.id, action=req.action))
        return True

    async def rpc_ReadHistoryRequest(self, conn, req):
        me = self.me(conn)
        target = self.target(me, req.peer if hasattr(req, "peer") else req.channel)
        self.read_seen = (me.id, target.id, req.max_id)
        if isinstance(target, Channel):
            return True
        if isinstance(target, Account) and (me.id, req.max_id) in self.copies:
            other = self.copies[(me.id, req.max_id)].get(target.id)
            if other is not None:
                update = self.account_update(target, lambda pts, c: tl.UpdateReadHistoryOutbox(
                    peer=tl.PeerUser(me.id), max_id=other, pts=pts, pts_count=c))
                await self.push(target.id, update)
        return make(tl.messages.AffectedMessages, pts=me.pts, pts_count=0)

    # Group admin ----------------------------------------------------------------------------

    def _admin_target(self, conn, peer: Any) -> tuple[Account, BasicGroup | Channel]:
        """The group a request changes, if the caller may change it (else CHAT_ADMIN_REQUIRED)."""
        me = self.me(conn)
        target = self.groups[peer] if isinstance(peer, int) else self.target(me, peer)
        if isinstance(target, Account) or me.id not in target.members:
            raise RpcFailure(400, "PEER_ID_INVALID")
        if isinstance(target, Channel):
            allowed = me.id == target.creator or me.id in target.admins
        else:
            allowed = target.admins is None or me.id in target.admins
        if not allowed:
            raise RpcFailure(400, "CHAT_ADMIN_REQUIRED")
        return me, target

    def _uploaded_photo(self, conn, photo: Any) -> int:
        parts = self.uploads.pop((conn.auth.key_id, photo.file.id))
        return self.add_file(b"".join(parts[i] for i in sorted(parts)))

    def _invited(self, me: Account) -> Any:
        updates = self.updates(me, [])
        invited = getattr(tl.messages, "InvitedUsers", None)
        return make(invited, updates=updates, missing_invitees=[]) if invited is not None else updates

    async def rpc_EditChatTitleRequest(self, conn, req):
        me, group = self._admin_target(conn, req.chat_id)
        if group.title == req.title:
            raise RpcFailure(400, "CHAT_NOT_MODIFIED")
        group.title = req.title
        return self.updates(me, [])

    async def rpc_EditTitleRequest(self, conn, req):
        me, channel = self._admin_target(conn, req.channel)
        channel.title = req.title
        return self.updates(me, [])

    async def rpc_EditChatAboutRequest(self, conn, req):
        _me, chat = self._admin_target(conn, req.peer)
        if chat.about == req.about:
            raise RpcFailure(400, "CHAT_ABOUT_NOT_MODIFIED")
        chat.about = req.about
        return True

    async def rpc_EditChatPhotoRequest(self, conn, req):
        me, group = self._admin_target(conn, req.chat_id)
        group.photo_id = self._uploaded_photo(conn, req.photo)
        return self.updates(me, [])

    async def rpc_EditPhotoRequest(self, conn, req):
        me, channel = self._admin_target(conn, req.channel)
        channel.photo_id = self._uploaded_photo(conn, req.photo)
        return self.updates(me, [])

    async def rpc_AddChatUserRequest(self, conn, req):
        me, group = self._admin_target(conn, req.chat_id)
        new = self.target(me, req.user_id)
        if new.id in group.members:
            raise RpcFailure(400, "USER_ALREADY_PARTICIPANT")
        group.members.append(new.id)
        return self._invited(me)

    async def rpc_InviteToChannelRequest(self, conn, req):
        me, channel = self._admin_target(conn, req.channel)
        for user in req.users:
            new = self.target(me, user)
            if new.id not in channel.members:
                channel.members.append(new.id)
        return self._invited(me)

    async def rpc_DeleteChatUserRequest(self, conn, req):
        me, group = self._admin_target(conn, req.chat_id)
        gone = self.target(me, req.user_id)
        if gone.id not in group.members:
            raise RpcFailure(400, "USER_NOT_PARTICIPANT")
        group.members.remove(gone.id)
        return self.updates(me, [])

    async def rpc_EditBannedRequest(self, conn, req):
        me, channel = self._admin_target(conn, req.channel)
        who = self.target(me, req.participant)
        rights = req.banned_rights
        if rights.view_messages:
            if who.id in channel.members:
                channel.members.remove(who.id)
            channel.banned.add(who.id)
        else:
            channel.banned.discard(who.id)
        return self.updates(me, [])

    async def rpc_UpdateStatusRequest(self, conn, req):
        return True
