"""Hub rooms: one Matrix room linking chats on three networks, privately and with consent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from bridge.devtools.processes import ServiceProcess
from bridge.devtools.synapse import LocalSynapse
from bridge.networks.loopback.client import LoopbackClient
from tests.conftest import unique
from tests.support.bridge_env import BridgeUnderTest
from tests.support.flows import (
    LoopbackAccount,
    body_of,
    log_in_to_loopback,
    loopback_user,
    open_management_room,
    sent_by,
    wait_for_new,
    wait_for_remote,
)
from tests.support.matrix_client import TestClient, make_client

pytestmark = pytest.mark.synapse

NETWORKS = ("loopback", "lbtwo", "lbthree")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@dataclass
class Side:
    """One network of the hub: its admin client, the linker's account, a person, the chat."""

    network: str
    admin: LoopbackClient
    linker: LoopbackAccount
    person: LoopbackAccount
    phone: str
    username: str
    chat_id: str


@dataclass
class Hub:
    env: BridgeUnderTest
    room_id: str
    linker: TestClient
    guest: TestClient
    sides: dict[str, Side]

    def messages(self, network: str):
        side = self.sides[network]
        return side.admin.admin_get_messages(side.chat_id)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hub_bridge(synapse: LocalSynapse, bridge_envs) -> AsyncIterator[BridgeUnderTest]:
    env = bridge_envs["hub"]
    env.permissions["localhost"] = "relay"
    await env.start()
    try:
        yield env
    finally:
        await env.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hub(
    hub_bridge: BridgeUnderTest,
    synapse: LocalSynapse,
    loopback_services: list[ServiceProcess],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Hub]:
    store = tmp_path_factory.mktemp("hub-clients")
    linker = await make_client(synapse, unique("linker"), store / "linker", encryption=False)
    guest = await make_client(synapse, unique("guest"), store / "guest", encryption=False)
    admins = [LoopbackClient(s.url) for s in loopback_services]
    try:
        sides: dict[str, Side] = {}
        management = await open_management_room(linker, hub_bridge) if hub_bridge.allow(
            linker.user_id, "user") is None else None
        for n, (network, admin) in enumerate(zip(NETWORKS, admins)):
            me = await loopback_user(admin, unique(f"linker{n}"), "Linker", phone=f"+4917000000{n}0")
            phone, username = f"+4915100000{n}{n}", unique(f"handle{n}")
            person = await loopback_user(
                admin, unique(f"person{n}"), f"Person {n}", phone=phone, username=username, avatar=PNG,
            )
            await log_in_to_loopback(linker, hub_bridge, me, network=network, management_room=management)
            chat = (await admin.admin_create_chat(f"Chat {n}", [me.user_id, person.user_id]))["id"]
            sides[network] = Side(network, admin, me, person, phone, username, chat)
        room = await linker.create_room(invite=[hub_bridge.bot_mxid, guest.user_id], name="Hub")
        await guest.join(room)
        await linker.wait_for_event(
            room, lambda e: e.source.get("type") == "m.room.member"
            and e.source.get("state_key") == hub_bridge.bot_mxid
            and e.source["content"].get("membership") == "join",
        )
        for network, side in sides.items():
            before = len(linker.events(room))
            await linker.send_text(room, f"!bridge link {network} {side.chat_id}")
            await wait_for_new(
                linker, room, lambda e: sent_by(hub_bridge.bot_mxid)(e) and "Linked" in body_of(e), before
            )
        yield Hub(hub_bridge, room, linker, guest, sides)
    finally:
        await linker.close()
        await guest.close()
        for admin in admins:
            await admin.close()


async def settle() -> None:
    await asyncio.sleep(1.5)


def texts(history: list[dict]) -> list[str]:
    return [m["text"] for m in history if not m["deleted"]]


async def test_a_message_from_one_chat_reaches_every_other_chat_exactly_once(hub: Hub) -> None:
    a = hub.sides["loopback"]
    await a.person.api.send_message(a.chat_id, "hello from the first network")
    await hub.linker.wait_for_event(hub.room_id, lambda e: body_of(e) == "hello from the first network")
    for network in ("lbtwo", "lbthree"):
        await wait_for_remote(
            hub.sides[network].admin, hub.sides[network].chat_id,
            lambda m: m["text"] == "Person 0 (Loopback): hello from the first network",
        )
    await settle()
    for network in NETWORKS:
        history = texts(await hub.messages(network))
        assert sum("hello from the first network" in t for t in history) == 1, (network, history)


async def test_a_matrix_user_without_a_login_is_relayed_by_display_name(hub: Hub) -> None:
    await hub.guest.send_text(hub.room_id, "hi from Matrix")
    for network in NETWORKS:
        sent = await wait_for_remote(
            hub.sides[network].admin, hub.sides[network].chat_id,
            lambda m: m["text"].endswith(": hi from Matrix"),
        )
        assert sent["sender"] == hub.sides[network].linker.user_id
        assert hub.guest.user_id not in sent["text"], "a Matrix user id must not cross networks"
        assert "(Matrix)" in sent["text"]


async def test_replies_edits_and_deletions_follow_to_the_other_chats(hub: Hub) -> None:
    a, b, c = (hub.sides[n] for n in NETWORKS)
    original = await a.person.api.send_message(a.chat_id, "version one")
    copy_b = await wait_for_remote(b.admin, b.chat_id, lambda m: m["text"].endswith("version one"))
    copy_c = await wait_for_remote(c.admin, c.chat_id, lambda m: m["text"].endswith("version one"))

    # B answers the relayed copy in its own chat; A's chat sees a reply to the original.
    await b.person.api.send_message(b.chat_id, "an answer", reply_to=copy_b["id"])
    answer_a = await wait_for_remote(a.admin, a.chat_id, lambda m: m["text"].endswith("an answer"))
    assert answer_a["reply_to"] == original["id"]
    answer_c = await wait_for_remote(c.admin, c.chat_id, lambda m: m["text"].endswith("an answer"))
    assert answer_c["reply_to"] == copy_c["id"]

    await a.person.api.edit_message(a.chat_id, original["id"], "version two")
    for side, copy in ((b, copy_b), (c, copy_c)):
        await wait_for_remote(
            side.admin, side.chat_id, lambda m, i=copy["id"]: m["id"] == i and m["text"].endswith("version two")
        )

    await a.person.api.delete_message(a.chat_id, original["id"])
    for side, copy in ((b, copy_b), (c, copy_c)):
        await wait_for_remote(side.admin, side.chat_id, lambda m, i=copy["id"]: m["id"] == i and m["deleted"])


async def test_a_relayed_reaction_arrives_as_text_where_it_would_look_like_the_linkers(hub: Hub) -> None:
    a, b = hub.sides["loopback"], hub.sides["lbtwo"]
    original = await a.person.api.send_message(a.chat_id, "react to me")
    copy_b = await wait_for_remote(b.admin, b.chat_id, lambda m: m["text"].endswith("react to me"))
    await b.person.api.add_reaction(b.chat_id, copy_b["id"], "👍")
    note = await wait_for_remote(a.admin, a.chat_id, lambda m: m["text"] == "Person 1 (Loopback Two) reacted with 👍")
    assert note["reply_to"] == original["id"]


async def test_nothing_identifying_crosses_networks(hub: Hub) -> None:
    a = hub.sides["loopback"]
    await a.person.api.send_message(a.chat_id, "scan me")
    for network in ("lbtwo", "lbthree"):
        await wait_for_remote(hub.sides[network].admin, hub.sides[network].chat_id,
                              lambda m: m["text"].endswith("scan me"))
    room_dump = json.dumps([e.source for e in hub.linker.events(hub.room_id)])
    for network, side in hub.sides.items():
        for other in NETWORKS:
            if other == network:
                continue
            history = await hub.messages(other)
            dump = json.dumps(history)
            for secret in (side.phone, side.username, side.person.user_id, side.phone.replace("+", "")):
                assert secret not in dump, f"{secret!r} of {network} reached {other}"
            assert all(m["media"] is None for m in history if m["sender"] != hub.sides[other].person.user_id), \
                "no avatar or other media of another network's people may be relayed"
        for secret in (side.phone, side.username):
            assert secret not in room_dump, f"{secret!r} of {network} reached the Matrix room"


async def test_link_and_new_people_get_a_bridge_notice_once(hub: Hub) -> None:
    for network in NETWORKS:
        history = texts(await hub.messages(network))
        assert sum(t.startswith("This chat is now bridged by the server localhost") for t in history) == 1
    c = hub.sides["lbthree"]
    await c.person.api.send_message(c.chat_id, "first words")
    await wait_for_remote(c.admin, c.chat_id, lambda m: m["text"].startswith("Hello Person 2"))
    await c.person.api.send_message(c.chat_id, "second words")
    await wait_for_remote(hub.sides["loopback"].admin, hub.sides["loopback"].chat_id,
                          lambda m: m["text"].endswith("second words"))
    await settle()
    assert sum(t.startswith("Hello Person 2") for t in texts(await hub.messages("lbthree"))) == 1


async def test_opt_out_keeps_messages_in_their_chat_and_opt_in_restores_the_relay(hub: Hub) -> None:
    b, a = hub.sides["lbtwo"], hub.sides["loopback"]
    await b.person.api.send_message(b.chat_id, "!bridge optout")
    await wait_for_remote(b.admin, b.chat_id, lambda m: m["text"].startswith("Done: your messages stay"))
    await b.person.api.send_message(b.chat_id, "private words")
    await b.person.api.send_message(b.chat_id, "!bridge optin")
    await wait_for_remote(b.admin, b.chat_id, lambda m: m["text"].startswith("Done: your messages are relayed"))
    await b.person.api.send_message(b.chat_id, "public words")
    await wait_for_remote(a.admin, a.chat_id, lambda m: m["text"].endswith("public words"))
    await settle()
    assert not any("private words" in t for t in texts(await hub.messages("loopback")))
    assert not any(body_of(e) == "private words" for e in hub.linker.events(hub.room_id))
    assert not any(t.endswith(": !bridge optout") for t in texts(await hub.messages("loopback")))


async def test_who_lists_people_by_display_name_on_every_network(hub: Hub) -> None:
    before = len(hub.guest.events(hub.room_id))
    await hub.guest.send_text(hub.room_id, "!bridge who")
    answer = body_of(await wait_for_new(
        hub.guest, hub.room_id,
        lambda e: sent_by(hub.env.bot_mxid)(e) and "Who is here" in body_of(e), before,
    ))
    for n in range(3):
        assert f"Person {n}" in answer
    assert "Matrix:" in answer
    for side in hub.sides.values():
        assert side.phone not in answer and side.username not in answer
    b = hub.sides["lbtwo"]
    await b.person.api.send_message(b.chat_id, "!bridge who")
    remote = await wait_for_remote(b.admin, b.chat_id, lambda m: m["text"].startswith("Who is here"))
    assert "Person 0" in remote["text"] and hub.sides["loopback"].phone not in remote["text"]


async def test_create_group_makes_a_group_on_every_network_and_links_them_all(hub: Hub) -> None:
    room = await hub.linker.create_room(invite=[hub.env.bot_mxid], name="Family room")
    await hub.linker.wait_for_event(
        room, lambda e: e.source.get("type") == "m.room.member"
        and e.source.get("state_key") == hub.env.bot_mxid
        and e.source["content"].get("membership") == "join",
    )
    await hub.linker.send_text(room, "!bridge create-group Family")
    answer = body_of(await hub.linker.wait_for_event(
        room, lambda e: sent_by(hub.env.bot_mxid)(e) and "Created 'Family'" in body_of(e)
    ))
    for label in ("Loopback", "Loopback Two", "Loopback Three"):
        assert f"{label}: join with loopback://join/" in answer
    portals = await hub.env.bridge.db.portals.by_room(room)
    assert sorted(p.key.network for p in portals) == sorted(NETWORKS)
    assert all(p.relay for p in portals)
    for portal in portals:
        side = hub.sides[portal.key.network]
        chat = await side.admin.admin_get_chat(portal.key.chat_id)
        assert chat["title"] == "Family" and side.linker.user_id in chat["members"]
    # The new groups relay like any linked chat.
    a = hub.sides["loopback"]
    family_a = next(p.key.chat_id for p in portals if p.key.network == "loopback")
    family_b = next(p.key.chat_id for p in portals if p.key.network == "lbtwo")
    await a.linker.api.send_message(family_a, "dinner at six")
    await wait_for_remote(hub.sides["lbtwo"].admin, family_b, lambda m: m["text"].endswith("dinner at six"))
