"""One linked WhatsApp account: its connection, its events and what it sends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING, Any

from ...core.connector import (
    ChatChange,
    LoginState,
    NetworkLogin,
    OutgoingMessage,
    SendError,
    SendResult,
)
from ...core.events import ChatInfo, UserInfo
from ...core.ids import RemoteChatID, RemoteMessageID, RemoteUserID
from ...core.text import EntityType, FormattedText
from . import format as wa_format
from . import neonize_api as api
from . import group_admin, outgoing
from .ids import GROUP_SERVER, IdScheme, Jid
from .incoming import Converted, Incoming
from .people import People

if TYPE_CHECKING:
    from ...core.connector import LoginRecord
    from .connector import WhatsAppConnector
    from .session import Session

log = logging.getLogger("bridge.networks.whatsapp")

_LOGOUT_REASONS = {
    api.neonize_proto.ConnectFailureReason.LOGGED_OUT: "the bridge was unlinked on the phone",
    api.neonize_proto.ConnectFailureReason.MAIN_DEVICE_GONE: "WhatsApp was removed from the phone",
    api.neonize_proto.ConnectFailureReason.TEMP_BANNED: "WhatsApp banned the account for a while",
    api.neonize_proto.ConnectFailureReason.CLIENT_OUTDATED: "WhatsApp no longer accepts this client version",
}
_MAX_REMEMBERED_REACTIONS = 500
_TRANSIENT_SEND_ERRORS = ("not connected", "timed out", "timeout", "websocket", "context canceled")


class WhatsAppLogin(NetworkLogin):
    def __init__(self, connector: WhatsAppConnector, record: LoginRecord) -> None:
        super().__init__(record)
        self.connector = connector
        self.session: Session | None = None
        self.people = People(connector.ids, connector.config, lambda: self.client)
        self._own_users: set[str] = set()
        self._own_phone_jid: Jid | None = None
        self.reactions: dict[str, str] = dict(record.metadata.get("reactions") or {})
        self.incoming = Incoming(
            RemoteUserID(record.login_id), lambda: self._own_users, self.people,
            self._download, self._avatar, self.reactions,
        )  # fmt: skip
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._logged_out = False
        self._delay = 1.0
        self._pending: set[asyncio.Future[None]] = set()

    @property
    def client(self) -> Any:
        if self.session is None:
            raise SendError("the WhatsApp connection is not running")
        return self.session.client

    @property
    def host(self) -> Any:
        return self.connector.host

    # Connection ----------------------------------------------------------------------

    async def connect(self) -> None:
        if self._supervisor is not None and not self._supervisor.done():
            return
        self._stopping = self._logged_out = False
        self.session = self.connector.take_session(self.record.metadata["session"])
        self.session.attach(self)
        self._supervisor = asyncio.create_task(self._run(), name=f"whatsapp-{self.login_id}")

    async def _run(self) -> None:
        """Keep the client running; after it stops on its own, reconnect with backoff."""
        assert self.session is not None
        while not self._stopping and not self._logged_out:
            try:
                task = self.session.task if self.session.running else await self.session.connect()
                await asyncio.shield(task)
                reason = "the connection to WhatsApp ended"
            except asyncio.CancelledError:
                raise
            except Exception as e:
                reason = f"can't connect to WhatsApp ({e})"
            if self._stopping or self._logged_out:
                return
            await self.host.set_login_state(self, LoginState.TRANSIENT_ERROR, reason)
            # Jitter keeps many logins from reconnecting in lockstep.
            await asyncio.sleep(self._delay * random.uniform(0.5, 1.5))
            self._delay = min(self._delay * 2, self.connector.config.reconnect_max_delay_seconds)

    async def disconnect(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if self.session is not None:
            await self.session.close(drain_timeout=10)
        if self._pending:
            # Events whatsmeow already acknowledged exist only here: let the core finish them.
            await asyncio.wait(list(self._pending), timeout=10)
        self._save_reactions()

    async def logout(self) -> None:
        """Unlink the bridge on WhatsApp and delete the session file."""
        if self.session is not None and not self._logged_out:
            try:
                await self.session.client.logout()
            except Exception:
                log.warning("WhatsApp logout failed; the session is deleted anyway", exc_info=True)
        await self.disconnect()
        await self.connector.sessions.delete(self.record.metadata["session"])

    async def _stop_client(self) -> None:
        if self.session is not None:
            await self.session.stop()

    # Events --------------------------------------------------------------------------

    async def handle_event(self, event: Any) -> None:
        """Called by the session for each event, in order."""
        state = self._state_change(event)
        if state is not None:
            await self._apply_state(event, *state)
            return
        if not self._own_users:
            await self._learn_self()
        out: Converted = []
        if isinstance(event, api.MessageEv):
            out = await self.incoming.message(event)
        elif isinstance(event, api.ReceiptEv):
            out = await self.incoming.receipt(event)
        elif isinstance(event, api.ChatPresenceEv):
            out = await self.incoming.typing(event)
        elif isinstance(event, api.GroupInfoEv):
            out = await self.incoming.group_change(event)
        elif isinstance(event, api.JoinedGroupEv):
            out = await self.incoming.joined_group(event)
        elif isinstance(event, api.PictureEv):
            out = await self.incoming.picture(event)
        elif isinstance(event, api.HistorySyncEv):
            out = await self._history(event)
        elif isinstance(event, api.UndecryptableMessageEv):
            log.info("A WhatsApp message could not be decrypted yet; whatsmeow asks the sender again")
        await self._deliver(out)

    def _state_change(self, event: Any) -> tuple[LoginState, str | None] | None:
        if isinstance(event, (api.ConnectedEv, api.KeepAliveRestoredEv)):
            return LoginState.CONNECTED, None
        if isinstance(event, api.DisconnectedEv):
            return LoginState.TRANSIENT_ERROR, "disconnected from WhatsApp; reconnecting"
        if isinstance(event, api.KeepAliveTimeoutEv):
            return LoginState.TRANSIENT_ERROR, "WhatsApp is not answering"
        if isinstance(event, api.StreamReplacedEv):
            return LoginState.TRANSIENT_ERROR, "another client took over this WhatsApp session"
        if isinstance(event, api.TemporaryBanEv):
            return LoginState.TRANSIENT_ERROR, "WhatsApp banned the account for a while"
        if isinstance(event, api.ClientOutdatedEv):
            return LoginState.TRANSIENT_ERROR, "WhatsApp says this client is outdated: update neonize"
        if isinstance(event, api.ConnectFailureEv):
            return LoginState.TRANSIENT_ERROR, f"WhatsApp refused the connection ({event.Message or event.Reason})"
        if isinstance(event, api.LoggedOutEv):
            reason = _LOGOUT_REASONS.get(event.Reason)
            if reason is None:
                reason = "WhatsApp ended the session" + (
                    " (the phone was offline for too long)" if event.OnConnect else ""
                )
            return LoginState.BAD_CREDENTIALS, reason
        return None

    async def _apply_state(self, event: Any, state: LoginState, reason: str | None) -> None:
        if isinstance(event, api.LoggedOutEv):
            self._logged_out = True  # whatsmeow has deleted the device; no reconnects
        await self.host.set_login_state(self, state, reason)
        if isinstance(event, api.ConnectedEv):
            self._delay = 1.0
            await self._learn_self()
        elif isinstance(event, (api.LoggedOutEv, api.StreamReplacedEv, api.TemporaryBanEv, api.ClientOutdatedEv)):
            # whatsmeow won't reconnect by itself; the supervisor does, after a pause.
            asyncio.create_task(self._stop_client())

    async def _learn_self(self) -> None:
        try:
            me = await self.client.get_me()
        except Exception:
            log.warning("Could not read the linked account", exc_info=True)
            return
        phone, lid = api.from_proto(me.JID), api.from_proto(me.LID)
        self._own_users = {j.user for j in (phone, lid) if j is not None}
        self._own_phone_jid = phone or lid
        self.people.learn_pair(phone, lid)
        if me.PushName and me.PushName != self.record.remote_name:
            self.record.remote_name = me.PushName
            await self.host.save_login(self)

    async def _deliver(self, events: Converted) -> None:
        for event in events:
            if isinstance(event, UserInfo):
                await self.host.update_ghost(self.record.network, event)
                continue
            future = self.host.queue_remote_event(self, event)
            self._pending.add(future)
            future.add_done_callback(self._settled)
        if any(getattr(e, "emoji", None) is not None for e in events):
            self._save_reactions(persist=True)

    def _settled(self, future: asyncio.Future[None]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("Bridging a WhatsApp event failed: %s", future.exception())

    def _save_reactions(self, persist: bool = False) -> None:
        while len(self.reactions) > _MAX_REMEMBERED_REACTIONS:
            self.reactions.pop(next(iter(self.reactions)))
        self.record.metadata["reactions"] = dict(self.reactions)
        if persist:
            asyncio.ensure_future(self.host.save_login(self))

    async def _history(self, event: Any) -> Converted:
        config = self.connector.config
        done = int(self.record.metadata.get("history_chats_done", 0))
        events, used = await self.incoming.history(
            event,
            chats_left=config.history_sync_chats - done,
            per_chat=config.history_sync_messages,
            max_age_s=config.history_sync_max_age_hours * 3600,
        )
        if used:
            self.record.metadata["history_chats_done"] = done + used
            await self.host.save_login(self)
        return events

    async def _download(self, message: Any) -> bytes:
        return await self.client.download_any(message)

    async def _avatar(self, jid: Jid) -> tuple[Any, str | None]:
        return await self.connector.avatar(self.client, jid)

    # Reading -------------------------------------------------------------------------

    async def get_chat_info(self, chat_id: RemoteChatID) -> ChatInfo:
        kind, peer = IdScheme.parse_chat_id(chat_id)
        if kind == "direct":
            assert peer is not None
            info = await self.get_user_info(peer)
            return ChatInfo(chat_id=chat_id, name=info.display_name, is_direct=True,
                            members=tuple(dict.fromkeys((RemoteUserID(self.login_id), peer))))  # fmt: skip
        jid = await self._chat_jid(chat_id)
        return await self.incoming.group_info(await self.client.get_group_info(api.to_proto(jid)))

    async def get_user_info(self, user_id: str) -> UserInfo:
        uid = RemoteUserID(user_id)
        info = await self.people.user_info(uid, self._avatar)
        if uid == self.login_id and not info.display_name:
            return UserInfo(user_id=uid, display_name=self.record.remote_name, avatar=info.avatar,
                            avatar_id=info.avatar_id)  # fmt: skip
        return info

    async def list_chats(self) -> list[ChatInfo]:
        groups = await self.people.load_groups()
        return [
            ChatInfo(chat_id=self.people.group_chat_id(jid), name=g.GroupName.Name or None)
            for g in groups
            if (jid := api.from_proto(g.JID)) is not None
        ]

    # Sending -------------------------------------------------------------------------

    async def _chat_jid(self, chat_id: str) -> Jid:
        jid = await self.people.chat_jid(chat_id)
        if jid is None:
            raise SendError("the bridge doesn't know this WhatsApp chat's address any more", permanent=True)
        return jid

    async def _person_jid(self, user_id: str) -> Jid:
        jid = await self.people.jid_for(user_id)
        if jid is None:
            raise SendError("the bridge doesn't know this WhatsApp user's address", permanent=True)
        return jid

    async def _target(self, chat: Jid, message_id: str) -> tuple[Any, RemoteUserID, str]:
        """The WhatsApp key of one of our message ids, its sender and WhatsApp id."""
        sender, wa_id = IdScheme.parse_message_id(message_id)
        from_me = sender == self.login_id
        sender_jid = None if from_me else await self.people.jid_for(sender)
        return outgoing.message_key(chat, wa_id, sender_jid, from_me), sender, wa_id

    async def _render(self, text: FormattedText) -> wa_format.Rendered:
        targets = {
            e.mention.remote_user_id
            for e in text.entities
            if e.type is EntityType.MENTION and e.mention and e.mention.remote_user_id
        }
        jids = {}
        for user in targets:
            jid = await self.people.jid_for(user)
            if jid is not None:
                jids[user] = str(jid)
        return wa_format.render(text, jids.get)

    async def _send(self, chat: Jid, message: Any) -> Any:
        try:
            return await self.client.send_message(api.to_proto(chat), message)
        except SendError:
            raise
        except Exception as e:
            reason = str(e) or type(e).__name__
            transient = any(word in reason.lower() for word in _TRANSIENT_SEND_ERRORS)
            raise SendError(f"WhatsApp refused it: {reason}", permanent=not transient) from None

    async def send_message(self, chat_id: RemoteChatID, message: OutgoingMessage) -> SendResult:
        chat = await self._chat_jid(chat_id)
        quote = None
        if message.reply_to:
            sender, wa_id = IdScheme.parse_message_id(message.reply_to)
            if sender == self.login_id:
                quote_jid = self._own_phone_jid
            else:
                quote_jid = await self.people.jid_for(sender)
            quote = outgoing.Quote(wa_id, quote_jid) if quote_jid is not None else None
        rendered = await self._render(message.text)
        if message.media is None:
            response = await self._send(chat, outgoing.text_message(rendered, quote))
        else:
            media = message.media
            try:
                upload = await self.client.upload(media.data, outgoing.upload_type(media.kind))
            except Exception as e:
                raise SendError(f"uploading the file to WhatsApp failed: {e}") from None
            separate = outgoing.needs_separate_caption(media, rendered)
            caption = wa_format.Rendered("") if separate else rendered
            response = await self._send(chat, outgoing.media_message(media, upload, caption, quote))
            if separate:
                await self._send(chat, outgoing.text_message(rendered))
        timestamp = int(response.Timestamp)
        return SendResult(
            IdScheme.message_id(RemoteUserID(self.login_id), response.ID),
            timestamp_ms=timestamp * 1000 if 0 < timestamp < 10**11 else timestamp,
        )

    async def edit_message(self, chat_id: RemoteChatID, message_id: RemoteMessageID, text: FormattedText) -> None:
        chat = await self._chat_jid(chat_id)
        sender, wa_id = IdScheme.parse_message_id(message_id)
        if sender != self.login_id:
            raise SendError("WhatsApp lets people edit only their own messages", permanent=True)
        new = outgoing.text_message(await self._render(text))
        await self._send(chat, outgoing.edit_message(chat, wa_id, new))

    async def delete_message(self, chat_id: RemoteChatID, message_id: RemoteMessageID) -> None:
        chat = await self._chat_jid(chat_id)
        key, _, _ = await self._target(chat, message_id)
        await self._send(chat, outgoing.revoke_message(key))

    async def send_reaction(self, chat_id: RemoteChatID, message_id: RemoteMessageID, emoji: str) -> None:
        chat = await self._chat_jid(chat_id)
        key, _, _ = await self._target(chat, message_id)
        await self._send(chat, outgoing.reaction_message(key, emoji))
        self.reactions[f"{message_id}|{self.login_id}"] = emoji
        self._save_reactions(persist=True)

    async def remove_reaction(self, chat_id: RemoteChatID, message_id: RemoteMessageID, emoji: str) -> None:
        slot = f"{message_id}|{self.login_id}"
        if self.reactions.get(slot, emoji) != emoji:
            return  # WhatsApp shows one reaction per person: a later one replaced this
        chat = await self._chat_jid(chat_id)
        key, _, _ = await self._target(chat, message_id)
        await self._send(chat, outgoing.reaction_message(key, ""))
        self.reactions.pop(slot, None)
        self._save_reactions(persist=True)

    async def set_typing(self, chat_id: RemoteChatID, typing: bool) -> None:
        chat = await self._chat_jid(chat_id)
        state = api.ChatPresence.CHAT_PRESENCE_COMPOSING if typing else api.ChatPresence.CHAT_PRESENCE_PAUSED
        await self.client.send_chat_presence(
            api.to_proto(chat), state, api.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
        )

    async def mark_read(self, chat_id: RemoteChatID, message_id: RemoteMessageID) -> None:
        chat = await self._chat_jid(chat_id)
        sender, wa_id = IdScheme.parse_message_id(message_id)
        if sender == self.login_id:
            return  # reading one's own message means nothing to WhatsApp
        sender_jid = await self._person_jid(sender)
        await self.client.mark_read(
            wa_id, chat=api.to_proto(chat), sender=api.to_proto(sender_jid), receipt=api.ReceiptType.READ
        )

    async def update_chat(self, chat_id: RemoteChatID, change: ChatChange) -> None:
        group = await self._chat_jid(chat_id)
        if group.server != GROUP_SERVER:
            raise SendError("a WhatsApp direct chat has no name, description or members to change", permanent=True)
        await group_admin.apply_change(self.client, group, change, self._person_jid)

    async def create_group(self, title: str, members: list[str]) -> tuple[RemoteChatID, str | None]:
        jids = [api.to_proto(await self._person_jid(m)) for m in members]
        try:
            info = await self.client.create_group(title, jids)
        except Exception as e:
            raise SendError(f"WhatsApp did not create the group: {e}", permanent=True) from None
        jid = api.from_proto(info.JID)
        if jid is None or jid.server != GROUP_SERVER:
            raise SendError("WhatsApp did not say which group it created", permanent=True)
        return self.people.group_chat_id(jid), None

