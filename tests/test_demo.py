"""The README's demo command works: the demo starts and its printed steps succeed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


async def test_demo_smoke_test_logs_in_and_receives_a_loopback_message(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.devtools.demo", "--data", str(tmp_path / "demo"),
        "--smoke-test",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 180)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "Smoke test passed" in text
