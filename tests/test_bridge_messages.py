"""Messages round-trip in both directions between Matrix and the loopback network."""

from __future__ import annotations

import pytest

from bridge.networks.loopback.client import LoopbackClient, media_payload
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import PortalSetup, body_of, setup_portal, wait_for_remote
from tests.support.matrix_client import TestClient

pytestmark = pytest.mark.synapse

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
async def portal(
    running_bridge: BridgeUnderTest, loopback: LoopbackClient, matrix_user: TestClient
) -> PortalSetup:
    return await setup_portal(matrix_user, running_bridge, loopback, unique)


def content(event) -> dict:
    return event.source.get("content") or {}


async def test_remote_formatting_reply_edit_reaction_and_delete_reach_matrix(
    portal: PortalSetup, matrix_user: TestClient
) -> None:
    room, bob = portal.room_id, portal.bob
    sent = await bob.api.send_message(
        portal.chat_id,
        "bold 😀 and code",
        entities=[
            {"type": "bold", "offset": 0, "length": 4},
            {"type": "code", "offset": 11, "length": 4},
        ],
        reply_to=portal.first_message_id,
    )
    event = await matrix_user.wait_for_event(room, lambda e: body_of(e) == "bold 😀 and code")
    assert content(event)["formatted_body"] == "<strong>bold</strong> 😀 and <code>code</code>"
    assert content(event)["m.relates_to"]["m.in_reply_to"]["event_id"] == portal.first_event_id

    await bob.api.edit_message(portal.chat_id, sent["id"], "bold, edited")
    edit = await matrix_user.wait_for_event(
        room, lambda e: content(e).get("m.relates_to", {}).get("rel_type") == "m.replace"
    )
    assert edit.source["content"]["m.relates_to"]["event_id"] == event.event_id
    assert edit.source["content"]["m.new_content"]["body"] == "bold, edited"

    await bob.api.add_reaction(portal.chat_id, sent["id"], "👍")
    reaction = await matrix_user.wait_for_event(room, lambda e: e.source.get("type") == "m.reaction")
    assert reaction.source["content"]["m.relates_to"] == {
        "rel_type": "m.annotation", "event_id": event.event_id, "key": "👍",
    }
    assert reaction.source["sender"] == event.source["sender"]

    await bob.api.delete_message(portal.chat_id, sent["id"])
    await matrix_user.wait_for_event(
        room, lambda e: e.source.get("type") == "m.room.redaction" and e.source.get("redacts") == event.event_id
    )


async def test_remote_image_arrives_as_matrix_media(portal: PortalSetup, matrix_user: TestClient) -> None:
    await portal.bob.api.send_message(
        portal.chat_id, None, media=media_payload("image", "dot.png", "image/png", PNG)
    )
    event = await matrix_user.wait_for_event(
        portal.room_id, lambda e: content(e).get("msgtype") == "m.image"
    )
    assert content(event)["body"] == "dot.png"
    assert content(event)["info"]["mimetype"] == "image/png"
    assert await matrix_user.download(content(event)["url"]) == PNG


async def test_matrix_formatting_reply_edit_reaction_and_redaction_reach_the_network(
    portal: PortalSetup, matrix_user: TestClient, loopback: LoopbackClient
) -> None:
    room, chat = portal.room_id, portal.chat_id
    event_id = await matrix_user.send_text(
        room, "hi **bob**", formatted_body="hi <strong>bob</strong>", reply_to=portal.first_event_id
    )
    sent = await wait_for_remote(loopback, chat, lambda m: m["text"] == "hi bob")
    assert sent["sender"] == portal.me.user_id
    assert sent["entities"] == [{"type": "bold", "offset": 3, "length": 3}]
    assert sent["reply_to"] == portal.first_message_id

    await matrix_user.send_content(
        room,
        {
            "msgtype": "m.text",
            "body": "* hi bob, edited",
            "m.new_content": {"msgtype": "m.text", "body": "hi bob, edited"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        },
    )
    await wait_for_remote(loopback, chat, lambda m: m["id"] == sent["id"] and m["edited"] and m["text"] == "hi bob, edited")

    await matrix_user.react(room, portal.first_event_id, "🎉")
    await wait_for_remote(
        loopback, chat,
        lambda m: m["id"] == portal.first_message_id and m["reactions"].get("🎉") == [portal.me.user_id],
    )
    reaction_id = next(
        e.event_id for e in matrix_user.events(room) if e.source.get("type") == "m.reaction"
        and e.source.get("sender") == matrix_user.user_id
    )
    await matrix_user.redact(room, reaction_id)
    await wait_for_remote(
        loopback, chat, lambda m: m["id"] == portal.first_message_id and not m["reactions"].get("🎉")
    )

    await matrix_user.redact(room, event_id)
    await wait_for_remote(loopback, chat, lambda m: m["id"] == sent["id"] and m["deleted"])


async def test_matrix_image_reaches_the_network(
    portal: PortalSetup, matrix_user: TestClient, loopback: LoopbackClient
) -> None:
    mxc = await matrix_user.upload(PNG, "image/png", "pixel.png")
    await matrix_user.send_content(
        portal.room_id,
        {"msgtype": "m.image", "body": "pixel.png", "url": mxc,
         "info": {"mimetype": "image/png", "size": len(PNG)}},
    )
    sent = await wait_for_remote(loopback, portal.chat_id, lambda m: m["media"] is not None)
    assert sent["media"]["kind"] == "image"
    assert sent["media"]["name"] == "pixel.png"
    data, mime = await loopback.admin_get_media(sent["media"]["media_id"])
    assert data == PNG and mime == "image/png"


async def test_rate_limited_send_is_retried_and_delivered_once(
    portal: PortalSetup, matrix_user: TestClient, loopback: LoopbackClient
) -> None:
    await loopback.set_faults(rate_limit={"count": 2, "retry_after": 0.2})
    try:
        await matrix_user.send_text(portal.room_id, "patience")
        await wait_for_remote(loopback, portal.chat_id, lambda m: m["text"] == "patience")
    finally:
        await loopback.clear_faults()
    history = await loopback.admin_get_messages(portal.chat_id)
    assert [m["text"] for m in history].count("patience") == 1


async def test_message_the_network_refuses_is_reported_in_the_room(
    portal: PortalSetup, matrix_user: TestClient, loopback: LoopbackClient, running_bridge: BridgeUnderTest
) -> None:
    # Bob removes us from the chat on the network; our next message is refused there.
    await portal.bob.api.remove_member(portal.chat_id, portal.me.user_id)
    event_id = await matrix_user.send_text(portal.room_id, "anyone there?")
    notice = await matrix_user.wait_for_event(
        portal.room_id,
        lambda e: e.source.get("sender") == running_bridge.bot_mxid
        and "not delivered" in body_of(e),
    )
    assert content(notice)["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id
    status = await matrix_user.wait_for_event(
        portal.room_id, lambda e: e.source.get("type") == "com.beeper.message_send_status"
    )
    assert content(status)["status"] == "FAIL_PERMANENT"
    assert content(status)["m.relates_to"]["event_id"] == event_id


async def test_a_remote_message_that_keeps_failing_is_reported_and_does_not_block_the_chat(
    portal: PortalSetup, matrix_user: TestClient, running_bridge: BridgeUnderTest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bridge.core.bridge as bridge_module
    import bridge.core.remote as remote_module
    from bridge.core.events import RemoteMessage

    monkeypatch.setattr(bridge_module, "MAX_REMOTE_ATTEMPTS", 2)
    real_on_message = remote_module.RemoteHandler.on_message

    async def broken_for_one_message(self, login, portal_row, evt):
        if evt.content.text.text == "poison":
            raise ValueError("a message this bridge version can't handle")
        await real_on_message(self, login, portal_row, evt)

    monkeypatch.setitem(remote_module._HANDLERS, RemoteMessage, broken_for_one_message)
    await portal.bob.api.send_message(portal.chat_id, "poison")
    await portal.bob.api.send_message(portal.chat_id, "after the poison")
    notice = await matrix_user.wait_for_event(
        portal.room_id,
        lambda e: e.source.get("sender") == running_bridge.bot_mxid and "could not be shown" in body_of(e),
        timeout=40,
    )
    assert "internal error (ValueError)" in body_of(notice)
    await matrix_user.wait_for_event(portal.room_id, lambda e: body_of(e) == "after the poison", timeout=40)


async def test_what_the_user_sends_from_another_app_appears_as_their_own_matrix_account(
    portal: PortalSetup, matrix_user: TestClient, loopback: LoopbackClient
) -> None:
    await portal.me.api.send_message(portal.chat_id, "typed on my phone")
    event = await matrix_user.wait_for_event(portal.room_id, lambda e: body_of(e) == "typed on my phone")
    assert event.source["sender"] == matrix_user.user_id  # double puppeting, not a ghost
    await portal.bob.api.send_message(portal.chat_id, "a later message")
    await matrix_user.wait_for_event(portal.room_id, lambda e: body_of(e) == "a later message")
    history = await loopback.admin_get_messages(portal.chat_id)
    assert [m["text"] for m in history].count("typed on my phone") == 1  # not echoed back
