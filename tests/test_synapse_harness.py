"""The test harness itself: a real Synapse and nio users that talk through it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from nio import Event, RoomMessageText

from bridge.devtools.synapse import LocalSynapse
from tests.support.matrix_client import make_client

pytestmark = pytest.mark.synapse


def _text(body: str) -> Callable[[Event], bool]:
    """Predicate: a decrypted/plain text message with this body."""
    return lambda e: isinstance(e, RoomMessageText) and e.body == body


def _relation(event: Event) -> dict:
    return dict(event.source.get("content", {}).get("m.relates_to", {}))


async def _raw_event(synapse: LocalSynapse, token: str, room_id: str, event_id: str) -> dict:
    url = f"{synapse.url}/_matrix/client/v3/rooms/{room_id}/event/{event_id}"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.get(url) as resp:
            assert resp.status == 200
            return dict(await resp.json())


async def test_synapse_starts_and_answers_versions(synapse: LocalSynapse) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{synapse.url}/_matrix/client/versions") as resp:
            assert resp.status == 200
            assert "versions" in await resp.json()


async def test_two_users_exchange_an_unencrypted_message(
    synapse: LocalSynapse, tmp_path: Path
) -> None:
    alice = await make_client(synapse, "plain_alice", tmp_path / "alice")
    bob = await make_client(synapse, "plain_bob", tmp_path / "bob")
    try:
        room_id = await alice.create_room(invite=[bob.user_id], name="plain")
        assert await bob.wait_for_invite() == room_id
        await bob.join(room_id)
        html = "<b>hello</b> bob"
        event_id = await alice.send_text(room_id, "hello bob", formatted_body=html)
        got = await bob.wait_for_event(room_id, _text("hello bob"))
        assert got.event_id == event_id
        assert got.sender == alice.user_id
        assert isinstance(got, RoomMessageText) and got.formatted_body == html
    finally:
        await alice.close()
        await bob.close()


async def test_receiver_decrypts_a_message_in_an_encrypted_room(
    synapse: LocalSynapse, tmp_path: Path
) -> None:
    alice = await make_client(synapse, "e2e_alice", tmp_path / "alice")
    bob = await make_client(synapse, "e2e_bob", tmp_path / "bob")
    try:
        room_id = await alice.create_room(
            invite=[bob.user_id], encrypted=True, is_direct=True
        )
        await bob.join(await bob.wait_for_invite())
        event_id = await alice.send_text(room_id, "secret hello")
        got = await bob.wait_for_event(room_id, _text("secret hello"))
        assert got.event_id == event_id
        assert got.decrypted
        # ...and the server only ever saw ciphertext.
        raw = await _raw_event(synapse, bob.nio.access_token, room_id, event_id)
        assert raw["type"] == "m.room.encrypted"
        assert "secret hello" not in str(raw)
        reply_id = await bob.send_text(room_id, "secret reply", reply_to=event_id)
        reply = await alice.wait_for_event(room_id, _text("secret reply"))
        assert reply.event_id == reply_id
    finally:
        await alice.close()
        await bob.close()


async def test_media_reactions_and_redactions_round_trip(
    synapse: LocalSynapse, tmp_path: Path
) -> None:
    alice = await make_client(synapse, "media_alice", tmp_path / "alice", encryption=False)
    try:
        room_id = await alice.create_room(name="media")
        mxc = await alice.upload(b"\x89PNG fake", "image/png", "a.png")
        assert await alice.download(mxc) == b"\x89PNG fake"
        event_id = await alice.send_text(room_id, "react to me")
        await alice.react(room_id, event_id, "👍")
        await alice.wait_for_event(room_id, lambda e: _relation(e).get("key") == "👍")
        redaction_id = await alice.redact(room_id, event_id)
        await alice.wait_for_event(room_id, lambda e: e.event_id == redaction_id)
    finally:
        await alice.close()


async def test_users_survive_a_restart_and_clients_keep_syncing(
    synapse: LocalSynapse, tmp_path: Path
) -> None:
    user_id, _ = await synapse.register_user("survivor")
    client = await make_client(synapse, "survivor", tmp_path / "survivor")
    try:
        room_id = await client.create_room(name="before restart")
        await synapse.restart()
        assert (await synapse.login("survivor"))[0] == user_id
        await client.send_text(room_id, "after restart")
        await client.wait_for_event(room_id, _text("after restart"))
    finally:
        await client.close()
