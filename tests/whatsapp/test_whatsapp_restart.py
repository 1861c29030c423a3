"""Across a bridge restart nothing is lost or doubled; history sync back-fills once."""

from __future__ import annotations

import time

import pytest
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waHistorySync import WAWebProtobufsHistorySync_pb2 as hist
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo

from bridge.core.connector import LoginState
from bridge.networks.whatsapp.neonize_api import HistorySyncEv
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import body_of
from tests.support.matrix_client import TestClient
from tests.whatsapp.fake_neonize import FakeWhatsApp
from tests.whatsapp.flows import link_account, message_event, source, text, until

pytestmark = pytest.mark.synapse


async def test_restart_restores_the_login_and_loses_or_doubles_nothing(
    whatsapp_bridge: BridgeUnderTest, fake_whatsapp: FakeWhatsApp, matrix_user: TestClient
) -> None:
    env, world = whatsapp_bridge, fake_whatsapp
    me = world.account("4915111130001", "Olga")
    pia = world.account("4915111130002", "Pia")
    _, client, login = await link_account(matrix_user, env, world, me)
    await client.wait_connected()
    client.emit(message_event(source(pia.lid_jid, pia.lid_jid), text("before the restart"), msg_id="3EB0E1"))
    portal = await matrix_user.wait_for_invite()
    await matrix_user.join(portal)
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "before the restart")

    await env.stop()
    assert not client.is_online
    # While the bridge is down WhatsApp keeps messages for the device; one is delivered
    # again after the restart (e.g. its acknowledgement was lost).
    client.emit(message_event(source(pia.lid_jid, pia.lid_jid), text("while you were away"), msg_id="3EB0E2"))
    client.emit(message_event(source(pia.lid_jid, pia.lid_jid), text("before the restart"), msg_id="3EB0E1"))
    await env.start()
    await client.wait_connected()
    restored = env.bridge.ctx.logins.of_user(matrix_user.user_id, "whatsapp")[0]
    await until(lambda: restored.record.state == LoginState.CONNECTED, what="the restored login")

    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "while you were away")
    client.emit(message_event(source(pia.lid_jid, pia.lid_jid), text("after the restart"), msg_id="3EB0E3"))
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "after the restart")
    bodies = [body_of(e) for e in matrix_user.events(portal)]
    assert bodies.count("before the restart") == 1
    assert bodies.count("while you were away") == 1


async def test_connection_failures_are_retried_with_backoff(
    whatsapp_bridge: BridgeUnderTest, fake_whatsapp: FakeWhatsApp, matrix_user: TestClient
) -> None:
    env, world = whatsapp_bridge, fake_whatsapp
    _, client, login = await link_account(matrix_user, env, world, world.account("4915111130003", "Quin"))
    await client.wait_connected()
    login._delay = 0.05  # the first pause; it doubles after each failure
    client.connect_failures = 2
    states: list[LoginState] = []
    original = env.bridge.set_login_state

    async def record(target, state, error=None):
        if target is login:
            states.append(state)
        await original(target, state, error)

    env.bridge.set_login_state = record  # type: ignore[method-assign]
    try:
        await client.stop()  # the connection drops for good: the client ends
        await until(lambda: client.is_online and states[-1:] == [LoginState.CONNECTED], what="the reconnect")
    finally:
        del env.bridge.set_login_state
    assert states.count(LoginState.TRANSIENT_ERROR) >= 3
    assert [c for c, _ in client.calls].count("connect") >= 3


async def test_history_sync_on_first_login_backfills_recent_chats(
    whatsapp_bridge: BridgeUnderTest, fake_whatsapp: FakeWhatsApp, matrix_user: TestClient
) -> None:
    env, world = whatsapp_bridge, fake_whatsapp
    me = world.account("4915111130004", "Rita")
    sam = world.account("4915111130005", "Sam")
    _, client, login = await link_account(matrix_user, env, world, me)
    await client.wait_connected()
    now = int(time.time())

    def web(i: int, body: str, age: int) -> hist.HistorySyncMsg:
        info = WebMessageInfo(
            key=MessageKey(remoteJID=f"{sam.lid}@lid", fromMe=i % 2 == 0, ID=f"3EB0F{i}"),
            message=text(body), messageTimestamp=now - age, pushName="Sam",
        )  # fmt: skip
        return hist.HistorySyncMsg(message=info, msgOrderID=i)

    # The config allows 3 messages per chat, none older than 72 hours.
    messages = [web(1, "too old", 100 * 3600), web(2, "h-two", 400), web(3, "h-three", 300),
                web(4, "h-four", 200), web(5, "h-five", 100)]  # fmt: skip
    data = hist.HistorySync(
        syncType=hist.HistorySync.INITIAL_BOOTSTRAP,
        conversations=[hist.Conversation(ID=f"{sam.lid}@lid", messages=messages[::-1], conversationTimestamp=now)],
        pushnames=[hist.Pushname(ID=f"{sam.lid}@lid", pushname="Sam")],
    )
    client.emit(HistorySyncEv(Data=data))
    portal = await matrix_user.wait_for_invite()
    await matrix_user.join(portal)
    await matrix_user.wait_for_event(portal, lambda e: body_of(e) == "h-five")
    bodies = [body_of(e) for e in matrix_user.events(portal) if e.source.get("type") == "m.room.message"]
    assert bodies == ["h-three", "h-four", "h-five"]
    senders = {e.source["sender"] for e in matrix_user.events(portal) if body_of(e) in ("h-three", "h-four")}
    assert senders == {f"@hubwhatsapp_whatsapp_lid.{sam.lid}:localhost", f"@hubwhatsapp_whatsapp_lid.{me.lid}:localhost"}
    assert login.record.metadata["history_chats_done"] == 1
