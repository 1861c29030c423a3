"""(c) Matrix -> network: latency from the Matrix client's send until the loopback
network holds the message, the bridge's time to answer a transaction (Synapse sends one
at a time, so this caps the direction's throughput), and the throughput of a flood.

Runs on any ``BridgeSide``: the plain bridge for (c), the encrypting one for (d)."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from ..load import flood, send_at_rate
from ..matrix_http import bench_body
from ..side import BridgeSide
from ..stats import summarize_ms
from ..txn_proxy import TxnProxy, TxnTiming
from .common import FloodResult


class _Sender:
    def __init__(self, side: BridgeSide, stage: str) -> None:
        self.send_text, self.rooms, self.stage = side.send_text, side.portal_rooms, stage
        self.sent_at: dict[int, float] = {}
        self.returned_at: dict[int, float] = {}
        self.event_ids: dict[str, int] = {}

    async def send(self, i: int) -> None:
        self.sent_at[i] = time.perf_counter()
        event_id = await self.send_text(self.rooms[i % len(self.rooms)], bench_body(self.stage, i))
        self.returned_at[i] = time.perf_counter()
        self.event_ids[event_id] = i


def stage_transactions(proxy: TxnProxy, since: float, event_ids: Collection[str]
                       ) -> list[TxnTiming]:
    """Transactions since ``since`` that carried one of ``event_ids``."""
    return [t for t in proxy.since(since) if any(e in event_ids for e in t.event_ids)]


def transaction_summary(txns: list[TxnTiming]) -> dict[str, Any]:
    return {
        **summarize_ms([t.answer_time for t in txns]),
        "events_per_transaction": (round(sum(t.events for t in txns) / len(txns), 2)
                                   if txns else None),
    }


async def latency(side: BridgeSide, count: int, rate: float, timeout: float,
                  stage: str = "clat") -> dict[str, Any]:
    observer, sender = side.observer, _Sender(side, stage)
    window_start = time.perf_counter()
    await send_at_rate(count, rate, sender.send, timeout)
    await observer.wait_for(lambda: observer.count(stage) >= count, timeout,
                            "the Matrix messages on the loopback network")
    latencies = [observer.seen[(stage, i)] - sender.sent_at[i] for i in range(count)]
    txns = stage_transactions(side.proxy, window_start, sender.event_ids)
    arrival = {sender.event_ids[e]: t.arrived for t in txns for e in t.event_ids
               if e in sender.event_ids}
    added = [observer.seen[(stage, i)] - at for i, at in arrival.items()]
    return {
        "end_to_end": summarize_ms(latencies),
        # The client's send request (encrypting it first in an encrypted room), until
        # the homeserver answered it: not the bridge's part.
        "client_send": summarize_ms([sender.returned_at[i] - t
                                     for i, t in sender.sent_at.items()]),
        "bridge_added": summarize_ms(added),
        "transaction_answer": transaction_summary(txns),
        "proxy_overhead": summarize_ms([t.forwarded - t.arrived for t in txns]),
    }


async def flood_round(side: BridgeSide, count: int, stage: str, timeout: float) -> FloodResult:
    observer, sender = side.observer, _Sender(side, stage)
    cpu = side.cpu_meter()
    cpu.start()
    start = time.perf_counter()
    await flood(count, len(sender.rooms), sender.send, timeout)
    await observer.wait_for(lambda: observer.count(stage) >= count, timeout,
                            "the Matrix flood on the loopback network")
    last = max(at for (name, _), at in observer.seen.items() if name == stage)
    return FloodResult(count, last - start, cpu.used(), set(sender.event_ids))


def flood_transactions(side: BridgeSide, since: float, rounds: list[FloodResult]
                       ) -> dict[str, Any]:
    """Transaction answer times during the floods (batches grow when the bridge is slow)."""
    sent = set().union(*(r.event_ids for r in rounds))
    return transaction_summary(stage_transactions(side.proxy, since, sent))
