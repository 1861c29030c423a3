"""(b) Network -> Matrix through the bridge: throughput of a flood, and latency at a
fixed rate from the loopback post until a Matrix client sees the event.

Runs on any ``BridgeSide``: the plain bridge for (b), the encrypting one for (d)."""

from __future__ import annotations

import time
from typing import Any

from bridge.core.context import stable_id

from ..load import flood, send_at_rate
from ..matrix_http import bench_body
from ..side import BridgeSide
from ..stats import summarize_ms
from ..synapse_log import log_size, read_send_starts
from .common import FloodResult, last_seen


def bridge_txn_id(chat_id: str, message_id: str) -> str:
    """The transaction id the bridge sends a remote message with (see core/remote.py)."""
    return "hub" + stable_id("msg", "loopback", chat_id, message_id)


class _Poster:
    def __init__(self, side: BridgeSide, stage: str) -> None:
        self.chats, self.senders = side.world.chat_ids, side.world.senders
        self.stage = stage
        self.sent_at: dict[int, float] = {}
        self.posted: dict[int, tuple[str, str, float]] = {}

    async def post(self, i: int) -> None:
        chat = self.chats[i % len(self.chats)]
        sender = self.senders[(i // len(self.chats)) % len(self.senders)]
        wall = time.time()
        self.sent_at[i] = time.perf_counter()
        made = await sender.send_message(chat, bench_body(self.stage, i))
        self.posted[i] = (chat, made["id"], wall)


async def flood_round(side: BridgeSide, count: int, stage: str, timeout: float) -> FloodResult:
    """Post ``count`` messages on the network at once; time until all are in Matrix."""
    watcher, poster = side.watcher, _Poster(side, stage)
    cpu = side.cpu_meter()
    cpu.start()
    start = time.perf_counter()
    await flood(count, len(poster.chats), poster.post, timeout)
    await watcher.wait_for(lambda: watcher.count(stage) >= count, timeout, "the bridged flood")
    return FloodResult(count, last_seen(watcher, stage) - start, cpu.used())


async def latency(side: BridgeSide, count: int, rate: float, timeout: float,
                  stage: str = "blat") -> dict[str, Any]:
    """Post at ``rate``; latency until the Matrix client has the event, and the part
    added by the bridge (post -> Synapse begins handling the bridge's send)."""
    watcher, poster = side.watcher, _Poster(side, stage)
    log_offset = log_size(side.synapse_log)
    await send_at_rate(count, rate, poster.post, timeout)
    await watcher.wait_for(lambda: watcher.count(stage) >= count, timeout,
                           "the bridged rate-controlled messages")
    latencies = [watcher.seen[(stage, i)].at - poster.sent_at[i] for i in range(count)]
    starts = read_send_starts(side.synapse_log, log_offset)
    added = [
        starts[txn] - wall
        for chat, mid, wall in poster.posted.values()
        if (txn := bridge_txn_id(chat, mid)) in starts
    ]
    return {"end_to_end": summarize_ms(latencies), "bridge_added": summarize_ms(added)}
