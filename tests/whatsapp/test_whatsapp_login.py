"""Linking WhatsApp through the bot: QR codes, pairing codes, cancel, logout, phone logout."""

from __future__ import annotations

import os
import stat

import pytest
from neonize.proto import Neonize_pb2 as neo

from bridge.core.connector import LoginState
from bridge.networks.whatsapp.neonize_api import LoggedOutEv
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import bot_says, open_management_room
from tests.support.matrix_client import TestClient
from tests.whatsapp.fake_neonize import FakeWhatsApp
from tests.whatsapp.flows import link_account, pairing_client, until

pytestmark = pytest.mark.synapse


async def test_qr_login_shows_each_new_code_and_completes_when_the_phone_scans(
    whatsapp_bridge: BridgeUnderTest, fake_whatsapp: FakeWhatsApp, matrix_user: TestClient
) -> None:
    env, world = whatsapp_bridge, fake_whatsapp
    account = world.account("4915100000001", "Alma")
    env.allow(matrix_user.user_id, "user")
    room = await open_management_room(matrix_user, env)
    known = set(world.clients)
    await matrix_user.send_text(room, "login whatsapp")
    await bot_says(matrix_user, room, env, "scan this QR code")
    client = await until(lambda: pairing_client(world, known), what="the pairing client")

    def qr_images() -> list:
        return [e for e in matrix_user.events(room)
                if e.source.get("sender") == env.bot_mxid and e.source["content"].get("msgtype") == "m.image"]  # fmt: skip

    await until(lambda: len(qr_images()) == 1, what="the first QR image")
    client.show_qr("2@rotated-code")  # WhatsApp hands out a new code every ~20 s
    await bot_says(matrix_user, room, env, "replaced the QR code")
    await until(lambda: len(qr_images()) == 2, what="the refreshed QR image")

    client.complete_pairing(account)
    text = await bot_says(matrix_user, room, env, "Logged in to WhatsApp")
    assert "Alma" in text and "4915" not in text
    login = env.bridge.ctx.logins.of_user(matrix_user.user_id, "whatsapp")[0]
    assert login.login_id == f"lid.{account.lid}"
    await until(lambda: login.record.state == LoginState.CONNECTED, what="the connected state")

    # The session is a per-login file, readable by the bridge's user only; the bridge's
    # database holds only its random name.
    session_file = client.name
    assert os.path.exists(session_file)
    assert stat.S_IMODE(os.stat(session_file).st_mode) == 0o600
    assert set(login.record.metadata) <= {"session", "history_chats_done", "reactions"}
    assert account.phone not in repr(login.record)


async def test_pairing_code_login_asks_for_the_number_and_does_not_keep_it(
    whatsapp_bridge: BridgeUnderTest, fake_whatsapp: FakeWhatsApp, matrix_user: TestClient
) -> None:
    env, world = whatsapp_bridge, fake_whatsapp
    account = world.account("4915100000002", "Bert")
    env.allow(matrix_user.user_id, "user")
    room = await open_management_room(matrix_user, env)
    known = set(world.clients)
    await matrix_user.send_text(room, "login whatsapp phone")
    await bot_says(matrix_user, room, env, "phone number of your WhatsApp account")
    await matrix_user.send_text(room, "not a number")
    await bot_says(matrix_user, room, env, "not a phone number")
    await matrix_user.send_text(room, "+49 151 0000 0002")
    await bot_says(matrix_user, room, env, "enter this code: ABCD-EFGH")
    client = await until(lambda: pairing_client(world, known), what="the pairing client")
    assert client.pair_phone == "4915100000002"

    client.complete_pairing(account)
    await bot_says(matrix_user, room, env, "Logged in to WhatsApp as Bert")
    login = env.bridge.ctx.logins.of_user(matrix_user.user_id, "whatsapp")[0]
    stored = await env.bridge.db.logins.all()
    assert all("4915100000002" not in repr(r) for r in stored)
    assert login.login_id.startswith("lid.")


async def test_cancel_discards_the_half_made_session(
    whatsapp_bridge: BridgeUnderTest, fake_whatsapp: FakeWhatsApp, matrix_user: TestClient
) -> None:
    env, world = whatsapp_bridge, fake_whatsapp
    env.allow(matrix_user.user_id, "user")
    room = await open_management_room(matrix_user, env)
    known = set(world.clients)
    await matrix_user.send_text(room, "login whatsapp")
    await bot_says(matrix_user, room, env, "scan this QR code")
    client = await until(lambda: pairing_client(world, known), what="the pairing client")
    await matrix_user.send_text(room, "cancel")
    await bot_says(matrix_user, room, env, "Login cancelled")
    await until(lambda: not os.path.exists(client.name), what="the session file to go")
    assert not client.is_online


async def test_logout_unlinks_the_device_and_deletes_the_session(
    whatsapp_bridge: BridgeUnderTest, fake_whatsapp: FakeWhatsApp, matrix_user: TestClient
) -> None:
    env, world = whatsapp_bridge, fake_whatsapp
    room, client, login = await link_account(matrix_user, env, world, world.account("4915100000003", "Cleo"))
    await matrix_user.send_text(room, "logout whatsapp")
    await bot_says(matrix_user, room, env, "Logged out of whatsapp")
    assert ("logout", None) in client.calls
    assert not os.path.exists(client.name)
    assert env.bridge.ctx.logins.of_user(matrix_user.user_id, "whatsapp") == []


async def test_logout_from_the_phone_marks_the_login_and_tells_the_user(
    whatsapp_bridge: BridgeUnderTest, fake_whatsapp: FakeWhatsApp, matrix_user: TestClient
) -> None:
    env, world = whatsapp_bridge, fake_whatsapp
    room, client, login = await link_account(matrix_user, env, world, world.account("4915100000004", "Dora"))
    await until(lambda: login.record.state == LoginState.CONNECTED, what="the connected state")
    client.emit(LoggedOutEv(OnConnect=False, Reason=neo.ConnectFailureReason.LOGGED_OUT))
    text = await bot_says(matrix_user, room, env, "was logged out")
    assert "unlinked on the phone" in text
    assert login.record.state == LoginState.BAD_CREDENTIALS
    await until(lambda: not client.is_online, what="the client to stop")
    stored = [r for r in await env.bridge.db.logins.all() if r.login_id == login.login_id]
    assert stored[0].state == LoginState.BAD_CREDENTIALS
