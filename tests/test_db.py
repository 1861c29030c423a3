"""The database layer on SQLite and PostgreSQL: upgrades, every store, and no bodies at rest.

Every test runs twice, once on a fresh SQLite file and once on a fresh PostgreSQL database
(``BRIDGE_TEST_POSTGRES``), through the ``db`` fixture.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bridge.core.connector import LoginRecord, LoginState
from bridge.core.ids import (
    EventID,
    GhostKey,
    LoginID,
    NetworkID,
    PortalKey,
    RemoteChatID,
    RemoteMessageID,
    RemoteUserID,
    RoomID,
    UserID,
)
from bridge.db import BridgeDatabase
from bridge.db.messages import MessageRow, ReactionRow
from bridge.db.portals import GhostRow, PortalRow
from bridge.db.upgrades import upgrade_table
from bridge.devtools.postgres import fresh_postgres_database
from tests.support.postgres import postgres_server_url

ALICE = UserID("@alice:test.local")
BOB = UserID("@bob:test.local")
LOOPBACK = NetworkID("loopback")
OTHER = NetworkID("othernet")


@asynccontextmanager
async def database_uri(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite:{tmp_path / 'bridge.db'}"
        return
    async with fresh_postgres_database(postgres_server_url()) as uri:
        yield uri


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BridgeDatabase]:
    """A started BridgeDatabase on an empty SQLite file or an empty PostgreSQL database."""
    async with database_uri(request.param, tmp_path) as uri:
        database = BridgeDatabase(uri, max_connections=3)
        await database.start()
        try:
            yield database
        finally:
            await database.stop()


def is_postgres(db: BridgeDatabase) -> bool:
    return db.uri.startswith("postgres")


async def table_columns(db: BridgeDatabase) -> dict[str, list[str]]:
    """Every table of the bridge's schema with its column names."""
    if is_postgres(db):
        rows = await db.db.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        )
        tables: dict[str, list[str]] = {}
        for row in rows:
            tables.setdefault(row["table_name"], []).append(row["column_name"])
        return tables
    names = await db.db.fetch(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
    )
    tables = {}
    for row in names:
        info = await db.db.fetch(f"PRAGMA table_info({row['name']})")
        tables[row["name"]] = [col["name"] for col in info]
    return tables


def portal_key(chat: str, network: NetworkID = LOOPBACK) -> PortalKey:
    return PortalKey(network, RemoteChatID(chat))


def message(
    chat: str, remote_id: str, part: int, event: str, *, room: str = "!room:test.local", ts: int = 1000
) -> MessageRow:
    return MessageRow(
        portal=portal_key(chat),
        remote_id=RemoteMessageID(remote_id),
        part=part,
        room_id=RoomID(room),
        event_id=EventID(event),
        sender="@hub_loopback_bob:test.local",
        timestamp=ts,
    )


def reaction(sender: str, emoji: str, event: str, *, ts: int = 1000) -> ReactionRow:
    return ReactionRow(
        portal=portal_key("chat1"),
        remote_msg=RemoteMessageID("m1"),
        sender=sender,
        emoji=emoji,
        room_id=RoomID("!room:test.local"),
        event_id=EventID(event),
        timestamp=ts,
    )


# --- upgrades -------------------------------------------------------------------------------


async def test_upgrades_create_every_table_from_an_empty_database(db: BridgeDatabase) -> None:
    tables = await table_columns(db)
    expected = {"bridge_user", "login", "portal", "ghost", "message", "reaction", "as_txn", "kv_store"}
    assert expected <= set(tables)
    version = await db.db.fetchval("SELECT version FROM hub_version")
    assert version == len(upgrade_table.upgrades)


async def test_restart_keeps_data_and_does_not_upgrade_again(db: BridgeDatabase) -> None:
    await db.users.ensure(ALICE, 1)
    await db.kv.put("marker", "before restart")
    await db.stop()
    reopened = BridgeDatabase(db.uri, max_connections=3)
    await reopened.start()
    try:
        assert await reopened.db.fetchval("SELECT version FROM hub_version") == len(
            upgrade_table.upgrades
        )
        assert await reopened.db.fetchval("SELECT COUNT(*) FROM hub_version") == 1
        assert await reopened.kv.get("marker") == "before restart"
        assert await reopened.users.get_management_room(ALICE) is None
        assert await reopened.db.fetchval("SELECT COUNT(*) FROM bridge_user") == 1
    finally:
        await reopened.stop()


async def test_no_table_has_a_column_that_could_hold_a_message_body(db: BridgeDatabase) -> None:
    body_words = {"body", "text", "content", "message", "caption", "html", "formatted"}
    for table, columns in (await table_columns(db)).items():
        for column in columns:
            words = set(re.split(r"[_\W]+", column.lower()))
            assert not words & body_words, f"{table}.{column} could hold a message body"


# --- users and logins -----------------------------------------------------------------------


async def test_users_and_management_rooms(db: BridgeDatabase) -> None:
    await db.users.ensure(ALICE, 1)
    await db.users.ensure(ALICE, 2)  # a second ensure is harmless
    assert await db.users.get_management_room(ALICE) is None
    assert await db.users.get_management_room(BOB) is None
    assert not await db.users.is_management_room(RoomID("!mgmt:test.local"))

    await db.users.set_management_room(ALICE, RoomID("!mgmt:test.local"))
    assert await db.users.get_management_room(ALICE) == "!mgmt:test.local"
    assert await db.users.is_management_room(RoomID("!mgmt:test.local"))
    assert not await db.users.is_management_room(RoomID("!other:test.local"))

    await db.users.set_management_room(ALICE, None)
    assert await db.users.get_management_room(ALICE) is None
    assert not await db.users.is_management_room(RoomID("!mgmt:test.local"))


def login(owner: UserID, network: NetworkID, login_id: str, **kwargs) -> LoginRecord:
    return LoginRecord(network=network, login_id=LoginID(login_id), owner=owner, **kwargs)


async def test_login_round_trip_keeps_unicode_json_metadata(db: BridgeDatabase) -> None:
    await db.users.ensure(ALICE, 1)
    metadata = {
        "session": "Grüße 🌍 — 日本語 \u0000 \"quoted\" \\ back",
        "nested": {"list": [1, 2.5, None, True, "ünï"], "empty": {}},
        "number": 2**53,
    }
    record = login(
        ALICE, LOOPBACK, "acct-1", remote_name="Ålice 🐇", state=LoginState.CONNECTED, metadata=metadata
    )
    await db.logins.put(record)
    assert await db.logins.get(LOOPBACK, LoginID("acct-1")) == record
    assert await db.logins.get(OTHER, LoginID("acct-1")) is None
    assert await db.logins.get(LOOPBACK, LoginID("acct-2")) is None


async def test_login_put_updates_an_existing_login(db: BridgeDatabase) -> None:
    await db.users.ensure(ALICE, 1)
    await db.logins.put(login(ALICE, LOOPBACK, "acct-1", metadata={"v": 1}))
    updated = login(ALICE, LOOPBACK, "acct-1", remote_name="new", state=LoginState.CONNECTED, metadata={"v": 2})
    await db.logins.put(updated)
    assert await db.logins.get(LOOPBACK, LoginID("acct-1")) == updated
    assert len(await db.logins.all()) == 1


async def test_logins_by_owner_set_state_and_delete(db: BridgeDatabase) -> None:
    await db.users.ensure(ALICE, 1)
    await db.users.ensure(BOB, 1)
    await db.logins.put(login(ALICE, OTHER, "z"))
    await db.logins.put(login(ALICE, LOOPBACK, "b"))
    await db.logins.put(login(ALICE, LOOPBACK, "a"))
    await db.logins.put(login(BOB, LOOPBACK, "c"))

    owned = await db.logins.by_owner(ALICE)
    assert [(r.network, r.login_id) for r in owned] == [(LOOPBACK, "a"), (LOOPBACK, "b"), (OTHER, "z")]
    assert [r.login_id for r in await db.logins.by_owner(BOB)] == ["c"]
    assert await db.logins.by_owner(UserID("@nobody:test.local")) == []
    assert len(await db.logins.all()) == 4

    await db.logins.set_state(LOOPBACK, LoginID("a"), LoginState.BAD_CREDENTIALS, "token revoked ✗")
    changed = await db.logins.get(LOOPBACK, LoginID("a"))
    assert changed is not None
    assert (changed.state, changed.error) == (LoginState.BAD_CREDENTIALS, "token revoked ✗")
    await db.logins.set_state(LOOPBACK, LoginID("a"), LoginState.CONNECTED, None)
    changed = await db.logins.get(LOOPBACK, LoginID("a"))
    assert changed is not None and (changed.state, changed.error) == (LoginState.CONNECTED, None)

    await db.logins.delete(LOOPBACK, LoginID("a"))
    assert await db.logins.get(LOOPBACK, LoginID("a")) is None
    assert [r.login_id for r in await db.logins.by_owner(ALICE)] == ["b", "z"]


async def test_deleting_a_user_deletes_their_logins(db: BridgeDatabase) -> None:
    await db.users.ensure(ALICE, 1)
    await db.users.ensure(BOB, 1)
    await db.logins.put(login(ALICE, LOOPBACK, "a"))
    await db.logins.put(login(BOB, LOOPBACK, "b"))
    await db.users.delete(ALICE)
    assert await db.logins.by_owner(ALICE) == []
    assert [r.login_id for r in await db.logins.all()] == ["b"]


async def test_a_login_needs_a_known_owner(db: BridgeDatabase) -> None:
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await db.logins.put(login(UserID("@ghost:test.local"), LOOPBACK, "x"))


# --- portals and ghosts ---------------------------------------------------------------------


async def test_portal_put_get_update_and_delete(db: BridgeDatabase) -> None:
    key = portal_key("chat/1 ünï")
    assert await db.portals.get(key) is None
    portal = PortalRow(key=key, login_id=LoginID("acct-1"), name="Bücher 📚", created_at=1234)
    await db.portals.put(portal)
    assert await db.portals.get(key) == portal
    assert await db.portals.count() == 1

    portal.room_id = RoomID("!room:test.local")
    portal.topic = "a topic"
    portal.avatar_id, portal.avatar_mxc = "av1", "mxc://test.local/abc"
    portal.is_direct, portal.encrypted = True, True
    await db.portals.put(portal)
    assert await db.portals.get(key) == portal
    assert await db.portals.count() == 1

    # created_at is the first creation time: a later put doesn't move it.
    await db.portals.put(PortalRow(key=key, room_id=portal.room_id, created_at=9999))
    stored = await db.portals.get(key)
    assert stored is not None
    assert stored.created_at == 1234 and stored.name is None and not stored.is_direct

    await db.portals.delete(key)
    assert await db.portals.get(key) is None
    assert await db.portals.count() == 0


async def test_several_portals_may_share_one_hub_room(db: BridgeDatabase) -> None:
    hub = RoomID("!hub:test.local")
    keys = [portal_key("b"), portal_key("a"), portal_key("x", OTHER)]
    for key in keys:
        await db.portals.put(PortalRow(key=key, room_id=hub, created_at=1))
    await db.portals.put(PortalRow(key=portal_key("elsewhere"), room_id=RoomID("!o:test.local")))
    await db.portals.put(PortalRow(key=portal_key("no room yet")))

    in_hub = await db.portals.by_room(hub)
    assert [p.key for p in in_hub] == [portal_key("a"), portal_key("b"), portal_key("x", OTHER)]
    assert await db.portals.by_room(RoomID("!unknown:test.local")) == []
    assert await db.portals.count() == 5


async def test_ghost_put_get_update_and_delete(db: BridgeDatabase) -> None:
    key = GhostKey(LOOPBACK, RemoteUserID("user ✓ 1"))
    assert await db.ghosts.get(key) is None
    ghost = GhostRow(key=key, name="Zoë (Loopback)")
    await db.ghosts.put(ghost)
    assert await db.ghosts.get(key) == ghost
    ghost.avatar_id, ghost.avatar_mxc, ghost.registered = "a1", "mxc://test.local/av", True
    await db.ghosts.put(ghost)
    assert await db.ghosts.get(key) == ghost
    assert await db.ghosts.get(GhostKey(OTHER, key.user_id)) is None
    await db.ghosts.delete(key)
    assert await db.ghosts.get(key) is None


# --- messages and reactions -----------------------------------------------------------------


async def test_message_parts_come_back_in_order(db: BridgeDatabase) -> None:
    for part in (2, 0, 1):
        await db.messages.put(message("chat1", "m1", part, f"$e{part}"))
    await db.messages.put(message("chat1", "m2", 0, "$other"))
    await db.messages.put(message("chat2", "m1", 0, "$chat2"))

    rows = await db.messages.by_remote(portal_key("chat1"), "m1")
    assert [(r.part, r.event_id) for r in rows] == [(0, "$e0"), (1, "$e1"), (2, "$e2")]
    assert rows[0] == message("chat1", "m1", 0, "$e0")
    assert await db.messages.by_remote(portal_key("chat1"), "missing") == []


async def test_message_put_is_idempotent(db: BridgeDatabase) -> None:
    await db.messages.put(message("chat1", "m1", 0, "$e0"))
    await db.messages.put(message("chat1", "m1", 0, "$e0"))
    assert len(await db.messages.by_remote(portal_key("chat1"), "m1")) == 1


async def test_message_by_event_and_in_room_for_a_hub_room(db: BridgeDatabase) -> None:
    # In a hub room one Matrix event is a message in each linked chat.
    await db.messages.put(message("chat1", "r1", 0, "$ev"))
    await db.messages.put(message("chat2", "r2", 0, "$ev"))
    await db.messages.put(message("chat1", "r3", 0, "$ev", room="!elsewhere:test.local"))

    found = await db.messages.by_event(portal_key("chat2"), RoomID("!room:test.local"), EventID("$ev"))
    assert found is not None and found.remote_id == "r2"
    assert await db.messages.by_event(portal_key("chat3"), RoomID("!room:test.local"), EventID("$ev")) is None
    assert await db.messages.by_event(portal_key("chat1"), RoomID("!room:test.local"), EventID("$no")) is None

    in_room = await db.messages.in_room(RoomID("!room:test.local"), EventID("$ev"))
    assert sorted(r.remote_id for r in in_room) == ["r1", "r2"]


async def test_message_by_event_returns_the_first_part(db: BridgeDatabase) -> None:
    await db.messages.put(message("chat1", "m1", 1, "$ev"))
    await db.messages.put(message("chat1", "m1", 0, "$ev"))
    found = await db.messages.by_event(portal_key("chat1"), RoomID("!room:test.local"), EventID("$ev"))
    assert found is not None and found.part == 0


async def test_message_delete_remote_removes_every_part_of_one_message(db: BridgeDatabase) -> None:
    for part in range(3):
        await db.messages.put(message("chat1", "m1", part, f"$e{part}"))
    await db.messages.put(message("chat1", "m2", 0, "$keep"))
    await db.messages.put(message("chat2", "m1", 0, "$keep2"))
    await db.messages.delete_remote(portal_key("chat1"), "m1")
    assert await db.messages.by_remote(portal_key("chat1"), "m1") == []
    assert len(await db.messages.by_remote(portal_key("chat1"), "m2")) == 1
    assert len(await db.messages.by_remote(portal_key("chat2"), "m1")) == 1


async def test_message_expire_deletes_only_older_mappings(db: BridgeDatabase) -> None:
    await db.messages.put(message("chat1", "old1", 0, "$o1", ts=100))
    await db.messages.put(message("chat1", "old2", 0, "$o2", ts=499))
    await db.messages.put(message("chat1", "edge", 0, "$edge", ts=500))
    await db.messages.put(message("chat1", "new", 0, "$n", ts=900))
    assert await db.messages.expire(500) == 2
    assert await db.messages.by_remote(portal_key("chat1"), "old1") == []
    assert await db.messages.by_remote(portal_key("chat1"), "old2") == []
    assert len(await db.messages.by_remote(portal_key("chat1"), "edge")) == 1
    assert len(await db.messages.by_remote(portal_key("chat1"), "new")) == 1
    assert await db.messages.expire(500) == 0


async def test_reactions_put_get_by_event_delete_and_expire(db: BridgeDatabase) -> None:
    thumbs = reaction("bob", "👍", "$r1")
    heart = reaction("bob", "❤️", "$r2", ts=5000)
    other = reaction("@alice:test.local", "👍", "$r3", ts=5000)
    for row in (thumbs, heart, other):
        await db.reactions.put(row)
    await db.reactions.put(thumbs)  # repeated delivery

    assert await db.reactions.get(portal_key("chat1"), "m1", "bob", "👍") == thumbs
    assert await db.reactions.get(portal_key("chat1"), "m1", "bob", "😀") is None
    assert await db.reactions.get(portal_key("chat2"), "m1", "bob", "👍") is None
    assert await db.reactions.by_event(RoomID("!room:test.local"), EventID("$r2")) == [heart]
    assert await db.reactions.by_event(RoomID("!room:test.local"), EventID("$none")) == []

    await db.reactions.delete(heart)
    assert await db.reactions.get(portal_key("chat1"), "m1", "bob", "❤️") is None
    assert await db.reactions.get(portal_key("chat1"), "m1", "@alice:test.local", "👍") == other

    await db.reactions.expire(2000)
    assert await db.reactions.get(portal_key("chat1"), "m1", "bob", "👍") is None
    assert await db.reactions.get(portal_key("chat1"), "m1", "@alice:test.local", "👍") == other


# --- small tables ---------------------------------------------------------------------------


async def test_transaction_ids_are_marked_once_and_expire(db: BridgeDatabase) -> None:
    assert not await db.transactions.seen("txn-1")
    await db.transactions.mark("txn-1", 100)
    await db.transactions.mark("txn-1", 200)  # a repeat is harmless
    assert await db.transactions.seen("txn-1")
    assert not await db.transactions.seen("txn-2")
    await db.transactions.mark("txn-2", 900)
    await db.transactions.expire(500)
    assert not await db.transactions.seen("txn-1")
    assert await db.transactions.seen("txn-2")


async def test_key_value_store(db: BridgeDatabase) -> None:
    assert await db.kv.get("k") is None
    await db.kv.put("k", "v1")
    await db.kv.put("ключ", "значение 🔑")
    await db.kv.put("k", "v2")
    assert await db.kv.get("k") == "v2"
    assert await db.kv.get("ключ") == "значение 🔑"
