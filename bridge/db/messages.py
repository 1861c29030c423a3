"""Message and reaction id mappings. Ids only: a body never reaches the database."""

from __future__ import annotations

from dataclasses import dataclass

from mautrix.util.async_db import Database

from ..core.ids import EventID, PortalKey, RemoteMessageID, RoomID


@dataclass(frozen=True)
class MessageRow:
    portal: PortalKey
    remote_id: RemoteMessageID
    part: int
    room_id: RoomID
    event_id: EventID
    sender: str
    """The Matrix user id that the event appears from in the room."""
    timestamp: int


def _message(row) -> MessageRow:
    return MessageRow(
        portal=PortalKey(row["network"], row["chat_id"]),
        remote_id=row["remote_id"],
        part=row["part"],
        room_id=row["room_id"],
        event_id=row["event_id"],
        sender=row["sender"],
        timestamp=row["timestamp"],
    )


_COLUMNS = "network, chat_id, remote_id, part, room_id, event_id, sender, timestamp"


class MessageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, m: MessageRow) -> None:
        await self.db.execute(
            f"INSERT INTO message ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT DO NOTHING",
            m.portal.network,
            m.portal.chat_id,
            m.remote_id,
            m.part,
            m.room_id,
            m.event_id,
            m.sender,
            m.timestamp,
        )

    async def set_event(self, row: MessageRow, event_id: EventID) -> None:
        """Record (or correct) the Matrix event of a mapping row."""
        await self.db.execute(
            f"INSERT INTO message ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (network, chat_id, remote_id, part) DO UPDATE SET event_id=excluded.event_id",
            row.portal.network,
            row.portal.chat_id,
            row.remote_id,
            row.part,
            row.room_id,
            event_id,
            row.sender,
            row.timestamp,
        )

    async def by_remote(self, portal: PortalKey, remote_id: str) -> list[MessageRow]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM message WHERE network=$1 AND chat_id=$2 AND remote_id=$3 "
            "ORDER BY part",
            portal.network,
            portal.chat_id,
            remote_id,
        )
        return [_message(r) for r in rows]

    async def by_event(
        self, portal: PortalKey, room_id: RoomID | None, event_id: EventID
    ) -> MessageRow | None:
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM message WHERE room_id=$1 AND event_id=$2 "
            "AND network=$3 AND chat_id=$4 ORDER BY part LIMIT 1",
            room_id,
            event_id,
            portal.network,
            portal.chat_id,
        )
        return _message(row) if row else None

    async def in_room(self, room_id: RoomID, event_id: EventID) -> list[MessageRow]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM message WHERE room_id=$1 AND event_id=$2", room_id, event_id
        )
        return [_message(r) for r in rows]

    async def delete_remote(self, portal: PortalKey, remote_id: str) -> None:
        await self.db.execute(
            "DELETE FROM message WHERE network=$1 AND chat_id=$2 AND remote_id=$3",
            portal.network,
            portal.chat_id,
            remote_id,
        )

    async def expire(self, before_ms: int) -> int:
        rows = await self.db.fetch(
            "DELETE FROM message WHERE timestamp < $1 RETURNING 1", before_ms
        )
        return len(rows)


@dataclass(frozen=True)
class ReactionRow:
    portal: PortalKey
    remote_msg: RemoteMessageID
    sender: str
    """The remote user id (reaction from the network) or Matrix id (reaction from Matrix)."""
    emoji: str
    room_id: RoomID
    event_id: EventID
    timestamp: int


_R_COLUMNS = "network, chat_id, remote_msg, sender, emoji, room_id, event_id, timestamp"


def _reaction(row) -> ReactionRow:
    return ReactionRow(
        portal=PortalKey(row["network"], row["chat_id"]),
        remote_msg=row["remote_msg"],
        sender=row["sender"],
        emoji=row["emoji"],
        room_id=row["room_id"],
        event_id=row["event_id"],
        timestamp=row["timestamp"],
    )


class ReactionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, r: ReactionRow) -> None:
        await self.db.execute(
            f"INSERT INTO reaction ({_R_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT DO NOTHING",
            r.portal.network,
            r.portal.chat_id,
            r.remote_msg,
            r.sender,
            r.emoji,
            r.room_id,
            r.event_id,
            r.timestamp,
        )

    async def get(
        self, portal: PortalKey, remote_msg: str, sender: str, emoji: str
    ) -> ReactionRow | None:
        row = await self.db.fetchrow(
            f"SELECT {_R_COLUMNS} FROM reaction WHERE network=$1 AND chat_id=$2 "
            "AND remote_msg=$3 AND sender=$4 AND emoji=$5",
            portal.network,
            portal.chat_id,
            remote_msg,
            sender,
            emoji,
        )
        return _reaction(row) if row else None

    async def by_event(self, room_id: RoomID, event_id: EventID) -> list[ReactionRow]:
        rows = await self.db.fetch(
            f"SELECT {_R_COLUMNS} FROM reaction WHERE room_id=$1 AND event_id=$2",
            room_id,
            event_id,
        )
        return [_reaction(r) for r in rows]

    async def delete(self, r: ReactionRow) -> None:
        await self.db.execute(
            "DELETE FROM reaction WHERE network=$1 AND chat_id=$2 AND remote_msg=$3 "
            "AND sender=$4 AND emoji=$5",
            r.portal.network,
            r.portal.chat_id,
            r.remote_msg,
            r.sender,
            r.emoji,
        )

    async def expire(self, before_ms: int) -> None:
        await self.db.execute("DELETE FROM reaction WHERE timestamp < $1", before_ms)
