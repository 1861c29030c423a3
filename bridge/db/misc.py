"""Small tables: handled appservice transactions and a key-value store."""

from __future__ import annotations

from mautrix.util.async_db import Database


class TransactionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def seen(self, txn_id: str) -> bool:
        return await self.db.fetchval("SELECT 1 FROM as_txn WHERE txn_id=$1", txn_id) is not None

    async def mark(self, txn_id: str, now_ms: int) -> None:
        await self.db.execute(
            "INSERT INTO as_txn (txn_id, received_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            txn_id,
            now_ms,
        )

    async def expire(self, before_ms: int) -> None:
        await self.db.execute("DELETE FROM as_txn WHERE received_at < $1", before_ms)


class KeyValueStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key: str) -> str | None:
        return await self.db.fetchval("SELECT value FROM kv_store WHERE key=$1", key)

    async def put(self, key: str, value: str) -> None:
        await self.db.execute(
            "INSERT INTO kv_store (key, value) VALUES ($1, $2) "
            "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            key,
            value,
        )
