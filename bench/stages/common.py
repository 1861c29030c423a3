"""What the stages share: flood results and how they add up over rounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..stats import rate

if TYPE_CHECKING:
    from ..side import MatrixWatcher


@dataclass
class FloodResult:
    messages: int
    seconds: float
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)
    """Matrix events the round sent (Matrix -> network rounds only)."""


def combine(rounds: list[FloodResult]) -> dict[str, Any]:
    """Throughput over all rounds, and CPU milliseconds per message of each process."""
    messages = sum(r.messages for r in rounds)
    seconds = sum(r.seconds for r in rounds)
    cpu: dict[str, float] = {}
    for r in rounds:
        for name, used in r.cpu_seconds.items():
            cpu[name] = cpu.get(name, 0.0) + used
    return {
        "throughput_msgs_per_s": rate(messages, seconds),
        "messages": messages,
        "seconds": round(seconds, 2),
        "round_throughputs": [rate(r.messages, r.seconds) for r in rounds],
        "cpu_ms_per_message": {k: round(v * 1000 / messages, 2) for k, v in cpu.items()},
    }


def last_seen(watcher: MatrixWatcher, stage: str) -> float:
    return max(s.at for (name, _), s in watcher.seen.items() if name == stage)
