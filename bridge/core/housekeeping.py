"""Periodic clean-up: id mappings expire, so the bridge forgets old conversations."""

from __future__ import annotations

import asyncio
import logging

from .context import BridgeContext, now_ms

log = logging.getLogger("bridge.core.housekeeping")

DAY_MS = 24 * 60 * 60 * 1000
TRANSACTION_MEMORY_MS = 7 * DAY_MS
"""How long handled transaction ids are kept (the homeserver retries within minutes)."""


async def expire_once(ctx: BridgeContext) -> int:
    """Delete mappings older than ``bridge.message_retention_days``; returns how many."""
    cutoff = now_ms() - ctx.config.bridge.message_retention_days * DAY_MS
    removed = await ctx.db.messages.expire(cutoff)
    await ctx.db.reactions.expire(cutoff)
    await ctx.db.transactions.expire(now_ms() - TRANSACTION_MEMORY_MS)
    if removed:
        log.info("Forgot %d message id mappings older than %d days",
                 removed, ctx.config.bridge.message_retention_days)
    return removed


async def run_forever(ctx: BridgeContext, interval: float = 3600) -> None:
    while True:
        try:
            await expire_once(ctx)
        except Exception:
            log.exception("Housekeeping failed; trying again later")
        await asyncio.sleep(interval)
