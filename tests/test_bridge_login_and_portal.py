"""A Matrix user logs in to the loopback network through the bot and gets portal rooms."""

from __future__ import annotations

import pytest

from bridge.networks.loopback.client import LoopbackClient
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import body_of, bot_says, log_in_to_loopback, loopback_user, open_management_room
from tests.support.matrix_client import TestClient

pytestmark = pytest.mark.synapse


async def test_login_through_the_bot_and_a_chat_becomes_a_portal_with_ghosts(
    running_bridge: BridgeUnderTest, loopback: LoopbackClient, matrix_user: TestClient
) -> None:
    me = await loopback_user(loopback, unique("alice"), "Alice", phone="+4915112345678")
    bob = await loopback_user(loopback, unique("bob"), "Bob", phone="+4915187654321", username="bobby")
    room = await log_in_to_loopback(matrix_user, running_bridge, me)

    # The bot has no power to redact in a room the user created, so it says so: the
    # token must not stay in the history unnoticed.
    await bot_says(matrix_user, room, running_bridge, "delete it yourself")

    chat = (await loopback.admin_create_chat("Garden club", [me.user_id, bob.user_id], topic="Roses"))["id"]
    await bob.api.send_message(chat, "Hello from the garden")
    portal = await matrix_user.wait_for_invite()
    await matrix_user.join(portal)
    message = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "Hello from the garden")
    ghost = message.source["sender"]
    assert ghost.startswith("@hub_loopback_")
    assert "4915" not in ghost, "a phone number must never be part of a ghost's user id"

    room_state = matrix_user.nio.rooms[portal]
    assert room_state.name == "Garden club"
    assert room_state.topic == "Roses"
    assert room_state.user_name(ghost) == "Bob (Loopback)"

    bridge_state = await matrix_user.nio.room_get_state(portal)
    kinds = {e["type"] for e in bridge_state.events}
    assert {"m.bridge", "uk.half-shot.bridge"} <= kinds


async def test_unlisted_user_is_refused(
    running_bridge: BridgeUnderTest, synapse, tmp_path
) -> None:
    from tests.support.matrix_client import make_client

    stranger = await make_client(synapse, unique("stranger"), tmp_path / "s", encryption=False)
    try:
        room_id = await stranger.create_room(invite=[running_bridge.bot_mxid], is_direct=True)
        # The bot leaves (rejects) the invite of someone not allowed to use the bridge.
        await stranger.wait_for_event(
            room_id,
            lambda e: e.source.get("type") == "m.room.member"
            and e.source.get("state_key") == running_bridge.bot_mxid
            and e.source["content"].get("membership") == "leave",
        )
        assert await running_bridge.bridge.db.users.get_management_room(stranger.user_id) is None
    finally:
        await stranger.close()


async def test_unknown_command_gets_a_short_help(
    running_bridge: BridgeUnderTest, matrix_user: TestClient
) -> None:
    running_bridge.allow(matrix_user.user_id, "user")
    room = await open_management_room(matrix_user, running_bridge)
    await matrix_user.send_text(room, "fly me to the moon")
    await bot_says(matrix_user, room, running_bridge, "Unknown command 'fly'")
    text = await bot_says(matrix_user, room, running_bridge, "login <network>")
    assert "Networks on this bridge: loopback" in text
