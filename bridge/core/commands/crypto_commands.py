"""Admin commands about the bridge's encryption: ``crypto status``."""

from __future__ import annotations

from .handlers import CommandContext

MAX_LISTED = 50
"""Identities listed one by one; with more, the unsigned ones come first and the rest
are counted (a bridge may have thousands of ghosts with devices)."""


async def cmd_crypto(ctx: CommandContext) -> None:
    if not ctx.args or ctx.args[0].lower() != "status":
        await ctx.reply(f"Usage: {ctx.prefix} crypto status")
        return
    crypto = ctx.bridge.matrix.crypto
    if crypto is None:
        await ctx.reply("End-to-bridge encryption is off (encryption.allow in the config).")
        return
    try:
        statuses = await crypto.trust_report()
    except Exception as e:  # the homeserver's answer is what this command is about
        await ctx.reply(f"Could not ask the homeserver for the bridge's keys: {e}")
        return
    bot = ctx.bridge.matrix.bot_mxid
    signed = sum(s.cross_signed for s in statuses)
    lines = [
        f"{crypto.status_line()}",
        f"Devices of the bridge's identities: {len(statuses)}, cross-signed: {signed}, "
        f"not cross-signed: {len(statuses) - signed}.",
    ]
    # The bot first, then the unsigned (what an admin must see), then the rest.
    ordered = sorted(statuses, key=lambda s: (s.user_id != bot, s.cross_signed, s.user_id))
    for status in ordered[:MAX_LISTED]:
        who = f"{status.user_id} (bot)" if status.user_id == bot else status.user_id
        if status.cross_signed:
            state = "cross-signed"
            if not status.keys_held:
                state += " (by an identity whose keys the bridge does not hold; " \
                         "a new device would get a new identity)"
        else:
            state = f"NOT cross-signed: {status.problem}"
        lines.append(f"  {who}, device {status.device_id}: {state}")
    if len(ordered) > MAX_LISTED:
        lines.append(f"  ...and {len(ordered) - MAX_LISTED} more, all cross-signed"
                     if all(s.cross_signed for s in ordered[MAX_LISTED:])
                     else f"  ...and {len(ordered) - MAX_LISTED} more")
    await ctx.reply("\n".join(lines))
