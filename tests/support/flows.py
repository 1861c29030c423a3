"""Steps many bridge tests share: a management room, a loopback login, a portal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.networks.loopback.client import LoopbackClient
from tests.support.bridge_env import BridgeUnderTest
from tests.support.matrix_client import TestClient


def body_of(event: Any) -> str:
    return (event.source.get("content") or {}).get("body", "")


def sent_by(sender: str):
    return lambda e: e.source.get("sender") == sender


async def bot_says(client: TestClient, room_id: str, env: BridgeUnderTest, fragment: str) -> str:
    """Wait for a notice from the bot containing ``fragment``; return its body."""
    event = await client.wait_for_event(
        room_id,
        lambda e: e.source.get("sender") == env.bot_mxid and fragment in body_of(e),
    )
    return body_of(event)


async def open_management_room(client: TestClient, env: BridgeUnderTest) -> str:
    room_id = await client.create_room(invite=[env.bot_mxid], is_direct=True)
    await bot_says(client, room_id, env, "Send 'help'")
    return room_id


@dataclass
class LoopbackAccount:
    user_id: str
    token: str
    api: LoopbackClient


async def loopback_user(
    loopback: LoopbackClient, user_id: str, name: str, **extra: Any
) -> LoopbackAccount:
    made = await loopback.admin_create_user(user_id, name, **extra)
    return LoopbackAccount(user_id, made["token"], loopback.as_user(made["token"]))


async def wait_for_new(client: TestClient, room_id: str, predicate, after: int):
    """Wait for a matching event among those received after the first ``after`` ones."""
    return await client.wait_for_event(
        room_id, lambda e: predicate(e) and client.events(room_id).index(e) >= after
    )


async def log_in_to_loopback(
    client: TestClient,
    env: BridgeUnderTest,
    account: LoopbackAccount,
    *,
    network: str = "loopback",
    management_room: str | None = None,
) -> str:
    """Log ``client`` in to a loopback network as ``account``; return the management room."""
    env.allow(client.user_id, "user")
    room = management_room or await open_management_room(client, env)
    from_bot = sent_by(env.bot_mxid)
    before = len(client.events(room))
    await client.send_text(room, f"login {network}")
    await wait_for_new(client, room, lambda e: from_bot(e) and "Send the token" in body_of(e), before)
    before = len(client.events(room))
    await client.send_text(room, account.token)
    await wait_for_new(client, room, lambda e: from_bot(e) and "Logged in to" in body_of(e), before)
    return room


@dataclass
class PortalSetup:
    """A Matrix user logged in as ``me``, in a loopback chat with ``bob``, portal joined."""

    me: LoopbackAccount
    bob: LoopbackAccount
    chat_id: str
    room_id: str
    management_room: str
    first_event_id: str
    first_message_id: str


async def setup_portal(
    client: TestClient, env: BridgeUnderTest, loopback: LoopbackClient, unique_name
) -> PortalSetup:
    me = await loopback_user(loopback, unique_name("me"), "Me")
    bob = await loopback_user(loopback, unique_name("bob"), "Bob")
    management = await log_in_to_loopback(client, env, me)
    chat = (await loopback.admin_create_chat("Chat", [me.user_id, bob.user_id]))["id"]
    first = await bob.api.send_message(chat, "first")
    room = await client.wait_for_invite()
    await client.join(room)
    event = await client.wait_for_event(room, lambda e: body_of(e) == "first")
    return PortalSetup(me, bob, chat, room, management, event.event_id, first["id"])


async def wait_for_remote(
    loopback: LoopbackClient, chat_id: str, predicate, timeout: float = 20
) -> dict:
    """Poll the loopback chat's history until a message matches ``predicate``."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for message in await loopback.admin_get_messages(chat_id):
            if predicate(message):
                return message
        if asyncio.get_running_loop().time() > deadline:
            history = await loopback.admin_get_messages(chat_id)
            raise AssertionError(f"no matching message in {chat_id}; history: {history}")
        await asyncio.sleep(0.05)
