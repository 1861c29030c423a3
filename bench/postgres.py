"""Throwaway PostgreSQL databases on a server the benchmark is given, and a Synapse
that keeps its data in one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from bridge.devtools.postgres import fresh_postgres_database
from bridge.devtools.synapse import LocalSynapse


def database_url(server_url: str, database: str) -> str:
    """``server_url`` with its database name replaced."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


throwaway_database = fresh_postgres_database
"""A fresh database on the server, dropped afterwards (UTF-8, C collation, as Synapse wants)."""


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


SERVER_URL = os.environ.get("BRIDGE_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")


@contextlib.asynccontextmanager
async def temporary_database(kind: str, workdir: Path) -> AsyncIterator[str]:
    """The bridge's database for a chaos run: a file in ``workdir``, or fresh PostgreSQL."""
    if kind == "sqlite":
        yield f"sqlite:{workdir / 'bridge.db'}"
        return
    async with throwaway_database(SERVER_URL, "chaos") as uri:
        yield uri
