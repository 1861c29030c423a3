"""Throwaway PostgreSQL databases on a server the benchmark is given, and a Synapse
that keeps its data in one."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import yaml

from bridge.devtools.synapse import LocalSynapse


def database_url(server_url: str, database: str) -> str:
    """``server_url`` with its database name replaced."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


@contextlib.asynccontextmanager
async def throwaway_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """Create a fresh database (UTF-8, C collation, as Synapse wants) and drop it after."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(
            f'CREATE DATABASE "{name}" ENCODING \'UTF8\' LC_COLLATE \'C\' LC_CTYPE \'C\' '
            "TEMPLATE template0"
        )
    finally:
        await admin.close()
    try:
        yield database_url(server_url, name)
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def synapse_database_args(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    args: dict[str, Any] = {
        "user": parts.username or "postgres",
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "database": parts.path.lstrip("/"),
        "cp_min": 5,
        "cp_max": 10,
    }
    if parts.password:
        args["password"] = parts.password
    return args


class PostgresSynapse(LocalSynapse):
    """``LocalSynapse`` with its database on PostgreSQL (``database_url``) instead of SQLite."""

    def __init__(self, *args: Any, database_url: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.database_url = database_url

    def _prepare(self) -> None:
        super()._prepare()
        config = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        config["database"] = {"name": "psycopg2", "args": synapse_database_args(self.database_url)}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self._existing = config
