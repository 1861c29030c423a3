"""Matrix -> remote: send what Matrix users do in portal rooms to the linked chats.

Each portal in the room relays every event that did not come from its own chat (the
origin marker says where an event came from). Failures are never silent: the sender gets
a notice in the room, replying to the message, and a failed message status.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from ..db.messages import MessageRow, ReactionRow
from ..db.portals import PortalRow
from ..matrix.content import ContentError
from ..matrix.crypto_media import MediaDecryptionError
from ..metrics import TO_NETWORK
from .connector import ChatChange, NetworkLogin, OutgoingMedia, OutgoingMessage, SendError, Unsupported
from .context import BridgeContext, now_ms, portal_origin, stable_id
from .events import MediaKind
from .hub import matrix_subject
from .matrix_events import MatrixChatChange, MatrixMessage, MatrixReaction, MatrixRedaction
from .text import Entity, EntityType, FormattedText

log = logging.getLogger("bridge.core.outgoing")

TEXT_REACTION = "text:"
"""Marks a relayed reaction that was sent as a text message (its id is the message's)."""

RATE_LIMIT_PATIENCE = 3600.0
"""Seconds a rate-limited message keeps waiting for its turn."""
TRANSIENT_PATIENCE = 600.0
"""Seconds a send keeps being retried after transient network failures."""


class DeliveryError(Exception):
    """Why a Matrix event could not be delivered; shown to its sender."""


class OutgoingHandler:
    def __init__(self, ctx: BridgeContext) -> None:
        self.ctx = ctx

    # Entry points: called once per Matrix event; each queues work per portal -------------

    async def on_message(self, msg: MatrixMessage) -> list[asyncio.Future[None]]:
        portals = await self._portals_to_relay(msg.room_id, msg.sender, msg.origin)
        return [
            self._queue(p, msg.event_id, msg.room_id, msg.sender, lambda p=p: self._message(p, msg))
            for p in portals
        ]

    async def on_reaction(self, reaction: MatrixReaction) -> list[asyncio.Future[None]]:
        portals = await self._portals_to_relay(reaction.room_id, reaction.sender, reaction.origin)
        return [
            self._queue(
                p, reaction.event_id, reaction.room_id, reaction.sender,
                lambda p=p: self._reaction(p, reaction),
            )
            for p in portals
        ]

    async def on_redaction(self, redaction: MatrixRedaction) -> list[asyncio.Future[None]]:
        portals = await self._portals_to_relay(redaction.room_id, redaction.sender, redaction.origin)
        return [
            self._queue(
                p, redaction.event_id, redaction.room_id, redaction.sender,
                lambda p=p: self._redaction(p, redaction),
            )
            for p in portals
        ]

    async def on_chat_change(self, change: MatrixChatChange) -> list[asyncio.Future[None]]:
        portals = await self._portals_to_relay(change.room_id, change.sender, None)
        return [
            self._queue(
                p, change.event_id, change.room_id, change.sender,
                lambda p=p: self._chat_change(p, change),
            )
            for p in portals
            if not p.is_direct and self._capable(p, "group_management")
        ]

    async def on_typing(self, room_id: str, user_id: str, typing: bool) -> None:
        for portal in await self._portals_to_relay(room_id, user_id, None):
            login = self._own_login(portal, user_id)
            if login is not None and self._capable(portal, "typing"):
                await self._best_effort(login.set_typing(portal.key.chat_id, typing))

    async def on_read(self, room_id: str, user_id: str, event_id: str) -> None:
        for portal in await self._portals_to_relay(room_id, user_id, None):
            login = self._own_login(portal, user_id)
            if login is None or not self._capable(portal, "read_receipts"):
                continue
            row = await self.ctx.db.messages.by_event(portal.key, portal.room_id, event_id)
            if row is not None:
                await self._best_effort(login.mark_read(portal.key.chat_id, row.remote_id))

    # Routing -----------------------------------------------------------------------------

    async def _portals_to_relay(self, room_id: str, sender: str, origin: str | None) -> list[PortalRow]:
        """The portals in the room that should carry this event to their chat."""
        if sender == self.ctx.matrix.bot_mxid:
            return []
        portals = await self.ctx.db.portals.by_room(room_id)
        if not portals:
            return []
        is_ghost = self.ctx.ghost_ids.parse(sender) is not None
        opted_out = await self.ctx.db.privacy.is_opted_out(matrix_subject(sender))
        out = []
        for portal in portals:
            if origin is not None and origin == portal_origin(portal.key):
                continue  # it came from this very chat
            if portal.relay and opted_out:
                continue  # the sender asked to stay in their own chat
            if is_ghost and not portal.relay:
                continue  # ghosts are relayed only into hub rooms
            out.append(portal)
        return out

    def _queue(
        self, portal: PortalRow, event_id: str, room_id: str, sender: str, job
    ) -> asyncio.Future[None]:
        """Run ``job`` in the portal's queue; the future resolves when it is done either way."""

        async def run() -> None:
            try:
                await job()
            except DeliveryError as e:
                self.ctx.metrics.failed(portal.key.network, TO_NETWORK, e)
                await self._report_failure(portal, room_id, event_id, sender, str(e))
            except Exception as e:
                self.ctx.metrics.failed(portal.key.network, TO_NETWORK, e)
                log.exception("Failed to bridge %s to %s", event_id, portal.key)
                await self._report_failure(
                    portal, room_id, event_id, sender, f"internal error ({type(e).__name__})"
                )

        timed = self.ctx.metrics.timed(portal.key.network, TO_NETWORK, run)
        return self.ctx.queues.submit(portal.key, timed)

    def _own_login(self, portal: PortalRow, user_id: str) -> NetworkLogin | None:
        logins = self.ctx.logins.of_user(user_id, portal.key.network)
        if not logins:
            return None
        for login in logins:
            if login.login_id == portal.login_id:
                return login
        return logins[0]

    async def _sender_login(
        self, portal: PortalRow, sender: str, room_id: str
    ) -> tuple[NetworkLogin, str | None]:
        """The login that sends for ``sender``, and the name to show when it relays.

        A Matrix user with their own login on the network sends as themselves. Anyone
        else (another network's ghost, or a Matrix user with the ``relay`` permission) is
        relayed through the login that linked the chat, in a hub room only.
        """
        is_ghost = self.ctx.ghost_ids.parse(sender) is not None
        if not is_ghost and self.ctx.permission_at_least(sender, "user"):
            own = self._own_login(portal, sender)
            if own is not None:
                return own, None
        name = self.ctx.logins.connector(portal.key.network).display_name
        if portal.relay:
            if not is_ghost and not self.ctx.permission_at_least(sender, "relay"):
                raise DeliveryError("you don't have permission to use this bridge")
            relay = self.ctx.logins.get(portal.key.network, portal.login_id) if portal.login_id else None
            if relay is None:
                raise DeliveryError(f"the login that linked this {name} chat is gone: link it again")
            return relay, await self.ctx.hub.sender_name(room_id, sender)
        if not self.ctx.permission_at_least(sender, "user"):
            raise DeliveryError("you don't have permission to use this bridge")
        raise DeliveryError(
            f"you are not logged in to {name}: send "
            f"'{self.ctx.config.bridge.command_prefix} login {portal.key.network}' "
            "to the bridge bot"
        )

    def _capable(self, portal: PortalRow, capability: str) -> bool:
        caps = self.ctx.logins.connector(portal.key.network).capabilities
        return bool(getattr(caps, capability))

    async def _best_effort(self, call) -> None:
        try:
            await call
        except (Unsupported, SendError) as e:
            log.debug("Ignored: %s", e)
        except Exception:
            log.warning("Typing or read receipt failed", exc_info=True)

    # Work done inside the portal queue ---------------------------------------------------

    async def _with_retries(self, make_call):
        """Run a network call; wait out rate limits and retry transient failures.

        A rate limit is never a reason to drop a message: it is retried for up to an
        hour. Other transient failures are retried with backoff for up to ten minutes.
        Whatever still fails becomes a :class:`DeliveryError`, reported to the sender.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = 1.0
        while True:
            try:
                return await make_call()
            except Unsupported as e:
                raise DeliveryError(f"the network doesn't support {e}") from e
            except SendError as e:
                if e.permanent:
                    raise DeliveryError(e.reason) from e
                limit = RATE_LIMIT_PATIENCE if e.retry_after is not None else TRANSIENT_PATIENCE
                wait = e.retry_after if e.retry_after is not None else delay
                if loop.time() + wait - started > limit:
                    raise DeliveryError(f"{e.reason} (gave up after {int(limit // 60)} minutes)") from e
                log.info("Send failed (%s); retrying in %.1f s", e.reason, wait)
                await asyncio.sleep(wait)
                if e.retry_after is None:
                    delay = min(delay * 2, 60)

    async def _message(self, portal: PortalRow, msg: MatrixMessage) -> None:
        if await self.ctx.db.messages.by_event(portal.key, portal.room_id, msg.event_id):
            return  # already delivered (a repeated transaction)
        login, relayed_name = await self._sender_login(portal, msg.sender, msg.room_id)
        if msg.edits is not None:
            await self._edit(portal, login, msg, relayed_name)
            return
        text = self._outgoing_text(portal, msg, relayed_name)
        media = await self._download(msg) if msg.media is not None else None
        if media is not None and media.kind not in self.ctx.logins.connector(portal.key.network).capabilities.media:
            raise DeliveryError(f"the network doesn't accept {media.kind.value} attachments")
        reply_to = None
        if msg.reply_to:
            row = await self.ctx.db.messages.by_event(portal.key, portal.room_id, msg.reply_to)
            reply_to = row.remote_id if row else None
        outgoing = OutgoingMessage(
            text=text,
            media=media,
            reply_to=reply_to,
            txn_id="mx" + stable_id(portal.key.network, portal.key.chat_id, msg.event_id),
        )
        result = await self._with_retries(lambda: login.send_message(portal.key.chat_id, outgoing))
        await self.ctx.db.messages.put(
            MessageRow(
                portal=portal.key,
                remote_id=result.message_id,
                part=0,
                room_id=msg.room_id,
                event_id=msg.event_id,
                sender=msg.sender,
                timestamp=result.timestamp_ms or now_ms(),
            )
        )
        self.ctx.metrics.message_bridged(portal.key.network, TO_NETWORK)

    def _outgoing_text(
        self, portal: PortalRow, msg: MatrixMessage, relayed_name: str | None
    ) -> FormattedText:
        text = msg.text
        if msg.location is not None:
            loc = msg.location
            text = FormattedText(
                f"{loc.description or 'Location'}: https://www.openstreetmap.org/"
                f"?mlat={loc.latitude}&mlon={loc.longitude}"
            )
        text = self._convert_mentions_and_filter(portal, text)
        if msg.is_emote:
            text = FormattedText("* ") + text
        if relayed_name is not None:
            text = self.ctx.hub.render(relayed_name, text)
        return text

    def _convert_mentions_and_filter(self, portal: PortalRow, text: FormattedText) -> FormattedText:
        allowed = self.ctx.logins.connector(portal.key.network).capabilities.formatting
        entities: list[Entity] = []
        for entity in text.entities:
            if entity.type == EntityType.MENTION and entity.mention is not None:
                ghost = self.ctx.ghost_ids.parse(entity.mention.matrix_user_id or "")
                if ghost is None or ghost.network != portal.key.network:
                    continue  # a Matrix user or another network's ghost: plain text remains
                entity = replace(
                    entity, mention=replace(entity.mention, remote_user_id=ghost.user_id)
                )
            if entity.type in allowed:
                entities.append(entity)
        return FormattedText(text.text, tuple(entities))

    async def _download(self, msg: MatrixMessage) -> OutgoingMedia:
        assert msg.media is not None
        media = msg.media
        limit = self.ctx.max_media_bytes
        if media.size is not None and media.size > limit:
            raise DeliveryError(
                f"the file is too big ({media.size // (1024 * 1024)} MiB; the limit is "
                f"{self.ctx.config.bridge.max_media_size_mb} MiB)"
            )
        try:
            data = await self.ctx.matrix.download(media.mxc, encrypted_file=media.encrypted_file)
        except MediaDecryptionError as e:
            raise DeliveryError(str(e)) from e
        if len(data) > limit:
            raise DeliveryError(
                f"the file is too big (the limit is {self.ctx.config.bridge.max_media_size_mb} MiB)"
            )
        return OutgoingMedia(
            kind=media.kind,
            mime_type=media.mime_type,
            file_name=media.file_name,
            data=data,
            width=media.width,
            height=media.height,
            duration_ms=media.duration_ms,
        )

    async def _edit(
        self, portal: PortalRow, login: NetworkLogin, msg: MatrixMessage, relayed_name: str | None
    ) -> None:
        assert msg.edits is not None
        if not self._capable(portal, "edits"):
            raise DeliveryError("the network doesn't support editing messages")
        row = await self.ctx.db.messages.by_event(portal.key, portal.room_id, msg.edits)
        if row is None:
            raise DeliveryError("the edited message was never bridged")
        text = self._outgoing_text(portal, msg, relayed_name)
        await self._with_retries(lambda: login.edit_message(portal.key.chat_id, row.remote_id, text))

    async def _reaction(self, portal: PortalRow, reaction: MatrixReaction) -> None:
        login, relayed_name = await self._sender_login(portal, reaction.sender, reaction.room_id)
        row = await self.ctx.db.messages.by_event(portal.key, portal.room_id, reaction.target)
        if row is None:
            raise DeliveryError("the message you reacted to was never bridged")
        if relayed_name is not None:
            # A reaction through someone else's account would look like theirs: say it in words.
            emoji = TEXT_REACTION + reaction.key
            if await self.ctx.db.reactions.get(portal.key, row.remote_id, reaction.sender, emoji):
                return
            text = FormattedText(f"{relayed_name} reacted with {reaction.key}")
            outgoing = OutgoingMessage(
                text=text, reply_to=row.remote_id if self._capable(portal, "replies") else None,
                txn_id="mx" + stable_id(portal.key.network, portal.key.chat_id, reaction.event_id),
            )
            result = await self._with_retries(lambda: login.send_message(portal.key.chat_id, outgoing))
            remote_msg = result.message_id
        else:
            if not self._capable(portal, "reactions"):
                raise DeliveryError("the network doesn't support reactions")
            emoji = reaction.key
            if await self.ctx.db.reactions.get(portal.key, row.remote_id, reaction.sender, emoji):
                return
            await self._with_retries(
                lambda: login.send_reaction(portal.key.chat_id, row.remote_id, reaction.key)
            )
            remote_msg = row.remote_id
        await self.ctx.db.reactions.put(
            ReactionRow(
                portal=portal.key,
                remote_msg=remote_msg,
                sender=reaction.sender,
                emoji=emoji,
                room_id=reaction.room_id,
                event_id=reaction.event_id,
                timestamp=now_ms(),
            )
        )

    async def _redaction(self, portal: PortalRow, redaction: MatrixRedaction) -> None:
        reactions = [
            r for r in await self.ctx.db.reactions.by_event(redaction.room_id, redaction.target)
            if r.portal == portal.key and r.sender == redaction.sender
        ]
        if reactions:
            login, _ = await self._sender_login(portal, redaction.sender, redaction.room_id)
            for r in reactions:
                if r.emoji.startswith(TEXT_REACTION):
                    call = lambda r=r: login.delete_message(portal.key.chat_id, r.remote_msg)  # noqa: E731
                else:
                    call = lambda r=r: login.remove_reaction(portal.key.chat_id, r.remote_msg, r.emoji)  # noqa: E731
                await self._with_retries(call)
                await self.ctx.db.reactions.delete(r)
            return
        row = await self.ctx.db.messages.by_event(portal.key, portal.room_id, redaction.target)
        if row is None:
            return  # nothing of ours: e.g. a redacted notice
        if row.sender != redaction.sender:
            return  # deleting someone else's message is up to the network's own moderators
        login, _ = await self._sender_login(portal, redaction.sender, redaction.room_id)
        if not self._capable(portal, "redactions"):
            raise DeliveryError("the network doesn't support deleting messages")
        await self._with_retries(lambda: login.delete_message(portal.key.chat_id, row.remote_id))
        await self.ctx.db.messages.delete_remote(portal.key, row.remote_id)

    async def _chat_change(self, portal: PortalRow, change: MatrixChatChange) -> None:
        def own_member(mxid: str | None) -> tuple[str, ...]:
            ghost = self.ctx.ghost_ids.parse(mxid or "")
            return (ghost.user_id,) if ghost is not None and ghost.network == portal.key.network else ()

        added, removed = own_member(change.invited), own_member(change.removed)
        if (change.invited or change.removed) and not (added or removed):
            return  # another network's ghost: nothing to do in this chat
        avatar = None
        if change.avatar_mxc:
            data = await self.ctx.matrix.download(change.avatar_mxc)
            avatar = OutgoingMedia(MediaKind.IMAGE, change.avatar_mime, "avatar", data)
        remote = ChatChange(
            name=change.name, topic=change.topic, avatar=avatar, add_members=added, remove_members=removed
        )
        if portal.relay or not self.ctx.permission_at_least(change.sender, "user"):
            return  # only someone's own account changes a remote chat, never a relay
        login = self._own_login(portal, change.sender)
        if login is None:
            return
        try:
            await self._with_retries(lambda: login.update_chat(portal.key.chat_id, remote))
        except DeliveryError as e:
            if isinstance(e.__cause__, Unsupported):
                log.debug("%s can't apply room changes to its chats", portal.key.network)
                return  # the room changed in Matrix only, as before this was supported
            raise
        if change.name is not None or change.topic is not None:
            # The portal now matches the remote chat: don't echo the change back later.
            portal.name = change.name if change.name is not None else portal.name
            portal.topic = change.topic if change.topic is not None else portal.topic
            await self.ctx.db.portals.put(portal)

    async def _report_failure(
        self, portal: PortalRow, room_id: str, event_id: str, sender: str, reason: str
    ) -> None:
        name = self.ctx.logins.connector(portal.key.network).display_name
        log.warning("Not delivered to %s: %s (event %s)", portal.key, reason, event_id)
        if self.ctx.ghost_ids.parse(sender) is not None:
            return  # a relayed ghost can't read notices; the log has it
        try:
            await self.ctx.matrix.send(
                room_id,
                self.ctx.matrix.bot_mxid,
                {
                    "msgtype": "m.notice",
                    "body": f"Your message was not delivered to {name}: {reason}",
                    "m.relates_to": {"m.in_reply_to": {"event_id": event_id}},
                },
                txn_id="fail" + stable_id(portal.key.network, portal.key.chat_id, event_id),
            )
            await self.ctx.matrix.send(
                room_id,
                self.ctx.matrix.bot_mxid,
                {
                    "network": portal.key.network,
                    "status": "FAIL_PERMANENT",
                    "reason": "m_foreign_network_error",
                    "message": reason,
                    "m.relates_to": {"rel_type": "m.reference", "event_id": event_id},
                },
                event_type="com.beeper.message_send_status",
                txn_id="status" + stable_id(portal.key.network, portal.key.chat_id, event_id),
            )
        except Exception:
            log.exception("Could not report the failure in %s", room_id)


__all__ = ["OutgoingHandler", "DeliveryError", "ContentError"]
