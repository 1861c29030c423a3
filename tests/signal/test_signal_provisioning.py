"""A QR login through the provisioning API: the step changes by itself when the phone scans.

The Signal connector reports the completed link through ``BridgeHost.login_progress``
from a background task, so this is the path a web page polling ``wait=`` relies on. The
API runs on the Signal test bridge (real connector, stub signal-cli daemon).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from bridge.config import ProvisioningConfig
from bridge.provisioning import PREFIX, ProvisioningAPI
from tests.signal.stub_daemon import StubDaemon
from tests.support.bridge_env import BridgeUnderTest, free_port

pytestmark = pytest.mark.synapse


@pytest_asyncio.fixture(loop_scope="session")
async def provisioning(signal_bridge: BridgeUnderTest) -> AsyncIterator[tuple[str, dict[str, str]]]:
    assert signal_bridge.bridge is not None
    secret = secrets.token_hex(32)
    port = free_port()
    api = ProvisioningAPI(
        signal_bridge.bridge.ctx,
        ProvisioningConfig(enabled=True, listen=f"127.0.0.1:{port}", shared_secret=secret),
    )
    await api.start()
    try:
        yield f"http://127.0.0.1:{port}{PREFIX}", {"Authorization": f"Bearer {secret}"}
    finally:
        await api.stop()


async def test_a_qr_login_completes_while_the_caller_long_polls(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, provisioning: tuple[str, dict[str, str]]
) -> None:
    url, auth = provisioning
    user = f"@qr-{secrets.token_hex(4)}:localhost"
    signal_bridge.allow(user, "user")
    account = signal_daemon.add_account("Quinn")
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.post(f"{url}/login", params={"user_id": user}, json={"network": "signal"}) as resp:
            assert resp.status == 200
            step = await resp.json()
        assert step["status"] == "waiting"
        assert step["qr_data"].startswith("sgnl://linkdevice?")
        assert step["message"]

        async def poll() -> dict:
            async with http.get(f"{url}/login/{step['process_id']}", params={"user_id": user, "wait": "20"}) as r:
                assert r.status == 200
                return await r.json()

        polling = asyncio.create_task(poll())
        await asyncio.sleep(0.2)
        assert not polling.done(), "the poll waits for the scan"
        await signal_daemon.scan(account)
        done = await asyncio.wait_for(polling, 15)
        assert done["status"] == "complete"
        assert done["login"]["network"] == "signal"
        assert done["login"]["login_id"] == account.aci
        assert account.number not in str(done), "no phone number in what the API shows"

        async with http.get(f"{url}/logins", params={"user_id": user}) as resp:
            listing = await resp.json()
        assert [l["login_id"] for l in listing["logins"]] == [account.aci]
        assert listing["login_in_progress"] is None
