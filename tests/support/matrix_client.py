"""A matrix-nio test user that syncs in the background and records what it sees.

``make_client`` registers (or logs in) a user on a ``LocalSynapse``, uploads device
keys and starts a sync loop. Tests then wait on events instead of sleeping::

    alice = await make_client(synapse, "alice", tmp_path / "alice")
    room_id = await alice.create_room(invite=[bob.user_id], encrypted=True)
    await bob.join(await bob.wait_for_invite())
    await alice.send_text(room_id, "hi")
    event = await bob.wait_for_event(room_id, lambda e: getattr(e, "body", None) == "hi")
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from nio import (
    AsyncClient,
    AsyncClientConfig,
    DownloadError,
    EncryptionError,
    ErrorResponse,
    Event,
    LoginResponse,
    MatrixInvitedRoom,
    MatrixRoom,
    MegolmEvent,
    RoomCreateResponse,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
)

from bridge.devtools.synapse import LocalSynapse

log = logging.getLogger(__name__)

T = TypeVar("T")
MEGOLM = "m.megolm.v1.aes-sha2"


class MatrixTestError(AssertionError):
    """A request failed, or a wait timed out."""


class TestClient:
    """One logged-in Matrix user with a background sync loop.

    ``events(room_id)`` holds every timeline event of a joined room in order,
    decrypted where possible; an event still encrypted is a ``MegolmEvent`` and is
    decrypted in place if its key arrives later.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, nio_client: AsyncClient) -> None:
        self.nio = nio_client
        self._events: dict[str, list[Event]] = {}
        self._ephemeral: dict[str, list[Any]] = {}
        self._seen: set[str] = set()
        self._invites: list[str] = []
        self._handed_out: set[str] = set()
        self._changed = asyncio.Event()
        self._sync_task: asyncio.Task[None] | None = None
        nio_client.add_response_callback(self._on_sync, SyncResponse)  # type: ignore[arg-type]

    @property
    def user_id(self) -> str:
        """Full Matrix id, e.g. ``@alice:localhost``."""
        return str(self.nio.user_id)

    # -- sync & waiting -------------------------------------------------------------

    def _start_sync(self) -> None:
        self._sync_task = asyncio.create_task(self._sync_loop(), name=f"sync {self.user_id}")

    async def _sync_loop(self) -> None:
        full_state: bool | None = True
        while True:
            try:
                await self.nio.sync_forever(timeout=1000, full_state=full_state)
            except asyncio.CancelledError:
                raise
            except Exception:  # e.g. Synapse restarting under us: just carry on
                log.debug("sync loop of %s failed, retrying", self.user_id, exc_info=True)
                await asyncio.sleep(0.2)
            full_state = None

    async def _on_sync(self, response: SyncResponse) -> None:
        for room_id in response.rooms.invite:
            if room_id not in self._invites:
                self._invites.append(room_id)
        for room_id, info in response.rooms.join.items():
            timeline = self._events.setdefault(room_id, [])
            for event in info.timeline.events:
                if event.event_id not in self._seen:
                    self._seen.add(event.event_id)
                    timeline.append(event)
            # Typing notices and read receipts: kept in arrival order, like the timeline.
            self._ephemeral.setdefault(room_id, []).extend(info.ephemeral)
        if response.to_device_events:  # room keys arrive as to-device events
            self._retry_decryption()
        # Wake every waiter; each re-checks its own condition.
        self._changed.set()
        self._changed = asyncio.Event()

    def _retry_decryption(self) -> None:
        if self.nio.olm is None:
            return
        for timeline in self._events.values():
            for index, event in enumerate(timeline):
                if isinstance(event, MegolmEvent):
                    with contextlib.suppress(EncryptionError):
                        timeline[index] = self.nio.decrypt_event(event)

    async def _wait_until(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """Return ``check()``'s first non-None result, re-checking after every sync."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed
                    result = check()
                    if result is not None:
                        return result
                    await changed.wait()
        except TimeoutError:
            message = f"{self.user_id}: timed out after {timeout} s waiting for {what}"
            raise MatrixTestError(message) from None

    def events(self, room_id: str) -> list[Event]:
        """Timeline events received so far in ``room_id`` (a copy)."""
        return list(self._events.get(room_id, []))

    async def wait_for_event(
        self, room_id: str, predicate: Callable[[Event], bool], timeout: float = 20
    ) -> Event:
        """Return the first event in ``room_id`` matching ``predicate``, waiting for it."""

        def check() -> Event | None:
            return next((e for e in self._events.get(room_id, []) if predicate(e)), None)

        try:
            return await self._wait_until(check, timeout, f"an event in {room_id}")
        except MatrixTestError as exc:
            seen = [f"{type(e).__name__} {e.source.get('type')}" for e in self.events(room_id)]
            raise MatrixTestError(f"{exc}; events seen: {seen}") from None

    async def wait_for_ephemeral(
        self, room_id: str, predicate: Callable[[Any], bool], timeout: float = 20
    ) -> Any:
        """Return the first typing notice or receipt in ``room_id`` matching ``predicate``."""

        def check() -> Any | None:
            return next((e for e in self._ephemeral.get(room_id, []) if predicate(e)), None)

        return await self._wait_until(check, timeout, f"an ephemeral event in {room_id}")

    async def set_typing(self, room_id: str, typing: bool) -> None:
        await _checked(self.nio.room_typing(room_id, typing_state=typing, timeout=30_000))

    async def send_read_receipt(self, room_id: str, event_id: str) -> None:
        await _checked(self.nio.room_read_markers(room_id, event_id, event_id))

    async def wait_for_invite(
        self, predicate: Callable[[MatrixInvitedRoom], bool] | None = None, timeout: float = 20
    ) -> str:
        """Return the id of a pending invite (matching ``predicate``), waiting for one.

        Each invite is returned at most once, so two calls wait for two invites.
        """

        def check() -> str | None:
            for room_id in self._invites:
                room = self.nio.invited_rooms.get(room_id)
                if room_id in self._handed_out or room is None:
                    continue
                if predicate is None or predicate(room):
                    self._handed_out.add(room_id)
                    return room_id
            return None

        return await self._wait_until(check, timeout, "an invite")

    async def _wait_joined(
        self, room_id: str, encrypted: bool = False, timeout: float = 20
    ) -> MatrixRoom:
        """Wait until our sync shows us joined to ``room_id`` (and its encryption)."""

        def check() -> MatrixRoom | None:
            room = self.nio.rooms.get(room_id)
            if room is None or self.user_id not in room.users:
                return None
            return None if encrypted and not room.encrypted else room

        return await self._wait_until(check, timeout, f"the join to {room_id}")

    # -- actions ----------------------------------------------------------------------

    async def join(self, room_id: str) -> None:
        """Join a room and wait until the sync has its state."""
        await _checked(self.nio.join(room_id))
        await self._wait_joined(room_id)

    async def create_room(
        self,
        invite: list[str] | None = None,
        encrypted: bool = False,
        is_direct: bool = False,
        name: str | None = None,
    ) -> str:
        """Create a room, optionally encrypted or a DM; return its id once synced."""
        initial_state = []
        if encrypted:
            initial_state.append(
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
            )
        response = await _checked(
            self.nio.room_create(
                name=name, invite=invite or [], is_direct=is_direct, initial_state=initial_state
            )
        )
        assert isinstance(response, RoomCreateResponse)
        await self._wait_joined(response.room_id, encrypted=encrypted)
        return str(response.room_id)

    async def send_text(
        self,
        room_id: str,
        body: str,
        formatted_body: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Send an ``m.text`` message (HTML and reply optional); return its event id."""
        content: dict[str, Any] = {"msgtype": "m.text", "body": body}
        if formatted_body is not None:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = formatted_body
        if reply_to is not None:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        return await self.send_content(room_id, content)

    async def send_content(
        self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> str:
        """Send any event content, encrypting it if the room is encrypted."""
        room = await self._wait_joined(room_id)
        if room.encrypted and self.nio.olm is not None:
            await self._prepare_encrypted_send(room)
        response = await _checked(
            self.nio.room_send(room_id, event_type, content, ignore_unverified_devices=True)
        )
        assert isinstance(response, RoomSendResponse)
        return str(response.event_id)

    async def _prepare_encrypted_send(self, room: MatrixRoom) -> None:
        """Make sure every current member's devices get the room key.

        nio trusts its synced member list; a member who joined after our last sync
        would not get the key, so refresh the members from the server and start a
        new megolm session if the list changed. Tests have no human to verify
        devices, so every device is marked verified.
        """
        before = set(room.users)
        await _checked(self.nio.joined_members(room.room_id))
        if set(room.users) != before:
            assert self.nio.olm is not None
            self.nio.olm.outbound_group_sessions.pop(room.room_id, None)
        if self.nio.should_query_keys:
            await _checked(self.nio.keys_query())
        for user_id in list(room.users):
            for device in self.nio.device_store.active_user_devices(user_id):
                if not device.verified:
                    self.nio.verify_device(device)

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> str:
        """Redact an event; return the redaction's event id."""
        response = await _checked(self.nio.room_redact(room_id, event_id, reason=reason))
        return str(response.event_id)  # type: ignore[attr-defined]

    async def react(self, room_id: str, event_id: str, key: str) -> str:
        """React to an event with ``key``. (nio sends reactions unencrypted.)"""
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        return await self.send_content(room_id, content, "m.reaction")

    async def upload(self, data: bytes, mime: str, name: str) -> str:
        """Upload bytes to the media repository; return the ``mxc://`` URI."""
        response, _ = await self.nio.upload(
            io.BytesIO(data), content_type=mime, filename=name, filesize=len(data)
        )
        if not isinstance(response, UploadResponse):
            raise MatrixTestError(f"upload failed: {response}")
        return str(response.content_uri)

    async def download(self, mxc: str) -> bytes:
        """Download media by ``mxc://`` URI (authenticated media API)."""
        response = await self.nio.download(mxc=mxc)
        if isinstance(response, DownloadError):
            raise MatrixTestError(f"download of {mxc} failed: {response}")
        return bytes(response.body)  # type: ignore[union-attr]

    async def close(self) -> None:
        """Stop syncing and close the HTTP session and the key store."""
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        await self.nio.close()
        if self.nio.store is not None:
            self.nio.store.database.close()


async def _checked(request: Awaitable[T]) -> T:
    """Await a nio request and raise on an error response instead of returning it."""
    response = await request
    if isinstance(response, ErrorResponse):
        raise MatrixTestError(f"{type(response).__name__}: {response}")
    return response


async def make_client(
    synapse: LocalSynapse, localpart: str, store_dir: Path, *, encryption: bool = True
) -> TestClient:
    """Register (or reuse) ``localpart``, log in a device with keys and start syncing.

    Returns once the first sync has been processed.
    """
    store_dir.mkdir(parents=True, exist_ok=True)
    await synapse.register_user(localpart)
    # A random device id per store, kept in the store: a fresh store must not reuse
    # a device id whose keys the server already has (Synapse rejects the new
    # one-time keys), and nio never shares room keys with another user's device
    # that has the same device id as its own (it compares device ids only).
    device_file = store_dir / "device_id"
    if not device_file.exists():
        device_file.write_text("TEST" + secrets.token_hex(4).upper())
    device_id = device_file.read_text().strip()
    config = AsyncClientConfig(
        encryption_enabled=encryption,
        store_sync_tokens=True,
        # Synapse restarts in ~1 s in tests; nio's default backoff grows to 60 s.
        max_timeout_retry_wait_time=1,
    )
    nio_client = AsyncClient(
        synapse.url,
        f"@{localpart}:{synapse.server_name}",
        device_id=device_id,
        store_path=str(store_dir),
        config=config,
    )
    client = TestClient(nio_client)
    try:
        login = await nio_client.login("password", device_name=f"test {localpart}")
        if not isinstance(login, LoginResponse):
            raise MatrixTestError(f"login of {localpart} failed: {login}")
        if encryption and nio_client.should_upload_keys:
            await _checked(nio_client.keys_upload())
        client._start_sync()
        await client._wait_until(lambda: nio_client.next_batch or None, 20, "the first sync")
    except BaseException:
        await client.close()
        raise
    return client
