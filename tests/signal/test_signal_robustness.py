"""Restarts, daemon outages, refused sends, logout, and a missing daemon at start."""

from __future__ import annotations

import pytest

from bridge.core.connector import LoginState
from bridge.networks.signal.config import SignalConfig
from bridge.networks.signal.connector import DaemonProblem, SignalConnector
from tests.signal import envelopes as env_
from tests.signal.envelopes import Person
from tests.signal.flows import add_contact, body_of, join_portal, link_signal
from tests.signal.stub_daemon import StubDaemon
from tests.support.bridge_env import BridgeUnderTest, free_port
from tests.support.flows import bot_says
from tests.support.matrix_client import TestClient


def _count(client: TestClient, room: str, body: str) -> int:
    return sum(1 for e in client.events(room) if body_of(e) == body)


@pytest.mark.synapse
async def test_messages_sent_while_the_bridge_is_away_arrive_once_after_a_restart(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked = await link_signal(matrix_user, signal_bridge, signal_daemon)
    bob = Person("Bob")
    add_contact(linked.account, bob)
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), "one"))
    portal = await join_portal(linked)
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "one")

    # Arrives just as the bridge stops: it must be bridged before the bridge lets go.
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), "two"))
    await signal_bridge.stop()
    assert not signal_daemon.subscribed(linked.account), "the bridge unsubscribes when it stops"
    # While the bridge is away, messages wait on "Signal's servers".
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), "three"))
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), "four"))
    assert len(linked.account.pending) == 2
    await signal_bridge.start()
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "four")
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "two")
    assert [_count(matrix_user, portal, b) for b in ("one", "two", "three", "four")] == [1, 1, 1, 1]
    bodies = [body_of(e) for e in matrix_user.events(portal) if body_of(e) in ("one", "two", "three", "four")]
    assert bodies == ["one", "two", "three", "four"]


@pytest.mark.synapse
async def test_the_login_reconnects_after_the_daemon_drops_the_connection(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked = await link_signal(matrix_user, signal_bridge, signal_daemon)
    bob = Person("Bob")
    add_contact(linked.account, bob)
    login = signal_bridge.bridge.ctx.logins.of_user(matrix_user.user_id, "signal")[0]
    signal_daemon.drop_connections()
    await signal_daemon.wait_for(lambda: login.record.state == LoginState.TRANSIENT_ERROR or None, timeout=10)
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), "after the outage"))
    await signal_daemon.wait_for(lambda: signal_daemon.subscribed(linked.account), timeout=15)
    portal = await join_portal(linked)
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "after the outage")
    assert login.record.state == LoginState.CONNECTED


@pytest.mark.synapse
async def test_sends_the_daemon_refuses_are_reported_in_the_room(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked = await link_signal(matrix_user, signal_bridge, signal_daemon)
    bob = Person("Bob")
    add_contact(linked.account, bob)
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), "hi"))
    portal = await join_portal(linked)
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "hi")
    result = {"recipientAddress": {"uuid": bob.aci, "number": None, "username": None}, "groupId": None,
              "token": None, "retryAfterSeconds": None}
    signal_daemon.fail_next("send", -4, "Failed to send message due to untrusted identities",
                            {"response": {"timestamp": 1, "results": [{**result, "type": "IDENTITY_FAILURE"}]}})
    await matrix_user.send_text(portal, "secret plan")
    text = await bot_says(matrix_user, portal, signal_bridge, "not delivered to Signal")
    assert "safety number changed" in text

    signal_daemon.fail_next("send", -5, "Failed to send message due to rate limiting",
                            {"response": {"timestamp": 2, "results": [{**result, "type": "RATE_LIMIT_FAILURE",
                                                                       "retryAfterSeconds": 3600}]}})
    await matrix_user.send_text(portal, "too fast")
    text = await bot_says(matrix_user, portal, signal_bridge, "rate-limiting")
    assert "3600 s" in text


@pytest.mark.synapse
async def test_logout_removes_the_account_from_the_daemon(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked = await link_signal(matrix_user, signal_bridge, signal_daemon)
    await matrix_user.send_text(linked.management_room, "logout signal")
    await bot_says(matrix_user, linked.management_room, signal_bridge, "Logged out of signal")
    assert linked.account.number not in signal_daemon.accounts
    methods = [m for m, p in signal_daemon.requests if p.get("account") == linked.account.number]
    assert methods[-2:] == ["unregister", "deleteLocalAccountData"]
    assert not signal_bridge.bridge.ctx.logins.of_user(matrix_user.user_id, "signal")


async def test_bridge_start_names_the_address_when_the_daemon_is_unreachable() -> None:
    address = f"127.0.0.1:{free_port()}"
    connector = SignalConnector(SignalConfig(address=address, startup_wait=0.5), host=None)
    with pytest.raises(DaemonProblem) as error:
        await connector.start()
    assert "can't reach the signal-cli daemon" in str(error.value) and address in str(error.value)


async def test_bridge_start_refuses_a_daemon_that_is_too_old() -> None:
    daemon = StubDaemon()
    await daemon.start()

    async def old_version(client, params):
        return {"version": "0.11.5"}

    daemon.rpc_version = old_version  # type: ignore[method-assign]
    try:
        connector = SignalConnector(SignalConfig(address=daemon.address, startup_wait=2), host=None)
        with pytest.raises(DaemonProblem, match="0.11.5"):
            await connector.start()
    finally:
        await daemon.stop()
