"""Who opted out of relaying, who was told about the bridge, and a person's own data."""

from __future__ import annotations

from typing import Any

from mautrix.util.async_db import Database

from ..core.ids import PortalKey


class RelayPrivacyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def is_opted_out(self, subject: str) -> bool:
        found = await self.db.fetchval("SELECT 1 FROM relay_optout WHERE subject=$1", subject)
        return found is not None

    async def opt_out(self, subject: str, now_ms: int) -> None:
        await self.db.execute(
            "INSERT INTO relay_optout (subject, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            subject,
            now_ms,
        )

    async def opt_in(self, subject: str) -> None:
        await self.db.execute("DELETE FROM relay_optout WHERE subject=$1", subject)

    async def claim_notice(self, portal: PortalKey, person: str) -> bool:
        """True the first time ``person`` is seen in the chat (then the notice is due)."""
        result = await self.db.fetch(
            "INSERT INTO relay_notice (network, chat_id, person) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            portal.network,
            portal.chat_id,
            person,
        )
        return bool(result)

    async def export(self, mxid: str) -> dict[str, Any]:
        """Everything stored that names this Matrix user (for ``export``)."""
        user = await self.db.fetchrow(
            "SELECT mxid, management_room, created_at FROM bridge_user WHERE mxid=$1", mxid
        )
        logins = await self.db.fetch(
            "SELECT network, login_id, remote_name, state, error FROM login WHERE owner=$1", mxid
        )
        messages = await self.db.fetch(
            "SELECT network, chat_id, remote_id, room_id, event_id, timestamp FROM message "
            "WHERE sender=$1 ORDER BY timestamp",
            mxid,
        )
        reactions = await self.db.fetch(
            "SELECT network, chat_id, remote_msg, emoji, room_id, event_id, timestamp "
            "FROM reaction WHERE sender=$1 ORDER BY timestamp",
            mxid,
        )
        return {
            "user": dict(user) if user else None,
            "logins": [dict(r) for r in logins],
            "message_mappings": [dict(r) for r in messages],
            "reaction_mappings": [dict(r) for r in reactions],
            "relay_opted_out": await self.is_opted_out(mxid),
        }

    async def forget(self, mxid: str, ghost_keys: list[tuple[str, str]]) -> None:
        """Erase every row naming this Matrix user and the ghosts of their own accounts."""
        async with self.db.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM message WHERE sender=$1", mxid)
            await conn.execute("DELETE FROM reaction WHERE sender=$1", mxid)
            await conn.execute("DELETE FROM relay_optout WHERE subject=$1", mxid)
            await conn.execute("DELETE FROM relay_notice WHERE person=$1", mxid)
            await conn.execute("DELETE FROM pending_event WHERE event LIKE $1", f'%"sender": "{mxid}"%')
            await conn.execute("DELETE FROM login WHERE owner=$1", mxid)
            await conn.execute("DELETE FROM bridge_user WHERE mxid=$1", mxid)
            for network, user_id in ghost_keys:
                await conn.execute(
                    "DELETE FROM ghost WHERE network=$1 AND user_id=$2", network, user_id
                )
                # The chat stays bridged for others; it just no longer names this account.
                await conn.execute(
                    "UPDATE portal SET login_id=NULL WHERE network=$1 AND login_id=$2",
                    network, user_id,
                )
                subject = f"{network}:{user_id}"
                await conn.execute("DELETE FROM relay_optout WHERE subject=$1", subject)
                await conn.execute("DELETE FROM relay_notice WHERE person=$1", subject)
