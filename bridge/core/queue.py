"""Per-portal ordered work queues: one chat's events in order, different chats in parallel."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Awaitable, Callable, Hashable

from ..logs import portal_context

log = logging.getLogger("bridge.core.queue")

Job = Callable[[], Awaitable[None]]


class KeyedQueues:
    """Runs jobs strictly in submission order per key; a worker per busy key, none when idle."""

    def __init__(self) -> None:
        self._pending: dict[Hashable, deque[tuple[Job, asyncio.Future[None]]]] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        self._closed = False

    def submit(self, key: Hashable, job: Job) -> asyncio.Future[None]:
        """Queue ``job``; the returned future holds its result or exception."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(RuntimeError("the bridge is shutting down"))
            return future
        self._pending.setdefault(key, deque()).append((job, future))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key), name=f"queue-{key}")
        return future

    def depth(self, key: Hashable) -> int:
        return len(self._pending.get(key, ()))

    def depths(self) -> dict[Hashable, int]:
        """Jobs waiting per key, for keys with any waiting."""
        return {key: len(q) for key, q in self._pending.items() if q}

    @property
    def total_depth(self) -> int:
        return sum(len(q) for q in self._pending.values())

    async def _work(self, key: Hashable) -> None:
        portal_context(key)  # this task only works for this key: its log lines say so
        queue = self._pending[key]
        try:
            while queue:
                job, future = queue.popleft()
                if future.cancelled():
                    continue
                try:
                    await job()
                except asyncio.CancelledError:
                    future.cancel()
                    raise
                except Exception as e:  # the job's caller decides what a failure means
                    if not future.done():
                        future.set_exception(e)
                else:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._workers.pop(key, None)
            if not queue:
                self._pending.pop(key, None)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no work is queued, including work queued meanwhile; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._workers:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(list(self._workers.values()), timeout=remaining)
        return True

    def close(self) -> None:
        """Refuse new work and cancel what is still running (it is redelivered next start)."""
        self._closed = True
        for task in self._workers.values():
            task.cancel()
