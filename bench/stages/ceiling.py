"""(a) The ceiling: the same messages sent straight to Synapse by a bare appservice
client as its ghosts, with no bridge in between, in the same shape as stage (b): the
same rooms, senders and content, one sequential sender per room."""

from __future__ import annotations

import time
from typing import Any

from ..load import flood, send_at_rate
from ..matrix_http import bench_body
from ..stack import BenchStack, ceiling_content
from ..stats import summarize_ms
from ..synapse_log import log_size, read_send_starts
from .common import FloodResult, last_seen


class _Sender:
    def __init__(self, stack: BenchStack, stage: str) -> None:
        assert stack.ceiling_client
        self.client = stack.ceiling_client
        self.rooms, self.ghosts = stack.ceiling_rooms, stack.ceiling_ghosts
        self.stage = stage
        self.sent_at: dict[int, float] = {}
        self.txns: dict[int, tuple[str, float]] = {}

    async def send(self, i: int) -> None:
        room = self.rooms[i % len(self.rooms)]
        ghost = self.ghosts[(i // len(self.rooms)) % len(self.ghosts)]
        txn = f"ceil{self.stage}{i}"
        wall = time.time()
        self.sent_at[i] = time.perf_counter()
        self.txns[i] = (txn, wall)
        await self.client.send_message(room, ceiling_content(bench_body(self.stage, i)),
                                       txn_id=txn, user_id=ghost, ts=int(wall * 1000))


async def flood_round(stack: BenchStack, count: int, stage: str, timeout: float) -> FloodResult:
    """Send ``count`` messages as fast as Synapse takes them; time until all are synced."""
    assert stack.sync
    sync, sender = stack.sync, _Sender(stack, stage)
    cpu = stack.cpu_meter()
    cpu.start()
    start = time.perf_counter()
    await flood(count, len(sender.rooms), sender.send, timeout)
    await sync.wait_for(lambda: sync.count(stage) >= count, timeout, "the ceiling flood")
    return FloodResult(count, last_seen(sync, stage) - start, cpu.used())


async def latency(stack: BenchStack, count: int, rate: float, timeout: float) -> dict[str, Any]:
    """Send at ``rate``; latency from the send until the Matrix client has the event."""
    assert stack.sync and stack.synapse
    sync, sender, stage = stack.sync, _Sender(stack, "alat"), "alat"
    log_offset = log_size(stack.synapse.log_path)
    await send_at_rate(count, rate, sender.send, timeout)
    await sync.wait_for(lambda: sync.count(stage) >= count, timeout,
                        "the ceiling's rate-controlled messages")
    latencies = [sync.seen[(stage, i)].at - sender.sent_at[i] for i in range(count)]
    starts = read_send_starts(stack.synapse.log_path, log_offset)
    to_synapse = [starts[txn] - wall for txn, wall in sender.txns.values() if txn in starts]
    return {
        "end_to_end": summarize_ms(latencies),
        "client_to_synapse": summarize_ms(to_synapse),
    }
