"""Shared fixtures: one real Synapse, one loopback network and one bridge per test run.

Tests share them but each uses its own Matrix users, loopback users and chats, so they
don't see each other's traffic.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bridge.devtools.postgres import fresh_postgres_database
from bridge.devtools.processes import ServiceProcess, start_loopback_service
from bridge.devtools.synapse import LocalSynapse
from bridge.networks.loopback.client import LoopbackClient
from tests.support.bridge_env import BridgeUnderTest, free_port
from tests.support.matrix_client import TestClient, make_client
from tests.support.postgres import postgres_server_url


@pytest.fixture(scope="session")
def synapse_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def synapse_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding the session Synapse's config, database and log."""
    return tmp_path_factory.mktemp("synapse")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def loopback_services(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[list[ServiceProcess]]:
    """Three loopback networks, each its own process (the first is the default one)."""
    logs = tmp_path_factory.mktemp("loopback")
    services = [await start_loopback_service(log_path=logs / f"service{n}.log") for n in range(3)]
    try:
        yield services
    finally:
        for service in services:
            await service.stop()




@pytest.fixture(scope="session")
def loopback_service(loopback_services: list[ServiceProcess]) -> ServiceProcess:
    return loopback_services[0]


def bridge_networks(loopback_urls: list[str], signal_address: str) -> dict[str, dict[str, dict]]:
    """The bridges registered with the test Synapse, by name, with their networks.

    Synapse reads registrations only at start, so every bridge a test may run is listed
    here. Each gets its own appservice id, bot, ghost prefix, port and database.
    """
    from tests.telegram.fake.harness import TEST_API_HASH, TEST_API_ID

    one, two, three = loopback_urls
    return {
        "main": {"loopback": {"address": one}},
        # Hub rooms: three separate loopback services stand for three networks.
        "hub": {
            "loopback": {"address": one},
            "lbtwo": {"connector": "loopback", "address": two, "display_name": "Loopback Two"},
            "lbthree": {"connector": "loopback", "address": three, "display_name": "Loopback Three"},
        },
        "telegram": {"telegram": {"api_id": TEST_API_ID, "api_hash": TEST_API_HASH}},
        # The same bridge on PostgreSQL (its database is made by the postgres_bridge fixture).
        "pg": {"loopback": {"address": one}},
        # session_dir is set by the whatsapp_bridge fixture (tests/whatsapp/conftest.py).
        "whatsapp": {"whatsapp": {"history_sync_chats": 2, "history_sync_messages": 3}},
        "signal": {"signal": {"address": signal_address, "startup_wait": 5, "request_timeout": 20}},
        "crypto": {
            "loopback": {"address": one},
            "lbtwo": {"connector": "loopback", "address": two, "display_name": "Loopback Two"},
        },
        # The encrypting bridge on PostgreSQL (database made by the crypto_pg_bridge fixture).
        "cryptopg": {"loopback": {"address": one}},
        "admin": {"loopback": {"address": one}},  # metrics + provisioning on (tests/admin)
        # Cross-signed bridge identities, checked by strict clients (tests/xsign/).
        "xsign": {"loopback": {"address": one}},
    }


def bridge_settings() -> dict[str, dict[str, dict]]:
    """Config sections beyond the networks, by bridge name."""
    encryption = {
        "encryption": {
            "allow": True,
            "default": True,
            "pickle_key": "test pickle key, not a secret",
            # Short, so the late-key tests see the whole wait-ask-tell cycle quickly.
            "key_wait_seconds": 0.5,
            "key_give_up_seconds": 2,
        }
    }
    return {"crypto": encryption, "cryptopg": encryption, "xsign": encryption}


@pytest.fixture(scope="session")
def signal_daemon_port() -> int:
    """Where the stub signal-cli daemon listens (known before Synapse reads registrations)."""
    return free_port()


@pytest.fixture(scope="session")
def bridge_envs(
    tmp_path_factory: pytest.TempPathFactory,
    synapse_port: int,
    loopback_services: list[ServiceProcess],
    signal_daemon_port: int,
) -> dict[str, BridgeUnderTest]:
    envs = {}
    urls = [s.url for s in loopback_services]
    for name, networks in bridge_networks(urls, f"127.0.0.1:{signal_daemon_port}").items():
        workdir = tmp_path_factory.mktemp(f"bridge-{name}")
        suffix = "" if name == "main" else f"_{name}"
        env = BridgeUnderTest(
            workdir=workdir,
            homeserver_url=f"http://127.0.0.1:{synapse_port}",
            networks=networks,
            db_uri=f"sqlite:{workdir / 'bridge.db'}",
            appservice_id=f"hubbridge{suffix}",
            bot_username=f"hubbridge{suffix}",
            ghost_prefix="hub_" if name == "main" else f"hub{name}_",
            double_puppet=name == "main",
            settings=bridge_settings().get(name, {}),
        )
        env.write_files()
        envs[name] = env
    return envs


@pytest.fixture(scope="session")
def bridge_env(bridge_envs: dict[str, BridgeUnderTest]) -> BridgeUnderTest:
    return bridge_envs["main"]


@pytest.fixture(scope="session")
def appservice_registrations(bridge_envs: dict[str, BridgeUnderTest]) -> list[Path]:
    """Registration files Synapse loads at start."""
    return [path for env in bridge_envs.values() for path in env.registration_files]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def synapse(
    synapse_workdir: Path, synapse_port: int, appservice_registrations: list[Path]
) -> AsyncIterator[LocalSynapse]:
    """One running Synapse shared by every test of the run."""
    server = LocalSynapse(synapse_workdir, port=synapse_port, registrations=appservice_registrations)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def running_bridge(synapse: LocalSynapse, bridge_env: BridgeUnderTest) -> AsyncIterator[BridgeUnderTest]:
    """The bridge, started once; a test that restarts it leaves it running."""
    await bridge_env.start()
    try:
        yield bridge_env
    finally:
        await bridge_env.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_bridge(
    synapse: LocalSynapse, bridge_envs: dict[str, BridgeUnderTest]
) -> AsyncIterator[BridgeUnderTest]:
    """The loopback bridge with its database on PostgreSQL (required in CI)."""
    server = postgres_server_url()
    env = bridge_envs["pg"]
    async with fresh_postgres_database(server) as uri:
        env.db_uri = uri
        env.write_config()
        await env.start()
        try:
            yield env
        finally:
            await env.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def loopback(loopback_service: ServiceProcess) -> AsyncIterator[LoopbackClient]:
    """An admin client of the loopback network."""
    client = LoopbackClient(loopback_service.url)
    try:
        yield client
    finally:
        await client.close()


def unique(prefix: str) -> str:
    """A name no other test uses (tests share one homeserver and one network)."""
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest_asyncio.fixture(loop_scope="session")
async def matrix_user(synapse: LocalSynapse, tmp_path: Path) -> AsyncIterator[TestClient]:
    """A fresh Matrix user with its own device, syncing."""
    client = await make_client(synapse, unique("user"), tmp_path / "nio", encryption=True)
    try:
        yield client
    finally:
        await client.close()

