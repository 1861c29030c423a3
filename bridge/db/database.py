"""Opens the database, runs the upgrades and hands out one store per table."""

from __future__ import annotations

import logging
from mautrix.util.async_db import Database

from .logins import LoginStore, UserStore
from .messages import MessageStore, ReactionStore
from .misc import KeyValueStore, TransactionStore
from .pending import PendingEventStore
from .portals import GhostStore, PortalStore
from .privacy import RelayPrivacyStore
from .upgrades import upgrade_table

log = logging.getLogger("bridge.db")


def is_transient_db_error(error: BaseException) -> bool:
    """Whether a database failure is the server being away (it restarts, a connection was
    cut), which retrying fixes, rather than a wrong query."""
    import asyncpg

    if isinstance(error, (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                          asyncpg.exceptions.CannotConnectNowError, ConnectionError, OSError)):
        return True
    if isinstance(error, asyncpg.PostgresError):
        # Class 08 (connection exception) and 57P (operator intervention: shutdown).
        code = getattr(error, "sqlstate", "") or ""
        return code.startswith("08") or code.startswith("57P")
    return False


class BridgeDatabase:
    def __init__(self, uri: str, *, max_connections: int = 10) -> None:
        self.uri = uri
        db_args = {} if uri.startswith("sqlite") else {"min_size": 1, "max_size": max_connections}
        self.db = Database.create(
            uri,
            upgrade_table=upgrade_table,
            db_args=db_args,
            log=logging.getLogger("bridge.db.sql"),
        )
        self.users = UserStore(self.db)
        self.logins = LoginStore(self.db)
        self.portals = PortalStore(self.db)
        self.ghosts = GhostStore(self.db)
        self.messages = MessageStore(self.db)
        self.reactions = ReactionStore(self.db)
        self.transactions = TransactionStore(self.db)
        self.kv = KeyValueStore(self.db)
        self.pending = PendingEventStore(self.db)
        self.privacy = RelayPrivacyStore(self.db)

    async def start(self) -> None:
        await self.db.start()

    async def stop(self) -> None:
        await self.db.stop()
