"""A throw-away PostgreSQL database for a benchmark or chaos run."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

ADMIN_URL = os.environ.get("BRIDGE_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")


@asynccontextmanager
async def temporary_database(kind: str, workdir: Path) -> AsyncIterator[str]:
    """Yield a database URI: a file under ``workdir`` for sqlite, a fresh database for postgres."""
    if kind == "sqlite":
        yield f"sqlite:{workdir / 'bridge.db'}"
        return
    name = f"bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
