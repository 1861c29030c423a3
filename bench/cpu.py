"""CPU time of the processes under test, from /proc (Linux), to say who limits a figure."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        # The command name may hold spaces; the fields we want follow its closing ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICK


@dataclass
class CpuMeter:
    """CPU used by named processes between ``start()`` and ``per_message()``."""

    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def used(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()}

    def per_message_ms(self, messages: int) -> dict[str, float]:
        """Milliseconds of CPU per message for each process."""
        return {name: round(s * 1000 / messages, 2) for name, s in self.used().items()}
