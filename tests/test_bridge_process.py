"""The bridge as its own process: SIGTERM finishes in-flight work and exits cleanly."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from bridge.devtools.processes import start_bridge_process, wait_for_http
from bridge.networks.loopback.client import LoopbackClient
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import setup_portal, wait_for_remote
from tests.support.matrix_client import TestClient

pytestmark = pytest.mark.synapse


async def test_sigterm_drains_queued_messages_and_exits_zero(
    running_bridge: BridgeUnderTest, loopback: LoopbackClient, matrix_user: TestClient, tmp_path: Path
) -> None:
    portal = await setup_portal(matrix_user, running_bridge, loopback, unique)
    # Hand over from the in-process bridge to a real process with the same files.
    await running_bridge.stop()
    process = await start_bridge_process(running_bridge.config_path, log_path=tmp_path / "bridge.log")
    try:
        await wait_for_http(f"http://127.0.0.1:{running_bridge.port}/_matrix/mau/live")
        # Slow the network down so work is still in flight when SIGTERM arrives.
        await loopback.set_faults(rate_limit={"count": 3, "retry_after": 0.5})
        for n in range(3):
            await matrix_user.send_text(portal.room_id, f"in flight {n}")
        # SIGTERM once the bridge is busy retrying the first send against the rate limit.
        for _ in range(300):
            faults = await loopback.get_faults()
            if (faults.get("rate_limit") or {}).get("count", 3) < 3:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the bridge process never tried to send")
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 60)
        log = (tmp_path / "bridge.log").read_text()
        assert code == 0, log[-3000:]
        assert "Stopping: finishing the work in progress" in log
    finally:
        if process.returncode is None:
            process.kill()
        await loopback.clear_faults()
        await running_bridge.start()
    for n in range(3):
        await wait_for_remote(loopback, portal.chat_id, lambda m, n=n: m["text"] == f"in flight {n}")
    history = await loopback.admin_get_messages(portal.chat_id)
    assert sorted(m["text"] for m in history if m["text"].startswith("in flight")) == [
        f"in flight {n}" for n in range(3)
    ]
