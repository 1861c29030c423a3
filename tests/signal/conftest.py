"""Fixtures of the Signal tests: a stub signal-cli daemon and the bridge that uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.support.bridge_env import BridgeUnderTest
from tests.signal.stub_daemon import StubDaemon


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def signal_daemon(signal_daemon_port: int) -> AsyncIterator[StubDaemon]:
    daemon = StubDaemon()
    await daemon.start(signal_daemon_port)
    try:
        yield daemon
    finally:
        await daemon.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def signal_bridge(synapse, bridge_envs: dict[str, BridgeUnderTest], signal_daemon: StubDaemon) -> AsyncIterator[BridgeUnderTest]:
    """The bridge with only the Signal network, started once; a test that restarts it leaves it running."""
    env = bridge_envs["signal"]
    await env.start()
    try:
        yield env
    finally:
        await env.stop()
