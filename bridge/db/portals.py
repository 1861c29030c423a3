"""Portals (a remote chat linked to a Matrix room) and ghosts (remote people)."""

from __future__ import annotations

from dataclasses import dataclass

from mautrix.util.async_db import Database

from ..core.ids import GhostKey, LoginID, NetworkID, PortalKey, RemoteChatID, RoomID


@dataclass
class PortalRow:
    key: PortalKey
    room_id: RoomID | None = None
    login_id: LoginID | None = None
    """The login that created the portal; used for info lookups when no sender login fits."""
    name: str | None = None
    topic: str | None = None
    avatar_id: str | None = None
    avatar_mxc: str | None = None
    is_direct: bool = False
    encrypted: bool = False
    created_at: int = 0
    relay: bool = False
    """Linked to a hub room: relays for people without their own login."""


_PORTAL_COLUMNS = (
    "network, chat_id, room_id, login_id, name, topic, avatar_id, avatar_mxc, is_direct, "
    "encrypted, created_at, relay"
)


def _portal(row) -> PortalRow:
    return PortalRow(
        key=PortalKey(NetworkID(row["network"]), RemoteChatID(row["chat_id"])),
        room_id=row["room_id"],
        login_id=row["login_id"],
        name=row["name"],
        topic=row["topic"],
        avatar_id=row["avatar_id"],
        avatar_mxc=row["avatar_mxc"],
        is_direct=bool(row["is_direct"]),
        encrypted=bool(row["encrypted"]),
        created_at=row["created_at"],
        relay=bool(row["relay"]),
    )


class PortalStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key: PortalKey) -> PortalRow | None:
        row = await self.db.fetchrow(
            f"SELECT {_PORTAL_COLUMNS} FROM portal WHERE network=$1 AND chat_id=$2",
            key.network,
            key.chat_id,
        )
        return _portal(row) if row else None

    async def by_room(self, room_id: RoomID) -> list[PortalRow]:
        rows = await self.db.fetch(
            f"SELECT {_PORTAL_COLUMNS} FROM portal WHERE room_id=$1 ORDER BY network, chat_id",
            room_id,
        )
        return [_portal(r) for r in rows]

    async def count(self) -> int:
        return await self.db.fetchval("SELECT COUNT(*) FROM portal")

    async def put(self, p: PortalRow) -> None:
        await self.db.execute(
            f"""INSERT INTO portal ({_PORTAL_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (network, chat_id) DO UPDATE SET room_id=excluded.room_id,
                login_id=excluded.login_id, name=excluded.name, topic=excluded.topic,
                avatar_id=excluded.avatar_id, avatar_mxc=excluded.avatar_mxc,
                is_direct=excluded.is_direct, encrypted=excluded.encrypted,
                relay=excluded.relay""",
            p.key.network,
            p.key.chat_id,
            p.room_id,
            p.login_id,
            p.name,
            p.topic,
            p.avatar_id,
            p.avatar_mxc,
            p.is_direct,
            p.encrypted,
            p.created_at,
            p.relay,
        )

    async def delete(self, key: PortalKey) -> None:
        await self.db.execute(
            "DELETE FROM portal WHERE network=$1 AND chat_id=$2", key.network, key.chat_id
        )


@dataclass
class GhostRow:
    key: GhostKey
    name: str | None = None
    avatar_id: str | None = None
    avatar_mxc: str | None = None
    registered: bool = False


class GhostStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key: GhostKey) -> GhostRow | None:
        row = await self.db.fetchrow(
            "SELECT name, avatar_id, avatar_mxc, registered FROM ghost "
            "WHERE network=$1 AND user_id=$2",
            key.network,
            key.user_id,
        )
        if row is None:
            return None
        return GhostRow(
            key=key,
            name=row["name"],
            avatar_id=row["avatar_id"],
            avatar_mxc=row["avatar_mxc"],
            registered=bool(row["registered"]),
        )

    async def put(self, g: GhostRow) -> None:
        await self.db.execute(
            """INSERT INTO ghost (network, user_id, name, avatar_id, avatar_mxc, registered)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (network, user_id) DO UPDATE SET name=excluded.name,
                avatar_id=excluded.avatar_id, avatar_mxc=excluded.avatar_mxc,
                registered=excluded.registered""",
            g.key.network,
            g.key.user_id,
            g.name,
            g.avatar_id,
            g.avatar_mxc,
            g.registered,
        )

    async def delete(self, key: GhostKey) -> None:
        await self.db.execute(
            "DELETE FROM ghost WHERE network=$1 AND user_id=$2", key.network, key.user_id
        )



