"""The bridge as its own process (``python -m bridge -c config.yaml``), so that its
start-up time and memory are its own and not the benchmark's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_LINE = "Bridge started with networks"


def child_env() -> dict[str, str]:
    """The environment for child processes: this checkout's ``bridge`` comes first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def read_rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in KiB, from /proc (Linux)."""
    rss = peak = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    return rss, peak


@dataclass
class BridgeProcess:
    config_path: Path
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    started_at: float = field(default=0.0)
    """``time.perf_counter()`` just before the process was spawned."""

    async def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.started_at = time.perf_counter()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge", "-c", str(self.config_path),
                cwd=self.config_path.parent,
                env=child_env(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def wait_ready(self, timeout: float = 60) -> float:
        """Wait for the bridge's "started" log line; return seconds since spawn."""
        assert self.process is not None
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"the bridge exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            with contextlib.suppress(FileNotFoundError):
                with self.log_path.open("rb") as f:
                    f.seek(max(0, offset - 200))
                    if READY_LINE.encode() in f.read():
                        return time.perf_counter() - self.started_at
            await asyncio.sleep(0.05)
        raise TimeoutError(f"the bridge was not ready after {timeout:.0f} s:\n{self.log_tail()}")

    async def start(self, timeout: float = 60) -> float:
        await self.spawn()
        return await self.wait_ready(timeout)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_mib(self) -> tuple[float, float]:
        """(current, peak) resident memory in MiB."""
        rss, peak = read_rss_kib(self.pid)
        return round(rss / 1024, 1), round(peak / 1024, 1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self, timeout: float = 20) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
