"""Matrix users of the bridge and their logins (one user may hold logins on several networks)."""

from __future__ import annotations

import json

from mautrix.util.async_db import Database

from ..core.connector import LoginRecord, LoginState
from ..core.ids import LoginID, NetworkID, RoomID, UserID


class UserStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure(self, mxid: UserID, now_ms: int) -> None:
        await self.db.execute(
            "INSERT INTO bridge_user (mxid, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            mxid,
            now_ms,
        )

    async def get_management_room(self, mxid: UserID) -> RoomID | None:
        return await self.db.fetchval(
            "SELECT management_room FROM bridge_user WHERE mxid=$1", mxid
        )

    async def set_management_room(self, mxid: UserID, room_id: RoomID | None) -> None:
        await self.db.execute(
            "UPDATE bridge_user SET management_room=$2 WHERE mxid=$1", mxid, room_id
        )

    async def is_management_room(self, room_id: RoomID) -> bool:
        found = await self.db.fetchval(
            "SELECT 1 FROM bridge_user WHERE management_room=$1", room_id
        )
        return found is not None

    async def delete(self, mxid: UserID) -> None:
        await self.db.execute("DELETE FROM bridge_user WHERE mxid=$1", mxid)


def _record(row) -> LoginRecord:
    return LoginRecord(
        network=NetworkID(row["network"]),
        login_id=LoginID(row["login_id"]),
        owner=UserID(row["owner"]),
        remote_name=row["remote_name"],
        state=LoginState(row["state"]),
        error=row["error"],
        metadata=json.loads(row["metadata"]),
    )


_COLUMNS = "network, login_id, owner, remote_name, state, error, metadata"


class LoginStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def all(self) -> list[LoginRecord]:
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM login")
        return [_record(r) for r in rows]

    async def by_owner(self, owner: UserID) -> list[LoginRecord]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM login WHERE owner=$1 ORDER BY network, login_id", owner
        )
        return [_record(r) for r in rows]

    async def get(self, network: NetworkID, login_id: LoginID) -> LoginRecord | None:
        row = await self.db.fetchrow(
            f"SELECT {_COLUMNS} FROM login WHERE network=$1 AND login_id=$2", network, login_id
        )
        return _record(row) if row else None

    async def put(self, record: LoginRecord) -> None:
        await self.db.execute(
            f"""INSERT INTO login ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (network, login_id) DO UPDATE SET owner=excluded.owner,
                remote_name=excluded.remote_name, state=excluded.state,
                error=excluded.error, metadata=excluded.metadata""",
            record.network,
            record.login_id,
            record.owner,
            record.remote_name,
            record.state.value,
            record.error,
            json.dumps(record.metadata),
        )

    async def set_state(
        self, network: NetworkID, login_id: LoginID, state: LoginState, error: str | None
    ) -> None:
        await self.db.execute(
            "UPDATE login SET state=$3, error=$4 WHERE network=$1 AND login_id=$2",
            network,
            login_id,
            state.value,
            error,
        )

    async def delete(self, network: NetworkID, login_id: LoginID) -> None:
        await self.db.execute(
            "DELETE FROM login WHERE network=$1 AND login_id=$2", network, login_id
        )
