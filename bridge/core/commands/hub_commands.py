"""Hub room commands: link chats to a room, relay privately, and who is here."""

from __future__ import annotations

import logging

from ...db.portals import PortalRow
from ..connector import LoginState, Unsupported
from ..context import now_ms
from ..hub import matrix_subject
from ..ids import PortalKey, RemoteChatID
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


def _usage(ctx: CommandContext, name: str) -> str:
    return f"Usage: {ctx.prefix} {name} <network> <chat id>"


async def cmd_link(ctx: CommandContext) -> None:
    if len(ctx.args) != 2:
        await ctx.reply(_usage(ctx, "link"))
        return
    if not await _require_room_moderator(ctx):
        return
    network, chat_id = ctx.args[0].lower(), RemoteChatID(ctx.args[1])
    try:
        connector = ctx.bridge.logins.connector(network)
    except KeyError as e:
        await ctx.reply(f"Unknown network: {e.args[0]}")
        return
    logins = [l for l in ctx.bridge.logins.of_user(ctx.sender, network)
              if l.record.state == LoginState.CONNECTED]
    if not logins:
        await ctx.reply(f"Log in to {connector.display_name} first: '{ctx.prefix} login {network}' "
                        "in your room with the bot.")
        return
    key = PortalKey(connector.network, chat_id)
    for login in logins:
        try:
            info = await login.get_chat_info(chat_id)
            break
        except Exception:
            continue
    else:
        await ctx.reply(f"None of your {connector.display_name} logins can see the chat {chat_id}.")
        return

    async def link() -> None:
        existing = await ctx.bridge.db.portals.get(key)
        if existing and existing.room_id and existing.room_id != ctx.room_id:
            if existing.relay:
                await ctx.reply("That chat is already linked to another room; unlink it there first.")
                return
            # It had a room of its own (a plain portal): it moves here, and its old room
            # is told where it went.
            await ctx.bridge.matrix.notice(
                existing.room_id, "This chat is now bridged into another room; this room "
                "no longer receives its messages.",
            )
        portal = PortalRow(
            key=key, room_id=ctx.room_id, login_id=login.login_id, name=info.name,
            topic=info.topic, is_direct=info.is_direct, created_at=now_ms(), relay=True,
        )
        await ctx.bridge.db.portals.put(portal)
        for member in info.members:
            if member != login.login_id:
                ghost = await ctx.bridge.ghosts.ensure(login, member)
                await ctx.bridge.matrix.join(ctx.room_id, ghost)
        await ctx.bridge.hub.announce_link(portal, login)
        await ctx.reply(f"Linked {connector.display_name} chat '{info.name or chat_id}' to this room. "
                        "Messages are relayed with display names only.")

    await ctx.bridge.queues.submit(key, link)


async def cmd_unlink(ctx: CommandContext) -> None:
    if len(ctx.args) != 2:
        await ctx.reply(_usage(ctx, "unlink"))
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
