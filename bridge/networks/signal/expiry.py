"""Disappearing messages: remove bridged messages from Matrix when their Signal timer ends.

Signal clients delete a disappearing message after its timer; Matrix has no such timer, so
the bridge does it, by handing the core a deletion of the message when the time comes.
The clock starts when the message was sent (Signal starts it when it was read, so Matrix
never keeps a message longer than Signal). Pending removals are kept in the login's
metadata (chat, message ids and a time; never content), so a restart doesn't forget them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Awaitable, Callable

from ...core.ids import RemoteChatID, RemoteMessageID

log = logging.getLogger("bridge.networks.signal.expiry")

Expire = Callable[[RemoteChatID, list[RemoteMessageID]], Awaitable[None]]


def describe_timer(seconds: int) -> str:
    """``1 week``, ``8 hours``, ``30 seconds``... as Signal's settings name them."""
    if seconds <= 0:
        return "off"
    for size, unit in ((604800, "week"), (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class ExpiryScheduler:
    """Calls ``expire(chat, message ids)`` when each entry is due.

    ``entries`` is the list stored in the login's metadata (``[chat, [ids], due_ms]``);
    it is changed in place, and ``save()`` is called after every change.
    """

    def __init__(self, entries: list[list[Any]], expire: Expire, save: Callable[[], Awaitable[None]]) -> None:
        self.entries = entries
        self._expire = expire
        self._save = save
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="signal-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def add(self, chat_id: RemoteChatID, message_ids: list[RemoteMessageID], due_ms: int) -> None:
        self.entries.append([chat_id, list(message_ids), int(due_ms)])
        await self._save()
        self._wake.set()

    def next_due(self) -> int | None:
        return min((int(e[2]) for e in self.entries), default=None)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            due = self.next_due()
            now = int(time.time() * 1000)
            if due is None or due > now:
                timeout = None if due is None else (due - now) / 1000
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            ready = [e for e in self.entries if int(e[2]) <= now]
            for entry in ready:
                try:
                    await self._expire(RemoteChatID(entry[0]), [RemoteMessageID(i) for i in entry[1]])
                except Exception:
                    log.warning("Removing expired messages in %s failed; trying later", entry[0], exc_info=True)
                    entry[2] = now + 60_000
                    continue
                self.entries.remove(entry)
            await self._save()
