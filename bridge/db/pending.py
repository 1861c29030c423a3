"""Matrix events accepted from the homeserver but not handled yet (see upgrade_v2)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Database


@dataclass(frozen=True)
class PendingEvent:
    seq: int
    event: dict[str, Any]


class PendingEventStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._next_seq: int | None = None

    async def accept(self, txn_id: str, events: list[dict[str, Any]], now_ms: int) -> list[PendingEvent]:
        """Record the events and the transaction id in one database transaction."""
        if self._next_seq is None:
            self._next_seq = (await self.db.fetchval("SELECT MAX(seq) FROM pending_event") or 0) + 1
        accepted = []
        async with self.db.acquire() as conn, conn.transaction():
            for event in events:
                seq, self._next_seq = self._next_seq, self._next_seq + 1
                await conn.execute(
                    "INSERT INTO pending_event (seq, txn_id, room_id, event, received_at) "
                    "VALUES ($1, $2, $3, $4, $5)",
                    seq, txn_id, event.get("room_id", ""), json.dumps(event), now_ms,
                )
                accepted.append(PendingEvent(seq, event))
            await conn.execute(
                "INSERT INTO as_txn (txn_id, received_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                txn_id, now_ms,
            )
        return accepted

    async def all(self) -> list[PendingEvent]:
        rows = await self.db.fetch("SELECT seq, event FROM pending_event ORDER BY seq")
        return [PendingEvent(row["seq"], json.loads(row["event"])) for row in rows]

    async def done(self, seq: int) -> None:
        await self.db.execute("DELETE FROM pending_event WHERE seq=$1", seq)

    async def count(self) -> int:
        return await self.db.fetchval("SELECT COUNT(*) FROM pending_event")
