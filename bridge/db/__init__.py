"""The bridge's database: SQL written once ($1 style) for SQLite and PostgreSQL.

No message bodies are stored: only id mappings, which expire (``bridge.message_retention_days``).
"""

from __future__ import annotations

from .database import BridgeDatabase, is_transient_db_error

__all__ = ["BridgeDatabase", "is_transient_db_error"]
