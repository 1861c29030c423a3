"""Fills a bridge database with many portals, ghosts and message mappings, with bulk SQL
that matches bridge/db/upgrades.py (the schema itself is made by the bridge's own
upgrades, so a schema change shows up here as an error, not as a silent mismatch)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Scheme

from bridge.db import BridgeDatabase
from bridge.db.portals import PortalRow

CHUNK = 10_000

_TABLES: dict[str, tuple[str, ...]] = {
    "portal": ("network", "chat_id", "room_id", "login_id", "name", "topic", "avatar_id",
               "avatar_mxc", "is_direct", "encrypted", "created_at"),
    "ghost": ("network", "user_id", "name", "avatar_id", "avatar_mxc", "registered"),
    "message": ("network", "chat_id", "remote_id", "part", "room_id", "event_id", "sender",
                "timestamp"),
}


@dataclass
class FillSize:
    portals: int
    ghosts: int
    messages: int


def _portals(count: int, network: str, login_id: str, now: int) -> Iterator[tuple[Any, ...]]:
    for i in range(count):
        yield (network, f"p{i}", f"!portal{i}:localhost", login_id, f"Chat {i}", None, None,
               None, i % 5 == 0, False, now)


def _ghosts(count: int, network: str) -> Iterator[tuple[Any, ...]]:
    for i in range(count):
        yield (network, f"g{i}", f"Person {i} (Loopback)", None, None, True)


def _messages(count: int, portals: int, network: str, now: int) -> Iterator[tuple[Any, ...]]:
    for i in range(count):
        p = i % max(portals, 1)
        yield (network, f"p{p}", f"r{i}", 0, f"!portal{p}:localhost", f"$event{i}",
               f"@hub_{network}_g{i % 1000}:localhost", now)


def _chunks(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def fill(
    db: BridgeDatabase, size: FillSize, *, network: str, login_id: str, keep: PortalRow
) -> float:
    """Insert ``size`` rows (plus the real portal ``keep``); return the seconds it took."""
    started = time.perf_counter()
    now = int(time.time() * 1000)
    sources = {
        "portal": _portals(size.portals, network, login_id, now),
        "ghost": _ghosts(size.ghosts, network),
        "message": _messages(size.messages, size.portals, network, now),
    }
    async with db.db.acquire() as conn:
        for table, rows in sources.items():
            columns = _TABLES[table]
            for chunk in _chunks(rows):
                if db.db.scheme == Scheme.POSTGRES:
                    await conn.copy_records_to_table(table, records=chunk, columns=columns)
                else:
                    marks = ", ".join(f"${i + 1}" for i in range(len(columns)))
                    async with conn.transaction():
                        await conn.executemany(
                            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", chunk
                        )
    await db.portals.put(keep)
    return time.perf_counter() - started
