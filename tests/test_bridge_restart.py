"""Nothing is lost or doubled when the bridge stops and starts again."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import yaml

from bridge.db import BridgeDatabase
from bridge.networks.loopback.client import LoopbackClient
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import PortalSetup, body_of, bot_says, setup_portal, wait_for_remote
from tests.support.matrix_client import TestClient

pytestmark = pytest.mark.synapse


@pytest.fixture
async def portal(
    running_bridge: BridgeUnderTest, loopback: LoopbackClient, matrix_user: TestClient
) -> PortalSetup:
    return await setup_portal(matrix_user, running_bridge, loopback, unique)


async def settle(seconds: float = 1.0) -> None:
    """Give a duplicate the time it would need to show up."""
    await asyncio.sleep(seconds)


async def test_messages_posted_while_the_bridge_is_stopped_arrive_once_after_restart(
    portal: PortalSetup, matrix_user: TestClient, running_bridge: BridgeUnderTest
) -> None:
    await running_bridge.stop()
    try:
        for n in range(3):
            await portal.bob.api.send_message(portal.chat_id, f"while away {n}")
    finally:
        await running_bridge.start()
    for n in range(3):
        await matrix_user.wait_for_event(portal.room_id, lambda e, n=n: body_of(e) == f"while away {n}")
    await settle()
    bodies = [body_of(e) for e in matrix_user.events(portal.room_id)]
    assert [b for b in bodies if b.startswith("while away")] == [f"while away {n}" for n in range(3)]


async def test_matrix_event_accepted_before_a_crash_is_delivered_after_restart(
    portal: PortalSetup, matrix_user: TestClient, running_bridge: BridgeUnderTest,
    loopback: LoopbackClient,
) -> None:
    # The bridge recorded an event and died before handling it: put the recorded row in
    # place while it is stopped, as the crash would have left it.
    await running_bridge.stop()
    event_id = await matrix_user.send_text(portal.room_id, "accepted, then crashed")
    raw = await matrix_user.nio.room_get_event(portal.room_id, event_id)
    db = BridgeDatabase(running_bridge.bridge_db_uri)
    await db.start()
    try:
        await db.pending.accept(f"crash-{event_id}", [raw.event.source], int(time.time() * 1000))
    finally:
        await db.stop()
    await running_bridge.start()
    await wait_for_remote(loopback, portal.chat_id, lambda m: m["text"] == "accepted, then crashed")
    await settle()
    history = await loopback.admin_get_messages(portal.chat_id)
    # Synapse also retries its own transaction with the same event: still only one copy.
    assert [m["text"] for m in history].count("accepted, then crashed") == 1
    assert await running_bridge.bridge.db.pending.count() == 0


async def test_a_repeated_transaction_is_not_handled_again_after_restart(
    portal: PortalSetup, matrix_user: TestClient, running_bridge: BridgeUnderTest
) -> None:
    registration = yaml.safe_load(running_bridge.registration_path.read_text())
    txn_id = unique("txn")
    command = {
        "type": "m.room.message",
        "room_id": portal.management_room,
        "sender": matrix_user.user_id,
        "event_id": f"${unique('fake')}",
        "origin_server_ts": int(time.time() * 1000),
        "content": {"msgtype": "m.text", "body": "ping"},
    }
    url = f"http://127.0.0.1:{running_bridge.port}/_matrix/app/v1/transactions/{txn_id}"
    headers = {"Authorization": f"Bearer {registration['hs_token']}"}
    async with aiohttp.ClientSession() as http:
        async with http.put(url, json={"events": [command]}, headers=headers) as resp:
            assert resp.status == 200
        await bot_says(matrix_user, portal.management_room, running_bridge, "The bridge is running")
        await running_bridge.restart()
        async with http.put(url, json={"events": [command]}, headers=headers) as resp:
            assert resp.status == 200
    await settle(2)
    replies = [
        e for e in matrix_user.events(portal.management_room)
        if e.source.get("sender") == running_bridge.bot_mxid and "The bridge is running" in body_of(e)
    ]
    assert len(replies) == 1


async def test_a_message_sent_just_before_a_crash_is_not_sent_twice_even_if_synapse_restarted(
    portal: PortalSetup, matrix_user: TestClient, running_bridge: BridgeUnderTest, synapse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The bridge dies right after Synapse accepted the event, before it recorded the
    # mapping; Synapse restarts too, so its transaction-id cache can't catch the retry.
    store = running_bridge.bridge.db.messages
    real_set_event = store.set_event
    crashed = asyncio.Event()

    async def crash_once(row, event_id):
        if not crashed.is_set() and event_id and row.room_id == portal.room_id:
            crashed.set()
            await synapse.stop()
            raise ConnectionError("simulated crash after the send")
        await real_set_event(row, event_id)

    monkeypatch.setattr(store, "set_event", crash_once)
    sent = await portal.bob.api.send_message(portal.chat_id, "exactly once, please")
    await asyncio.wait_for(crashed.wait(), 20)
    await synapse.start()
    await matrix_user.wait_for_event(portal.room_id, lambda e: body_of(e) == "exactly once, please")
    rows = await store.by_remote((await running_bridge.bridge.db.portals.by_room(portal.room_id))[0].key, sent["id"])
    for _ in range(100):
        rows = await store.by_remote(rows[0].portal, sent["id"])
        if rows[0].event_id:
            break
        await asyncio.sleep(0.1)
    await settle(2)
    copies = [e for e in matrix_user.events(portal.room_id) if body_of(e) == "exactly once, please"]
    assert len(copies) == 1
    assert rows[0].event_id == copies[0].event_id
