"""Linking a Signal account through the bot, and direct chats both ways, through Synapse."""

from __future__ import annotations

import pytest

from bridge.networks.signal.format import PLACEHOLDER, parse_ranges
from tests.signal import envelopes as env_
from tests.signal.envelopes import Person
from tests.signal.flows import add_contact, body_of, ghost_of, join_portal, link_signal
from tests.signal.stub_daemon import StubDaemon
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import bot_says
from tests.support.matrix_client import TestClient

pytestmark = pytest.mark.synapse


async def test_linking_shows_a_qr_code_of_the_link_uri_and_completes_when_the_phone_scans(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked = await link_signal(matrix_user, signal_bridge, signal_daemon, name="Alice Adams")
    room = linked.management_room
    qr = next(e for e in matrix_user.events(room) if (e.source.get("content") or {}).get("msgtype") == "m.image")
    image = await matrix_user.download(qr.source["content"]["url"])
    assert image.startswith(b"\x89PNG"), "the link URI is shown as a QR code image"
    done = await bot_says(matrix_user, room, signal_bridge, "Logged in to Signal")
    assert "Alice Adams" in done and linked.account.number not in done
    login = signal_bridge.bridge.ctx.logins.of_user(matrix_user.user_id, "signal")[0]
    assert login.login_id == linked.account.aci, "a login is keyed by the account's ACI"
    finish = await signal_daemon.wait_for_request("finishLink")
    assert finish["deviceName"] == "Hub bridge"


async def test_direct_message_with_styles_and_a_mention_arrives_as_html_from_a_ghost_without_phone_number(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked = await link_signal(matrix_user, signal_bridge, signal_daemon)
    bob = Person("Bob Baker", number="+4916099887766")
    carol = Person("Carol", hides_number=True)
    add_contact(linked.account, bob)
    add_contact(linked.account, carol)
    ts = signal_daemon.timestamp()
    # "😀 hi \uFFFC, look" with "hi" bold and the mention of Carol (UTF-16 offsets: the emoji is 2 units).
    text = f"😀 hi {PLACEHOLDER}, look"
    signal_daemon.deliver(
        linked.account,
        env_.message(bob, ts, text, styles=[{"style": "BOLD", "start": 3, "length": 2}],
                     mentions=[{"name": "Carol", "number": None, "uuid": carol.aci, "start": 6, "length": 1}]),
    )
    portal = await join_portal(linked)
    event = await matrix_user.wait_for_event(portal, lambda e: "look" in body_of(e))
    content = event.source["content"]
    ghost = ghost_of(signal_bridge, bob.aci)
    assert event.source["sender"] == ghost
    assert content["body"].startswith("😀 hi @Carol, look")
    assert "<strong>hi</strong>" in content["formatted_body"]
    assert ghost_of(signal_bridge, carol.aci) in content["formatted_body"]
    assert content["m.mentions"]["user_ids"] == [ghost_of(signal_bridge, carol.aci)]
    room = matrix_user.nio.rooms[portal]
    assert room.user_name(ghost) == "Bob Baker (Signal)"
    assert "4916099887766" not in ghost and "4916099887766" not in room.user_name(ghost)


async def test_matrix_reply_with_formatting_and_a_ghost_mention_reaches_signal_as_quote_styles_and_mention(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked = await link_signal(matrix_user, signal_bridge, signal_daemon)
    bob = Person("Bob")
    add_contact(linked.account, bob)
    ts = signal_daemon.timestamp()
    signal_daemon.deliver(linked.account, env_.message(bob, ts, "lunch?"))
    portal = await join_portal(linked)
    original = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "lunch?")
    ghost = ghost_of(signal_bridge, bob.aci)
    html = f'<a href="https://matrix.to/#/{ghost}">Bob</a>: <b>yes</b> at <code>12:30</code> 🍕'
    await matrix_user.send_text(portal, "Bob: yes at 12:30 🍕", formatted_body=html, reply_to=original.event_id)
    sent = await signal_daemon.wait_for_request("send", lambda p: p.get("account") == linked.account.number)
    assert sent["recipient"] == [bob.aci]
    assert sent["message"] == f"{PLACEHOLDER}: yes at 12:30 🍕"
    assert sent["quoteTimestamp"] == ts and sent["quoteAuthor"] == bob.aci
    assert parse_ranges(sent["mention"], "uuid") == [{"start": 0, "length": 1, "uuid": bob.aci}]
    assert set(sent["textStyle"]) == {"3:3:BOLD", "10:5:MONOSPACE"}


async def test_a_message_sent_from_the_phone_appears_as_the_users_own_ghost(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked = await link_signal(matrix_user, signal_bridge, signal_daemon)
    bob = Person("Bob")
    add_contact(linked.account, bob)
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), "are you there?"))
    portal = await join_portal(linked)
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "are you there?")
    signal_daemon.deliver(linked.account, env_.sent_from_phone(linked.me, signal_daemon.timestamp(), "typed on my phone", destination=bob.aci))
    event = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "typed on my phone")
    assert event.source["sender"] == ghost_of(signal_bridge, linked.account.aci)


async def test_a_link_the_daemon_fails_is_reported_in_the_management_room(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    from tests.support.flows import open_management_room

    signal_bridge.allow(matrix_user.user_id, "user")
    room = await open_management_room(matrix_user, signal_bridge)
    signal_daemon.fail_next("finishLink", -1, "Link request error: Connection closed!")
    await matrix_user.send_text(room, "login signal")
    text = await bot_says(matrix_user, room, signal_bridge, "Login failed")
    assert "Connection closed" in text
    assert not signal_bridge.bridge.ctx.logins.of_user(matrix_user.user_id, "signal")
