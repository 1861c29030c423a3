"""The loopback network's side of the benchmark: its users and chats, and an observer
that timestamps messages the moment the network holds them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import aiohttp

from bridge.networks.loopback.client import LoopbackClient

from .matrix_http import parse_relayed_body

log = logging.getLogger("bench.loopback")


@dataclass
class LoopbackWorld:
    """The bench's loopback users: ``me`` (the Matrix user's login), senders, an observer."""

    admin: LoopbackClient
    me_token: str
    observer_token: str
    sender_tokens: list[str]
    chat_ids: list[str]
    senders: list[LoopbackClient] = field(default_factory=list)

    @classmethod
    async def create(cls, url: str, prefix: str, senders: int, chats: int) -> LoopbackWorld:
        admin = LoopbackClient(url)
        me = await admin.admin_create_user(f"{prefix}me", "Bench user")
        observer = await admin.admin_create_user(f"{prefix}obs", "Observer")
        sender_tokens = []
        for i in range(senders):
            made = await admin.admin_create_user(f"{prefix}s{i}", f"Sender {i}")
            sender_tokens.append(made["token"])
        members = [f"{prefix}me", f"{prefix}obs"] + [f"{prefix}s{i}" for i in range(senders)]
        chat_ids = []
        for k in range(chats):
            made = await admin.admin_create_chat(f"Bench chat {k}", members, chat_id=f"{prefix}c{k}")
            chat_ids.append(made["id"])
        world = cls(admin, me["token"], observer["token"], sender_tokens, chat_ids)
        world.senders = [admin.as_user(t) for t in sender_tokens]
        return world

    async def close(self) -> None:
        await self.admin.close()


@dataclass
class NetworkObserver:
    """Long-polls the observer's event log; records when each benchmark message that
    ``from_user`` sent (through the bridge) reached the network, as it is or as a hub
    room relays it (``Name (Network): bench <stage> <seq>``)."""

    client: LoopbackClient
    from_user: str
    seen: dict[tuple[str, int], float] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="bench-observer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                events = await self.client.get_events(timeout=25)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                log.warning("observer poll failed; retrying", exc_info=True)
                await asyncio.sleep(0.2)
                continue
            arrived = time.perf_counter()
            for event in events:
                message = event.get("message") if event.get("type") == "message" else None
                if not message or message.get("sender") != self.from_user:
                    continue
                key = parse_relayed_body(message.get("text"))
                if key is not None and key not in self.seen:
                    self.seen[key] = arrived
            if events:
                await self.client.ack_events(max(int(e["seq"]) for e in events))
                self._changed.set()
                self._changed = asyncio.Event()

    async def wait_for(self, condition, timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}") from None

    def count(self, stage: str) -> int:
        return sum(1 for s, _ in self.seen if s == stage)
