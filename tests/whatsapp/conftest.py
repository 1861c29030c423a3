"""A bridge with the WhatsApp connector, its neonize clients replaced by fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bridge.devtools.synapse import LocalSynapse
from bridge.networks.whatsapp.connector import WhatsAppConnector
from tests.support.bridge_env import BridgeUnderTest
from tests.whatsapp.fake_neonize import FakeWhatsApp


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fake_whatsapp() -> AsyncIterator[FakeWhatsApp]:
    world = FakeWhatsApp()
    runner = await world.serve_pictures()
    try:
        yield world
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def whatsapp_bridge(
    synapse: LocalSynapse, bridge_envs: dict[str, BridgeUnderTest], fake_whatsapp: FakeWhatsApp
) -> AsyncIterator[BridgeUnderTest]:
    env = bridge_envs["whatsapp"]
    env.networks["whatsapp"]["session_dir"] = str(env.workdir / "whatsapp-sessions")
    env.write_files()
    original = WhatsAppConnector.client_factory
    WhatsAppConnector.client_factory = staticmethod(fake_whatsapp.factory)
    await env.start()
    try:
        yield env
    finally:
        await env.stop()
        WhatsAppConnector.client_factory = original
