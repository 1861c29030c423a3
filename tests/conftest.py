"""Shared fixtures: one real Synapse, one loopback network and one bridge per test run.

Tests share them but each uses its own Matrix users, loopback users and chats, so they
don't see each other's traffic.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bridge.devtools.processes import ServiceProcess, start_loopback_service
from bridge.devtools.synapse import LocalSynapse
from bridge.networks.loopback.client import LoopbackClient
from tests.support.bridge_env import BridgeUnderTest, free_port
from tests.support.matrix_client import TestClient, make_client


@pytest.fixture(scope="session")
def synapse_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def synapse_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding the session Synapse's config, database and log."""
    return tmp_path_factory.mktemp("synapse")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def loopback_service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("loopback") / "service.log"
    service = await start_loopback_service(log_path=log)
    try:
        yield service
    finally:
        await service.stop()


def bridge_networks(loopback_url: str) -> dict[str, dict[str, dict]]:
    """The bridges registered with the test Synapse, by name, with their networks.

    Synapse reads registrations only at start, so every bridge a test may run is listed
    here. Each gets its own appservice id, bot, ghost prefix, port and database.
    """
    return {
        "main": {"loopback": {"address": loopback_url}},
        "admin": {"loopback": {"address": loopback_url}},  # metrics + provisioning on
    }


@pytest.fixture(scope="session")
def bridge_envs(
    tmp_path_factory: pytest.TempPathFactory, synapse_port: int, loopback_service: ServiceProcess
) -> dict[str, BridgeUnderTest]:
    envs = {}
    for name, networks in bridge_networks(loopback_service.url).items():
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
    return [env.registration_path for env in bridge_envs.values()]


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


def postgres_url() -> str | None:
    """PostgreSQL for database tests; in CI a missing server fails instead of skipping."""
    return os.environ.get("BRIDGE_TEST_POSTGRES")
