"""The bridge's own Matrix devices: one Olm account and device per identity that sends.

Every user that sends in an encrypted room (the bot and each ghost) gets its own device
and Olm account, created through the appservice (MSC4190) before its first encrypted
event. Megolm sessions are then owned by the event's sender, which is what clients check
before they trust a message ("sent by a device its owner doesn't have" otherwise).

All accounts share one crypto store in the bridge's database: device lists and tracked
users are common, while Olm and Megolm sessions are kept per account (mautrix's
``account_id`` is the Matrix user id).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable

import aiohttp
from mautrix.api import HTTPAPI
from mautrix.client import Client
from mautrix.crypto import OlmMachine, PgCryptoStore, StateStore
from mautrix.crypto.sessions import InboundGroupSession
from mautrix.types import DeviceID, RoomID, SessionID, TrustState, UserID
from mautrix.util.async_db import Database

from .crypto_cross_signing import CrossSigningKeys, query_keys_raw
from .crypto_trust import device_keys_of

log = logging.getLogger("bridge.matrix.crypto")


class BridgeCryptoStore(PgCryptoStore):
    """One account's view of the shared crypto store.

    Invalidating a room's outbound session (a member left or joined, a device changed)
    applies to every account of the bridge: all of them share the room's member list.
    """

    async def remove_outbound_group_session(self, room_id: RoomID) -> None:
        await self.db.execute(
            "DELETE FROM crypto_megolm_outbound_session WHERE room_id=$1", room_id
        )

    async def remove_outbound_group_sessions(self, rooms: list[RoomID]) -> None:
        for room_id in rooms:
            await self.remove_outbound_group_session(room_id)


class _NoCrossSigningNoise(logging.Filter):
    """mautrix warns for every device without cross-signing; for a bridge that is normal."""

    _NORMAL = ("isn't cross-signed", "Didn't find cross-signing key")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and any(
            text in str(record.msg) for text in self._NORMAL
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_QUIETER = _NoCrossSigningNoise()


class BridgeOlmMachine(OlmMachine):
    """An OlmMachine that tells the bridge whenever a Megolm session arrives."""

    def __init__(
        self,
        client: Client,
        store: BridgeCryptoStore,
        state: StateStore,
        on_room_key: Callable[[SessionID], None],
    ) -> None:
        machine_log = log.getChild(client.mxid)
        machine_log.addFilter(_QUIETER)
        super().__init__(client, store, state, log=machine_log)  # type: ignore[arg-type]
        self._on_room_key = on_room_key
        # Clients in tests and most users have no cross-signing for the bridge to check:
        # share keys with every device that is not blacklisted.
        self.send_keys_min_trust = TrustState.UNVERIFIED
        self.share_keys_min_trust = TrustState.UNVERIFIED

    async def _ratchet_session(self, sess: InboundGroupSession, index: int) -> None:
        # mautrix records each decrypted index in the session and writes the session back,
        # on every message, for the sake of deleting used keys, which the bridge leaves
        # off (members may still want old keys). Skipping it saves a write per message.
        if self.ratchet_keys_on_decrypt or self.delete_fully_used_keys_on_decrypt:
            await super()._ratchet_session(sess, index)

    def _mark_session_received(self, session_id: SessionID) -> None:
        super()._mark_session_received(session_id)
        self._on_room_key(session_id)


def _new_device_id() -> DeviceID:
    return DeviceID("HUB" + secrets.token_hex(5).upper())


class BridgeDevices:
    """Creates, loads and hands out the OlmMachine of each of the bridge's users."""

    def __init__(
        self,
        *,
        db: Database,
        homeserver: str,
        as_token: str,
        pickle_key: str,
        device_name: str,
        state: StateStore,
        on_room_key: Callable[[SessionID], None],
        cross_signing: CrossSigningKeys,
    ) -> None:
        self._db = db
        self._homeserver = homeserver
        self._as_token = as_token
        self._pickle_key = pickle_key
        self._device_name = device_name
        self._state = state
        self._on_room_key = on_room_key
        self.cross_signing = cross_signing
        self._machines: dict[UserID, BridgeOlmMachine] = {}
        self._locks: dict[UserID, asyncio.Lock] = {}
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50))

    async def stop(self) -> None:
        self._machines.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def loaded(self) -> dict[UserID, BridgeOlmMachine]:
        return dict(self._machines)

    async def machine(self, mxid: str) -> BridgeOlmMachine:
        """The user's machine, creating its device and uploading its keys if needed."""
        found = self._machines.get(UserID(mxid))
        if found is not None:
            return found
        machine = await self._load(UserID(mxid), create=True)
        assert machine is not None
        return machine

    async def existing(self, mxid: str) -> BridgeOlmMachine | None:
        """The user's machine if the user has a device already (no device is created)."""
        found = self._machines.get(UserID(mxid))
        return found if found is not None else await self._load(UserID(mxid), create=False)

    async def account_with_session(self, room_id: str, session_id: str) -> UserID | None:
        """Which of our accounts holds a Megolm session (room keys go to every device)."""
        return await self._db.fetchval(
            "SELECT account_id FROM crypto_megolm_inbound_session "
            "WHERE room_id=$1 AND session_id=$2 AND session IS NOT NULL LIMIT 1",
            room_id,
            session_id,
        )

    async def _load(self, mxid: UserID, *, create: bool) -> BridgeOlmMachine | None:
        lock = self._locks.setdefault(mxid, asyncio.Lock())
        async with lock:
            if mxid in self._machines:
                return self._machines[mxid]
            store = BridgeCryptoStore(mxid, self._pickle_key, self._db)
            device_id = await store.get_device_id()
            if not device_id and not create:
                return None
            machine = await self._open(mxid, store, device_id or None)
            self._machines[mxid] = machine
            return machine

    async def _open(
        self, mxid: UserID, store: BridgeCryptoStore, device_id: DeviceID | None
    ) -> BridgeOlmMachine:
        if device_id:
            machine = self._machine_for(mxid, store, device_id)
            await machine.load()
            if machine.account.shared:
                raw = await query_keys_raw(machine, [mxid])
                if (device_keys_of(raw, mxid, device_id) or {}).get("keys"):
                    machine.client.api.as_device_id = device_id
                    # Devices from before the bridge kept cross-signing keys, or whose
                    # signature went missing, are signed here, at their first use.
                    await self.cross_signing.ensure_signed(machine, raw)
                    return machine
                # The homeserver lost the device (an admin deleted it): start afresh.
                log.warning("Device %s of %s is gone from the homeserver; making a new one",
                            device_id, mxid)
                await store.delete()
                store._account = None  # the store caches the account it loaded
                device_id = None
        if not device_id:
            device_id = _new_device_id()
            store._device_id = device_id
            machine = self._machine_for(mxid, store, device_id)
            await machine.load()  # creates and stores the account under this device id
        # Creating an existing device only updates its name, so this is safe to repeat
        # after a crash between storing the account and uploading its keys.
        await machine.client.create_device_msc4190(device_id, self._device_name)
        await machine.share_keys(0)
        # Signed before the machine is handed out, so before its first encrypted event:
        # clients that exclude unsigned devices never see this device unsigned. A failure
        # raises, and the next use of this identity tries again.
        await self.cross_signing.ensure_signed(machine)
        log.info("Device %s of %s is ready for encrypted rooms", device_id, mxid)
        return machine

    def _machine_for(
        self, mxid: UserID, store: BridgeCryptoStore, device_id: DeviceID
    ) -> BridgeOlmMachine:
        assert self._http is not None, "BridgeDevices.start() was not called"
        api = HTTPAPI(
            base_url=self._homeserver,
            token=self._as_token,
            client_session=self._http,
            # The device id is added to requests (MSC3202) once the device exists.
            as_user_id=mxid,
            log=logging.getLogger("bridge.matrix.crypto.api"),
        )
        client = Client(mxid=mxid, device_id=device_id, api=api)
        return BridgeOlmMachine(client, store, self._state, self._on_room_key)
