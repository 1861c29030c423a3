"""Remote -> Matrix: turn a connector's events into Matrix events in the portal room.

Every function here runs inside the portal's queue, so one chat's events are handled in
order and a portal is created at most once.
"""

from __future__ import annotations

import logging
from typing import Any

from ..db.messages import MessageRow, ReactionRow
from ..db.portals import PortalRow
from ..matrix import content as mx
from ..metrics import TO_MATRIX
from .connector import NetworkLogin
from .context import BridgeContext, now_ms, portal_origin, stable_id
from .hub import remote_subject
from .events import (
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
)
from .ids import EventID, PortalKey, RoomID, UserID
from .text import FormattedText, MentionTarget

log = logging.getLogger("bridge.core.remote")

SENDING = ""
"""The event id of a mapping row written before the send: the message may be in flight."""


class RemoteHandler:
    def __init__(self, ctx: BridgeContext) -> None:
        self.ctx = ctx
        self._invited: set[tuple[RoomID, UserID]] = set()

    async def handle(self, login: NetworkLogin, event: RemoteEvent) -> None:
        key = PortalKey(login.record.network, event.chat_id)
        portal = await self.ctx.db.portals.get(key)
        if portal is None or portal.room_id is None:
            if not isinstance(event, (RemoteMessage, RemoteChatUpdate)):
                log.debug("Ignoring %s for %s, which has no portal", type(event).__name__, key)
                return
            if isinstance(event, RemoteMessage) and await self._already_bridged(key, event):
                return
            portal = await self.create_portal(login, key)
        else:
            await self._ensure_owner_invited(portal.room_id, login.record.owner)
        await self._dispatch(login, portal, event)

    async def _dispatch(self, login: NetworkLogin, portal: PortalRow, event: RemoteEvent) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is None:
            log.warning("No handler for remote event %s", type(event).__name__)
            return
        await handler(self, login, portal, event)

    async def _already_bridged(self, key: PortalKey, event: RemoteMessage) -> bool:
        return bool(await self.ctx.db.messages.by_remote(key, event.message_id))

    async def _sent_rows(self, portal: PortalRow, message_id: str) -> list[MessageRow]:
        """The mapping rows of a message that reached Matrix (not one still being sent)."""
        rows = await self.ctx.db.messages.by_remote(portal.key, message_id)
        return [r for r in rows if r.event_id != SENDING]

    # Portal rooms ------------------------------------------------------------------------

    async def create_portal(self, login: NetworkLogin, key: PortalKey) -> PortalRow:
        info = await login.get_chat_info(key.chat_id)
        connector = self.ctx.logins.connector(key.network)
        own_remote_id = login.login_id
        ghosts = [
            await self.ctx.ghosts.ensure(login, member)
            for member in info.members
            if member != own_remote_id
        ]
        avatar_mxc = await self._upload_avatar(info)
        owner = login.record.owner
        bridge_info = self._bridge_info(key, info, connector.display_name)
        room_id = await self.ctx.matrix.create_room(
            name=None if info.is_direct else info.name,
            topic=info.topic,
            avatar_mxc=avatar_mxc,
            invite=[owner, *ghosts],
            is_direct=info.is_direct,
            bridge_info=bridge_info,
            bridge_state_key=f"{key.network}/{key.chat_id}",
            # The owner may rename the room and manage members: the bridge mirrors that to the
            # remote group where the network can (ChatChange).
            power_users={**{g: 50 if info.read_only else 0 for g in ghosts}, owner: 50},
            events_default=50 if info.read_only else 0,
        )
        self._invited.add((room_id, owner))
        portal = PortalRow(
            key=key,
            room_id=room_id,
            login_id=login.login_id,
            name=info.name,
            topic=info.topic,
            avatar_id=info.avatar_id if avatar_mxc else None,
            avatar_mxc=avatar_mxc,
            is_direct=info.is_direct,
            created_at=now_ms(),
        )
        await self.ctx.db.portals.put(portal)
        for ghost in ghosts:
            await self.ctx.matrix.join(room_id, ghost)
        log.info("Created portal %s for %s", room_id, key)
        await self._backfill(login, portal)
        return portal

    async def _backfill(self, login: NetworkLogin, portal: PortalRow) -> None:
        limit = self.ctx.config.bridge.backfill_limit
        connector = self.ctx.logins.connector(portal.key.network)
        if limit <= 0 or not connector.capabilities.backfill:
            return
        try:
            history = await login.fetch_history(portal.key.chat_id, limit)
        except Exception:
            log.warning("Backfill of %s failed", portal.key, exc_info=True)
            return
        for event in history:
            await self._dispatch(login, portal, event)

    def _bridge_info(self, key: PortalKey, info: ChatInfo, network_name: str) -> dict[str, Any]:
        return {
            "bridgebot": self.ctx.matrix.bot_mxid,
            "protocol": {"id": key.network, "displayname": network_name},
            "channel": {"id": key.chat_id, "displayname": info.name or ""},
        }

    async def _upload_avatar(self, info: ChatInfo) -> str | None:
        if info.avatar is None:
            return None
        try:
            data = await info.avatar.fetch()
            return await self.ctx.matrix.upload(data, info.avatar.mime_type, info.avatar.file_name)
        except Exception:
            log.warning("Could not copy the avatar of chat %s", info.chat_id, exc_info=True)
            return None

    async def _ensure_owner_invited(self, room_id: RoomID, owner: UserID) -> None:
        if (room_id, owner) in self._invited:
            return
        if not await self.ctx.matrix.is_member(room_id, owner):
            await self.ctx.matrix.invite(room_id, owner)
        self._invited.add((room_id, owner))

    # Events ------------------------------------------------------------------------------

    async def _sender_mxid(self, login: NetworkLogin, event: RemoteEvent) -> UserID:
        if event.sender is None:
            return self.ctx.matrix.bot_mxid
        owner = login.record.owner
        if event.sender.is_from_me and self.ctx.matrix.can_double_puppet(owner):
            # Sent from the user's phone or another app: show it as theirs.
            await self.ctx.matrix.use_double_puppet(owner)
            return owner
        return await self.ctx.ghosts.ensure(login, event.sender.user_id)

    def _mention_renderer(self, login: NetworkLogin):
        network = login.record.network

        def render(target: MentionTarget) -> tuple[str, str] | None:
            if target.matrix_user_id:
                return target.matrix_user_id, target.matrix_user_id
            if target.remote_user_id:
                mxid = self.ctx.ghosts.mxid(network, target.remote_user_id)
                return mxid, mxid
            return None

        return render

    async def _build_content(
        self,
        login: NetworkLogin,
        portal: PortalRow,
        content: MessageContent,
        reply_to: EventID | None,
    ) -> dict[str, Any]:
        media_mxc = None
        size = None
        if content.media is not None:
            media = content.media
            if media.size is not None and media.size > self.ctx.max_media_bytes:
                return self._too_big(content, media.file_name, media.size)
            data = await media.fetch()
            if len(data) > self.ctx.max_media_bytes:
                return self._too_big(content, media.file_name, len(data))
            media_mxc = await self.ctx.matrix.upload(
                data, media.mime_type, media.file_name, room_id=portal.room_id
            )
            size = len(data)
        return mx.build_message(
            content,
            media_mxc=media_mxc,
            media_size=size,
            reply_to=reply_to,
            mention_user=self._mention_renderer(login),
            origin=portal_origin(portal.key),
        )

    def _too_big(self, content: MessageContent, name: str, size: int) -> dict[str, Any]:
        limit = self.ctx.config.bridge.max_media_size_mb
        note = f"[{name} ({size // (1024 * 1024)} MiB) was not bridged: the limit is {limit} MiB]"
        text = FormattedText(note) if not content.text.text else content.text + FormattedText("\n" + note)
        return mx.build_message(MessageContent(text=text, notice=True))

    async def on_message(self, login: NetworkLogin, portal: PortalRow, evt: RemoteMessage) -> None:
        rows = await self.ctx.db.messages.by_remote(portal.key, evt.message_id)
        if rows and rows[0].event_id != SENDING:
            return
        assert portal.room_id is not None
        hub_sender = portal.relay and evt.sender is not None and not evt.sender.is_from_me
        if hub_sender and await self.ctx.hub.intercept(
            login, portal, evt.sender.user_id, evt.content.text.text
        ):
            return
        sender = await self._sender_mxid(login, evt)
        reply_event = None
        if evt.reply_to:
            replied = await self.ctx.db.messages.by_remote(portal.key, evt.reply_to)
            reply_event = replied[0].event_id if replied and replied[0].event_id else None
        marker = stable_id("msg", portal.key.network, portal.key.chat_id, evt.message_id)
        row = MessageRow(
            portal=portal.key,
            remote_id=evt.message_id,
            part=0,
            room_id=portal.room_id,
            event_id=SENDING,
            sender=sender,
            timestamp=evt.timestamp_ms or now_ms(),
        )
        if rows:
            # An earlier attempt was cut off (a crash) after it began sending: if the event
            # reached the room, record it instead of sending a second copy.
            found = await self.ctx.matrix.find_recent_event(portal.room_id, mx.MESSAGE_KEY, marker)
            if found is not None:
                await self.ctx.db.messages.set_event(row, found)
                return
        else:
            await self.ctx.db.messages.put(row)
        content = await self._build_content(login, portal, evt.content, reply_event)
        content[mx.MESSAGE_KEY] = marker
        event_id = await self.ctx.matrix.send(
            portal.room_id, sender, content, txn_id="hub" + marker,
            timestamp_ms=evt.timestamp_ms or None,
        )
        await self.ctx.db.messages.set_event(row, event_id)
        if hub_sender:
            await self.ctx.hub.greet(login, portal, evt.sender.user_id)
        self.ctx.metrics.message_bridged(portal.key.network, TO_MATRIX)

    async def on_edit(self, login: NetworkLogin, portal: PortalRow, evt: RemoteEdit) -> None:
        rows = await self._sent_rows(portal, evt.message_id)
        if not rows:
            log.debug("Edit of unknown message %s in %s", evt.message_id, portal.key)
            return
        assert portal.room_id is not None
        sender = await self._sender_mxid(login, evt)
        new = await self._build_content(login, portal, evt.content, None)
        content = mx.build_edit(new, rows[0].event_id, portal_origin(portal.key))
        txn = "hub" + stable_id(
            "edit", portal.key.network, portal.key.chat_id, evt.message_id,
            str(evt.timestamp_ms), evt.content.text.text,
        )
        await self.ctx.matrix.send(portal.room_id, sender, content, txn_id=txn)

    async def on_delete(self, login: NetworkLogin, portal: PortalRow, evt: RemoteDelete) -> None:
        rows = await self._sent_rows(portal, evt.message_id)
        for row in rows:
            # A Matrix user's own event (sent to the network through the bridge) can only
            # be redacted by the bot: the appservice can't act as a real user.
            redactor = row.sender if self.ctx.ghost_ids.parse(row.sender) else self.ctx.matrix.bot_mxid
            await self.ctx.matrix.redact(
                row.room_id, redactor, row.event_id, extra={mx.ORIGIN_KEY: portal_origin(portal.key)}
            )
        await self.ctx.db.messages.delete_remote(portal.key, evt.message_id)

    async def on_reaction(self, login: NetworkLogin, portal: PortalRow, evt: RemoteReaction) -> None:
        if evt.sender is None:
            return
        if portal.relay and await self.ctx.db.privacy.is_opted_out(
            remote_subject(portal.key, evt.sender.user_id)
        ):
            return
        assert portal.room_id is not None
        existing = await self.ctx.db.reactions.get(
            portal.key, evt.message_id, evt.sender.user_id, evt.emoji
        )
        if evt.removed:
            if existing is not None:
                sender = await self._sender_mxid(login, evt)
                await self.ctx.matrix.redact(
                    existing.room_id, sender, existing.event_id,
                    extra={mx.ORIGIN_KEY: portal_origin(portal.key)},
                )
                await self.ctx.db.reactions.delete(existing)
            return
        if existing is not None:
            return
        rows = await self._sent_rows(portal, evt.message_id)
        if not rows:
            return
        sender = await self._sender_mxid(login, evt)
        content = mx.build_reaction(rows[0].event_id, evt.emoji, portal_origin(portal.key))
        txn = "hub" + stable_id(
            "react", portal.key.network, portal.key.chat_id, evt.message_id,
            evt.sender.user_id, evt.emoji, str(evt.timestamp_ms),
        )
        event_id = await self.ctx.matrix.send(
            portal.room_id, sender, content, txn_id=txn, event_type="m.reaction"
        )
        await self.ctx.db.reactions.put(
            ReactionRow(
                portal=portal.key,
                remote_msg=evt.message_id,
                sender=evt.sender.user_id,
                emoji=evt.emoji,
                room_id=portal.room_id,
                event_id=event_id,
                timestamp=evt.timestamp_ms or now_ms(),
            )
        )

    async def on_typing(self, login: NetworkLogin, portal: PortalRow, evt: RemoteTyping) -> None:
        if evt.sender is None or evt.sender.is_from_me:
            return
        assert portal.room_id is not None
        sender = await self._sender_mxid(login, evt)
        await self.ctx.matrix.set_typing(portal.room_id, sender, evt.typing)

    async def on_read(self, login: NetworkLogin, portal: PortalRow, evt: RemoteReadReceipt) -> None:
        if evt.sender is None or evt.sender.is_from_me:
            return
        rows = await self._sent_rows(portal, evt.up_to)
        if not rows or portal.room_id is None:
            return
        sender = await self._sender_mxid(login, evt)
        await self.ctx.matrix.mark_read(portal.room_id, sender, rows[-1].event_id)

    async def on_chat_update(
        self, login: NetworkLogin, portal: PortalRow, evt: RemoteChatUpdate
    ) -> None:
        info = evt.info
        assert portal.room_id is not None
        changed = False
        if info.name is not None and info.name != portal.name and not portal.is_direct:
            await self.ctx.matrix.set_room_name(portal.room_id, info.name)
            portal.name, changed = info.name, True
        if info.topic is not None and info.topic != portal.topic:
            await self.ctx.matrix.set_room_topic(portal.room_id, info.topic)
            portal.topic, changed = info.topic, True
        if info.avatar is not None and info.avatar_id and info.avatar_id != portal.avatar_id:
            mxc = await self._upload_avatar(info)
            if mxc:
                await self.ctx.matrix.set_room_avatar(portal.room_id, mxc)
                portal.avatar_id, portal.avatar_mxc, changed = info.avatar_id, mxc, True
        if changed:
            await self.ctx.db.portals.put(portal)

    async def on_member(
        self, login: NetworkLogin, portal: PortalRow, evt: RemoteMemberChange
    ) -> None:
        assert portal.room_id is not None
        if evt.user_id == login.login_id:
            return
        mxid = await self.ctx.ghosts.ensure(login, evt.user_id)
        if evt.joined:
            await self.ctx.matrix.join(portal.room_id, mxid)
        else:
            await self.ctx.matrix.leave(portal.room_id, mxid)


_HANDLERS = {
    RemoteMessage: RemoteHandler.on_message,
    RemoteEdit: RemoteHandler.on_edit,
    RemoteDelete: RemoteHandler.on_delete,
    RemoteReaction: RemoteHandler.on_reaction,
    RemoteTyping: RemoteHandler.on_typing,
    RemoteReadReceipt: RemoteHandler.on_read,
    RemoteChatUpdate: RemoteHandler.on_chat_update,
    RemoteMemberChange: RemoteHandler.on_member,
}
