"""The bridge read by Element's crypto in "exclude insecure devices" mode.

The client is matrix-js-sdk with its Rust crypto (tests/support/js_client.py), set to
OnlySignedDevicesIsolationMode: it shares room keys only with devices cross-signed by
their owners, and messages from any other device fail to decrypt. Against a real Synapse
and the "xsign" bridge of tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bridge.devtools.synapse import LocalSynapse
from bridge.networks.loopback.client import LoopbackClient
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import loopback_user
from tests.support.js_client import Event, JsStrictClient
from tests.support.matrix_client import make_client
from tests.test_encryption_e2e import loopback_gets

pytestmark = pytest.mark.synapse


@pytest_asyncio.fixture(loop_scope="session")
async def erin(synapse: LocalSynapse, tmp_path: Path) -> AsyncIterator[JsStrictClient]:
    client = await JsStrictClient.start(synapse, unique("erin"), tmp_path / "erin")
    try:
        yield client
    finally:
        await client.close()


def from_bot(env: BridgeUnderTest, room: str, fragment: str):
    def match(event: Event) -> bool:
        return (event.get("room") == room and event.get("event") == "message"
                and event.get("sender") == env.bot_mxid and fragment in (event.get("body") or ""))
    return match


async def bot_answers(erin: JsStrictClient, env: BridgeUnderTest, room: str, fragment: str) -> Event:
    return await erin.wait_for(from_bot(env, room, fragment), 20, f"the bot saying {fragment!r}")


def assert_trusted(event: Event) -> None:
    """Decrypted, with no warning that the sending device is unsigned."""
    assert event["encrypted"], event
    assert (event.get("shield") or {}).get("reason") != "UNSIGNED_DEVICE", event


async def test_a_client_that_excludes_insecure_devices_reads_and_is_read_through_restarts_and_new_ghosts(
    xsign_bridge: BridgeUnderTest, loopback: LoopbackClient, erin: JsStrictClient
) -> None:
    env = xsign_bridge
    me = await loopback_user(loopback, unique("me"), "Me")
    bob = await loopback_user(loopback, unique("bob"), "Bob")
    env.allow(erin.user_id, "user")

    # Commands over an encrypted DM: the bot's device must be cross-signed both ways.
    dm = await erin.request("create_room", invite=[env.bot_mxid], encrypted=True, is_direct=True)
    assert_trusted(await bot_answers(erin, env, dm, "Send 'help'"))
    await erin.request("send", room=dm, body="login loopback")
    await bot_answers(erin, env, dm, "Send the token")
    await erin.request("send", room=dm, body=me.token)
    assert_trusted(await bot_answers(erin, env, dm, "Logged in to Loopback"))

    chat = (await loopback.admin_create_chat("Strict js club", [me.user_id, bob.user_id]))["id"]
    await bob.api.send_message(chat, "first words for the strict client")
    invite = await erin.wait_for(lambda e: e.get("event") == "invite" and e["room"] != dm, 20, "the portal invite")
    room = invite["room"]
    await erin.request("join", room=room, encrypted=True)
    assert_trusted(await erin.wait_for_message(room, "first words for the strict client"))

    await bob.api.send_message(chat, "loopback to the strict client")
    got = await erin.wait_for_message(room, "loopback to the strict client")
    assert_trusted(got)
    assert got["sender"].startswith("@hubxsign_loopback_")
    await erin.request("send", room=room, body="strict client to loopback")
    await loopback_gets(bob, chat, "strict client to loopback")

    # A ghost that appears now gets its device and identity before its first message.
    dora = await loopback_user(loopback, unique("dora"), "Dora")
    await bob.api.add_member(chat, dora.user_id)
    await dora.api.send_message(chat, "dora to the strict client")
    from_dora = await erin.wait_for_message(room, "dora to the strict client")
    assert_trusted(from_dora)
    assert from_dora["sender"] not in (got["sender"], env.bot_mxid)

    await env.restart()
    # Wait until Synapse delivers to the restarted bridge (see settle() in the nio tests):
    # an unencrypted room with the bot, answered by the bot.
    lobby = await erin.request("create_room", invite=[env.bot_mxid], encrypted=False, is_direct=True)
    await bot_answers(erin, env, lobby, "Send 'help'")

    await bob.api.send_message(chat, "after the restart, to the strict client")
    assert_trusted(await erin.wait_for_message(room, "after the restart, to the strict client"))
    await erin.request("send", room=room, body="strict client after the restart")
    await loopback_gets(bob, chat, "strict client after the restart")
    await erin.request("send", room=dm, body="!bridge ping")
    assert_trusted(await bot_answers(erin, env, dm, "The bridge is running"))

    ours = lambda sender: sender == env.bot_mxid or sender.startswith("@hubxsign_")  # noqa: E731
    assert erin.undecryptable(ours) == []


async def test_the_strict_client_refuses_messages_from_an_unsigned_device(
    synapse: LocalSynapse, erin: JsStrictClient, tmp_path: Path
) -> None:
    """The mode is really on: a plain nio device (no cross-signing) is shut out both ways."""
    mallory = await make_client(synapse, unique("mallory"), tmp_path / "mallory", encryption=True)
    try:
        room = await erin.request("create_room", invite=[mallory.user_id], encrypted=True, is_direct=False)
        await mallory.join(room)
        await mallory.send_text(room, "from a device nobody signed")
        refused = await erin.wait_for(
            lambda e: e.get("room") == room and e.get("event") == "undecryptable"
            and e.get("sender") == mallory.user_id and e.get("code") == "UNSIGNED_SENDER_DEVICE",
            20, "the unsigned device's message to be refused",
        )
        assert not [e for e in erin.events if e.get("event_id") == refused["event_id"] and e.get("event") == "message"]

        sent = await erin.request("send", room=room, body="not for unsigned devices")
        seen = await mallory.wait_for_event(room, lambda e: e.event_id == sent)
        # Its room key would have come before the event: the unsigned device never got it.
        assert type(seen).__name__ == "MegolmEvent"
    finally:
        await mallory.close()
