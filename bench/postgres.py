"""The database for a benchmark or chaos run: SQLite in the work directory or fresh PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bridge.devtools.postgres import fresh_postgres_database

SERVER_URL = os.environ.get("BRIDGE_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")


@asynccontextmanager
async def temporary_database(kind: str, workdir: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite:{workdir / 'bridge.db'}"
        return
    async with fresh_postgres_database(SERVER_URL, prefix="bench") as uri:
        yield uri
