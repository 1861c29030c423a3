"""Typing, read receipts and the media size limit, in both directions."""

from __future__ import annotations

import asyncio

import pytest
from nio import ReceiptEvent, TypingNoticeEvent

from bridge.networks.loopback.client import LoopbackClient, media_payload
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import PortalSetup, body_of, sent_by, setup_portal, wait_for_remote
from tests.support.matrix_client import TestClient

pytestmark = pytest.mark.synapse


@pytest.fixture
async def portal(
    running_bridge: BridgeUnderTest, loopback: LoopbackClient, matrix_user: TestClient
) -> PortalSetup:
    return await setup_portal(matrix_user, running_bridge, loopback, unique)


async def bob_sees(portal: PortalSetup, predicate, timeout: float = 20) -> dict:
    """Wait for an event in Bob's own event stream on the network (not acknowledged)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for event in await portal.bob.api.get_events(timeout=1):
            if predicate(event):
                return event
    raise AssertionError("Bob never saw the expected event")


async def test_typing_and_read_receipts_reach_the_network(
    portal: PortalSetup, matrix_user: TestClient
) -> None:
    await matrix_user.set_typing(portal.room_id, True)
    typing = await bob_sees(portal, lambda e: e["type"] == "typing" and e["typing"])
    assert typing["sender"] == portal.me.user_id and typing["chat_id"] == portal.chat_id
    await matrix_user.send_read_receipt(portal.room_id, portal.first_event_id)
    read = await bob_sees(portal, lambda e: e["type"] == "read" and e["sender"] == portal.me.user_id)
    assert read["message_id"] == portal.first_message_id


async def test_typing_and_read_receipts_reach_matrix(
    portal: PortalSetup, matrix_user: TestClient
) -> None:
    ghost = next(e.source["sender"] for e in matrix_user.events(portal.room_id) if body_of(e) == "first")
    await portal.bob.api.set_typing(portal.chat_id, True)
    await matrix_user.wait_for_ephemeral(
        portal.room_id, lambda e: isinstance(e, TypingNoticeEvent) and ghost in e.users
    )
    event_id = await matrix_user.send_text(portal.room_id, "did you read this?")
    sent = await wait_for_remote(portal.bob.api, portal.chat_id, lambda m: m["text"] == "did you read this?")
    await portal.bob.api.mark_read(portal.chat_id, sent["id"])
    await matrix_user.wait_for_ephemeral(
        portal.room_id,
        lambda e: isinstance(e, ReceiptEvent)
        and any(r.user_id == ghost and r.event_id == event_id for r in e.receipts),
    )


async def test_oversized_media_is_refused_with_a_notice_both_ways(
    portal: PortalSetup, matrix_user: TestClient, running_bridge: BridgeUnderTest
) -> None:
    limit_mb = running_bridge.bridge.config.bridge.max_media_size_mb
    big = b"\0" * (limit_mb * 1024 * 1024 + 1)
    await portal.bob.api.send_message(
        portal.chat_id, None, media=media_payload("file", "huge.bin", "application/octet-stream", big)
    )
    notice = await matrix_user.wait_for_event(portal.room_id, lambda e: "huge.bin" in body_of(e))
    assert "was not bridged" in body_of(notice) and f"{limit_mb} MiB" in body_of(notice)
    assert "url" not in notice.source["content"]

    mxc = await matrix_user.upload(big, "application/octet-stream", "huge-too.bin")
    event_id = await matrix_user.send_content(
        portal.room_id,
        {"msgtype": "m.file", "body": "huge-too.bin", "url": mxc,
         "info": {"mimetype": "application/octet-stream", "size": len(big)}},
    )
    refusal = await matrix_user.wait_for_event(
        portal.room_id,
        lambda e: sent_by(running_bridge.bot_mxid)(e) and "too big" in body_of(e),
    )
    assert refusal.source["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id
