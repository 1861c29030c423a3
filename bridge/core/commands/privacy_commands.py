"""Data rights: a user can see everything stored about them, and have it erased."""

from __future__ import annotations

import json
import time

from ..context import now_ms
from .handlers import CommandContext

CONFIRM_SECONDS = 300
_pending_forget: dict[str, float] = {}


async def cmd_export(ctx: CommandContext) -> None:
    if not ctx.is_management:
        await ctx.reply("Ask for your data in your room with the bot, not in a shared room.")
        return
    data = await ctx.bridge.db.privacy.export(ctx.sender)
    data["exported_at_ms"] = now_ms()
    data["note"] = (
        "Message bodies are never stored by this bridge; these are the ids that link "
        "your Matrix events to the messages on the networks."
    )
    payload = json.dumps(data, indent=2, ensure_ascii=False, default=str).encode("utf-8")
    mxc = await ctx.bridge.matrix.upload(payload, "application/json", "my-bridge-data.json")
    await ctx.bridge.matrix.send(
        ctx.room_id,
        ctx.bridge.matrix.bot_mxid,
        {
            "msgtype": "m.file",
            "body": "my-bridge-data.json",
            "url": mxc,
            "info": {"mimetype": "application/json", "size": len(payload)},
        },
    )
    await ctx.reply("That file holds everything this bridge stores about you.")


async def cmd_forget_me(ctx: CommandContext) -> None:
    if not ctx.is_management:
        await ctx.reply("Use this in your room with the bot.")
        return
    asked = _pending_forget.get(ctx.sender)
    if not (ctx.args and ctx.args[0] == "confirm" and asked and time.monotonic() - asked < CONFIRM_SECONDS):
        _pending_forget[ctx.sender] = time.monotonic()
        await ctx.reply(
            "This logs you out everywhere and erases everything the bridge stores about you "
            "(logins, message id mappings, the profiles of your own accounts). To go ahead, "
            f"send '{ctx.prefix} forget-me confirm' within {CONFIRM_SECONDS // 60} minutes."
        )
        return
    _pending_forget.pop(ctx.sender, None)
    ghosts = []
    for login in ctx.bridge.logins.of_user(ctx.sender):
        ghosts.append((str(login.record.network), str(login.login_id)))
        try:
            await ctx.bridge.logins.logout(login)
        except Exception:
            pass  # erased below either way
    for record in await ctx.bridge.db.logins.by_owner(ctx.sender):
        ghosts.append((str(record.network), str(record.login_id)))
    await ctx.reply("Erasing everything stored about you. Goodbye!")
    await ctx.bridge.db.privacy.forget(ctx.sender, ghosts)
