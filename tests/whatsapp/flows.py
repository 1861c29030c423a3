"""Steps the WhatsApp end-to-end tests share: linking an account, building real events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from neonize.proto import Neonize_pb2 as neo
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa

from bridge.core.connector import NetworkLogin
from bridge.networks.whatsapp.neonize_api import MessageEv
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import bot_says, open_management_room
from tests.support.matrix_client import TestClient
from tests.whatsapp.fake_neonize import Account, FakeNeonizeClient, FakeWhatsApp


async def until(check: Callable[[], Any], timeout: float = 10, what: str = "a condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def pairing_client(world: FakeWhatsApp, known: set[str]) -> FakeNeonizeClient | None:
    for database, client in world.clients.items():
        if database not in known and client.account is None and client.is_online:
            return client
    return None


async def link_account(
    user: TestClient, env: BridgeUnderTest, world: FakeWhatsApp, account: Account
) -> tuple[str, FakeNeonizeClient, NetworkLogin]:
    """Log ``user`` in to WhatsApp as ``account`` by QR code; return the management room,
    the account's fake client and the bridge's login."""
    env.allow(user.user_id, "user")
    room = await open_management_room(user, env)
    known = set(world.clients)
    await user.send_text(room, "login whatsapp")
    await bot_says(user, room, env, "scan this QR code")
    client = await until(lambda: pairing_client(world, known), what="the pairing client")
    client.complete_pairing(account)
    await bot_says(user, room, env, "Logged in to WhatsApp")
    assert env.bridge is not None
    login = await until(lambda: env.bridge.ctx.logins.of_user(user.user_id, "whatsapp"), what="the login")
    return room, client, login[0]


def source(chat: neo.JID, sender: neo.JID, *, alt: neo.JID | None = None, from_me: bool = False) -> neo.MessageSource:
    group = chat.Server == "g.us"
    src = neo.MessageSource(Chat=chat, Sender=sender, IsFromMe=from_me, IsGroup=group)
    if alt is not None:
        src.SenderAlt.CopyFrom(alt)
    return src


def message_event(
    src: neo.MessageSource, message: wa.Message, *, msg_id: str, push_name: str = ""
) -> MessageEv:
    info = neo.MessageInfo(MessageSource=src, ID=msg_id, Pushname=push_name,
                           Timestamp=int(time.time() * 1000))  # fmt: skip
    return MessageEv(Info=info, Message=message)


def text(body: str, mentions: list[str] = (), reply_to: tuple[str, str] | None = None) -> wa.Message:
    if not mentions and reply_to is None:
        return wa.Message(conversation=body)
    context = wa.ContextInfo(mentionedJID=list(mentions))
    if reply_to is not None:
        context.stanzaID, context.participant = reply_to
        context.quotedMessage.CopyFrom(wa.Message(conversation="original"))
    return wa.Message(extendedTextMessage=wa.ExtendedTextMessage(text=body, contextInfo=context))
