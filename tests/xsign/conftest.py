"""Fixtures of the encryption-trust tests: the "xsign" encrypting bridge, started once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bridge.devtools.synapse import LocalSynapse
from tests.support.bridge_env import BridgeUnderTest


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def xsign_bridge(
    synapse: LocalSynapse, bridge_envs: dict[str, BridgeUnderTest]
) -> AsyncIterator[BridgeUnderTest]:
    """The bridge with encryption allowed and new portals encrypted; a test that restarts
    it leaves it running."""
    env = bridge_envs["xsign"]
    await env.start()
    try:
        yield env
    finally:
        await env.stop()
