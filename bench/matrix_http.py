"""A plain HTTP Matrix client for the benchmark: requests, and a /sync watcher.

matrix-nio would do, but its own parsing would sit inside every latency we measure; a
bare long-poll costs almost nothing and timestamps an event the moment the homeserver
hands it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

log = logging.getLogger("bench.matrix")

_BODY_KEY = re.compile(r"^bench (\S+) (\d+)$")
_RELAYED_KEY = re.compile(r"^.+: bench (\S+) (\d+)$", re.DOTALL)


def bench_body(stage: str, seq: int) -> str:
    """The body of benchmark message ``seq`` of ``stage``; the watchers match on it."""
    return f"bench {stage} {seq}"


def parse_bench_body(body: Any) -> tuple[str, int] | None:
    """(stage, seq) of a benchmark message body, or None for anything else."""
    if not isinstance(body, str):
        return None
    match = _BODY_KEY.match(body)
    return (match.group(1), int(match.group(2))) if match else None


def parse_relayed_body(text: Any) -> tuple[str, int] | None:
    """(stage, seq) of a benchmark message as a hub room relays it into another chat
    (``Name (Network): bench <stage> <seq>``, see ``bridge.relay.template``), or of the
    plain message; None for anything else."""
    if not isinstance(text, str):
        return None
    match = _RELAYED_KEY.match(text)
    return (match.group(1), int(match.group(2))) if match else parse_bench_body(text)


class MatrixRequestFailed(RuntimeError):
    """The homeserver answered a benchmark request with an error."""


class MatrixHTTP:
    """Client-server API calls with one access token (an appservice may masquerade)."""

    def __init__(self, base_url: str, token: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.session = session
        self._txn = 0

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        user_id: str | None = None,
        params: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> dict[str, Any]:
        query = dict(params or {})
        if user_id is not None:
            query["user_id"] = user_id
        async with self.session.request(
            method,
            self.base_url + path,
            json=body,
            params=query,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 300:
                raise MatrixRequestFailed(f"{method} {path}: {resp.status} {data}")
            return data if isinstance(data, dict) else {}

    def next_txn(self, prefix: str = "b") -> str:
        self._txn += 1
        return f"{prefix}{time.monotonic_ns()}-{self._txn}"

    async def send_message(
        self,
        room_id: str,
        content: dict[str, Any],
        *,
        txn_id: str | None = None,
        user_id: str | None = None,
        ts: int | None = None,
    ) -> str:
        path = (
            f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/"
            f"{quote(txn_id or self.next_txn())}"
        )
        params = {"ts": str(ts)} if ts is not None else None
        data = await self.request("PUT", path, content, user_id=user_id, params=params)
        return str(data["event_id"])

    async def create_room(self, invite: list[str], *, name: str) -> str:
        body = {"preset": "private_chat", "name": name, "invite": invite}
        return str((await self.request("POST", "/_matrix/client/v3/createRoom", body))["room_id"])

    async def join(self, room_id: str, *, user_id: str | None = None) -> None:
        await self.request("POST", f"/_matrix/client/v3/join/{quote(room_id)}", {}, user_id=user_id)

    async def register_ghost(self, localpart: str, server_name: str) -> str:
        """Register an appservice user (this client's token must be an as_token)."""
        body = {"type": "m.login.application_service", "username": localpart,
                "inhibit_login": True}
        try:
            await self.request("POST", "/_matrix/client/v3/register", body)
        except MatrixRequestFailed as e:
            if "M_USER_IN_USE" not in str(e):
                raise
        return f"@{localpart}:{server_name}"


@dataclass
class SeenEvent:
    room_id: str
    event_id: str
    sender: str
    body: Any
    at: float
    """``time.perf_counter()`` when the sync that carried it arrived."""


_SYNC_FILTER = json.dumps(
    {
        "presence": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
        "room": {
            "timeline": {"limit": 1000, "types": ["m.room.message"]},
            "state": {"lazy_load_members": True, "types": ["m.room.create"]},
            "ephemeral": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
        },
    },
    separators=(",", ":"),
)


@dataclass
class SyncWatcher:
    """Long-polls /sync for one user; records when each benchmark message arrives.

    Invites are joined automatically (the bridge invites the user to its portals).
    """

    client: MatrixHTTP
    auto_join: bool = True
    seen: dict[tuple[str, int], SeenEvent] = field(default_factory=dict)
    joined: set[str] = field(default_factory=set)
    on_event: list[Callable[[SeenEvent], None]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _since: str | None = None
    _event_ids: set[str] = field(default_factory=set)
    gaps_filled: int = 0

    async def start(self) -> None:
        data = await self.client.request(
            "GET", "/_matrix/client/v3/sync", params={"filter": _SYNC_FILTER, "timeout": "0"}
        )
        self._since = data["next_batch"]
        self.joined.update(data.get("rooms", {}).get("join", {}))
        self._task = asyncio.create_task(self._loop(), name="bench-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                params = {"filter": _SYNC_FILTER, "timeout": "30000", "since": self._since or ""}
                data = await self.client.request(
                    "GET", "/_matrix/client/v3/sync", params=params, timeout=60
                )
            except (aiohttp.ClientError, asyncio.TimeoutError, MatrixRequestFailed):
                log.warning("sync failed; retrying", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            arrived = time.perf_counter()
            self._since = data["next_batch"]
            await self._handle(data, arrived)
            self._changed.set()
            self._changed = asyncio.Event()

    async def _handle(self, data: dict[str, Any], arrived: float) -> None:
        rooms = data.get("rooms", {})
        for room_id, joined in rooms.get("join", {}).items():
            self.joined.add(room_id)
            timeline = joined.get("timeline", {})
            events = timeline.get("events", [])
            if timeline.get("limited") and timeline.get("prev_batch"):
                events = await self._fill_gap(room_id, timeline["prev_batch"]) + events
            for event in events:
                self._record(room_id, event, arrived)
        if self.auto_join:
            for room_id in rooms.get("invite", {}):
                if room_id not in self.joined:
                    await self.client.join(room_id)

    async def _fill_gap(self, room_id: str, prev_batch: str) -> list[dict[str, Any]]:
        """Events a limited timeline left out (only when the sync fell far behind)."""
        self.gaps_filled += 1
        older: list[dict[str, Any]] = []
        token = prev_batch
        for _ in range(20):
            page = await self.client.request(
                "GET",
                f"/_matrix/client/v3/rooms/{quote(room_id)}/messages",
                params={"from": token, "dir": "b", "limit": "1000"},
            )
            chunk = page.get("chunk", [])
            fresh = [e for e in chunk if not self._known(e)]
            older = list(reversed(fresh)) + older
            if len(fresh) < len(chunk) or not chunk or "end" not in page:
                break
            token = page["end"]
        return older

    def _known(self, event: dict[str, Any]) -> bool:
        return event.get("event_id") in self._event_ids

    def _record(self, room_id: str, event: dict[str, Any], arrived: float) -> None:
        if event.get("type") != "m.room.message" or event.get("event_id") in self._event_ids:
            return
        self._event_ids.add(str(event.get("event_id")))
        body = (event.get("content") or {}).get("body")
        key = parse_bench_body(body)
        if key is None or key in self.seen:
            return
        seen = SeenEvent(room_id, str(event.get("event_id")), str(event.get("sender")), body,
                         arrived)
        self.seen[key] = seen
        for callback in self.on_event:
            callback(seen)

    async def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``condition()`` holds (re-checked after every sync)."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}") from None

    def count(self, stage: str) -> int:
        return sum(1 for s, _ in self.seen if s == stage)
