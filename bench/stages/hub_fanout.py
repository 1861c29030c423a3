"""(e) Hub fan-out: messages into a room linked to three chats on three networks, timed
until every other chat holds them.

* ``from_chat``: posted in the first chat (network ``loopback``) at the latency rate;
  the bridge puts it in the room as the sender's ghost, the room's transaction brings it
  back, and the bridge relays it into the two other chats ("Name (Network): text").
  ``all_other_chats`` is, per message, the time until the *later* of the two chats
  holds it; ``matrix_room`` until the Matrix client has it.
* ``from_matrix``: sent by the Matrix user into the room; ``all_chats`` until all three
  chats hold it (one transaction, three network sends).
* ``from_chat_flood``: throughput of one room with fan-out: N messages posted into the
  first chat at once, until both other chats hold all of them.

The latency runs go at the rate each portal room of stages (b) and (c) gets (the latency
rate divided by their chats): a hub is one room, and Synapse handles one room's events
one after another, so the rate spread over four rooms would queue up in one.
"""

from __future__ import annotations

import time
from typing import Any

from ..hub_side import HubNetworks
from ..load import flood, send_at_rate
from ..loopback_side import NetworkObserver
from ..matrix_http import bench_body
from ..side import BridgeSide
from ..stats import summarize_ms
from .common import FloodResult, combine
from .matrix_to_remote import stage_transactions, transaction_summary


def _spread(observers: dict[str, NetworkObserver], stage: str, sent_at: dict[int, float]
            ) -> dict[str, Any]:
    per_chat = {
        network: summarize_ms([o.seen[(stage, i)] - t for i, t in sent_at.items()])
        for network, o in observers.items()
    }
    all_chats = [max(o.seen[(stage, i)] for o in observers.values()) - t
                 for i, t in sent_at.items()]
    return {"all": summarize_ms(all_chats), "per_chat": per_chat}


async def from_chat(side: BridgeSide, hub: HubNetworks, count: int, rate: float,
                    timeout: float, stage: str = "efan") -> dict[str, Any]:
    senders = side.world.senders
    sent_at: dict[int, float] = {}

    async def post(i: int) -> None:
        sent_at[i] = time.perf_counter()
        await senders[i % len(senders)].send_message(hub.origin_chat, bench_body(stage, i))

    window_start = time.perf_counter()
    await send_at_rate(count, rate, post, timeout)
    await hub.wait_relayed(stage, count, timeout)
    watcher = side.watcher
    await watcher.wait_for(lambda: watcher.count(stage) >= count, timeout,
                           "the hub's messages in the room")
    spread = _spread(hub.observers(), stage, sent_at)
    return {
        "messages": count,
        "all_other_chats": spread["all"],
        "per_chat": spread["per_chat"],
        "matrix_room": summarize_ms([watcher.seen[(stage, i)].at - t
                                     for i, t in sent_at.items()]),
        # The room's echo of each message, which the bridge relays to the other chats.
        "transaction_answer": transaction_summary(stage_transactions(
            side.proxy, window_start, {watcher.seen[(stage, i)].event_id for i in sent_at})),
    }


async def from_matrix(side: BridgeSide, hub: HubNetworks, count: int, rate: float,
                      timeout: float, stage: str = "efanm") -> dict[str, Any]:
    sent_at: dict[int, float] = {}
    event_ids: set[str] = set()

    async def send(i: int) -> None:
        sent_at[i] = time.perf_counter()
        event_ids.add(await side.send_text(hub.room_id, bench_body(stage, i)))

    window_start = time.perf_counter()
    await send_at_rate(count, rate, send, timeout)
    observers = {"loopback": side.observer, **hub.observers()}
    for network, observer in observers.items():
        await observer.wait_for(lambda o=observer: o.count(stage) >= count, timeout,
                                f"the hub's Matrix messages in the {network} chat")
    spread = _spread(observers, stage, sent_at)
    return {
        "messages": count,
        "all_chats": spread["all"],
        "per_chat": spread["per_chat"],
        "transaction_answer": transaction_summary(
            stage_transactions(side.proxy, window_start, event_ids)),
    }


async def from_chat_flood(side: BridgeSide, hub: HubNetworks, count: int, timeout: float,
                          stage: str = "efanflood") -> dict[str, Any]:
    senders = side.world.senders

    async def post(i: int) -> None:
        await senders[i % len(senders)].send_message(hub.origin_chat, bench_body(stage, i))

    cpu = side.cpu_meter()
    cpu.start()
    start = time.perf_counter()
    await flood(count, 1, post, timeout)  # one chat: one sender, in order
    await hub.wait_relayed(stage, count, timeout)
    last = max(at for o in hub.observers().values()
               for (name, _), at in o.seen.items() if name == stage)
    return combine([FloodResult(count, last - start, cpu.used())])


async def run(side: BridgeSide, hub: HubNetworks, count: int, rate: float, flood_count: int,
              timeout: float) -> dict[str, Any]:
    return {
        "chats": 1 + len(hub.chats),
        "rate_msgs_per_s": rate,
        "from_chat": await from_chat(side, hub, count, rate, timeout),
        "from_matrix": await from_matrix(side, hub, count, rate, timeout),
        "from_chat_flood": await from_chat_flood(side, hub, flood_count, timeout),
    }
