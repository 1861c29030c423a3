"""(c) Matrix -> network: latency from the Matrix client's send until the loopback
network holds the message, the bridge's time to answer a transaction (Synapse sends one
at a time, so this caps the direction's throughput), and the throughput of a flood."""

from __future__ import annotations

import time
from typing import Any

from ..load import flood, send_at_rate
from ..matrix_http import bench_body
from ..stack import BenchStack
from ..stats import summarize_ms
from ..txn_proxy import TxnTiming
from .common import FloodResult


class _Sender:
    def __init__(self, stack: BenchStack, stage: str) -> None:
        assert stack.user
        self.user, self.rooms, self.stage = stack.user, stack.portal_rooms, stage
        self.sent_at: dict[int, float] = {}

    async def send(self, i: int) -> None:
        self.sent_at[i] = time.perf_counter()
        content = {"msgtype": "m.text", "body": bench_body(self.stage, i)}
        await self.user.send_message(self.rooms[i % len(self.rooms)], content)


def _stage_txns(stack: BenchStack, since: float, stage: str) -> list[TxnTiming]:
    assert stack.proxy
    return [t for t in stack.proxy.since(since) if any(k[0] == stage for k in t.bench_keys)]


def _txn_summary(txns: list[TxnTiming]) -> dict[str, Any]:
    return {
        **summarize_ms([t.answer_time for t in txns]),
        "events_per_transaction": (round(sum(t.events for t in txns) / len(txns), 2)
                                   if txns else None),
    }


async def latency(stack: BenchStack, count: int, rate: float, timeout: float,
                  stage: str = "clat") -> dict[str, Any]:
    assert stack.observer
    observer, sender = stack.observer, _Sender(stack, stage)
    window_start = time.perf_counter()
    await send_at_rate(count, rate, sender.send, timeout)
    await observer.wait_for(lambda: observer.count(stage) >= count, timeout,
                            "the Matrix messages on the loopback network")
    latencies = [observer.seen[(stage, i)] - sender.sent_at[i] for i in range(count)]
    txns = _stage_txns(stack, window_start, stage)
    arrival = {key: t.arrived for t in txns for key in t.bench_keys}
    added = [observer.seen[k] - at for k, at in arrival.items() if k in observer.seen]
    return {
        "end_to_end": summarize_ms(latencies),
        "bridge_added": summarize_ms(added),
        "transaction_answer": _txn_summary(txns),
        "proxy_overhead": summarize_ms([t.forwarded - t.arrived for t in txns]),
    }


async def flood_round(stack: BenchStack, count: int, stage: str, timeout: float) -> FloodResult:
    assert stack.observer
    observer, sender = stack.observer, _Sender(stack, stage)
    cpu = stack.cpu_meter()
    cpu.start()
    start = time.perf_counter()
    await flood(count, len(sender.rooms), sender.send, timeout)
    await observer.wait_for(lambda: observer.count(stage) >= count, timeout,
                            "the Matrix flood on the loopback network")
    last = max(at for (name, _), at in observer.seen.items() if name == stage)
    return FloodResult(count, last - start, cpu.used())


def flood_transactions(stack: BenchStack, since: float, stages: list[str]) -> dict[str, Any]:
    """Transaction answer times during the floods (batches grow when the bridge is slow)."""
    assert stack.proxy
    txns = [t for t in stack.proxy.since(since) if any(k[0] in stages for k in t.bench_keys)]
    return _txn_summary(txns)
