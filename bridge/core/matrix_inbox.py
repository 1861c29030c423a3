"""Everything the homeserver pushes: commands for the bot, and events for the portals.

A transaction is answered as soon as its events are recorded in the database (the
pending-event queue), so the homeserver is never held up by a slow network. A worker
handles recorded events in order and deletes each once it is fully handled; after a crash
the leftovers are handled at start-up. Handling twice is harmless: every step checks the
id mappings first, and network sends carry a stable transaction id.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from ..db.pending import PendingEvent
from ..matrix import content as mx
from .commands.handlers import CommandContext, continue_login
from .commands.registry import COMMANDS_BY_NAME, cmd_help
from .commands.parser import ParsedCommand, parse_command
from .context import BridgeContext, now_ms
from .ids import RoomID, UserID
from .matrix_events import MatrixChatChange
from .outgoing import OutgoingHandler
from .remote import RemoteHandler

log = logging.getLogger("bridge.core.inbox")

RECENT_EVENTS = 50_000


class MatrixInbox:
    def __init__(self, ctx: BridgeContext, remote: RemoteHandler, outgoing: OutgoingHandler) -> None:
        self.ctx = ctx
        self.remote = remote
        self.outgoing = outgoing
        self._typing: dict[str, set[str]] = {}
        self._queue: asyncio.Queue[PendingEvent] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._finishing: set[asyncio.Task[None]] = set()
        # Event ids accepted lately: a homeserver may send an event again in another
        # transaction (e.g. after it restarted), and a command must not run twice.
        self._recent: OrderedDict[str, None] = OrderedDict()

    async def start(self) -> None:
        """Queue what a previous run accepted but did not finish, then start the worker."""
        leftovers = await self.ctx.db.pending.all()
        if leftovers:
            log.info("Handling %d Matrix events accepted before the last stop", len(leftovers))
        for pending in leftovers:
            self._queue.put_nowait(pending)
        self._worker = asyncio.create_task(self._work(), name="matrix-inbox")

    async def stop(self, timeout: float) -> None:
        """Finish what is queued (up to ``timeout``); the rest stays recorded for next time."""
        if self._worker is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
            if self._finishing:
                await asyncio.wait(self._finishing, timeout=timeout)
        except asyncio.TimeoutError:
            log.warning("Stopping with Matrix events still pending; they are handled next start")
        self._worker.cancel()
        for task in self._finishing:
            task.cancel()
        self._worker = None

    async def accept_transaction(self, txn_id: str, body: dict[str, Any]) -> None:
        """Record the transaction's events durably; the worker handles them."""
        if self.ctx.matrix.crypto is not None:
            # Room keys first: the events below may need them.
            await self.ctx.matrix.crypto.handle_transaction_extras(body)
        events = []
        for event in body.get("events", []):
            if not _well_formed(event):
                log.warning("Ignoring a malformed event in transaction %s", txn_id)
            elif event["event_id"] not in self._recent:
                events.append(event)
        for pending in await self.ctx.db.pending.accept(txn_id, events, now_ms()):
            self._queue.put_nowait(pending)
            self._recent[pending.event["event_id"]] = None
        while len(self._recent) > RECENT_EVENTS:
            self._recent.popitem(last=False)
        ephemeral = body.get("ephemeral", []) or body.get("de.sorunome.msc2409.ephemeral", [])
        for event in ephemeral:
            if isinstance(event, dict):
                # Typing and receipts are fleeting: handled right away, never recorded.
                self._spawn(self._ephemeral(event))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _ephemeral(self, event: dict[str, Any]) -> None:
        try:
            await self.handle_ephemeral(event)
        except Exception:
            log.exception("Failed to handle ephemeral %s", event.get("type"))

    async def _work(self) -> None:
        while True:
            pending = await self._queue.get()
            try:
                futures = await self.handle_event(pending.event)
            except Exception:
                log.exception(
                    "Failed to handle %s %s", pending.event.get("type"), pending.event.get("event_id")
                )
                futures = []
            self._spawn(self._finish(pending, futures))
            self._queue.task_done()

    async def _finish(self, pending: PendingEvent, futures: list[asyncio.Future[None]]) -> None:
        if futures:
            await asyncio.gather(*futures, return_exceptions=True)
        await self.ctx.db.pending.done(pending.seq)

    async def handle_event(self, event: dict[str, Any]) -> list[asyncio.Future[None]]:
        kind = event["type"]
        if "state_key" in event:
            await self._update_state(event)
            if (change := self._chat_change(event)) is not None:
                return await self.outgoing.on_chat_change(change)
        if kind == "m.room.member":
            await self._on_member(event)
            return []
        if event.get("sender") == self.ctx.matrix.bot_mxid:
            return []
        if kind == "m.room.encrypted":
            return await self._on_encrypted(event)
        if await self._refused_unencrypted(event):
            return []
        if kind in ("m.room.message", "m.sticker"):
            return await self._on_message(event)
        if kind == "m.reaction":
            reaction = mx.parse_reaction(event)
            return await self.outgoing.on_reaction(reaction) if reaction else []
        if kind == "m.room.redaction":
            redaction = mx.parse_redaction(event)
            return await self.outgoing.on_redaction(redaction) if redaction else []
        return []

    def _chat_change(self, event: dict[str, Any]) -> MatrixChatChange | None:
        """A Matrix user's change of a room's name, topic, avatar or ghost members, if it is one."""
        sender, content = event["sender"], event.get("content") or {}
        if sender == self.ctx.matrix.bot_mxid or self.ctx.ghost_ids.parse(sender) is not None:
            return None  # the bridge's own changes, mirrored from the network
        base = {"room_id": RoomID(event["room_id"]), "event_id": event["event_id"], "sender": UserID(sender)}
        kind, state_key = event["type"], event.get("state_key")
        if kind == "m.room.name" and state_key == "" and isinstance(content.get("name"), str):
            return MatrixChatChange(**base, name=content["name"])
        if kind == "m.room.topic" and state_key == "" and isinstance(content.get("topic"), str):
            return MatrixChatChange(**base, topic=content["topic"])
        if kind == "m.room.avatar" and state_key == "" and isinstance(content.get("url"), str):
            info = content.get("info") if isinstance(content.get("info"), dict) else {}
            return MatrixChatChange(**base, avatar_mxc=content["url"], avatar_mime=str(info.get("mimetype") or "image/png"))
        if kind == "m.room.member" and isinstance(state_key, str) and self.ctx.ghost_ids.parse(state_key):
            membership = content.get("membership")
            if membership == "invite":
                return MatrixChatChange(**base, invited=UserID(state_key))
            if membership in ("leave", "ban") and state_key != sender:
                return MatrixChatChange(**base, removed=UserID(state_key))
        return None

    async def _update_state(self, event: dict[str, Any]) -> None:
        await self.ctx.matrix.cache_state(event)

    # Membership: the bot accepts invites from people allowed to use the bridge ----------

    async def _on_member(self, event: dict[str, Any]) -> None:
        if self.ctx.matrix.crypto is not None:
            await self.ctx.matrix.crypto.handle_member(event)
        content = event.get("content") or {}
        if event.get("state_key") != self.ctx.matrix.bot_mxid or content.get("membership") != "invite":
            return
        room_id, inviter = event["room_id"], event["sender"]
        if not self.ctx.permission_at_least(inviter, "relay"):
            log.info("Rejecting an invite from %s, who may not use the bridge", inviter)
            await self.ctx.matrix.leave(room_id, self.ctx.matrix.bot_mxid)
            return
        await self.ctx.matrix.join(room_id, self.ctx.matrix.bot_mxid)
        if content.get("is_direct") and await self._claim_management_room(inviter, room_id):
            await self.ctx.matrix.notice(
                room_id,
                "Hello! This is your room with the bridge bot. Send 'help' to see what I can do. "
                "Chats you bridge are visible to this homeserver's admin; message bodies are "
                "never stored by the bridge.",
            )

    async def _claim_management_room(self, user_id: str, room_id: str) -> bool:
        await self.ctx.db.users.ensure(UserID(user_id), now_ms())
        current = await self.ctx.db.users.get_management_room(UserID(user_id))
        if current and current != room_id and await self.ctx.matrix.is_member(current, user_id):
            return False
        await self.ctx.db.users.set_management_room(UserID(user_id), RoomID(room_id))
        return True

    async def tell_user(self, user_id: str, text: str) -> None:
        room = await self.ctx.db.users.get_management_room(UserID(user_id))
        if room:
            await self.ctx.matrix.notice(room, text)
        else:
            log.warning("No management room to tell %s: %s", user_id, text)

    # Messages: commands first, then portals ------------------------------------------------

    async def _on_message(self, event: dict[str, Any]) -> list[asyncio.Future[None]]:
        room_id, sender = event["room_id"], event["sender"]
        if self.ctx.ghost_ids.parse(sender) is None and await self._maybe_command(event):
            return []
        try:
            msg = mx.parse_message(event)
        except mx.ContentError as e:
            if await self.ctx.db.portals.by_room(room_id):
                await self.ctx.matrix.notice(
                    room_id, f"Your message was not bridged: {e}", reply_to=event["event_id"]
                )
            return []
        return await self.outgoing.on_message(msg)

    async def _maybe_command(self, event: dict[str, Any]) -> bool:
        """Handle the event as a command if it is one; True when it was."""
        content = event.get("content") or {}
        body = content.get("body")
        if not isinstance(body, str) or content.get("msgtype") not in ("m.text", "m.notice"):
            return False
        room_id, sender = event["room_id"], event["sender"]
        is_management = await self.ctx.db.users.is_management_room(RoomID(room_id)) and (
            await self.ctx.db.users.get_management_room(UserID(sender)) == room_id
        )
        prefix = self.ctx.config.bridge.command_prefix
        pending = self.ctx.logins.pending.get(UserID(sender))
        command = parse_command(body, prefix, prefix_optional=is_management)
        if command is None:
            return False
        ctx = CommandContext(
            bridge=self.ctx,
            remote=self.remote,
            sender=sender,
            room_id=room_id,
            is_management=is_management,
            command=command,
            event_id=event["event_id"],
        )
        if pending is not None and is_management and pending.room_id == room_id:
            explicit = body.strip().startswith(prefix) and command.name in COMMANDS_BY_NAME
            if not explicit and command.name not in ("cancel", "help"):
                await continue_login(ctx, body.strip())
                return True
        spec = COMMANDS_BY_NAME.get(command.name)
        if spec is None:
            await ctx.reply(f"Unknown command '{command.name}'.")
            await cmd_help(ctx)
            return True
        if not self.ctx.permission_at_least(sender, spec.level):
            await ctx.reply(f"You don't have permission to use '{spec.name}'.")
            return True
        try:
            await spec.handler(ctx)
        except Exception as e:
            log.exception("Command %s failed", command.name)
            await ctx.reply(f"The command failed: {type(e).__name__}: {e}")
        return True

    async def _on_encrypted(self, event: dict[str, Any]) -> list[asyncio.Future[None]]:
        """Decrypt and handle like plaintext; an event still without its key comes back later."""
        room_id = event["room_id"]
        crypto = self.ctx.matrix.crypto
        if crypto is not None:
            decrypted = await crypto.decrypt(event)
            return await self.handle_event(decrypted) if decrypted is not None else []
        if await self.ctx.db.portals.by_room(room_id) or await self.ctx.db.users.is_management_room(room_id):
            self.ctx.metrics.decryption_failed("no_crypto")
            await self.ctx.matrix.notice(
                room_id,
                "This bridge doesn't take part in encrypted rooms, so your message was not bridged.",
                reply_to=event["event_id"],
            )
        return []

    async def _refused_unencrypted(self, event: dict[str, Any]) -> bool:
        """With ``encryption.require``, events in unencrypted portal rooms are not bridged."""
        crypto = self.ctx.matrix.crypto
        kinds = ("m.room.message", "m.sticker", "m.reaction", "m.room.redaction")
        if crypto is None or not crypto.required or event["type"] not in kinds:
            return False
        if self.ctx.ghost_ids.parse(event["sender"]) is not None:
            return False
        room_id = event["room_id"]
        if not await self.ctx.db.portals.by_room(room_id):
            return False  # e.g. the management room: commands still work
        reason = await crypto.refusal(room_id)
        if reason is None:
            return False
        log.info("Not bridging %s: %s is not encrypted", event["event_id"], room_id)
        await self.ctx.matrix.notice(room_id, reason, reply_to=event["event_id"])
        return True

    # Ephemeral: typing and read receipts -------------------------------------------------

    async def handle_ephemeral(self, event: dict[str, Any]) -> None:
        room_id = event.get("room_id")
        content = event.get("content")
        if not isinstance(room_id, str) or not isinstance(content, dict):
            return
        if event.get("type") == "m.typing":
            now = {u for u in content.get("user_ids", []) if isinstance(u, str)}
            before = self._typing.get(room_id, set())
            self._typing[room_id] = now
            for user in now ^ before:
                if self.ctx.ghost_ids.parse(user) is None:
                    await self.outgoing.on_typing(room_id, user, user in now)
        elif event.get("type") == "m.receipt":
            for event_id, receipts in content.items():
                reads = receipts.get("m.read") if isinstance(receipts, dict) else None
                if not isinstance(reads, dict):
                    continue
                for user in reads:
                    if self.ctx.ghost_ids.parse(user) is None and user != self.ctx.matrix.bot_mxid:
                        await self.outgoing.on_read(room_id, user, event_id)


def _well_formed(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("room_id"), str)
        and isinstance(event.get("sender"), str)
        and isinstance(event.get("event_id"), str)
    )


__all__ = ["MatrixInbox", "ParsedCommand"]
