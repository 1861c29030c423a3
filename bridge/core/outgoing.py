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
from ..metrics import TO_NETWORK
from .connector import NetworkLogin, OutgoingMedia, OutgoingMessage, SendError, Unsupported
from .context import BridgeContext, now_ms, portal_origin, stable_id
from .matrix_events import MatrixMessage, MatrixReaction, MatrixRedaction
from .text import Entity, EntityType, FormattedText

log = logging.getLogger("bridge.core.outgoing")

MAX_SEND_ATTEMPTS = 8


class DeliveryError(Exception):
    """Why a Matrix event could not be delivered; shown to its sender."""


class OutgoingHandler:
    def __init__(self, ctx: BridgeContext) -> None:
        self.ctx = ctx

    # Entry points: called once per Matrix event; each queues work per portal -------------

    async def on_message(self, msg: MatrixMessage) -> list[asyncio.Future[None]]:
        portals = await self._portals_to_relay(msg.room_id, msg.sender, msg.origin)
        return [
            self._queue(p, msg.event_id, msg.room_id, lambda p=p: self._message(p, msg))
            for p in portals
        ]

    async def on_reaction(self, reaction: MatrixReaction) -> list[asyncio.Future[None]]:
        portals = await self._portals_to_relay(reaction.room_id, reaction.sender, reaction.origin)
        return [
            self._queue(p, reaction.event_id, reaction.room_id, lambda p=p: self._reaction(p, reaction))
            for p in portals
        ]

    async def on_redaction(self, redaction: MatrixRedaction) -> list[asyncio.Future[None]]:
        portals = await self._portals_to_relay(redaction.room_id, redaction.sender, redaction.origin)
        return [
            self._queue(p, redaction.event_id, redaction.room_id, lambda p=p: self._redaction(p, redaction))
            for p in portals
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
        if sender == self.ctx.matrix.bot_mxid:
            return []
        portals = await self.ctx.db.portals.by_room(room_id)
        ghost = self.ctx.ghost_ids.parse(sender)
        out = []
        for portal in portals:
            if origin is not None and origin == portal_origin(portal.key):
                continue
            if ghost is not None and ghost.network == portal.key.network and len(portals) == 1:
                # A ghost's own network event without a marker (e.g. from an older version).
                continue
            out.append(portal)
        return out

    def _queue(self, portal: PortalRow, event_id: str, room_id: str, job) -> asyncio.Future[None]:
        """Run ``job`` in the portal's queue; the future resolves when it is done either way."""

        async def run() -> None:
            try:
                await job()
            except DeliveryError as e:
                self.ctx.metrics.failed(portal.key.network, TO_NETWORK, e)
                await self._report_failure(portal, room_id, event_id, str(e))
            except Exception as e:
                self.ctx.metrics.failed(portal.key.network, TO_NETWORK, e)
                log.exception("Failed to bridge %s to %s", event_id, portal.key)
                await self._report_failure(portal, room_id, event_id, f"internal error ({type(e).__name__})")

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

    def _login_for(self, portal: PortalRow, user_id: str) -> NetworkLogin:
        if not self.ctx.permission_at_least(user_id, "user"):
            raise DeliveryError("you don't have permission to use this bridge")
        login = self._own_login(portal, user_id)
        if login is None:
            name = self.ctx.logins.connector(portal.key.network).display_name
            raise DeliveryError(
                f"you are not logged in to {name}: send "
                f"'{self.ctx.config.bridge.command_prefix} login {portal.key.network}' "
                "to the bridge bot"
            )
        return login

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
        """Run a network call, waiting out rate limits; a message is never dropped for one."""
        delay = 1.0
        for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
            try:
                return await make_call()
            except SendError as e:
                if e.permanent or attempt == MAX_SEND_ATTEMPTS:
                    raise DeliveryError(e.reason) from e
                wait = e.retry_after if e.retry_after is not None else delay
                log.info("Send failed (%s); retrying in %.1f s", e.reason, wait)
                await asyncio.sleep(min(wait, 300))
                delay = min(delay * 2, 60)
            except Unsupported as e:
                raise DeliveryError(f"the network doesn't support {e}") from e
        raise AssertionError("unreachable")

    async def _message(self, portal: PortalRow, msg: MatrixMessage) -> None:
        if await self.ctx.db.messages.by_event(portal.key, portal.room_id, msg.event_id):
            return  # already delivered (a repeated transaction)
        login = self._login_for(portal, msg.sender)
        if msg.edits is not None:
            await self._edit(portal, login, msg)
            return
        text = self._outgoing_text(portal, msg)
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

    def _outgoing_text(self, portal: PortalRow, msg: MatrixMessage) -> FormattedText:
        text = msg.text
        if msg.location is not None:
            loc = msg.location
            text = FormattedText(
                f"{loc.description or 'Location'}: https://www.openstreetmap.org/"
                f"?mlat={loc.latitude}&mlon={loc.longitude}"
            )
        if msg.is_emote:
            name = msg.sender
            text = FormattedText(f"* {name} ") + text
        return self._convert_mentions_and_filter(portal, text)

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
        if media.encrypted_file is not None:
            raise DeliveryError("encrypted attachments can't be bridged yet")
        data = await self.ctx.matrix.download(media.mxc)
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

    async def _edit(self, portal: PortalRow, login: NetworkLogin, msg: MatrixMessage) -> None:
        assert msg.edits is not None
        if not self._capable(portal, "edits"):
            raise DeliveryError("the network doesn't support editing messages")
        row = await self.ctx.db.messages.by_event(portal.key, portal.room_id, msg.edits)
        if row is None:
            raise DeliveryError("the edited message was never bridged")
        text = self._outgoing_text(portal, msg)
        await self._with_retries(lambda: login.edit_message(portal.key.chat_id, row.remote_id, text))

    async def _reaction(self, portal: PortalRow, reaction: MatrixReaction) -> None:
        login = self._login_for(portal, reaction.sender)
        if not self._capable(portal, "reactions"):
            raise DeliveryError("the network doesn't support reactions")
        row = await self.ctx.db.messages.by_event(portal.key, portal.room_id, reaction.target)
        if row is None:
            raise DeliveryError("the message you reacted to was never bridged")
        if await self.ctx.db.reactions.get(portal.key, row.remote_id, reaction.sender, reaction.key):
            return
        await self._with_retries(
            lambda: login.send_reaction(portal.key.chat_id, row.remote_id, reaction.key)
        )
        await self.ctx.db.reactions.put(
            ReactionRow(
                portal=portal.key,
                remote_msg=row.remote_id,
                sender=reaction.sender,
                emoji=reaction.key,
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
            login = self._login_for(portal, redaction.sender)
            for r in reactions:
                await self._with_retries(
                    lambda r=r: login.remove_reaction(portal.key.chat_id, r.remote_msg, r.emoji)
                )
                await self.ctx.db.reactions.delete(r)
            return
        row = await self.ctx.db.messages.by_event(portal.key, portal.room_id, redaction.target)
        if row is None:
            return  # nothing of ours: e.g. a redacted notice
        if row.sender != redaction.sender:
            return  # deleting someone else's message is up to the network's own moderators
        login = self._login_for(portal, redaction.sender)
        if not self._capable(portal, "redactions"):
            raise DeliveryError("the network doesn't support deleting messages")
        await self._with_retries(lambda: login.delete_message(portal.key.chat_id, row.remote_id))
        await self.ctx.db.messages.delete_remote(portal.key, row.remote_id)

    async def _report_failure(self, portal: PortalRow, room_id: str, event_id: str, reason: str) -> None:
        name = self.ctx.logins.connector(portal.key.network).display_name
        log.warning("Not delivered to %s: %s (event %s)", portal.key, reason, event_id)
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
