"""A timing proxy between Synapse and the bridge's appservice port.

The registration points Synapse at this proxy; it forwards every request unchanged and,
for transactions, records when the transaction arrived, how long the bridge took to
answer it, and which events it carried (by event id: in an encrypted room the proxy
cannot read a body, and the stages know the ids of what they sent or saw). Synapse
sends one transaction at a time, so the bridge's answer time caps the Matrix -> network
throughput.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class TxnTiming:
    arrived: float
    """``time.perf_counter()`` when Synapse's request reached the proxy."""
    answered: float
    """When the bridge's answer reached the proxy."""
    forwarded: float
    """When the proxy sent the request on (after reading the body)."""
    status: int
    events: int
    event_ids: list[str]

    @property
    def answer_time(self) -> float:
        """The bridge's time to answer, without the proxy's own reading of the body."""
        return self.answered - self.forwarded


@dataclass
class TxnProxy:
    target: str
    """The bridge's appservice base URL."""
    transactions: list[TxnTiming] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    async def start(self, port: int) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=10), auto_decompress=False
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        arrived = time.perf_counter()
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        assert self._session is not None
        forwarded = time.perf_counter()
        try:
            async with self._session.request(
                request.method, self.target + request.path_qs, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=120),
            ) as resp:
                answer = await resp.read()
                answered = time.perf_counter()
                status = resp.status
                content_type = resp.headers.get("Content-Type", "application/json")
        except aiohttp.ClientError:
            return web.json_response({"errcode": "M_UNKNOWN", "error": "bridge down"}, status=502)
        if request.method == "PUT" and "/transactions/" in request.path:
            self.transactions.append(_timing(body, arrived, forwarded, answered, status))
        return web.Response(body=answer, status=status, headers={"Content-Type": content_type})

    def since(self, start: float) -> list[TxnTiming]:
        """Transactions that arrived after ``start`` (a ``perf_counter`` value)."""
        return [t for t in self.transactions if t.arrived >= start]


def _timing(body: bytes, arrived: float, forwarded: float, answered: float, status: int) -> TxnTiming:
    try:
        data = json.loads(body)
        events = data.get("events", []) if isinstance(data, dict) else []
    except ValueError:
        events = []
    ids = [str(e["event_id"]) for e in events if isinstance(e, dict) and "event_id" in e]
    return TxnTiming(arrived, answered, forwarded, status, len(events), ids)
