"""Late keys: encrypted events that arrived before their Megolm key.

Such an event is never dropped silently. It waits for its key (which often comes a moment
later), then the bridge asks the sender's devices for the key, and after a timeout the
sender is told in the room that the message was not bridged. If the key arrives at any
point, even after that notice, the event is fetched again and bridged.

Only ids are kept (table ``undecrypted_event``), never ciphertext or plaintext, so the
waiting survives a restart without storing a message at rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mautrix.util.async_db import Database

log = logging.getLogger("bridge.matrix.crypto.late")

KEEP_WAITING_SECONDS = 24 * 3600
"""After this, an event whose key never came is forgotten (the sender was told long ago)."""


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class WaitingEvent:
    event_id: str
    room_id: str
    session_id: str
    sender: str
    sender_key: str
    """The sending device's Curve25519 key, needed to ask for the Megolm key."""
    device_id: str | None
    received_at: int
    """Milliseconds since the epoch."""
    notified_at: int | None = None


_COLUMNS = "event_id, room_id, session_id, sender, sender_key, device_id, received_at, notified_at"


class LateKeys:
    def __init__(
        self,
        db: Database,
        *,
        wait_seconds: float,
        give_up_seconds: float,
        retry: Callable[[WaitingEvent], Awaitable[bool]],
        ask: Callable[[WaitingEvent], Awaitable[None]],
        tell: Callable[[WaitingEvent], Awaitable[None]],
        keep_seconds: float = KEEP_WAITING_SECONDS,
    ) -> None:
        self._db = db
        self._wait = wait_seconds
        self._give_up = give_up_seconds
        self._keep = keep_seconds
        self._retry = retry
        self._ask = ask
        self._tell = tell
        self._arrived: dict[str, asyncio.Event] = {}
        """Set (per waiting event id) when a key for its session may have arrived."""
        self._waiting: dict[str, WaitingEvent] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def park(self, event: WaitingEvent) -> None:
        """Keep ``event`` until its key arrives (the row makes it survive a restart)."""
        if event.event_id in self._tasks:
            return
        await self._db.execute(
            f"INSERT INTO undecrypted_event ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (event_id) DO NOTHING",
            event.event_id,
            event.room_id,
            event.session_id,
            event.sender,
            event.sender_key,
            event.device_id,
            event.received_at,
            event.notified_at,
        )
        self._follow(event, check_now=False)

    def key_arrived(self, session_id: str) -> None:
        """Called for every Megolm session any of our devices receives."""
        for event in self._waiting.values():
            if event.session_id == session_id:
                self._arrived[event.event_id].set()

    async def resume(self) -> None:
        """After a start: keep following the events that were waiting before."""
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM undecrypted_event")
        for row in rows:
            event = WaitingEvent(
                event_id=row["event_id"],
                room_id=row["room_id"],
                session_id=row["session_id"],
                sender=row["sender"],
                sender_key=row["sender_key"],
                device_id=row["device_id"],
                received_at=row["received_at"],
                notified_at=row["notified_at"],
            )
            # The key may have come while we were away (the homeserver queued it).
            self._follow(event, check_now=True)
        if rows:
            log.info("Still waiting for the keys of %d encrypted events", len(rows))

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def status(self) -> dict[str, int]:
        told = sum(1 for e in self._waiting.values() if e.notified_at is not None)
        return {"waiting_for_keys": len(self._waiting) - told, "undecryptable": told}

    def _follow(self, event: WaitingEvent, *, check_now: bool) -> None:
        arrived = self._arrived[event.event_id] = asyncio.Event()
        if check_now:
            arrived.set()
        self._waiting[event.event_id] = event
        self._tasks[event.event_id] = asyncio.create_task(
            self._run(event, arrived), name=f"late key {event.event_id}"
        )

    async def _run(self, event: WaitingEvent, arrived: asyncio.Event) -> None:
        try:
            await self._until_done(event, arrived)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Following %s failed; it stays stored for the next start", event.event_id)
        else:
            await self._forget(event)
        finally:
            self._tasks.pop(event.event_id, None)
            self._waiting.pop(event.event_id, None)
            self._arrived.pop(event.event_id, None)

    async def _until_done(self, event: WaitingEvent, arrived: asyncio.Event) -> None:
        start = event.received_at / 1000
        ask_at, tell_at, drop_at = start + self._wait, start + self._give_up, start + self._keep
        asked = event.notified_at is not None
        while True:
            if arrived.is_set():
                arrived.clear()
                if await self._retry(event):
                    if event.notified_at is not None:
                        log.info("The key of %s came late; it was bridged now", event.event_id)
                    return
            now = time.time()
            if not asked and now >= ask_at:
                asked = True
                try:
                    await self._ask(event)
                except Exception:
                    log.warning("Could not ask for the key of %s", event.event_id, exc_info=True)
            if event.notified_at is None and now >= tell_at:
                await self._tell(event)
                event.notified_at = _now_ms()
                await self._db.execute(
                    "UPDATE undecrypted_event SET notified_at=$2 WHERE event_id=$1",
                    event.event_id,
                    event.notified_at,
                )
            if now >= drop_at:
                log.warning("The key of %s never came; forgetting it", event.event_id)
                return
            deadlines = [drop_at]
            if not asked:
                deadlines.append(ask_at)
            if event.notified_at is None:
                deadlines.append(tell_at)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), max(0.0, min(deadlines) - now))

    async def _forget(self, event: WaitingEvent) -> None:
        await self._db.execute("DELETE FROM undecrypted_event WHERE event_id=$1", event.event_id)
