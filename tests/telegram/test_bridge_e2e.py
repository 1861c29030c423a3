"""Telegram through the whole bridge: real core, real Synapse, real Telethon, fake Telegram."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bridge.config import load_config
from bridge.core.bridge import Bridge
from bridge.networks.telegram.client import build_client
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import body_of, bot_says, open_management_room, sent_by, wait_for_new
from tests.support.matrix_client import TestClient
from tests.telegram.fake.handlers import FakeTelegram
from tests.telegram.fake.handshake import ServerRsaKey
from tests.telegram.fake.harness import client_factory
from telethon.tl import types as tl

pytestmark = pytest.mark.synapse


async def start_bridge(env: BridgeUnderTest, fake: FakeTelegram | None) -> Bridge:
    """Start the bridge as BridgeUnderTest does, with Telegram pointed at the fake, or
    (``fake`` None) with the production client and whatever server config.yaml names."""
    config = load_config(env.config_path)
    config.bridge.permissions.update(env.permissions)
    env.bridge = Bridge(config)
    env.bridge.connectors["telegram"].client_factory = (
        client_factory(fake) if fake is not None else functools.partial(build_client, retry_delay=0.05))
    await env.bridge.start()
    return env.bridge


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def telegram_fake() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def telegram_bridge(synapse, bridge_envs, telegram_fake) -> AsyncIterator[BridgeUnderTest]:
    env = bridge_envs["telegram"]
    await start_bridge(env, telegram_fake)
    try:
        yield env
    finally:
        await env.stop()


async def until(check, timeout: float = 15.0):
    async with asyncio.timeout(timeout):
        while not (result := check()):
            await asyncio.sleep(0.05)
        return result


async def log_in(client: TestClient, env: BridgeUnderTest, fake: FakeTelegram, phone: str) -> str:
    env.allow(client.user_id, "user")
    room = await open_management_room(client, env)
    await client.send_text(room, "login telegram")
    await bot_says(client, room, env, "phone number")
    await client.send_text(room, phone)
    await bot_says(client, room, env, "login code")
    await client.send_text(room, "99999" if fake.login_code(phone) != "99999" else "88888")
    await bot_says(client, room, env, "That code is wrong")
    await client.send_text(room, fake.login_code(phone))
    await bot_says(client, room, env, "Logged in to Telegram")
    return room


def texts_in_box(account) -> list[str]:
    return [m.message for m in account.box.values() if isinstance(m, tl.Message)]


async def test_login_then_messages_flow_both_ways_despite_a_flood_wait(
    telegram_bridge: BridgeUnderTest, telegram_fake: FakeTelegram, matrix_user: TestClient
) -> None:
    fake = telegram_fake
    alice = fake.add_account("Alice", phone="+4915111111111")
    bob = fake.add_account("Bob", username=unique("bob").replace("-", "_"), phone="+4915122222222")
    await log_in(matrix_user, telegram_bridge, fake, "+4915111111111")

    text = "Hello 😀 bold"
    await fake.send(bob, alice, text, entities=[tl.MessageEntityBold(offset=9, length=4)])
    portal = await matrix_user.wait_for_invite()
    await matrix_user.join(portal)
    event = await matrix_user.wait_for_event(portal, lambda e: body_of(e) == text)
    assert event.source["content"]["formatted_body"] == "Hello 😀 <strong>bold</strong>"
    ghost = event.source["sender"]
    assert ghost == f"@hubtelegram_telegram_{bob.id}:localhost"
    assert "4915" not in ghost
    assert matrix_user.nio.rooms[portal].user_name(ghost) == "Bob (Telegram)"

    # Telegram asks the bridge to wait once; the message waits in the queue and arrives.
    fake.flood_once("SendMessageRequest", 1)
    await matrix_user.send_text(portal, "hi bob", formatted_body="hi <em>bob</em>", reply_to=event.event_id)
    await until(lambda: "hi bob" in texts_in_box(bob))
    sent = next(m for m in bob.box.values() if isinstance(m, tl.Message) and m.message == "hi bob")
    assert sent.entities == [tl.MessageEntityItalic(offset=3, length=3)]
    assert sent.reply_to is not None
    assert bob.box[sent.reply_to.reply_to_msg_id].message == text
    assert "SendMessageRequest" in fake.requests
    assert texts_in_box(bob).count("hi bob") == 1


async def test_messages_sent_while_the_bridge_is_down_arrive_exactly_once(
    telegram_bridge: BridgeUnderTest, telegram_fake: FakeTelegram, matrix_user: TestClient
) -> None:
    fake = telegram_fake
    alice = fake.add_account("Alice", phone="+4915133333333")
    carol = fake.add_account("Carol", phone="+4915144444444")
    await log_in(matrix_user, telegram_bridge, fake, "+4915133333333")
    await fake.send(carol, alice, "before the restart")
    portal = await matrix_user.wait_for_invite()
    await matrix_user.join(portal)
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "before the restart")

    await telegram_bridge.stop()
    fake.requests.clear()
    for n in range(3):
        await fake.send(carol, alice, f"while down {n}")
    await start_bridge(telegram_bridge, fake)

    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "while down 2")
    assert "GetDifferenceRequest" in fake.requests  # fetched by Telegram's difference mechanism
    await fake.send(carol, alice, "after the restart")
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "after the restart")
    await asyncio.sleep(1)  # let any duplicate show up
    bodies = [body_of(e) for e in matrix_user.events(portal) if e.source.get("type") == "m.room.message"]
    for expected in ["before the restart", "while down 0", "while down 1", "while down 2", "after the restart"]:
        assert bodies.count(expected) == 1, bodies


async def reply_to(client: TestClient, room: str, env: BridgeUnderTest, text: str, fragment: str) -> str:
    """Send ``text`` and wait for the bot's next message containing ``fragment``."""
    before = len(client.events(room))
    await client.send_text(room, text)
    event = await wait_for_new(client, room, lambda e: sent_by(env.bot_mxid)(e) and fragment in body_of(e), before)
    return body_of(event)


async def test_a_configured_server_is_used_and_a_wrong_key_is_explained_in_the_management_room(
    telegram_bridge: BridgeUnderTest, telegram_fake: FakeTelegram, matrix_user: TestClient,
    telethon_known_keys: dict, caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:
    """config.yaml names the server and its key file; a wrong key fails the login with an
    explanation, the right one signs a new number up and messages flow."""
    env, fake = telegram_bridge, telegram_fake
    key, wrong = ServerRsaKey.generate(), ServerRsaKey.generate()
    fake.server.rsa_key, fake.open_registration = key, True
    (tmp_path / "wrong.pem").write_text(wrong.public_pem(), encoding="ascii")
    (tmp_path / "server.pem").write_text(key.public_pem(pkcs1=False), encoding="ascii")
    plain_networks = {name: dict(section) for name, section in env.networks.items()}
    server = {"dc_id": 2, "address": "127.0.0.1", "port": fake.port}
    caplog.set_level(logging.INFO, logger="bridge.networks.telegram")
    env.allow(matrix_user.user_id, "user")
    phone = "+9996637777"

    async def restart_with(section: dict) -> None:
        await env.stop()
        env.networks["telegram"]["server"] = section
        env.write_config()
        await start_bridge(env, None)

    try:
        await restart_with({**server, "public_key": str(tmp_path / "wrong.pem")})
        assert any(f"using the Telegram server at 127.0.0.1:{fake.port}" in m for m in caplog.messages)
        room = await open_management_room(matrix_user, env)
        await reply_to(matrix_user, room, env, "login telegram", "phone number")
        failure = await reply_to(matrix_user, room, env, phone, "key exchange")
        assert "does not use the configured public key" in failure
        assert any("does not use the configured public key" in m for m in caplog.messages)
        assert fake.server.key_exchanges == []

        await restart_with({**server, "public_key": str(tmp_path / "server.pem"), "allow_sign_up": True})
        room = await open_management_room(matrix_user, env)
        await reply_to(matrix_user, room, env, "login telegram", "phone number")
        await reply_to(matrix_user, room, env, phone, "login code")
        await reply_to(matrix_user, room, env, fake.login_code(phone), "first name")
        await reply_to(matrix_user, room, env, "Nova", "last name")
        await reply_to(matrix_user, room, env, "Tester", "Logged in to Telegram")
        assert fake.server.key_exchanges == [key.fingerprint]
        [new_id] = fake.signed_up
        friend = fake.add_account("Friend", phone="+9996638888")
        await fake.send(friend, fake.accounts[new_id], "welcome to the test server")
        portal = await matrix_user.wait_for_invite()
        await matrix_user.join(portal)
        await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "welcome to the test server")
    finally:
        await env.stop()
        env.networks.clear()
        env.networks.update(plain_networks)
        env.write_config()
        fake.open_registration = False
        await start_bridge(env, fake)


async def test_matrix_room_name_topic_avatar_and_ghost_changes_reach_the_telegram_group_unless_refused(
    telegram_bridge: BridgeUnderTest, telegram_fake: FakeTelegram, matrix_user: TestClient
) -> None:
    fake = telegram_fake
    alice = fake.add_account("Alice", phone="+4915155555555")
    bob = fake.add_account("Bob", phone="+4915166666666")
    carol = fake.add_account("Carol", phone="+4915177777777")
    group = fake.add_group("Garden", [alice, bob])
    await log_in(matrix_user, telegram_bridge, fake, "+4915155555555")
    await fake.send(carol, alice, "hi alice")  # Alice's account (and Matrix) now know Carol
    dm = await matrix_user.wait_for_invite()
    await matrix_user.join(dm)
    await matrix_user.wait_for_event(dm, lambda e: body_of(e) == "hi alice")
    await fake.send(bob, group, "roses are up")
    portal = await matrix_user.wait_for_invite()
    await matrix_user.join(portal)
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "roses are up")

    def ghost(account) -> str:
        return f"@hubtelegram_telegram_{account.id}:localhost"

    await matrix_user.nio.room_put_state(portal, "m.room.name", {"name": "Rose garden"})
    await until(lambda: group.title == "Rose garden")
    await matrix_user.nio.room_put_state(portal, "m.room.topic", {"topic": "Weeding on Saturdays"})
    await until(lambda: group.about == "Weeding on Saturdays")
    avatar = b"\x89PNG roses"
    mxc = await matrix_user.upload(avatar, "image/png", "roses.png")
    await matrix_user.nio.room_put_state(portal, "m.room.avatar", {"url": mxc, "info": {"mimetype": "image/png"}})
    await until(lambda: group.photo_id is not None and fake.files[group.photo_id] == avatar)
    await matrix_user.nio.room_invite(portal, ghost(carol))
    await until(lambda: carol.id in group.members)
    await matrix_user.nio.room_kick(portal, ghost(bob))
    await until(lambda: group.members == [alice.id, carol.id])

    # Only Carol may change the group now: Alice's rename stays in Matrix, with the reason.
    group.admins = {carol.id}
    await matrix_user.nio.room_put_state(portal, "m.room.name", {"name": "Alice's garden"})
    notice = await matrix_user.wait_for_event(
        portal, lambda e: sent_by(telegram_bridge.bot_mxid)(e) and "not delivered" in body_of(e))
    assert "not an admin" in body_of(notice)
    assert group.title == "Rose garden"
    # The bridge's own mirror of the rename is not sent back to Telegram as a second change.
    assert fake.requests.count("EditChatTitleRequest") == 2
