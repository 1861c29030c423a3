"""Hub room commands: link chats to a room, relay privately, and who is here."""

from __future__ import annotations

import logging

from ...db.portals import PortalRow
from ..connector import LoginState, Unsupported
from ..context import now_ms
from ..hub import matrix_subject
from ..ids import PortalKey, RemoteChatID
from ..linking import LinkError, link_chat
from .handlers import CommandContext

log = logging.getLogger("bridge.core.commands.hub")


async def _require_room_moderator(ctx: CommandContext) -> bool:
    if ctx.is_management:
        await ctx.reply("Use this in the room you want to link, not in your room with the bot.")
        return False
    try:
        allowed = await ctx.bridge.matrix.can_moderate(ctx.room_id, ctx.sender)
    except Exception:
        log.warning("Could not read the power levels of %s", ctx.room_id, exc_info=True)
        allowed = False
    if not allowed:
        await ctx.reply("Only the room's moderators can change which chats are linked to it.")
    return allowed


async def _serves(ctx: CommandContext, network: str) -> bool:
    """Whether this bridge serves ``network``. In a shared room another bridge process may
    serve it (scale-out), so an unknown network is answered only in the management room."""
    if network in ctx.bridge.logins.connectors:
        return True
    if ctx.is_management:
        await ctx.reply(f"Unknown network: {network}")
    else:
        log.debug("Ignoring a command for %s, which another bridge may serve", network)
    return False


def _usage(ctx: CommandContext, name: str) -> str:
    return f"Usage: {ctx.prefix} {name} <network> <chat id>"


async def cmd_link(ctx: CommandContext) -> None:
    if len(ctx.args) != 2:
        await ctx.reply(_usage(ctx, "link"))
        return
    network, chat_id = ctx.args[0].lower(), ctx.args[1]
    if not await _serves(ctx, network):
        return
    if not await _require_room_moderator(ctx):
        return
    try:
        result = await link_chat(ctx.bridge, ctx.sender, network, chat_id, ctx.room_id, room_checked=True)
    except LinkError as e:
        await ctx.reply(e.reason)
        return
    if not result.created:
        await ctx.reply("That chat is already linked to this room.")
        return
    await ctx.reply(f"Linked {result.network_name} chat '{result.info.name or chat_id}' to this room. "
                    "Messages are relayed with display names only.")


async def cmd_unlink(ctx: CommandContext) -> None:
    if len(ctx.args) != 2:
        await ctx.reply(_usage(ctx, "unlink"))
        return
    if not await _serves(ctx, ctx.args[0].lower()):
        return
    if not await _require_room_moderator(ctx):
        return
    key = PortalKey(ctx.args[0].lower(), RemoteChatID(ctx.args[1]))
    portal = await ctx.bridge.db.portals.get(key)
    if portal is None or portal.room_id != ctx.room_id:
        await ctx.reply("That chat is not linked to this room.")
        return

    async def unlink() -> None:
        login = ctx.bridge.logins.get(key.network, portal.login_id) if portal.login_id else None
        if login is not None and portal.relay and ctx.bridge.config.bridge.relay.notices:
            try:
                await ctx.bridge.hub.post_to_chat(portal, login, "This chat is no longer bridged.")
            except Exception:
                log.warning("Could not tell %s it was unlinked", key, exc_info=True)
        await ctx.bridge.db.portals.delete(key)
        await ctx.reply(f"Unlinked {key.network} chat {key.chat_id}.")

    await ctx.bridge.queues.submit(key, unlink)


async def cmd_links(ctx: CommandContext) -> None:
    portals = await ctx.bridge.db.portals.by_room(ctx.room_id)
    if not portals:
        await ctx.reply("No chats are linked to this room.")
        return
    lines = ["Chats linked to this room:"]
    for p in portals:
        label = ctx.bridge.logins.connector(p.key.network).display_name
        lines.append(f"  {label}: {p.name or p.key.chat_id} ({p.key.network} {p.key.chat_id})")
    await ctx.reply("\n".join(lines))


async def cmd_create_group(ctx: CommandContext) -> None:
    title = ctx.command.raw_args.strip()
    if not title:
        await ctx.reply(f"Usage: {ctx.prefix} create-group <title>")
        return
    if not await _require_room_moderator(ctx):
        return
    created = []
    for login in ctx.bridge.logins.of_user(ctx.sender):
        connector = ctx.bridge.logins.connector(login.record.network)
        if not connector.capabilities.group_management or login.record.state != LoginState.CONNECTED:
            continue
        try:
            chat_id, invite = await login.create_group(title, [])
        except Unsupported:
            continue
        except Exception as e:
            await ctx.reply(f"Could not create the group on {connector.display_name}: {e}")
            continue
        key = PortalKey(login.record.network, chat_id)
        portal = PortalRow(key=key, room_id=ctx.room_id, login_id=login.login_id, name=title,
                           created_at=now_ms(), relay=True)

        async def store(portal: PortalRow = portal) -> None:
            await ctx.bridge.db.portals.put(portal)

        await ctx.bridge.queues.submit(key, store)
        created.append(f"  {connector.display_name}: " + (f"join with {invite}" if invite else f"chat {chat_id}"))
    if not created:
        await ctx.reply("None of your logins can create groups. Log in to a network first.")
        return
    await ctx.reply(f"Created '{title}' and linked it to this room:\n" + "\n".join(created))


async def cmd_who(ctx: CommandContext) -> None:
    if not await ctx.bridge.db.portals.by_room(ctx.room_id):
        await ctx.reply("No chats are linked to this room.")
        return
    await ctx.reply("Who is here, by display name:\n" + await ctx.bridge.hub.who(ctx.room_id))


async def cmd_optout(ctx: CommandContext) -> None:
    await ctx.bridge.db.privacy.opt_out(matrix_subject(ctx.sender), now_ms())
    await ctx.reply("Done: your messages are no longer relayed to linked chats on other "
                    f"networks. '{ctx.prefix} optin' undoes this.")


async def cmd_optin(ctx: CommandContext) -> None:
    await ctx.bridge.db.privacy.opt_in(matrix_subject(ctx.sender))
    await ctx.reply("Done: your messages are relayed to linked chats again.")
