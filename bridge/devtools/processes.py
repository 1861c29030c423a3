"""Start the loopback network as its own process (for the demo, tests and benchmarks)."""

from __future__ import annotations

import asyncio
import re
import sys
from dataclasses import dataclass
from pathlib import Path

_LISTENING = re.compile(rb"loopback network listening on (http://\S+)")


@dataclass
class ServiceProcess:
    process: asyncio.subprocess.Process
    url: str

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start_loopback_service(
    *, port: int = 0, seed: Path | None = None, log_path: Path | None = None
) -> ServiceProcess:
    """Start ``python -m bridge.networks.loopback.service`` and wait until it listens."""
    args = [sys.executable, "-m", "bridge.networks.loopback.service", "--port", str(port)]
    if seed is not None:
        args += ["--seed", str(seed)]
    stderr = open(log_path, "ab") if log_path else asyncio.subprocess.DEVNULL  # noqa: SIM115
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=stderr
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
    except asyncio.TimeoutError:
        process.kill()
        raise RuntimeError("the loopback network did not start within 30 s") from None
    match = _LISTENING.search(line)
    if not match:
        await process.wait()
        raise RuntimeError(f"the loopback network failed to start (exit {process.returncode})")
    # Keep reading stdout so the child never blocks on a full pipe.
    asyncio.create_task(_drain(process.stdout))
    return ServiceProcess(process, match.group(1).decode())


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


async def start_bridge_process(config: Path, *, log_path: Path) -> asyncio.subprocess.Process:
    """Run ``python -m bridge -c CONFIG`` as its own process, logging to ``log_path``."""
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it from here
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "-c", str(config), stdout=log, stderr=log
    )


async def wait_for_http(url: str, timeout: float = 30) -> None:
    """Wait until ``url`` answers at all (any status)."""
    import aiohttp

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as resp:
                    await resp.read()
                    return
            except aiohttp.ClientError:
                if loop.time() > deadline:
                    raise RuntimeError(f"{url} did not answer within {timeout} s") from None
                await asyncio.sleep(0.1)
