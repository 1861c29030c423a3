"""(f) Start-up with a big database: time until the bridge process handles its first
transaction, its memory, and whether one message costs more when the database is big.

For each database (SQLite, and PostgreSQL when a server is given) and each size (a
nearly empty database, then the full one), it fills a fresh database, starts
``python -m bridge`` and PUTs one-message transactions to its appservice port (with the
hs_token, as Synapse would) until one is answered and the message is on the network.
The message goes to a real portal (the first bench chat), copied into the new database.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from bridge.core.ids import NetworkID, PortalKey, RemoteChatID
from bridge.db import BridgeDatabase

from ..bridge_process import BridgeProcess
from ..dbfill import FillSize, fill
from ..deploy import BridgeDeployment, free_port
from ..matrix_http import bench_body
from ..options import BenchOptions
from ..postgres import throwaway_database
from ..stack import LOOPBACK_PREFIX, BenchStack
from ..stats import summarize_ms

FIRST_TXN_TIMEOUT = 60.0


async def run(stack: BenchStack, opts: BenchOptions) -> dict[str, Any]:
    assert stack.bridge is not None
    # One bridge per login: the bench's own bridge must not poll the same account.
    await stack.bridge.stop()
    sizes = {
        "empty": FillSize(0, 0, 0),
        "full": FillSize(opts.portals, opts.ghosts, opts.db_messages),
    }
    results: dict[str, Any] = {"sizes": {k: vars(v) for k, v in sizes.items()}}
    backends: list[str] = ["sqlite"] + (["postgres"] if opts.postgres else [])
    for backend in backends:
        results[backend] = {}
        for label, size in sizes.items():
            async with _database(stack, opts, backend, label) as uri:
                results[backend][label] = await _measure(stack, opts, uri, size,
                                                         f"{backend}-{label}")
    if not opts.postgres:
        results["postgres"] = None
        results["postgres_reason"] = "no PostgreSQL server given (--postgres none)"
    return results


@contextlib.asynccontextmanager
async def _database(stack: BenchStack, opts: BenchOptions, backend: str,
                    label: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        path = stack.workdir / "startup" / f"{label}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        yield f"sqlite:{path}"
        return
    assert opts.postgres
    async with throwaway_database(opts.postgres, f"bench_bridge_{label}") as url:
        yield url


async def _measure(stack: BenchStack, opts: BenchOptions, db_uri: str, size: FillSize,
                   name: str) -> dict[str, Any]:
    assert stack.deployment and stack.world and stack.observer
    main = stack.deployment
    chat = stack.world.chat_ids[0]
    room = stack.portal_rooms[0]
    owner = stack.user_id

    # The real portal, copied from the bench bridge's database.
    main_db = BridgeDatabase(main.db_uri)
    await main_db.start()
    try:
        portal = await main_db.portals.get(PortalKey(NetworkID("loopback"), RemoteChatID(chat)))
    finally:
        await main_db.stop()
    assert portal is not None

    workdir = stack.workdir / "startup" / name
    workdir.mkdir(parents=True, exist_ok=True)
    # Same registration (tokens, namespaces) as the bench bridge, its own port and database.
    shutil.copy(main.registration_path, workdir / "registration.yaml")
    deployment = BridgeDeployment(
        workdir=workdir, homeserver_url=main.homeserver_url,
        # Only the network this start-up test uses (the hub's extra ones have no login here).
        networks={"loopback": main.networks["loopback"]},
        db_uri=db_uri, permissions=main.permissions, port=free_port(),
    )
    deployment.write()
    await deployment.seed_login(owner, "loopback", f"{LOOPBACK_PREFIX}me", stack.world.me_token)
    db = BridgeDatabase(db_uri)
    await db.start()
    try:
        fill_s = await fill(db, size, network="loopback", login_id=f"{LOOPBACK_PREFIX}me",
                            keep=portal)
    finally:
        await db.stop()

    process = BridgeProcess(deployment.config_path, deployment.log_path)
    sender = _TransactionSender(deployment.url, deployment.hs_token, room, owner, name)
    await process.spawn()
    try:
        async with aiohttp.ClientSession() as http:
            first = await _first_transaction(process, sender, http, stack)
            rss_started = process.rss_mib()[0]
            probe = await _probe(sender, http, stack, opts.probe_messages)
            rss, peak = process.rss_mib()
    finally:
        await process.stop()
    return {
        "fill_seconds": round(fill_s, 2),
        **first,
        "rss_mib_at_first_transaction": rss_started,
        "rss_mib_after_probe": rss,
        "peak_rss_mib": peak,
        "probe_transaction_answer": summarize_ms(probe["answer"]),
        "probe_delivery": summarize_ms(probe["delivery"]),
    }


class _TransactionSender:
    """PUTs one-message transactions to a bridge's appservice port, as Synapse would."""

    def __init__(self, url: str, hs_token: str, room: str, sender: str, name: str) -> None:
        self.url, self.hs_token, self.room, self.sender = url, hs_token, room, sender
        self.stage = f"f{name.replace('-', '')}"
        self.count = 0

    async def put(self, http: aiohttp.ClientSession, stage: str) -> tuple[int, int]:
        """Send the next message; return (its sequence number, the HTTP status)."""
        seq = self.count
        self.count += 1
        event = {
            "type": "m.room.message",
            "room_id": self.room,
            "sender": self.sender,
            "event_id": f"${stage}{seq}-{time.monotonic_ns()}",
            "origin_server_ts": int(time.time() * 1000),
            "content": {"msgtype": "m.text", "body": bench_body(stage, seq)},
        }
        async with http.put(
            f"{self.url}/_matrix/app/v1/transactions/{stage}-{seq}-{time.monotonic_ns()}",
            json={"events": [event]},
            headers={"Authorization": f"Bearer {self.hs_token}"},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as resp:
            await resp.read()
            return seq, resp.status


async def _first_transaction(process: BridgeProcess, sender: _TransactionSender,
                             http: aiohttp.ClientSession, stack: BenchStack) -> dict[str, Any]:
    """Seconds from spawn until the first answer, and until a message reached the network.

    It keeps sending (every 10 ms, a new transaction each time) until the network holds
    the message of a transaction the bridge answered: one answered before the bridge was
    ready may have been refused.
    """
    assert stack.observer is not None
    observer, stage = stack.observer, sender.stage + "start"
    first_answer: float | None = None
    answered: list[int] = []
    deadline = time.perf_counter() + FIRST_TXN_TIMEOUT
    while time.perf_counter() < deadline:
        if process.process is None or process.process.returncode is not None:
            raise RuntimeError(f"the bridge exited while starting:\n{process.log_tail()}")
        delivered = [s for s in answered if (stage, s) in observer.seen]
        if delivered:
            first = min(delivered)
            return {
                "first_transaction_answered_s": round(first_answer or 0.0, 3),
                "first_message_delivered_s": round(
                    observer.seen[(stage, first)] - process.started_at, 3),
                "answered_transactions_until_delivered": answered.index(first) + 1,
            }
        try:
            seq, status = await sender.put(http, stage)
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.01)
            continue
        if status == 200:
            if first_answer is None:
                first_answer = time.perf_counter() - process.started_at
            answered.append(seq)
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no transaction was handled within {FIRST_TXN_TIMEOUT:.0f} s:\n"
                       f"{process.log_tail()}")


async def _probe(sender: _TransactionSender, http: aiohttp.ClientSession, stack: BenchStack,
                 count: int) -> dict[str, list[float]]:
    """One-message transactions, one after another: the bridge's answer time per message
    and the time until the network holds each."""
    assert stack.observer is not None
    stage = sender.stage + "probe"
    answer: list[float] = []
    sent: dict[int, float] = {}
    for _ in range(count):
        start = time.perf_counter()
        seq, status = await sender.put(http, stage)
        if status != 200:
            raise RuntimeError(f"the bridge answered a probe transaction with {status}")
        answer.append(time.perf_counter() - start)
        sent[seq] = start
    await stack.observer.wait_for(
        lambda: all((stage, s) in stack.observer.seen for s in sent), 60, "the probe messages")
    delivery = [stack.observer.seen[(stage, s)] - t for s, t in sent.items()]
    return {"answer": answer, "delivery": delivery}
