"""The bridge on PostgreSQL: messages flow, and survive the server dropping connections."""

from __future__ import annotations

import asyncpg
import pytest

from bridge.networks.loopback.client import LoopbackClient
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import body_of, setup_portal, wait_for_remote
from tests.support.matrix_client import TestClient
from tests.support.postgres import postgres_server_url

pytestmark = [pytest.mark.synapse, pytest.mark.postgres]


async def drop_connections(database_uri: str) -> int:
    """What a PostgreSQL restart looks like to a client: every connection is cut."""
    name = database_uri.rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres_server_url())
    try:
        rows = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await admin.close()
    return len(rows)


async def test_messages_flow_both_ways_and_survive_postgresql_dropping_connections(
    postgres_bridge: BridgeUnderTest, loopback: LoopbackClient, matrix_user: TestClient
) -> None:
    portal = await setup_portal(matrix_user, postgres_bridge, loopback, unique)
    await matrix_user.send_text(portal.room_id, "before the cut")
    await wait_for_remote(loopback, portal.chat_id, lambda m: m["text"] == "before the cut")

    assert await drop_connections(postgres_bridge.db_uri) >= 1

    await portal.bob.api.send_message(portal.chat_id, "after the cut, to Matrix")
    await matrix_user.wait_for_event(portal.room_id, lambda e: body_of(e) == "after the cut, to Matrix",
                                     timeout=60)
    await matrix_user.send_text(portal.room_id, "after the cut, to the network")
    await wait_for_remote(loopback, portal.chat_id, lambda m: m["text"] == "after the cut, to the network",
                          timeout=60)
    history = await loopback.admin_get_messages(portal.chat_id)
    assert [m["text"] for m in history].count("after the cut, to the network") == 1
