"""Metrics scraped over HTTP after real bridging, and each login's state where users see it."""

from __future__ import annotations

import asyncio

import pytest
from nio import RoomCreateResponse, RoomPreset

from bridge.core.connector import LoginState
from bridge.core.ids import NetworkID, PortalKey, RemoteChatID
from bridge.core.login_status import LOGIN_STATUS_EVENT
from bridge.networks.loopback.client import LoopbackClient
from tests.admin.conftest import AdminBridge, sample
from tests.conftest import unique
from tests.support.flows import (
    body_of,
    bot_says,
    log_in_to_loopback,
    loopback_user,
    setup_portal,
    wait_for_remote,
)
from tests.support.matrix_client import TestClient

pytestmark = pytest.mark.synapse

BRIDGED = "hubbridge_messages_bridged_total"
FAILURES = "hubbridge_failures_total"
LATENCY_COUNT = "hubbridge_event_handling_seconds_count"


async def test_metrics_count_messages_both_ways_with_their_latency(
    admin_bridge: AdminBridge, loopback: LoopbackClient, matrix_user: TestClient
) -> None:
    before = await admin_bridge.scrape()
    portal = await setup_portal(matrix_user, admin_bridge.env, loopback, unique)
    await matrix_user.send_text(portal.room_id, "hello from matrix")
    await wait_for_remote(loopback, portal.chat_id, lambda m: m.get("text") == "hello from matrix")

    async def settled():
        # The remote side has the message before the bridge has recorded it.
        for _ in range(100):
            after = await admin_bridge.scrape()
            if sample(after, BRIDGED, network="loopback", direction="to_network") > sample(
                before, BRIDGED, network="loopback", direction="to_network"
            ):
                return after
            await asyncio.sleep(0.05)
        raise AssertionError("the Matrix -> loopback message was never counted")

    after = await settled()
    delta = lambda name, **labels: sample(after, name, **labels) - sample(before, name, **labels)  # noqa: E731
    assert delta(BRIDGED, network="loopback", direction="to_matrix") >= 1  # "first"
    assert delta(BRIDGED, network="loopback", direction="to_network") == 1
    assert delta(LATENCY_COUNT, network="loopback", direction="to_network") >= 1
    assert delta(LATENCY_COUNT, network="loopback", direction="to_matrix") >= 1
    assert sample(after, "hubbridge_event_handling_seconds_sum", network="loopback", direction="to_network") > 0
    assert sample(after, "hubbridge_connected_logins", network="loopback") >= 1
    assert sample(after, "hubbridge_logins", network="loopback", state="connected") >= 1


async def test_a_failed_delivery_is_counted_by_its_reason(
    admin_bridge: AdminBridge, loopback: LoopbackClient, matrix_user: TestClient
) -> None:
    env = admin_bridge.env
    portal = await setup_portal(matrix_user, env, loopback, unique)
    await matrix_user.send_text(portal.management_room, "logout loopback")
    await bot_says(matrix_user, portal.management_room, env, "Logged out of loopback")
    before = await admin_bridge.scrape()

    sent = await matrix_user.send_text(portal.room_id, "nobody will get this")
    notice = await matrix_user.wait_for_event(
        portal.room_id, lambda e: "was not delivered" in body_of(e)
    )
    assert notice.source["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == sent
    assert "not logged in" in body_of(notice)
    after = await admin_bridge.scrape()
    labels = {"network": "loopback", "direction": "to_network", "reason": "not_logged_in"}
    assert sample(after, FAILURES, **labels) - sample(before, FAILURES, **labels) == 1


async def test_queue_depth_shows_the_portals_with_work_waiting(admin_bridge: AdminBridge) -> None:
    bridge = admin_bridge.env.bridge
    assert bridge is not None
    key = PortalKey(NetworkID("loopback"), RemoteChatID(unique("busy-chat")))
    release = asyncio.Event()

    async def blocked() -> None:
        await release.wait()

    async def quick() -> None:
        return None

    running = bridge.ctx.queues.submit(key, blocked)
    waiting = [bridge.ctx.queues.submit(key, quick) for _ in range(3)]
    try:
        samples = await admin_bridge.scrape()
        assert sample(samples, "hubbridge_queue_depth", network="loopback", portal=str(key)) == 3
        assert sample(samples, "hubbridge_queue_depth_total") >= 3
    finally:
        release.set()
        await asyncio.gather(running, *waiting)
    samples = await admin_bridge.scrape()
    assert ("hubbridge_queue_depth", frozenset({("network", "loopback"), ("portal", str(key))})) not in samples


async def test_an_encrypted_message_to_a_bridge_without_encryption_counts_as_a_decryption_failure(
    admin_bridge: AdminBridge, matrix_user: TestClient
) -> None:
    env = admin_bridge.env
    env.allow(matrix_user.user_id, "user")
    room = await matrix_user.create_room(invite=[env.bot_mxid], is_direct=True, encrypted=True)
    await bot_says(matrix_user, room, env, "Send 'help'")
    before = await admin_bridge.scrape()
    await matrix_user.send_text(room, "help")
    await bot_says(matrix_user, room, env, "doesn't take part in encrypted rooms")
    after = await admin_bridge.scrape()
    name = "hubbridge_decryption_failures_total"
    assert sample(after, name, reason="no_crypto") - sample(before, name, reason="no_crypto") == 1


async def test_the_metrics_endpoint_wants_its_token(admin_bridge: AdminBridge) -> None:
    http = admin_bridge.http
    async with http.get(admin_bridge.metrics_url) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"
    async with http.get(admin_bridge.metrics_url, headers={"Authorization": "Bearer nope"}) as resp:
        assert resp.status == 403
    headers = {"Authorization": f"Bearer {admin_bridge.metrics_token}"}
    async with http.get(admin_bridge.metrics_url, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert "hubbridge_messages_bridged_total" in await resp.text()


# Login status ----------------------------------------------------------------------------


def status_events(client: TestClient, room: str, state_key: str) -> list[dict]:
    return [
        e.source["content"] for e in client.events(room)
        if e.source.get("type") == LOGIN_STATUS_EVENT and e.source.get("state_key") == state_key
    ]


async def wait_for_status(client: TestClient, room: str, state_key: str, state: str) -> dict:
    event = await client.wait_for_event(
        room,
        lambda e: e.source.get("type") == LOGIN_STATUS_EVENT
        and e.source.get("state_key") == state_key
        and e.source["content"].get("state_event") == state,
    )
    return event.source["content"]


async def test_login_state_shows_in_status_and_as_a_state_event_in_the_management_room(
    admin_bridge: AdminBridge, loopback: LoopbackClient, matrix_user: TestClient
) -> None:
    env = admin_bridge.env
    env.allow(matrix_user.user_id, "user")
    # As Element creates direct chats: every member at power 100, so the bot may set state.
    created = await matrix_user.nio.room_create(
        invite=[env.bot_mxid], is_direct=True, preset=RoomPreset.trusted_private_chat
    )
    assert isinstance(created, RoomCreateResponse)
    room = created.room_id
    await bot_says(matrix_user, room, env, "Send 'help'")
    me = await loopback_user(loopback, unique("me"), "Me Myself")
    await matrix_user.send_text(room, "login loopback")
    await bot_says(matrix_user, room, env, "Send the token")
    await matrix_user.send_text(room, me.token)
    await bot_says(matrix_user, room, env, "Logged in to Loopback")
    # The loopback login reports "connected" when its first long poll returns: give it
    # an event instead of waiting out the poll.
    await loopback.admin_create_chat("Notes", [me.user_id])

    state_key = f"loopback/{me.user_id}"
    connected = await wait_for_status(matrix_user, room, state_key, "CONNECTED")
    assert connected["network"] == "loopback"
    assert connected["remote_id"] == me.user_id
    assert connected["remote_name"] == "Me Myself"
    assert "error" not in connected

    await matrix_user.send_text(room, "status")
    await bot_says(matrix_user, room, env, "Loopback: Me Myself - connected")

    # The network ends the session, as a connector reports it.
    bridge = env.bridge
    assert bridge is not None
    login = bridge.ctx.logins.get(NetworkID("loopback"), me.user_id)
    assert login is not None
    await bridge.set_login_state(login, LoginState.BAD_CREDENTIALS, "token revoked")
    await bot_says(matrix_user, room, env, "was logged out: token revoked")
    revoked = await wait_for_status(matrix_user, room, state_key, "BAD_CREDENTIALS")
    assert revoked["error"] == "token revoked"
    await matrix_user.send_text(room, "status")
    await bot_says(
        matrix_user, room, env,
        "Loopback: Me Myself - logged out by the network: token revoked (log in again)",
    )

    await bridge.set_login_state(login, LoginState.TRANSIENT_ERROR, "can't reach the network")
    await wait_for_status(matrix_user, room, state_key, "TRANSIENT_DISCONNECT")
    await matrix_user.send_text(room, "status")
    await bot_says(matrix_user, room, env, "error: can't reach the network (retrying)")

    await matrix_user.send_text(room, "logout loopback")
    await bot_says(matrix_user, room, env, "Logged out of loopback")
    await wait_for_status(matrix_user, room, state_key, "LOGGED_OUT")
    assert [c["state_event"] for c in status_events(matrix_user, room, state_key)] == [
        "CONNECTED", "BAD_CREDENTIALS", "TRANSIENT_DISCONNECT", "LOGGED_OUT",
    ]


async def test_a_stored_login_that_is_not_running_still_shows_in_status(
    admin_bridge: AdminBridge, loopback: LoopbackClient, matrix_user: TestClient
) -> None:
    env = admin_bridge.env
    me = await loopback_user(loopback, unique("me"), "Stored Me")
    room = await log_in_to_loopback(matrix_user, env, me)
    bridge = env.bridge
    assert bridge is not None
    login = bridge.ctx.logins.get(NetworkID("loopback"), me.user_id)
    assert login is not None
    # A login that ended as LOGGED_OUT stays in the database, but a restart leaves it off.
    await bridge.set_login_state(login, LoginState.LOGGED_OUT, "session ended on the phone")
    await env.restart()
    assert env.bridge is not None and env.bridge.ctx.logins.get(NetworkID("loopback"), me.user_id) is None
    await matrix_user.send_text(room, "status")
    await bot_says(matrix_user, room, env, "Loopback: Stored Me - logged out: session ended on the phone")
