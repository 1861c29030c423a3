"""One neonize client and the events it produces, in order.

neonize calls each event handler as a separate coroutine; handlers that await would
interleave and reorder a chat's messages. A session puts every event into one queue at
once and hands them to its sink one at a time. Pairing events (QR codes, pair status) go
to the login process straight away; everything else waits until a login is attached, so
nothing that arrives between pairing and the login taking over (e.g. the first history
sync) is lost.

A session's client object lives as long as the process: neonize stops the Go client of
the same session key when a client object is garbage-collected, so a new object for a
reconnect could stop the live one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .neonize_api import SUBSCRIBED_EVENTS, PairStatusEv

log = logging.getLogger("bridge.networks.whatsapp.session")

ClientFactory = Callable[[str, str, str], Any]
"""``(database, session key, device name) -> neonize client`` (``neonize_api.new_client``)."""


@dataclass(frozen=True, slots=True)
class QrCode:
    code: str


class EventSink(Protocol):
    async def handle_event(self, event: Any) -> None: ...


class PairingSink(Protocol):
    async def on_qr(self, code: str) -> None: ...

    async def on_pair_status(self, event: Any) -> None: ...


class Session:
    """A login's whatsmeow session: its database file and its neonize client."""

    def __init__(self, key: str, database: Path, client: Any) -> None:
        self.key = key
        self.database = database
        self.client = client
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._sink: EventSink | None = None
        self.pairing: PairingSink | None = None
        self._worker: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Future[Any] | None = None
        for event_type in SUBSCRIBED_EVENTS:
            client.event(event_type)(self._on_event)
        client.event.qr(self._on_qr)

    # Called by neonize, one coroutine per event: no await before queueing. -------------

    async def _on_event(self, _client: Any, event: Any) -> None:
        if isinstance(event, PairStatusEv):
            if self.pairing is not None:
                await self.pairing.on_pair_status(event)
            return
        self._queue.put_nowait(event)

    async def _on_qr(self, _client: Any, data: bytes) -> None:
        if self.pairing is not None:
            await self.pairing.on_qr(data.decode("utf-8", "replace"))

    # -----------------------------------------------------------------------------------

    def attach(self, sink: EventSink) -> None:
        """Deliver events (queued ones first) to ``sink`` from now on."""
        self._sink = sink
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._deliver(), name=f"whatsapp-events-{self.key[:8]}")

    async def _deliver(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                if self._sink is not None:
                    await self._sink.handle_event(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Handling a WhatsApp %s failed", type(event).__name__)
            finally:
                self._queue.task_done()

    @property
    def task(self) -> asyncio.Future[Any]:
        assert self._connect_task is not None
        return self._connect_task

    @property
    def running(self) -> bool:
        return self._connect_task is not None and not self._connect_task.done()

    async def connect(self) -> asyncio.Future[Any]:
        """Start the client; the returned task ends when the connection is given up."""
        self._connect_task = await self.client.connect()
        return self._connect_task

    async def stop(self) -> None:
        """Stop the client (the session stays valid) and wait for it to wind down."""
        task = self._connect_task
        if task is not None and not task.done():
            try:
                await self.client.stop()
            except Exception:
                log.warning("Stopping the WhatsApp client failed", exc_info=True)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), 10)

    async def close(self, drain_timeout: float = 0) -> None:
        """Stop the client, hand on what it already received (up to ``drain_timeout``
        seconds: whatsmeow has acknowledged those events, nobody would send them again),
        then stop delivering."""
        await self.stop()
        if drain_timeout and self._worker is not None and self._sink is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._queue.join(), drain_timeout)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self._sink = None


_LIVE_CLIENTS: dict[str, Any] = {}
"""Client objects by session file, kept for the life of the process (see the module doc);
a bridge restarted inside one process (the tests do that) reuses them."""


class SessionStore:
    """Session files under the session directory, and the one client object per file."""

    def __init__(self, directory: Path, factory: ClientFactory, device_name: str) -> None:
        self.directory = directory
        self.factory = factory
        self.device_name = device_name
        self._sessions: dict[str, Session] = {}

    def path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError("bad session key")
        return self.directory / f"{key}.db"

    def open(self, key: str) -> Session:
        session = self._sessions.get(key)
        if session is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self.path(key)
            if not path.exists():
                # whatsmeow's SQLite store holds the account's keys: owner-only from the start.
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            client = _LIVE_CLIENTS.get(str(path))
            if client is None:
                client = _LIVE_CLIENTS[str(path)] = self.factory(str(path), key, self.device_name)
            session = self._sessions[key] = Session(key, path, client)
        return session

    async def delete(self, key: str) -> None:
        """Close a session and remove its file (after a logout or a cancelled login)."""
        session = self._sessions.pop(key, None)
        if session is not None:
            await session.close()
        _LIVE_CLIENTS.pop(str(self.path(key)), None)
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(self.path(key)) + suffix).unlink()

    async def close_all(self) -> None:
        for session in list(self._sessions.values()):
            await session.close()
