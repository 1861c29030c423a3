"""Edits, deletes, reactions, attachments, typing and read receipts, both ways, through Synapse."""

from __future__ import annotations

import asyncio
import base64

import pytest
from nio import ReceiptEvent, SyncResponse, TypingNoticeEvent

from tests.signal import envelopes as env_
from tests.signal.envelopes import Person
from tests.signal.flows import Linked, add_contact, body_of, ghost_of, join_portal, link_signal
from tests.signal.stub_daemon import StubDaemon
from tests.support.bridge_env import BridgeUnderTest
from tests.support.matrix_client import TestClient

pytestmark = pytest.mark.synapse


async def _chat_with_bob(env: BridgeUnderTest, daemon: StubDaemon, client: TestClient) -> tuple[Linked, Person, str, int]:
    linked = await link_signal(client, env, daemon)
    bob = Person("Bob")
    add_contact(linked.account, bob)
    ts = daemon.timestamp()
    daemon.deliver(linked.account, env_.message(bob, ts, "first"))
    portal = await join_portal(linked)
    await client.wait_for_event(portal, lambda e: body_of(e) == "first")
    return linked, bob, portal, ts


def _relates(event, rel_type: str) -> dict:
    relation = (event.source.get("content") or {}).get("m.relates_to") or {}
    return relation if relation.get("rel_type") == rel_type else {}


async def test_signal_edit_reaction_unreaction_and_delete_change_the_matrix_event(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked, bob, portal, ts = await _chat_with_bob(signal_bridge, signal_daemon, matrix_user)
    first = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "first")
    signal_daemon.deliver(linked.account, env_.edit(bob, signal_daemon.timestamp(), ts, "first, edited"))
    edit = await matrix_user.wait_for_event(portal, lambda e: _relates(e, "m.replace").get("event_id") == first.event_id)
    assert edit.source["content"]["m.new_content"]["body"] == "first, edited"

    signal_daemon.deliver(linked.account, env_.reaction(bob, signal_daemon.timestamp(), "👍", bob.aci, ts))
    reaction = await matrix_user.wait_for_event(portal, lambda e: _relates(e, "m.annotation").get("key") == "👍")
    assert reaction.source["sender"] == ghost_of(signal_bridge, bob.aci)
    signal_daemon.deliver(linked.account, env_.reaction(bob, signal_daemon.timestamp(), "👍", bob.aci, ts, remove=True))
    await matrix_user.wait_for_event(portal, lambda e: e.source.get("redacts") == reaction.event_id or
                                     (e.source.get("content") or {}).get("redacts") == reaction.event_id)

    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), None, remote_delete=ts))
    await matrix_user.wait_for_event(portal, lambda e: e.source.get("redacts") == first.event_id or
                                     (e.source.get("content") or {}).get("redacts") == first.event_id)


async def test_matrix_edit_reaction_and_redactions_reach_signal(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked, bob, portal, ts = await _chat_with_bob(signal_bridge, signal_daemon, matrix_user)
    first = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "first")
    mine = linked.account.number
    event_id = await matrix_user.send_text(portal, "typo")
    sent = await signal_daemon.wait_for_request("send", lambda p: p.get("account") == mine and p.get("message") == "typo")
    sent_ts = signal_daemon.last_timestamp  # the stub's timestamp for that send
    await matrix_user.send_content(portal, {
        "msgtype": "m.text", "body": "* fixed", "m.new_content": {"msgtype": "m.text", "body": "fixed"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
    })
    edit = await signal_daemon.wait_for_request("send", lambda p: p.get("account") == mine and "editTimestamp" in p)
    assert edit["message"] == "fixed" and edit["editTimestamp"] == sent_ts and sent["recipient"] == [bob.aci]

    reaction_id = await matrix_user.react(portal, first.event_id, "❤️")
    react = await signal_daemon.wait_for_request("sendReaction", lambda p: p.get("account") == mine)
    assert (react["emoji"], react["targetAuthor"], react["targetTimestamp"]) == ("❤️", bob.aci, ts)
    await matrix_user.redact(portal, reaction_id)
    unreact = await signal_daemon.wait_for_request("sendReaction", lambda p: p.get("account") == mine and p.get("remove"))
    assert unreact["targetTimestamp"] == ts

    await matrix_user.redact(portal, event_id)
    delete = await signal_daemon.wait_for_request("remoteDelete", lambda p: p.get("account") == mine)
    assert delete == {"account": mine, "recipient": [bob.aci], "targetTimestamp": sent_ts}


async def test_signal_attachments_voice_note_and_sticker_arrive_as_matrix_media(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked, bob, portal, _ = await _chat_with_bob(signal_bridge, signal_daemon, matrix_user)
    photo, voice, sticker = b"\x89PNG fake photo", b"AAC voice bytes", b"RIFF....WEBPVP8 sticker"
    linked.account.attachments.update({"photoid1": photo, "voiceid1": voice})
    signal_daemon.stickers[("aabbcc", 3)] = sticker
    ts = signal_daemon.timestamp()
    signal_daemon.deliver(linked.account, env_.message(bob, ts, "holiday", attachments=[
        env_.attachment("photoid1", "image/png", len(photo), "beach.png", width=4, height=3),
        env_.attachment("voiceid1", "audio/aac", len(voice)),
    ]))
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), None,
                                                       sticker={"packId": "aabbcc", "stickerId": 3}))
    image = await matrix_user.wait_for_event(portal, lambda e: (e.source.get("content") or {}).get("msgtype") == "m.image"
                                             and body_of(e) == "holiday")
    assert image.source["content"]["filename"] == "beach.png"
    assert await matrix_user.download(image.source["content"]["url"]) == photo
    note = await matrix_user.wait_for_event(portal, lambda e: "org.matrix.msc3245.voice" in (e.source.get("content") or {}))
    assert await matrix_user.download(note.source["content"]["url"]) == voice
    stick = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "sticker.webp")
    assert await matrix_user.download(stick.source["content"]["url"]) == sticker

    # Deleting the two-attachment message removes both Matrix events.
    signal_daemon.deliver(linked.account, env_.message(bob, signal_daemon.timestamp(), None, remote_delete=ts))
    for target in (image.event_id, note.event_id):
        await matrix_user.wait_for_event(portal, lambda e, t=target: e.source.get("redacts") == t
                                         or (e.source.get("content") or {}).get("redacts") == t)


async def test_matrix_file_reaches_signal_as_a_data_uri_attachment(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked, _, portal, _ = await _chat_with_bob(signal_bridge, signal_daemon, matrix_user)
    data = b"%PDF-1.4 minutes of the meeting"
    mxc = await matrix_user.upload(data, "application/pdf", "minutes.pdf")
    await matrix_user.send_content(portal, {"msgtype": "m.file", "body": "minutes.pdf", "url": mxc,
                                            "info": {"mimetype": "application/pdf", "size": len(data)}})
    sent = await signal_daemon.wait_for_request("send", lambda p: p.get("account") == linked.account.number
                                                and p.get("attachment"))
    assert sent["attachment"] == ["data:application/pdf;filename=minutes.pdf;base64," + base64.b64encode(data).decode()]
    assert "message" not in sent, "a file without a caption sends no text"


async def test_typing_and_read_receipts_cross_both_ways(
    signal_bridge: BridgeUnderTest, signal_daemon: StubDaemon, matrix_user: TestClient
) -> None:
    linked, bob, portal, ts = await _chat_with_bob(signal_bridge, signal_daemon, matrix_user)
    mine = linked.account.number
    first = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "first")
    # Matrix -> Signal: typing, then a read receipt for Bob's message.
    await matrix_user.nio.room_typing(portal, True, timeout=10_000)
    typing = await signal_daemon.wait_for_request("sendTyping", lambda p: p.get("account") == mine)
    assert typing["recipient"] == [bob.aci] and "stop" not in typing
    await matrix_user.nio.room_read_markers(portal, first.event_id, first.event_id)
    receipt = await signal_daemon.wait_for_request("sendReceipt", lambda p: p.get("account") == mine)
    assert receipt == {"account": mine, "recipient": bob.aci, "targetTimestamp": [ts], "type": "read"}

    # Signal -> Matrix: Bob reads the message we sent, then types.
    watch = EphemeralWatch(matrix_user, portal)
    await matrix_user.send_text(portal, "did you see this?")
    await signal_daemon.wait_for_request("send", lambda p: p.get("account") == mine and p.get("message") == "did you see this?")
    sent_ts = signal_daemon.last_timestamp
    mine_event = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "did you see this?")
    signal_daemon.deliver(linked.account, env_.receipt(bob, signal_daemon.timestamp(), [sent_ts]))
    signal_daemon.deliver(linked.account, env_.typing(bob, signal_daemon.timestamp(), started=True))
    ghost = ghost_of(signal_bridge, bob.aci)
    try:
        await watch.wait(lambda e: isinstance(e, TypingNoticeEvent) and ghost in e.users)
        await watch.wait(
            lambda e: isinstance(e, ReceiptEvent)
            and any(r.user_id == ghost and r.event_id == mine_event.event_id for r in e.receipts)
        )
    finally:
        watch.close()


class EphemeralWatch:
    """Collects the ephemeral events (typing, receipts) syncs bring for one room."""

    def __init__(self, client: TestClient, room_id: str) -> None:
        self.client, self.room_id = client, room_id
        self.seen: list[object] = []
        client.nio.add_response_callback(self._on_sync, SyncResponse)  # type: ignore[arg-type]

    async def _on_sync(self, response: SyncResponse) -> None:
        room = response.rooms.join.get(self.room_id)
        self.seen.extend(room.ephemeral if room else [])

    async def wait(self, check, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not any(check(e) for e in self.seen):
                await asyncio.sleep(0.1)

    def close(self) -> None:
        self.client.nio.response_callbacks = [
            c for c in self.client.nio.response_callbacks if c.func != self._on_sync
        ]
