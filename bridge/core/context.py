"""What the parts of the core share: config, database, Matrix API, connectors and logins."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import Config
from ..db import BridgeDatabase
from ..matrix.api import MatrixAPI
from ..matrix.ids import GhostIDs
from ..metrics import BridgeMetrics
from .ids import PortalKey
from .queue import KeyedQueues

if TYPE_CHECKING:
    from .ghosts import Ghosts
    from .hub import HubRelay
    from .logins import Logins


def now_ms() -> int:
    return int(time.time() * 1000)


def stable_id(*parts: str, length: int = 32) -> str:
    """A short deterministic id (for Matrix transaction ids and origin markers)."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


def portal_origin(key: PortalKey) -> str:
    """The marker a portal puts on the events it sends, so it never relays them back."""
    return stable_id("origin", key.network, key.chat_id, length=16)


@dataclass
class BridgeContext:
    config: Config
    db: BridgeDatabase
    matrix: MatrixAPI
    ghost_ids: GhostIDs
    queues: KeyedQueues = field(default_factory=KeyedQueues)
    metrics: BridgeMetrics = field(default_factory=BridgeMetrics)
    ghosts: Ghosts = field(init=False)
    logins: Logins = field(init=False)
    hub: HubRelay = field(init=False)

    @property
    def max_media_bytes(self) -> int:
        return self.config.bridge.max_media_size_mb * 1024 * 1024

    def permission_at_least(self, user_id: str, level: str) -> bool:
        from ..config import PERMISSION_ORDER

        return PERMISSION_ORDER[self.config.permission_of(user_id)] >= PERMISSION_ORDER[level]
