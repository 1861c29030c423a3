"""One bridge deployment as the stages see it: its network side (who posts, who watches),
its Matrix side (who sends, who watches), the timing proxy in front of it and its rooms.

Stages (b) and (c) run on the plain bridge's side, stage (d) on the encrypting bridge's:
same code, same workload, only the deployment and the Matrix client differ.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .bridge_process import BridgeProcess
from .cpu import CpuMeter
from .deploy import BridgeDeployment
from .loopback_side import LoopbackWorld, NetworkObserver
from .matrix_http import SeenEvent
from .txn_proxy import TxnProxy


class MatrixWatcher(Protocol):
    """What the stages read from a Matrix client: when each benchmark message arrived."""

    seen: dict[tuple[str, int], SeenEvent]

    def count(self, stage: str) -> int: ...

    async def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None: ...


SendText = Callable[[str, str], Awaitable[str]]
"""Sends a text message (room id, body) as the side's Matrix user; returns the event id."""


@dataclass
class BridgeSide:
    name: str
    deployment: BridgeDeployment
    bridge: BridgeProcess
    proxy: TxnProxy
    world: LoopbackWorld
    observer: NetworkObserver
    watcher: MatrixWatcher
    send_text: SendText
    synapse_log: Path
    synapse_pid: int
    loopback_pid: int
    portal_rooms: list[str] = field(default_factory=list)
    """Portal room of loopback chat ``k`` at index ``k``."""

    def cpu_meter(self) -> CpuMeter:
        """CPU accounting for Synapse, this side's bridge, the loopback network and the
        benchmark process (which runs the Matrix clients)."""
        return CpuMeter({
            "synapse": self.synapse_pid,
            "bridge": self.bridge.pid,
            "loopback": self.loopback_pid,
            "bench": os.getpid(),
        })
