"""The crypto store in the bridge's database (SQLite and PostgreSQL), and late-key waiting.

Each store test runs on a fresh SQLite file and on a fresh PostgreSQL database
(``BRIDGE_TEST_POSTGRES``; required in CI, see tests/support/postgres.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
import olm
import pytest
import pytest_asyncio
from mautrix.crypto import OlmAccount, PgCryptoStore
from mautrix.crypto.cross_signing_key import CrossSigningSeeds
from mautrix.crypto.sessions import InboundGroupSession, OutboundGroupSession
from mautrix.types import RoomID

from bridge.db import BridgeDatabase
from bridge.devtools.postgres import fresh_postgres_database
from bridge.matrix.crypto_cross_signing import CrossSigningKeys
from bridge.matrix.crypto_devices import BridgeCryptoStore, BridgeDevices
from bridge.matrix.crypto_late import LateKeys, WaitingEvent
from tests.support.postgres import postgres_server_url

PICKLE_KEY = "a pickle key for tests only"
ROOM = RoomID("!room:test.local")


@pytest.fixture(params=["sqlite", "postgres"])
async def db_uri(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:{tmp_path / 'bridge.db'}"
        return
    async with fresh_postgres_database(postgres_server_url()) as url:
        yield url


@asynccontextmanager
async def opened(uri: str) -> AsyncIterator[BridgeDatabase]:
    """The bridge database with the crypto tables, as BridgeCrypto.start() prepares it."""
    db = BridgeDatabase(uri)
    await db.start()
    await PgCryptoStore.upgrade_table.upgrade(db.db)
    try:
        yield db
    finally:
        await db.stop()


async def test_accounts_survive_a_restart_and_need_the_same_pickle_key(db_uri: str) -> None:
    async with opened(db_uri) as db:
        store = BridgeCryptoStore("@ghost:test.local", PICKLE_KEY, db.db)
        store._device_id = "HUBDEVICE"
        account = OlmAccount()
        await store.put_account(account)
        identity = account.identity_key
    async with opened(db_uri) as db:  # upgrades again: nothing to do, nothing lost
        store = BridgeCryptoStore("@ghost:test.local", PICKLE_KEY, db.db)
        assert await store.get_device_id() == "HUBDEVICE"
        loaded = await store.get_account()
        assert loaded is not None and loaded.identity_key == identity
        with pytest.raises(olm.OlmAccountError):
            await BridgeCryptoStore("@ghost:test.local", "another key entirely", db.db).get_account()
        # Other accounts are separate.
        assert await BridgeCryptoStore("@other:test.local", PICKLE_KEY, db.db).get_account() is None


async def test_invalidating_a_room_session_applies_to_every_account(db_uri: str) -> None:
    async with opened(db_uri) as db:
        stores = [BridgeCryptoStore(f"@sender{i}:test.local", PICKLE_KEY, db.db) for i in range(2)]
        for store in stores:
            await store.put_account(OlmAccount())
            await store.add_outbound_group_session(OutboundGroupSession(ROOM))
        other_room = RoomID("!other:test.local")
        await stores[0].add_outbound_group_session(OutboundGroupSession(other_room))
        assert all([await s.get_outbound_group_session(ROOM) for s in stores])

        await stores[1].remove_outbound_group_session(ROOM)  # e.g. someone left the room

        assert not any([await s.get_outbound_group_session(ROOM) for s in stores])
        assert await stores[0].get_outbound_group_session(other_room) is not None


async def test_a_room_key_is_found_whichever_of_our_accounts_holds_it(db_uri: str) -> None:
    async with opened(db_uri) as db:
        holder = BridgeCryptoStore("@ghost:test.local", PICKLE_KEY, db.db)
        account = OlmAccount()
        await holder.put_account(account)
        outbound = OutboundGroupSession(ROOM)
        inbound = InboundGroupSession(
            session_key=outbound.session_key,
            signing_key=account.signing_key,
            sender_key=account.identity_key,
            room_id=ROOM,
        )
        await holder.put_group_session(ROOM, account.identity_key, inbound.id, inbound)
        devices = BridgeDevices(
            db=db.db, homeserver="http://127.0.0.1:9", as_token="unused", pickle_key=PICKLE_KEY,
            device_name="test", state=None, on_room_key=lambda _: None,  # type: ignore[arg-type]
            cross_signing=CrossSigningKeys(db.db, PICKLE_KEY),
        )
        assert await devices.account_with_session(ROOM, inbound.id) == "@ghost:test.local"
        assert await devices.account_with_session(RoomID("!elsewhere:test.local"), inbound.id) is None
        assert await devices.account_with_session(ROOM, "no such session") is None


async def test_waiting_events_are_stored_by_id_only(db_uri: str) -> None:
    async with opened(db_uri) as db:
        late = LateKeys(
            db.db, wait_seconds=60, give_up_seconds=60,
            retry=_never, ask=_nothing, tell=_nothing,
        )
        await late.park(_waiting("$secret"))
        rows = await db.db.fetch("SELECT * FROM undecrypted_event")
        assert [r["event_id"] for r in rows] == ["$secret"]
        assert set(rows[0].keys()) == {
            "event_id", "room_id", "session_id", "sender", "sender_key", "device_id",
            "received_at", "notified_at",
        }
        await late.stop()


async def _never(_: WaitingEvent) -> bool:
    return False


async def _nothing(_: WaitingEvent) -> None:
    return None


def _waiting(event_id: str, session_id: str = "session-1", age: float = 0) -> WaitingEvent:
    return WaitingEvent(
        event_id=event_id,
        room_id=ROOM,
        session_id=session_id,
        sender="@alice:test.local",
        sender_key="curve-key-of-alice",
        device_id="ALICEDEVICE",
        received_at=int((time.time() - age) * 1000),
    )


class Recorder:
    """Callbacks for LateKeys that record what happened; the key 'arrives' on demand."""

    def __init__(self) -> None:
        self.have_key: set[str] = set()
        self.retried: list[str] = []
        self.asked: list[str] = []
        self.told: list[str] = []

    async def retry(self, event: WaitingEvent) -> bool:
        self.retried.append(event.event_id)
        return event.session_id in self.have_key

    async def ask(self, event: WaitingEvent) -> None:
        self.asked.append(event.event_id)

    async def tell(self, event: WaitingEvent) -> None:
        self.told.append(event.event_id)

    def late_keys(self, db: BridgeDatabase) -> LateKeys:
        return LateKeys(
            db.db, wait_seconds=0.1, give_up_seconds=0.3,
            retry=self.retry, ask=self.ask, tell=self.tell,
        )


@pytest_asyncio.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[BridgeDatabase]:
    async with opened(f"sqlite:{tmp_path / 'bridge.db'}") as db:
        yield db


async def until(condition, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_waiting_event_asks_for_its_key_then_tells_the_sender(sqlite_db: BridgeDatabase) -> None:
    calls = Recorder()
    late = calls.late_keys(sqlite_db)
    await late.park(_waiting("$e1"))
    assert late.status() == {"waiting_for_keys": 1, "undecryptable": 0}
    await until(lambda: calls.asked)
    assert calls.told == []  # asked first, told only after the longer timeout
    await until(lambda: calls.told)
    assert calls.asked == ["$e1"] and calls.told == ["$e1"]
    assert late.status() == {"waiting_for_keys": 0, "undecryptable": 1}
    row = await sqlite_db.db.fetchrow("SELECT notified_at FROM undecrypted_event")
    assert row["notified_at"] is not None

    # The key still comes: the event is handled, forgotten, and the status clears.
    calls.have_key.add("session-1")
    late.key_arrived("session-1")
    await until(lambda: late.status()["undecryptable"] == 0)
    assert await sqlite_db.db.fetchval("SELECT COUNT(*) FROM undecrypted_event") == 0
    await late.stop()


async def test_a_key_that_arrives_in_time_means_no_notice(sqlite_db: BridgeDatabase) -> None:
    calls = Recorder()
    late = calls.late_keys(sqlite_db)
    await late.park(_waiting("$e1", "s1"))
    await late.park(_waiting("$e2", "s1"))
    await late.park(_waiting("$other", "s2"))
    calls.have_key.add("s1")
    late.key_arrived("s1")
    await until(lambda: late.status()["waiting_for_keys"] == 1)
    assert sorted(calls.retried) == ["$e1", "$e2"]
    assert calls.told == []
    await late.stop()


async def test_waiting_resumes_after_a_restart(sqlite_db: BridgeDatabase) -> None:
    first = Recorder()
    late = first.late_keys(sqlite_db)
    await late.park(_waiting("$old"))
    await late.stop()  # the bridge stops; the row stays

    second = Recorder()
    second.have_key.add("session-1")  # the key came while the bridge was away
    resumed = second.late_keys(sqlite_db)
    await resumed.resume()
    await until(lambda: second.retried == ["$old"])
    await until(lambda: resumed.status() == {"waiting_for_keys": 0, "undecryptable": 0})
    assert await sqlite_db.db.fetchval("SELECT COUNT(*) FROM undecrypted_event") == 0
    await resumed.stop()


async def test_cross_signing_keys_are_stored_sealed_and_survive_a_restart(db_uri: str) -> None:
    async with opened(db_uri) as db:
        keys = CrossSigningKeys(db.db, PICKLE_KEY)
        await keys.start()
        seeds = CrossSigningSeeds.generate()
        stored = await keys._store("@ghost:test.local", seeds)
        row = await db.db.fetchrow("SELECT * FROM hub_cross_signing")
        assert row["master_key"] == olm.PkSigning(seeds.master_key).public_key == stored.master_key
        assert not [seed for seed in seeds if seed.hex()[:16] in str(dict(row))]
    async with opened(db_uri) as db:
        keys = CrossSigningKeys(db.db, PICKLE_KEY)
        await keys.start()  # the table exists already: nothing changes
        again = await keys.stored("@ghost:test.local")
        assert again is not None and again.seeds == seeds and again.recovery_key_id is None
        assert await keys.held_master_keys() == {"@ghost:test.local": stored.master_key}
        assert await keys.stored("@nobody:test.local") is None
        # With another pickle key the keys are lost (as the Olm accounts are): treated as
        # absent, so a new identity is made when a device needs signing.
        assert await CrossSigningKeys(db.db, "another pickle key").stored("@ghost:test.local") is None
