"""Every bot command, in the order ``help`` lists them."""

from __future__ import annotations

from . import crypto_commands as crypto
from . import handlers as base
from . import hub_commands as hub
from . import privacy_commands as privacy
from .handlers import Command, CommandContext


async def cmd_help(ctx: CommandContext) -> None:
    lines = [
        f"Commands (prefix '{ctx.prefix}', optional in this room):"
        if ctx.is_management
        else f"Commands (start each with '{ctx.prefix}'):"
    ]
    for command in ALL_COMMANDS:
        if ctx.bridge.permission_at_least(ctx.sender, command.level):
            lines.append(f"  {command.usage} - {command.help}")
    networks = ", ".join(sorted(ctx.bridge.logins.connectors)) or "none"
    lines.append(f"Networks on this bridge: {networks}")
    await ctx.reply("\n".join(lines))


ALL_COMMANDS: tuple[Command, ...] = (
    Command("help", cmd_help, "relay", "help", "show this help"),
    Command("ping", base.cmd_ping, "relay", "ping", "check the bridge and show your logins",
            ("status",)),
    Command("logins", base.cmd_logins, "user", "logins", "list your logins and their state"),
    Command("login", base.cmd_login, "user", "login <network> [method]", "log in to a network"),
    Command("cancel", base.cmd_cancel, "user", "cancel", "cancel a login in progress"),
    Command("logout", base.cmd_logout, "user", "logout <network> [account]",
            "log out of a network"),
    Command("sync", base.cmd_sync, "user", "sync [network]", "create rooms for all your chats now"),
    Command("link", hub.cmd_link, "user", "link <network> <chat id>",
            "link a chat you can reach to this room (hub rooms)"),
    Command("unlink", hub.cmd_unlink, "user", "unlink <network> <chat id>",
            "stop bridging a linked chat into this room"),
    Command("links", hub.cmd_links, "relay", "links", "list the chats linked to this room"),
    Command("create-group", hub.cmd_create_group, "user", "create-group <title>",
            "create a group on each of your networks and link them all here"),
    Command("who", hub.cmd_who, "relay", "who", "who is in the linked chats, by display name"),
    Command("optout", hub.cmd_optout, "relay", "optout",
            "stop your messages being relayed to other networks"),
    Command("optin", hub.cmd_optin, "relay", "optin", "undo optout"),
    Command("export", privacy.cmd_export, "relay", "export",
            "get everything the bridge stores about you, as JSON"),
    Command("forget-me", privacy.cmd_forget_me, "relay", "forget-me",
            "log out everywhere and erase your data (asks to confirm)"),
    Command("crypto", crypto.cmd_crypto, "admin", "crypto status",
            "show whether each of the bridge's devices is cross-signed"),
)

COMMANDS_BY_NAME: dict[str, Command] = {
    name: command for command in ALL_COMMANDS for name in (command.name, *command.aliases)
}
