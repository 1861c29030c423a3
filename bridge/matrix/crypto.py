"""End-to-bridge encryption: the bridge's side of encrypted Matrix rooms.

``BridgeCrypto`` is all the rest of the bridge sees of Olm and Megolm:

* ``encrypt_if_needed`` turns an event for an encrypted room into ``m.room.encrypted``,
  with a Megolm session owned by the sending user's own device (crypto_devices.py);
* ``decrypt`` gives back the plaintext event, or parks it until its key comes
  (crypto_late.py) so the caller handles it later like any plaintext event;
* ``handle_transaction_extras`` feeds what the homeserver pushes in appservice
  transactions: to-device events (MSC2409), device lists and one-time key counts (MSC3202);
* ``handle_member`` rotates sessions when real users join or leave.

The crypto store lives in the bridge's database (mautrix's ``crypto_*`` tables, upgraded
by their own version table at start).
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mautrix.crypto import PgCryptoStore
from mautrix.errors import DecryptionError, EncryptionError, SessionNotFound
from mautrix.types import (
    ASToDeviceEvent,
    DeviceLists,
    DeviceOTKCount,
    EncryptedEvent,
    EncryptedMegolmEventContent,
    EventType,
    RoomID,
    SessionID,
    StateEvent,
    UserID,
)
from mautrix.util.async_db import Database

from ..config import EncryptionConfig
from .crypto_cross_signing import CrossSigningKeys, IdentityStatus, print_to_admin
from .crypto_devices import BridgeDevices, BridgeOlmMachine
from .crypto_late import LateKeys, WaitingEvent
from .crypto_media import EncryptedUploads
from .crypto_rooms import NEW_ROOM_ENCRYPTION, RoomCryptoState

if TYPE_CHECKING:
    from .api import MatrixAPI

log = logging.getLogger("bridge.matrix.crypto")

# Clients still send the deprecated sender_key (the spec keeps it for compatibility), and
# mautrix warns each time it reads one.
warnings.filterwarnings(
    "ignore", message="The sender_key field in Megolm events was deprecated",
    category=DeprecationWarning,
)

DecryptedHandler = Callable[[dict[str, Any]], Awaitable[list[asyncio.Future[None]]]]

# Never encrypted: redactions go through their own endpoint, and an already encrypted
# event must not be wrapped twice.
_PLAIN_TYPES = frozenset({"m.room.encrypted", "m.room.redaction"})

# Transaction keys, unstable (what Synapse 1.16x sends) before stable.
_TO_DEVICE_KEYS = ("de.sorunome.msc2409.to_device", "to_device")
_DEVICE_LISTS_KEYS = ("org.matrix.msc3202.device_lists", "device_lists")
_OTK_COUNT_KEYS = (
    "org.matrix.msc3202.device_one_time_keys_count",
    "org.matrix.msc3202.device_one_time_key_counts",
    "device_one_time_keys_count",
)


def _first(body: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if body.get(key):
            return body[key]
    return None


class BridgeCrypto:
    def __init__(
        self,
        config: EncryptionConfig,
        matrix: MatrixAPI,
        db: Database,
        *,
        as_token: str,
        is_ours: Callable[[str], bool],
        device_name: str = "Hub bridge",
        announce: Callable[[str], None] = print_to_admin,
    ) -> None:
        self.config = config
        self._matrix = matrix
        self._db = db
        self._is_ours = is_ours
        self.rooms = RoomCryptoState(matrix, db, is_ours)
        self.cross_signing = CrossSigningKeys(db, config.pickle_key, announce=announce)
        self.devices = BridgeDevices(
            db=db,
            homeserver=matrix.homeserver,
            as_token=as_token,
            pickle_key=config.pickle_key,
            device_name=device_name,
            state=self.rooms,
            on_room_key=self._room_key_arrived,
            cross_signing=self.cross_signing,
        )
        self.late = LateKeys(
            db,
            wait_seconds=config.key_wait_seconds,
            give_up_seconds=config.key_give_up_seconds,
            retry=self._retry,
            ask=self._ask_for_key,
            tell=self._tell_sender,
        )
        self.uploads = EncryptedUploads()
        self._bot: BridgeOlmMachine | None = None
        self._handle_decrypted: DecryptedHandler | None = None
        self._share_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._ready = asyncio.Event()
        self.on_decryption_failure: Callable[[str], None] = lambda reason: None
        """Counts failures (the bridge points it at its metrics): ``malformed``,
        ``undecryptable`` or ``no_key`` (gave up waiting for the room key)."""

    def new_room_encryption(self) -> dict[str, Any] | None:
        """The ``m.room.encryption`` content for a new portal room, if it is to be encrypted."""
        return dict(NEW_ROOM_ENCRYPTION) if self.config.default or self.config.require else None

    @property
    def required(self) -> bool:
        return self.config.require

    @property
    def bot(self) -> BridgeOlmMachine:
        assert self._bot is not None, "BridgeCrypto.start() was not called"
        return self._bot

    async def start(self, handle_decrypted: DecryptedHandler) -> None:
        """Upgrade the crypto tables, make the bot's device ready, resume waiting events."""
        self._handle_decrypted = handle_decrypted
        await PgCryptoStore.upgrade_table.upgrade(self._db)
        # Decryption looks sessions up by id across all our accounts (see _decrypt).
        await self._db.execute(
            "CREATE INDEX IF NOT EXISTS hub_megolm_inbound_session_id_idx "
            "ON crypto_megolm_inbound_session (session_id)"
        )
        await self.cross_signing.start()
        await self.devices.start()
        self._bot = await self.devices.machine(self._matrix.bot_mxid)
        if self.config.bot_recovery_key:
            await self.cross_signing.ensure_recovery_key(self._bot)
        self._ready.set()
        await self.late.resume()
        log.info("End-to-bridge encryption is on (appservice mode, bot device %s)",
                 self._bot.client.device_id)

    async def stop(self) -> None:
        await self.late.stop()
        await self.devices.stop()

    def status(self) -> dict[str, Any]:
        return {
            "mode": "appservice",
            "devices": len(self.devices.loaded),
            **self.late.status(),
        }

    def status_line(self) -> str:
        """One line for the bot's status reply."""
        late = self.late.status()
        text = "End-to-bridge encryption is on"
        if late["waiting_for_keys"]:
            text += f"; {late['waiting_for_keys']} message(s) wait for their keys"
        if late["undecryptable"]:
            text += (
                f"; {late['undecryptable']} message(s) could not be decrypted "
                "(their senders were told, and they are bridged if the keys still come)"
            )
        return text + "."

    async def trust_report(self) -> list[IdentityStatus]:
        """Per identity with a device: is the device cross-signed (asked of the server)."""
        await self._ready.wait()
        return await self.cross_signing.report(self.bot)

    # Sending -----------------------------------------------------------------------------

    async def encrypt_if_needed(
        self, room_id: str, sender: str, event_type: str, content: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The event to send instead of ``(event_type, content)``: encrypted if the room is."""
        if event_type in _PLAIN_TYPES:
            return event_type, content
        room = RoomID(room_id)
        if not await self.rooms.is_encrypted(room):
            if not self.required or sender == self._matrix.bot_mxid:
                return event_type, content
            await self._turn_on_encryption(room)
        machine = await self.devices.machine(sender)
        content = self.uploads.attach_keys(content)
        encrypted = await self._encrypt(machine, room, EventType.find(event_type), content)
        return "m.room.encrypted", encrypted.serialize()

    async def _encrypt(
        self, machine: BridgeOlmMachine, room_id: RoomID, event_type: EventType, content: dict
    ) -> EncryptedMegolmEventContent:
        try:
            return await machine.encrypt_megolm_event(room_id, event_type, content)
        except EncryptionError:
            pass  # no session yet, or it expired (the room's rotation settings)
        lock = self._share_locks.setdefault((machine.client.mxid, room_id), asyncio.Lock())
        async with lock:
            session = await machine.crypto_store.get_outbound_group_session(room_id)
            if session is None or not session.shared or session.expired:
                users = await self.rooms.key_recipients(room_id, machine.client.mxid)
                await machine.share_group_session(room_id, users)
        return await machine.encrypt_megolm_event(room_id, event_type, content)

    async def _turn_on_encryption(self, room_id: RoomID) -> None:
        """With ``require``, a portal room without encryption gets it before we send there."""
        from .api import MatrixError

        log.info("Turning on encryption in %s (encryption.require is set)", room_id)
        try:
            await self._matrix.send_state(room_id, "m.room.encryption", NEW_ROOM_ENCRYPTION)
        except Exception as e:
            raise MatrixError(
                f"this bridge only bridges encrypted rooms and could not turn encryption on: {e}",
                retryable=False,
            ) from e
        await self.rooms.remember_encrypted(room_id, NEW_ROOM_ENCRYPTION)

    async def refusal(self, room_id: str) -> str | None:
        """Why a Matrix event in this room must not be bridged (``require``), or None."""
        if not self.required or await self.rooms.is_encrypted(RoomID(room_id)):
            return None
        return (
            "Your message was not bridged: this bridge only bridges encrypted rooms. "
            "Turn on encryption in this room's settings (it can't be turned off again)."
        )

    # Receiving ---------------------------------------------------------------------------

    async def decrypt(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The plaintext event, or None if it waits for its key (then it comes later)."""
        await self._ready.wait()
        try:
            encrypted = EncryptedEvent.deserialize(event)
        except Exception:
            log.warning("Ignoring a malformed encrypted event %s", event.get("event_id"))
            self.on_decryption_failure("malformed")
            return None
        try:
            return await self._decrypt(encrypted, event)
        except SessionNotFound:
            await self._park(encrypted)
        except DecryptionError as e:
            log.warning("Can't decrypt %s from %s: %s", encrypted.event_id, encrypted.sender, e)
            self.on_decryption_failure("undecryptable")
            if not self._is_ours(encrypted.sender):
                await self._matrix.notice(
                    encrypted.room_id,
                    f"The bridge could not decrypt this message ({e}), so it was not bridged. "
                    "Please send it again.",
                    reply_to=encrypted.event_id,
                )
        return None

    async def _decrypt(self, encrypted: EncryptedEvent, raw: dict[str, Any]) -> dict[str, Any]:
        content = encrypted.content
        if not isinstance(content, EncryptedMegolmEventContent):
            raise DecryptionError("unsupported encryption algorithm")
        # Room keys go to every device of the room, so any of our accounts may hold it.
        account = await self.devices.account_with_session(encrypted.room_id, content.session_id)
        if account is None:
            raise SessionNotFound(content.session_id, content.sender_key)
        machine = await self.devices.existing(account)
        if machine is None:
            raise SessionNotFound(content.session_id, content.sender_key)
        decrypted = await machine.decrypt_megolm_event(encrypted)
        inner = decrypted.content
        plain = inner.serialize() if hasattr(inner, "serialize") else dict(inner)
        kind = decrypted.type.t
        if kind == "m.sticker":
            plain.pop("msgtype", None)  # added by mautrix's message type, not by the sender
        return {
            "type": kind,
            "room_id": encrypted.room_id,
            "event_id": encrypted.event_id,
            "sender": encrypted.sender,
            "origin_server_ts": encrypted.timestamp,
            "content": plain,
            "unsigned": raw.get("unsigned") or {},
        }

    async def _park(self, encrypted: EncryptedEvent) -> None:
        content = encrypted.content
        log.info("No key yet for %s (session %s); waiting for it", encrypted.event_id,
                 content.session_id)
        waiting = WaitingEvent(
            event_id=encrypted.event_id,
            room_id=encrypted.room_id,
            session_id=content.session_id,
            sender=encrypted.sender,
            sender_key=content.sender_key,
            device_id=content.device_id or None,
            received_at=int(time.time() * 1000),
        )
        await self.late.park(waiting)
        # The key may have come between the failed lookup and the parking.
        if await self.devices.account_with_session(waiting.room_id, waiting.session_id):
            self.late.key_arrived(waiting.session_id)

    def _room_key_arrived(self, session_id: SessionID) -> None:
        self.late.key_arrived(session_id)

    async def _retry(self, waiting: WaitingEvent) -> bool:
        """Try a waiting event again; True when it is done with (bridged or given up)."""
        if not await self.devices.account_with_session(waiting.room_id, waiting.session_id):
            return False
        raw = await self._matrix.get_event(waiting.room_id, waiting.event_id)
        try:
            decrypted = await self._decrypt(EncryptedEvent.deserialize(raw), raw)
        except SessionNotFound:
            return False
        except DecryptionError as e:
            log.warning("Can't decrypt %s even with its key: %s", waiting.event_id, e)
            self.on_decryption_failure("undecryptable")
            return True
        log.info("The key of %s arrived; handling the event now", waiting.event_id)
        assert self._handle_decrypted is not None
        futures = await self._handle_decrypted(decrypted)
        if futures:
            await asyncio.gather(*futures, return_exceptions=True)
        return True

    async def _ask_for_key(self, waiting: WaitingEvent) -> None:
        sender = UserID(waiting.sender)
        if waiting.device_id:
            devices = [waiting.device_id]
        else:
            devices = list((await self.bot.crypto_store.get_devices(sender) or {}).keys())
        if not devices:
            return
        log.info("Asking %s's devices for the key of %s", sender, waiting.event_id)
        await self.bot.request_room_key(
            RoomID(waiting.room_id),
            waiting.sender_key,  # type: ignore[arg-type]
            SessionID(waiting.session_id),
            {sender: devices},  # type: ignore[dict-item]
            timeout=0,
        )

    async def _tell_sender(self, waiting: WaitingEvent) -> None:
        self.on_decryption_failure("no_key")
        if self._is_ours(waiting.sender):
            log.warning("Gave up waiting for the key of our own event %s", waiting.event_id)
            return
        log.warning("Gave up waiting for the key of %s from %s", waiting.event_id, waiting.sender)
        await self._matrix.notice(
            waiting.room_id,
            f"The bridge could not decrypt this message from {waiting.sender}: its key has "
            "not reached the bridge, so it was not bridged. It will be bridged if the key "
            "still arrives; otherwise please send it again.",
            reply_to=waiting.event_id,
        )

    # What the homeserver pushes ------------------------------------------------------------

    async def handle_transaction_extras(self, body: dict[str, Any]) -> None:
        """To-device events, device list changes and one-time key counts of a transaction."""
        to_device = _first(body, _TO_DEVICE_KEYS) or []
        device_lists = _first(body, _DEVICE_LISTS_KEYS)
        otk_counts = _first(body, _OTK_COUNT_KEYS)
        if not (to_device or device_lists or otk_counts):
            return
        await self._ready.wait()
        for raw in to_device:
            await self._to_device(raw)
        if isinstance(device_lists, dict):
            await self.bot.handle_device_lists(DeviceLists.deserialize(device_lists))
        if isinstance(otk_counts, dict):
            await self._otk_counts(otk_counts)

    async def _to_device(self, raw: Any) -> None:
        try:
            event = ASToDeviceEvent.deserialize(raw)
        except Exception:
            log.debug("Ignoring a malformed to-device event", exc_info=True)
            return
        machine = await self.devices.existing(event.to_user_id)
        if machine is None or machine.client.device_id != event.to_device_id:
            log.debug("To-device event for unknown device %s/%s", event.to_user_id,
                      event.to_device_id)
            return
        try:
            await machine.handle_as_to_device_event(event)
        except Exception:
            # A broken Olm message must not hold up the transaction; the sender's client
            # recovers (a new Olm session) when we can't answer.
            log.warning("Could not handle a %s to-device event from %s", event.type,
                        event.sender, exc_info=True)

    async def _otk_counts(self, counts: dict[str, Any]) -> None:
        for user_id, devices in counts.items():
            if not isinstance(devices, dict) or not self._is_ours(user_id):
                continue
            machine = await self.devices.existing(user_id)
            if machine is None:
                continue
            count = devices.get(machine.client.device_id)
            if isinstance(count, dict):
                await machine.handle_otk_count(DeviceOTKCount.deserialize(count))

    async def handle_member(self, event: dict[str, Any]) -> None:
        """A membership change of a real user rotates the room's sessions (ours don't)."""
        if self._is_ours(str(event.get("state_key", ""))):
            return
        await self._ready.wait()
        try:
            await self.bot.handle_member_event(StateEvent.deserialize(event))
        except Exception:
            # E.g. a room the bot is only invited to, whose state it can't read yet: there
            # is no session of ours to rotate, and the membership handling must go on.
            log.debug("No session rotation for %s", event.get("event_id"), exc_info=True)
