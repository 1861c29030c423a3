"""The bridge bot's commands. Each handler gets a :class:`CommandContext` and replies."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable

from ..connector import LoginComplete, LoginError, LoginPrompt, LoginState, Unsupported
from ..context import BridgeContext
from ..ids import PortalKey
from ..login_status import describe_state, user_logins
from ..logins import PendingLogin
from .parser import ParsedCommand

if TYPE_CHECKING:
    from ..remote import RemoteHandler

log = logging.getLogger("bridge.core.commands")


@dataclass
class CommandContext:
    bridge: BridgeContext
    remote: RemoteHandler
    sender: str
    room_id: str
    is_management: bool
    command: ParsedCommand
    event_id: str = ""
    replies: list[str] = field(default_factory=list)

    @property
    def args(self) -> tuple[str, ...]:
        return self.command.args

    async def reply(self, text: str) -> None:
        self.replies.append(text)
        await self.bridge.matrix.notice(self.room_id, text)

    async def reply_qr(self, data: str) -> None:
        import qrcode  # only needed by networks with QR login

        image = qrcode.make(data)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        png = buffer.getvalue()
        mxc = await self.bridge.matrix.upload(png, "image/png", "login-qr.png")
        content = {
            "msgtype": "m.image",
            "body": "login-qr.png",
            "url": mxc,
            "info": {"mimetype": "image/png", "size": len(png)},
        }
        await self.bridge.matrix.send(self.room_id, self.bridge.matrix.bot_mxid, content)

    @property
    def prefix(self) -> str:
        return self.bridge.config.bridge.command_prefix


Handler = Callable[[CommandContext], Awaitable[None]]


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    level: str
    usage: str
    help: str
    aliases: tuple[str, ...] = ()


async def cmd_ping(ctx: CommandContext) -> None:
    records = await user_logins(ctx.bridge, ctx.sender)
    pending = ctx.bridge.logins.pending.get(ctx.sender)
    crypto = ctx.bridge.matrix.crypto
    encryption = f"\n{crypto.status_line()}" if crypto is not None else ""
    if not records and pending is None:
        await ctx.reply(
            f"The bridge is running. You have no logins: '{ctx.prefix} login <network>'.{encryption}"
        )
        return
    lines = ["The bridge is running. Your logins:"]
    for record in records:
        connector = ctx.bridge.logins.connectors.get(record.network)
        name = connector.display_name if connector else f"{record.network} (switched off)"
        state = describe_state(record.state, record.error)
        lines.append(f"  {name}: {record.remote_name or record.login_id} - {state}")
    if pending is not None:
        lines.append(f"  {ctx.bridge.logins.connector(pending.network).display_name}: a login in progress")
    await ctx.reply("\n".join(lines) + encryption)


async def cmd_logins(ctx: CommandContext) -> None:
    await cmd_ping(ctx)


async def cmd_login(ctx: CommandContext) -> None:
    if not ctx.is_management:
        await ctx.reply("Log in from your private room with the bot, not in a shared room.")
        return
    if not ctx.args:
        await ctx.reply(f"Usage: {ctx.prefix} login <network> [method]")
        return
    try:
        connector = ctx.bridge.logins.connector(ctx.args[0].lower())
    except KeyError as e:
        await ctx.reply(f"Unknown network: {e.args[0]}")
        return
    flows = connector.login_flows()
    flow = flows[0]
    if len(ctx.args) > 1:
        matching = [f for f in flows if f.id == ctx.args[1].lower()]
        if not matching:
            names = ", ".join(f.id for f in flows)
            await ctx.reply(f"{connector.display_name} has no login method {ctx.args[1]!r} ({names})")
            return
        flow = matching[0]
    if (old := ctx.bridge.logins.pending.pop(ctx.sender, None)) is not None:
        await old.process.cancel()
    process = connector.start_login(ctx.sender, flow.id)
    ctx.bridge.logins.pending[ctx.sender] = PendingLogin(connector.network, process, ctx.room_id)
    try:
        step = await process.start()
    except LoginError as e:
        ctx.bridge.logins.pending.pop(ctx.sender, None)
        await ctx.reply(f"Login failed: {e}")
        return
    await show_login_step(ctx, step)


async def continue_login(ctx: CommandContext, text: str) -> None:
    """A message in the management room while a login is waiting for input."""
    pending = ctx.bridge.logins.pending[ctx.sender]
    if pending.secret_input and ctx.event_id:
        try:
            await ctx.bridge.matrix.redact(ctx.room_id, ctx.bridge.matrix.bot_mxid, ctx.event_id)
        except Exception:
            log.info("Could not redact a secret login answer in %s", ctx.room_id)
            await ctx.reply(
                "I can't remove your last message in this room: delete it yourself, "
                "since it holds a secret."
            )
    try:
        step = await pending.process.submit(text)
    except LoginError as e:
        await ctx.reply(f"{e} Try again, or '{ctx.prefix} cancel'.")
        return
    except Exception:
        log.exception("Login step failed")
        ctx.bridge.logins.pending.pop(ctx.sender, None)
        await ctx.reply("The login failed because of an internal error; start again.")
        return
    await show_login_step(ctx, step)


async def show_login_step(ctx: CommandContext, step: LoginPrompt | LoginComplete) -> None:
    """Show the next step of a login, or finish it."""
    if isinstance(step, LoginComplete):
        ctx.bridge.logins.pending.pop(ctx.sender, None)
        login = await ctx.bridge.logins.add(step.record)
        name = ctx.bridge.logins.connector(step.record.network).display_name
        await ctx.reply(
            step.message
            or f"Logged in to {name} as {login.record.remote_name or login.login_id}. "
            f"Chats appear as rooms when a message arrives; '{ctx.prefix} sync' brings them all now."
        )
        return
    if (pending := ctx.bridge.logins.pending.get(ctx.sender)) is not None:
        pending.secret_input = step.secret
    if step.qr_data:
        await ctx.reply_qr(step.qr_data)
    await ctx.reply(step.message)


async def cmd_cancel(ctx: CommandContext) -> None:
    pending = ctx.bridge.logins.pending.pop(ctx.sender, None)
    if pending is None:
        await ctx.reply("Nothing to cancel.")
        return
    await pending.process.cancel()
    await ctx.reply("Login cancelled.")


async def cmd_logout(ctx: CommandContext) -> None:
    if not ctx.args:
        await ctx.reply(f"Usage: {ctx.prefix} logout <network> [account]")
        return
    logins = ctx.bridge.logins.of_user(ctx.sender, ctx.args[0].lower())
    if len(ctx.args) > 1:
        logins = [l for l in logins if ctx.args[1] in (l.login_id, l.record.remote_name)]
    if not logins:
        await ctx.reply(f"You have no login on {ctx.args[0]!r} to log out of.")
        return
    if len(logins) > 1:
        names = ", ".join(l.login_id for l in logins)
        await ctx.reply(f"You have several logins there; name one: {names}")
        return
    await ctx.bridge.logins.logout(logins[0])
    await ctx.reply(f"Logged out of {ctx.args[0]} ({logins[0].record.remote_name or logins[0].login_id}).")


async def cmd_sync(ctx: CommandContext) -> None:
    logins = ctx.bridge.logins.of_user(ctx.sender, ctx.args[0].lower() if ctx.args else None)
    if not logins:
        await ctx.reply("You have no logins to sync.")
        return
    created = 0
    for login in logins:
        if login.record.state != LoginState.CONNECTED:
            continue
        try:
            chats = await login.list_chats()
        except Unsupported:
            continue
        for chat in chats:
            key = PortalKey(login.record.network, chat.chat_id)

            async def ensure(login=login, key=key) -> None:
                nonlocal created
                portal = await ctx.bridge.db.portals.get(key)
                if portal is None or portal.room_id is None:
                    await ctx.remote.create_portal(login, key)
                    created += 1

            await ctx.bridge.queues.submit(key, ensure)
    await ctx.reply(f"Synced: {created} new portal room(s).")
