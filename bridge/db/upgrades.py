"""Numbered schema upgrades. Append a new function for every change; never edit old ones."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Scheme, UpgradeTable

upgrade_table = UpgradeTable(database_name="hub bridge", version_table_name="hub_version")


@upgrade_table.register(description="Initial schema")
async def upgrade_v1(conn: Connection, scheme: Scheme) -> None:
    big = "BIGINT"
    await conn.execute(
        """CREATE TABLE bridge_user (
            mxid              TEXT PRIMARY KEY,
            management_room   TEXT,
            created_at        BIGINT NOT NULL
        )"""
    )
    await conn.execute(
        """CREATE TABLE login (
            network      TEXT NOT NULL,
            login_id     TEXT NOT NULL,
            owner        TEXT NOT NULL REFERENCES bridge_user(mxid) ON DELETE CASCADE,
            remote_name  TEXT NOT NULL DEFAULT '',
            state        TEXT NOT NULL,
            error        TEXT,
            metadata     TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (network, login_id)
        )"""
    )
    await conn.execute("CREATE INDEX login_owner_idx ON login (owner)")
    # A room may hold several portals (hub rooms), so room_id is not unique.
    await conn.execute(
        f"""CREATE TABLE portal (
            network      TEXT NOT NULL,
            chat_id      TEXT NOT NULL,
            room_id      TEXT,
            login_id     TEXT,
            name         TEXT,
            topic        TEXT,
            avatar_id    TEXT,
            avatar_mxc   TEXT,
            is_direct    BOOLEAN NOT NULL DEFAULT false,
            encrypted    BOOLEAN NOT NULL DEFAULT false,
            created_at   {big} NOT NULL,
            PRIMARY KEY (network, chat_id)
        )"""
    )
    await conn.execute("CREATE INDEX portal_room_idx ON portal (room_id)")
    await conn.execute(
        """CREATE TABLE ghost (
            network      TEXT NOT NULL,
            user_id      TEXT NOT NULL,
            name         TEXT,
            avatar_id    TEXT,
            avatar_mxc   TEXT,
            registered   BOOLEAN NOT NULL DEFAULT false,
            PRIMARY KEY (network, user_id)
        )"""
    )
    # One row per message part and per chat: in a hub room one Matrix event maps to a
    # message in each linked chat.
    await conn.execute(
        f"""CREATE TABLE message (
            network      TEXT NOT NULL,
            chat_id      TEXT NOT NULL,
            remote_id    TEXT NOT NULL,
            part         INTEGER NOT NULL DEFAULT 0,
            room_id      TEXT NOT NULL,
            event_id     TEXT NOT NULL,
            sender       TEXT NOT NULL,
            timestamp    {big} NOT NULL,
            PRIMARY KEY (network, chat_id, remote_id, part)
        )"""
    )
    await conn.execute("CREATE INDEX message_event_idx ON message (room_id, event_id)")
    await conn.execute("CREATE INDEX message_time_idx ON message (timestamp)")
    await conn.execute(
        f"""CREATE TABLE reaction (
            network      TEXT NOT NULL,
            chat_id      TEXT NOT NULL,
            remote_msg   TEXT NOT NULL,
            sender       TEXT NOT NULL,
            emoji        TEXT NOT NULL,
            room_id      TEXT NOT NULL,
            event_id     TEXT NOT NULL,
            timestamp    {big} NOT NULL,
            PRIMARY KEY (network, chat_id, remote_msg, sender, emoji)
        )"""
    )
    await conn.execute("CREATE INDEX reaction_event_idx ON reaction (room_id, event_id)")
    # Appservice transactions already handled: a repeat after a restart is not re-processed.
    await conn.execute(
        f"""CREATE TABLE as_txn (
            txn_id       TEXT PRIMARY KEY,
            received_at  {big} NOT NULL
        )"""
    )
    await conn.execute(
        """CREATE TABLE kv_store (
            key    TEXT PRIMARY KEY,
            value  TEXT NOT NULL
        )"""
    )


@upgrade_table.register(description="Durable queue of Matrix events accepted but not yet handled")
async def upgrade_v2(conn: Connection, scheme: Scheme) -> None:
    # A row lives only from the moment a transaction is accepted until its event is
    # handled, so a crash in between can't lose it. It is deleted right after.
    await conn.execute(
        """CREATE TABLE pending_event (
            seq          BIGINT PRIMARY KEY,
            txn_id       TEXT NOT NULL,
            room_id      TEXT NOT NULL,
            event        TEXT NOT NULL,
            received_at  BIGINT NOT NULL
        )"""
    )


@upgrade_table.register(description="Hub rooms: relaying portals, opt-outs and consent notices")
async def upgrade_v3(conn: Connection, scheme: Scheme) -> None:
    # A relaying portal was linked to its room on purpose (hub rooms): it relays messages
    # of people without their own login through the linking login.
    await conn.execute("ALTER TABLE portal ADD COLUMN relay BOOLEAN NOT NULL DEFAULT false")
    await conn.execute(
        """CREATE TABLE relay_optout (
            subject     TEXT PRIMARY KEY,
            created_at  BIGINT NOT NULL
        )"""
    )
    await conn.execute(
        """CREATE TABLE relay_notice (
            network   TEXT NOT NULL,
            chat_id   TEXT NOT NULL,
            person    TEXT NOT NULL,
            PRIMARY KEY (network, chat_id, person)
        )"""
    )


@upgrade_table.register(description="Encrypted events waiting for their keys")
async def upgrade_v4(conn: Connection, scheme: Scheme) -> None:
    # Ids and public keys only, never the ciphertext: when the key arrives, the event is
    # fetched again from the homeserver. mautrix's own crypto tables (crypto_*) have their
    # own version table (crypto_version) and are upgraded by bridge.matrix.crypto at start.
    await conn.execute(
        """CREATE TABLE undecrypted_event (
            event_id     TEXT PRIMARY KEY,
            room_id      TEXT NOT NULL,
            session_id   TEXT NOT NULL,
            sender       TEXT NOT NULL,
            sender_key   TEXT NOT NULL,
            device_id    TEXT,
            received_at  BIGINT NOT NULL,
            notified_at  BIGINT
        )"""
    )
    await conn.execute(
        "CREATE INDEX undecrypted_event_session_idx ON undecrypted_event (session_id)"
    )
