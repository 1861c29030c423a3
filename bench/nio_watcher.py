"""A Matrix client that really decrypts, for the encrypted stage (d).

matrix-nio with encryption on (its own crypto, sharing no code with the bridge's
python-olm), a background sync, and the same ``seen`` / ``count`` / ``wait_for`` surface
as the plain ``SyncWatcher``, so the stages drive either. A benchmark message counts as
seen only once nio has decrypted it; one that arrives before its room key is decrypted
(and timestamped) when the key comes. A benchmark message that arrives in plaintext in
an encrypted room is counted in ``plaintext``, which the stage reports (it must be 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    ErrorResponse,
    JoinResponse,
    LoginResponse,
    MegolmEvent,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

from .matrix_http import SeenEvent, parse_bench_body

log = logging.getLogger("bench.nio")

_SYNC_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    # A long timeline, so a flood never leaves a gap ("limited") between two syncs.
    "room": {"timeline": {"limit": 1000}, "ephemeral": {"not_types": ["*"]},
             "account_data": {"not_types": ["*"]}},
}


class NioRequestFailed(RuntimeError):
    """matrix-nio returned an error response to a benchmark request."""


@dataclass
class DecryptingWatcher:
    """One logged-in nio device that syncs, joins invites, decrypts and sends."""

    nio: AsyncClient
    seen: dict[tuple[str, int], SeenEvent] = field(default_factory=dict)
    plaintext: int = 0
    """Benchmark messages that arrived unencrypted in an encrypted room."""
    gaps: int = 0
    """Limited timelines (events nio left out); the wait that misses them says so."""
    _waiting_for_keys: dict[str, tuple[str, MegolmEvent]] = field(default_factory=dict)
    _joining: set[str] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @classmethod
    async def log_in(cls, homeserver_url: str, user_id: str, password: str,
                     store_dir: Path) -> DecryptingWatcher:
        """Log a new device in (with its keys uploaded) and start syncing."""
        store_dir.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False,
                                   max_timeout_retry_wait_time=1)
        client = AsyncClient(homeserver_url, user_id,
                             device_id="BENCH" + secrets.token_hex(4).upper(),
                             store_path=str(store_dir), config=config)
        watcher = cls(client)
        try:
            login = await client.login(password, device_name="benchmark (decrypting)")
            if not isinstance(login, LoginResponse):
                raise NioRequestFailed(f"login of {user_id} failed: {login}")
            if client.should_upload_keys:
                await _checked(client.keys_upload())
            client.add_response_callback(watcher._on_sync, SyncResponse)  # type: ignore[arg-type]
            watcher._task = asyncio.create_task(
                client.sync_forever(timeout=30_000, sync_filter=_SYNC_FILTER, full_state=True),
                name="bench-nio-sync")
            await watcher.wait_for(lambda: client.next_batch is not None, 30, "the first sync")
        except BaseException:
            await watcher.stop()
            raise
        return watcher

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.nio.close()
        if self.nio.store is not None:
            self.nio.store.database.close()

    # Receiving -------------------------------------------------------------------------

    async def _on_sync(self, response: SyncResponse) -> None:
        arrived = time.perf_counter()
        for room_id in response.rooms.invite:
            if room_id not in self._joining:
                self._joining.add(room_id)
                asyncio.create_task(self._join(room_id))
        for room_id, info in response.rooms.join.items():
            if info.timeline.limited:
                self.gaps += 1
            for event in info.timeline.events:
                self._record(room_id, event, arrived)
        if response.to_device_events and self._waiting_for_keys:
            self._retry_decryption(arrived)
        self._changed.set()
        self._changed = asyncio.Event()

    async def _join(self, room_id: str) -> None:
        response = await self.nio.join(room_id)
        if not isinstance(response, JoinResponse):
            log.warning("Could not join %s: %s", room_id, response)

    def _record(self, room_id: str, event: Any, arrived: float) -> None:
        if isinstance(event, MegolmEvent):
            # Its room key has not arrived yet: decrypted when it does.
            self._waiting_for_keys[event.event_id] = (room_id, event)
            return
        if not isinstance(event, RoomMessageText) or event.sender == self.nio.user_id:
            return  # only what the bridge sent counts, not our own messages' echoes
        key = parse_bench_body(event.body)
        if key is None or key in self.seen:
            return
        room = self.nio.rooms.get(room_id)
        if room is not None and room.encrypted and not event.decrypted:
            self.plaintext += 1
        self.seen[key] = SeenEvent(room_id, event.event_id, event.sender, event.body, arrived)

    def _retry_decryption(self, arrived: float) -> None:
        for event_id, (room_id, event) in list(self._waiting_for_keys.items()):
            try:
                decrypted = self.nio.decrypt_event(event)
            except EncryptionError:
                continue
            del self._waiting_for_keys[event_id]
            self._record(room_id, decrypted, arrived)

    @property
    def undecrypted(self) -> int:
        """Encrypted events whose room key never arrived (so far)."""
        return len(self._waiting_for_keys)

    def count(self, stage: str) -> int:
        return sum(1 for s, _ in self.seen if s == stage)

    async def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``condition()`` holds (re-checked after every sync)."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"timed out after {timeout:.0f} s waiting for {what} (nio client: "
                f"{self.undecrypted} events without their key, {self.gaps} timeline gaps)"
            ) from None

    # Sending ---------------------------------------------------------------------------

    def is_encrypted(self, room_id: str) -> bool:
        room = self.nio.rooms.get(room_id)
        return bool(room is not None and room.encrypted)

    async def prepare_room(self, room_id: str) -> None:
        """Learn the room's members and their devices now, not during a timed send."""
        await _checked(self.nio.joined_members(room_id))
        if self.nio.should_query_keys:
            await _checked(self.nio.keys_query())

    async def send_text(self, room_id: str, body: str) -> str:
        """Send an ``m.text`` (encrypted in an encrypted room; the bridge's devices are not
        verified by anyone, as in most real rooms); return its event id."""
        response = await self.nio.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body},
            ignore_unverified_devices=True,
        )
        if not isinstance(response, RoomSendResponse):
            raise NioRequestFailed(f"sending to {room_id} failed: {response}")
        return str(response.event_id)


async def _checked(request: Any) -> Any:
    response = await request
    if isinstance(response, ErrorResponse):
        raise NioRequestFailed(f"{type(response).__name__}: {response}")
    return response
