"""End-to-bridge encryption against a real Synapse, checked by matrix-nio (vodozemac).

nio shares no crypto code with the bridge (python-olm), so a message that one encrypts and
the other decrypts proves the two interoperate. The "crypto" bridge of tests/conftest.py
allows encryption and creates new portals encrypted.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import pytest_asyncio
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json
from unpaddedbase64 import decode_base64
from nio import RoomMessageText, UploadResponse
from nio.crypto.attachments import decrypt_attachment

from bridge.devtools.postgres import fresh_postgres_database
from bridge.devtools.processes import ServiceProcess
from bridge.devtools.synapse import LocalSynapse
from bridge.matrix.crypto_rooms import NEW_ROOM_ENCRYPTION
from bridge.networks.loopback.client import LoopbackClient, media_payload
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import (
    LoopbackAccount,
    body_of,
    bot_says,
    log_in_to_loopback,
    loopback_user,
    sent_by,
    wait_for_new,
    wait_for_remote,
)
from tests.support.matrix_client import TestClient, make_client
from tests.support.postgres import postgres_server_url

pytestmark = pytest.mark.synapse

T = TypeVar("T")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def crypto_bridge(
    synapse: LocalSynapse, bridge_envs: dict[str, BridgeUnderTest]
) -> AsyncIterator[BridgeUnderTest]:
    """The bridge with encryption allowed (and on for new portals), started once."""
    env = bridge_envs["crypto"]
    await env.start()
    try:
        yield env
    finally:
        await env.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def crypto_pg_bridge(
    synapse: LocalSynapse, bridge_envs: dict[str, BridgeUnderTest]
) -> AsyncIterator[BridgeUnderTest]:
    """The same encrypting bridge with its database, crypto store included, on PostgreSQL."""
    env = bridge_envs["cryptopg"]
    async with fresh_postgres_database(postgres_server_url()) as uri:
        env.db_uri = uri
        env.write_config()
        await env.start()
        try:
            yield env
        finally:
            await env.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def alice(synapse: LocalSynapse, tmp_path: Path) -> AsyncIterator[TestClient]:
    client = await make_client(synapse, unique("alice"), tmp_path / "alice", encryption=True)
    try:
        yield client
    finally:
        await client.close()


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 60) -> T:
    """Poll ``check`` until it returns something other than None.

    The limit is generous: after a bridge restart Synapse may hold transactions back for
    its retry interval, and a loaded 2-core machine slows every step.
    """
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = await check()
                if result is not None:
                    return result
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None
    raise AssertionError(f"timed out waiting for {what}")  # pragma: no cover


async def loopback_gets(account: LoopbackAccount, chat: str, text: str) -> dict[str, Any]:
    """Wait until ``account`` sees a message ``text`` in ``chat``; return it."""

    async def check() -> dict[str, Any] | None:
        return next((m for m in await account.api.get_messages(chat) if m["text"] == text), None)

    return await eventually(check, f"{text!r} in loopback chat {chat}")


def text_is(body: str) -> Callable[[Any], bool]:
    return lambda e: isinstance(e, RoomMessageText) and e.body == body


async def log_in_over_encrypted_dm(
    client: TestClient, env: BridgeUnderTest, account: LoopbackAccount
) -> str:
    """Log in to loopback through an encrypted DM with the bot: commands are decrypted too."""
    env.allow(client.user_id, "user")
    room = await client.create_room(invite=[env.bot_mxid], is_direct=True, encrypted=True)
    await bot_says(client, room, env, "Send 'help'")
    await client.send_text(room, "login loopback")
    await bot_says(client, room, env, "Send the token")
    await client.send_text(room, account.token)
    await bot_says(client, room, env, "Logged in to Loopback")
    return room


async def encrypted_portal(
    client: TestClient, env: BridgeUnderTest, loopback: LoopbackClient, name: str
) -> tuple[str, str, LoopbackAccount, str]:
    """A loopback chat of ``client``'s account with Bob, bridged.

    Returns (chat, portal room, bob, the DM with the bot).
    """
    me = await loopback_user(loopback, unique("me"), "Me")
    bob = await loopback_user(loopback, unique("bob"), "Bob")
    dm = await log_in_over_encrypted_dm(client, env, me)
    chat = (await loopback.admin_create_chat(name, [me.user_id, bob.user_id]))["id"]
    await bob.api.send_message(chat, f"first words in {name}")
    room = await client.wait_for_invite()
    await client.join(room)
    await client.wait_for_event(room, text_is(f"first words in {name}"))
    return chat, room, bob, dm


async def raw_timeline(synapse: LocalSynapse, client: TestClient, room_id: str) -> list[dict]:
    """The room's events as the server stores them (no client-side decryption)."""
    url = f"{synapse.url}/_matrix/client/v3/rooms/{room_id}/messages"
    headers = {"Authorization": f"Bearer {client.nio.access_token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(url, params={"dir": "b", "limit": "200"}) as resp:
            assert resp.status == 200
            return list((await resp.json())["chunk"])


async def sender_device(client: TestClient, event: Any) -> str | None:
    """The sender's device that owns the Megolm session of a decrypted event, if any."""
    client.nio.users_for_key_query.add(event.sender)
    await client.nio.keys_query()
    devices = client.nio.device_store.active_user_devices(event.sender)
    return next((d.id for d in devices if d.curve25519 == event.sender_key), None)


async def sender_device_owns_session(client: TestClient, event: Any) -> bool:
    return await sender_device(client, event) is not None


async def cross_signed_by_its_owner(synapse: LocalSynapse, client: TestClient, user_id: str, device_id: str) -> bool:
    """Check, from the raw key query, that the device is signed by its user's self-signing
    key and that key by the user's master key (signatures verified, not just present)."""
    url = f"{synapse.url}/_matrix/client/v3/keys/query"
    headers = {"Authorization": f"Bearer {client.nio.access_token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(url, json={"device_keys": {user_id: []}}) as resp:
            keys = await resp.json()

    def verify_key(key_object: dict):
        (key_id, public), = key_object["keys"].items()
        return decode_verify_key_bytes(key_id, decode_base64(public))

    master = keys["master_keys"][user_id]
    self_signing = keys["self_signing_keys"][user_id]
    verify_signed_json(self_signing, user_id, verify_key(master))
    verify_signed_json(keys["device_keys"][user_id][device_id], user_id, verify_key(self_signing))
    return True


async def test_encrypted_portal_carries_messages_both_ways_and_the_server_sees_no_plaintext(
    crypto_bridge: BridgeUnderTest, loopback: LoopbackClient, alice: TestClient, synapse: LocalSynapse
) -> None:
    chat, room, bob, dm = await encrypted_portal(alice, crypto_bridge, loopback, "Secret club")
    assert alice.nio.rooms[room].encrypted

    await bob.api.send_message(chat, "loopback to matrix, encrypted")
    got = await alice.wait_for_event(room, text_is("loopback to matrix, encrypted"))
    assert got.decrypted
    assert got.sender.startswith("@hubcrypto_loopback_")
    # The ghost encrypts with its own device, so clients can check who sent it, and the
    # device is cross-signed by the ghost, for clients that want signed devices only.
    device_id = await sender_device(alice, got)
    assert device_id is not None
    assert await cross_signed_by_its_owner(synapse, alice, got.sender, device_id)

    await alice.send_text(room, "matrix to loopback, encrypted", formatted_body="<b>matrix</b> to loopback, encrypted")
    received = await loopback_gets(bob, chat, "matrix to loopback, encrypted")
    assert received["sender"] != bob.user_id

    bridged = {"first words in Secret club", "loopback to matrix, encrypted",
               "matrix to loopback, encrypted"}
    events = await raw_timeline(synapse, alice, room)
    assert not [e for e in events if e["type"] == "m.room.message"]
    assert sum(e["type"] == "m.room.encrypted" for e in events) >= 3
    dump = json.dumps(events)
    assert not [text for text in bridged if text in dump]


async def test_attachments_cross_encrypted_rooms_as_ciphertext_both_ways(
    crypto_bridge: BridgeUnderTest, loopback: LoopbackClient, alice: TestClient
) -> None:
    chat, room, bob, dm = await encrypted_portal(alice, crypto_bridge, loopback, "Photo club")
    picture = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

    await bob.api.send_message(chat, None, media=media_payload("image", "dot.png", "image/png", picture))
    event = await alice.wait_for_event(
        room, lambda e: e.source.get("content", {}).get("msgtype") == "m.image"
    )
    content = event.source["content"]
    assert "url" not in content, "an encrypted room gets the file's key, not a plain url"
    file = content["file"]
    stored = await alice.download(file["url"])
    assert stored != picture and picture[8:64] not in stored
    plain = decrypt_attachment(stored, file["key"]["k"], file["hashes"]["sha256"], file["iv"])
    assert plain == picture

    photo = b"\x89PNG\r\n\x1a\n" + bytes(reversed(range(256))) * 3
    upload, keys = await alice.nio.upload(
        io.BytesIO(photo), content_type="image/png", filename="pixel.png",
        filesize=len(photo), encrypt=True,
    )
    assert isinstance(upload, UploadResponse)
    await alice.send_content(room, {
        "msgtype": "m.image", "body": "pixel.png",
        "file": {**keys, "url": upload.content_uri},
        "info": {"mimetype": "image/png", "size": len(photo)},
    })

    async def sent_media() -> dict | None:
        messages = await bob.api.get_messages(chat)
        return next((m for m in messages if m["media"] and m["media"]["name"] == "pixel.png"), None)

    sent = await eventually(sent_media, "the photo in the loopback chat")
    data, mime = await loopback.admin_get_media(sent["media"]["media_id"])
    assert data == photo and mime == "image/png"


async def test_a_member_who_joins_later_decrypts_what_is_sent_after_the_join(
    crypto_bridge: BridgeUnderTest,
    loopback: LoopbackClient,
    alice: TestClient,
    synapse: LocalSynapse,
    tmp_path: Path,
) -> None:
    chat, room, bob, dm = await encrypted_portal(alice, crypto_bridge, loopback, "Growing club")
    carol = await make_client(synapse, unique("carol"), tmp_path / "carol", encryption=True)
    try:
        await alice.nio.room_invite(room, carol.user_id)
        await carol.join(await carol.wait_for_invite())
        await bob.api.send_message(chat, "welcome, carol")
        got = await carol.wait_for_event(room, text_is("welcome, carol"))
        assert got.decrypted
        await alice.wait_for_event(room, text_is("welcome, carol"))
        # Carol's own messages reach the network too.
        crypto_bridge.allow(carol.user_id, "relay")
        await carol.send_text(room, "thanks from carol")
        await alice.wait_for_event(room, text_is("thanks from carol"))
    finally:
        await carol.close()


async def test_a_new_device_of_a_member_gets_the_next_key(
    crypto_bridge: BridgeUnderTest,
    loopback: LoopbackClient,
    alice: TestClient,
    synapse: LocalSynapse,
    tmp_path: Path,
) -> None:
    chat, room, bob, dm = await encrypted_portal(alice, crypto_bridge, loopback, "Gadget club")
    localpart = alice.user_id[1:].split(":")[0]
    phone = await make_client(synapse, localpart, tmp_path / "alice-phone", encryption=True)
    try:
        store = crypto_bridge.bridge.crypto.bot.crypto_store

        async def bridge_knows_the_phone() -> bool | None:
            devices = await store.get_devices(alice.user_id) or {}
            return True if phone.nio.device_id in devices else None

        # The homeserver tells the bridge of the new device (MSC3202 device lists).
        await eventually(bridge_knows_the_phone, "the bridge to learn of the new device")
        await bob.api.send_message(chat, "hello, new device")
        got = await phone.wait_for_event(room, text_is("hello, new device"))
        assert got.decrypted
    finally:
        await phone.close()


async def test_sessions_rotate_by_the_rooms_encryption_settings(
    crypto_bridge: BridgeUnderTest, loopback: LoopbackClient, alice: TestClient
) -> None:
    chat, room, bob, dm = await encrypted_portal(alice, crypto_bridge, loopback, "Rotating club")
    crypto = crypto_bridge.bridge.crypto
    await crypto_bridge.bridge.matrix.send_state(
        room, "m.room.encryption", {**NEW_ROOM_ENCRYPTION, "rotation_period_msgs": 2}
    )

    async def bridge_sees_the_setting() -> bool | None:
        info = await crypto.rooms.get_encryption_info(room)
        return True if info and info.rotation_period_msgs == 2 else None

    await eventually(bridge_sees_the_setting, "the new rotation setting to reach the bridge")
    # A session keeps the limits it was made with; start the next one now.
    await crypto.bot.crypto_store.remove_outbound_group_session(room)
    for turn in range(5):
        await bob.api.send_message(chat, f"turn {turn}")
    events = [await alice.wait_for_event(room, text_is(f"turn {turn}")) for turn in range(5)]
    sessions = [event.session_id for event in events]
    assert sessions[0] == sessions[1] != sessions[2] == sessions[3] != sessions[4]
    assert all(event.decrypted for event in events)


async def test_after_a_restart_both_directions_keep_working(
    crypto_bridge: BridgeUnderTest, loopback: LoopbackClient, alice: TestClient
) -> None:
    chat, room, bob, dm = await encrypted_portal(alice, crypto_bridge, loopback, "Sturdy club")
    await bob.api.send_message(chat, "before the restart")
    await alice.wait_for_event(room, text_is("before the restart"))
    devices_before = dict(crypto_bridge.bridge.crypto.devices.loaded)

    await crypto_bridge.restart()

    await bob.api.send_message(chat, "after the restart")
    got = await alice.wait_for_event(room, text_is("after the restart"))
    assert got.decrypted and await sender_device_owns_session(alice, got)
    await alice.send_text(room, "matrix after the restart")
    await loopback_gets(bob, chat, "matrix after the restart")
    # The same devices were loaded again, not new ones made.
    after = crypto_bridge.bridge.crypto.devices.loaded
    for mxid, machine in after.items():
        if mxid in devices_before:
            assert machine.client.device_id == devices_before[mxid].client.device_id
    # What was sent before stays readable for the client.
    assert any(text_is("before the restart")(e) for e in alice.events(room))


async def test_an_unencrypted_room_is_refused_when_encryption_is_required(
    crypto_bridge: BridgeUnderTest, loopback: LoopbackClient, alice: TestClient
) -> None:
    settings = crypto_bridge.bridge.config.encryption
    settings.default = False
    try:
        chat, room, bob, dm = await encrypted_portal(alice, crypto_bridge, loopback, "Open club")
        assert not alice.nio.rooms[room].encrypted
        settings.require = True
        await alice.send_text(room, "plaintext from matrix")
        notice = await bot_says(alice, room, crypto_bridge, "only bridges encrypted rooms")
        assert "not bridged" in notice
        await asyncio.sleep(0.5)
        texts = [m["text"] for m in await bob.api.get_messages(chat)]
        assert "plaintext from matrix" not in texts
        # The other way the bot turns encryption on before it bridges anything.
        await bob.api.send_message(chat, "now it is encrypted")
        got = await alice.wait_for_event(room, text_is("now it is encrypted"))
        assert got.decrypted
    finally:
        settings.require = False
        settings.default = True


async def test_a_message_whose_key_comes_late_is_reported_then_bridged_when_it_arrives(
    crypto_bridge: BridgeUnderTest, loopback: LoopbackClient, alice: TestClient
) -> None:
    chat, room, bob, dm = await encrypted_portal(alice, crypto_bridge, loopback, "Slow club")
    await alice.send_text(room, "warming up")  # nio now knows every device in the room
    await loopback_gets(bob, chat, "warming up")

    # Alice's client keeps the next room key from every bridge device, as a client with a
    # flaky connection or a bug would.
    nio = alice.nio
    ours = [
        u for u in nio.rooms[room].users
        if u == crypto_bridge.bot_mxid or u.startswith("@hubcrypto_")
    ]
    bridge_devices = [d for u in ours for d in nio.device_store.active_user_devices(u)]
    assert bridge_devices
    for device in bridge_devices:
        nio.blacklist_device(device)
    nio.olm.outbound_group_sessions.pop(room, None)
    response = await nio.room_send(
        room, "m.room.message", {"msgtype": "m.text", "body": "a late one"},
        ignore_unverified_devices=True,
    )
    late_event = response.event_id
    olm = nio.olm
    session_id = olm.outbound_group_sessions[room].id
    own_key = olm.account.identity_keys["curve25519"]
    inbound = olm.inbound_group_store.get(room, own_key, session_id)

    notice = await alice.wait_for_event(
        room,
        lambda e: e.source.get("sender") == crypto_bridge.bot_mxid
        and "could not decrypt" in body_of(e),
    )
    assert alice.user_id in body_of(notice)
    relates = notice.source["content"].get("m.relates_to", {})
    assert relates.get("m.in_reply_to", {}).get("event_id") == late_event
    status = crypto_bridge.bridge.status()["encryption"]
    assert status["undecryptable"] >= 1
    metrics = crypto_bridge.bridge.ctx.metrics.registry
    assert metrics.get_sample_value("hubbridge_decryption_failures_total", {"reason": "no_key"}) >= 1
    await alice.send_text(dm, "ping")
    await bot_says(alice, dm, crypto_bridge, "could not be decrypted")

    # Now the key reaches the bridge after all (as a forwarded key, exported from the
    # first message on, the way a key request is answered): the message is bridged then.
    bot_devices = [d for d in bridge_devices if d.user_id == crypto_bridge.bot_mxid]
    for device in bot_devices:
        nio.unblacklist_device(device)
        olm_session = olm.session_store.get(device.curve25519)
        assert olm_session is not None, "nio has an Olm session with the bot from before"
        await nio.to_device(olm._encrypt_forwarding_key(room, inbound, olm_session, device))
    await loopback_gets(bob, chat, "a late one")
    await eventually(
        lambda: _none_if(crypto_bridge.bridge.status()["encryption"]["undecryptable"] != 0),
        "the bridge status to clear",
    )


async def _none_if(condition: bool) -> bool | None:
    return None if condition else True


async def test_logs_hold_no_plaintext_and_no_key_material(
    crypto_bridge: BridgeUnderTest,
    loopback: LoopbackClient,
    alice: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(1)  # everything, TRACE included
    chat, room, bob, dm = await encrypted_portal(alice, crypto_bridge, loopback, "Quiet club")
    await bob.api.send_message(chat, "whispered from loopback")
    await alice.wait_for_event(room, text_is("whispered from loopback"))
    await alice.send_text(room, "whispered from matrix")
    await loopback_gets(bob, chat, "whispered from matrix")

    secrets = {
        "pickle key": crypto_bridge.bridge.config.encryption.pickle_key,
        "room key of the client": alice.nio.olm.outbound_group_sessions[room].session_key,
        "a body from Matrix": "whispered from matrix",
        "a body from the network": "whispered from loopback",
    }
    # nio and peewee are the test client's own; everything else ran inside the bridge.
    logged = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if not r.name.startswith(("nio", "peewee"))
    )
    assert "m.room.encrypted" in logged, "the flow should have produced crypto log lines"
    for name, secret in secrets.items():
        assert secret not in logged, f"the {name} appeared in the logs"


async def test_an_encrypted_hub_room_relays_between_networks(
    crypto_bridge: BridgeUnderTest,
    loopback_services: list[ServiceProcess],
    alice: TestClient,
) -> None:
    admins = [LoopbackClient(service.url) for service in loopback_services[:2]]
    try:
        dm: str | None = None
        chats: dict[str, tuple[LoopbackClient, LoopbackAccount, str]] = {}
        for network, admin in zip(("loopback", "lbtwo"), admins):
            me = await loopback_user(admin, unique("linker"), "Linker")
            person = await loopback_user(admin, unique("person"), f"Person on {network}")
            if dm is None:
                dm = await log_in_over_encrypted_dm(alice, crypto_bridge, me)
            else:
                await log_in_to_loopback(alice, crypto_bridge, me, network=network, management_room=dm)
            chat = (await admin.admin_create_chat("Hub chat", [me.user_id, person.user_id]))["id"]
            chats[network] = (admin, person, chat)

        room = await alice.create_room(invite=[crypto_bridge.bot_mxid], name="Encrypted hub", encrypted=True)
        await alice.wait_for_event(
            room, lambda e: e.source.get("type") == "m.room.member"
            and e.source.get("state_key") == crypto_bridge.bot_mxid
            and e.source["content"].get("membership") == "join",
        )
        for network, (_, _, chat) in chats.items():
            before = len(alice.events(room))
            await alice.send_text(room, f"!bridge link {network} {chat}")
            await wait_for_new(
                alice, room, lambda e: sent_by(crypto_bridge.bot_mxid)(e) and "Linked" in body_of(e), before
            )

        # A ghost's encrypted message is decrypted by the other network's portal and relayed.
        first_admin, first_person, first_chat = chats["loopback"]
        second_admin, _, second_chat = chats["lbtwo"]
        await first_person.api.send_message(first_chat, "across the encrypted hub")
        got = await alice.wait_for_event(room, text_is("across the encrypted hub"))
        assert got.decrypted
        await wait_for_remote(second_admin, second_chat, lambda m: "across the encrypted hub" in m["text"])

        await alice.send_text(room, "to both networks")
        for admin, _, chat in chats.values():
            await wait_for_remote(admin, chat, lambda m: "to both networks" in (m["text"] or ""))
    finally:
        for admin in admins:
            await admin.close()


async def test_on_postgresql_an_encrypted_portal_works_both_ways_across_a_restart(
    crypto_pg_bridge: BridgeUnderTest, loopback: LoopbackClient, alice: TestClient
) -> None:
    chat, room, bob, dm = await encrypted_portal(alice, crypto_pg_bridge, loopback, "PG club")
    await alice.send_text(room, "matrix before the restart")
    await loopback_gets(bob, chat, "matrix before the restart")
    await crypto_pg_bridge.restart()
    await bob.api.send_message(chat, "loopback after the restart")
    got = await alice.wait_for_event(room, text_is("loopback after the restart"))
    assert got.decrypted and await sender_device_owns_session(alice, got)
    await alice.send_text(room, "matrix after the restart")
    await loopback_gets(bob, chat, "matrix after the restart")
