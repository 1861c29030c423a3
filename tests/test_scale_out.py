"""Scale-out: two bridge processes, each serving its own network with its own
registration, against one Synapse and one PostgreSQL server, work side by side."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from bench.deploy import SERVER_NAME
from bench.matrix_http import MatrixHTTP, SyncWatcher, bench_body
from bench.scaleout import scale_out
from bridge.networks.loopback.client import LoopbackClient
from tests.support.flows import wait_for_remote
from tests.support.postgres import postgres_server_url

pytestmark = [pytest.mark.synapse, pytest.mark.postgres]

NETWORKS = ["alpha", "beta"]


async def _wait_until_member(matrix: MatrixHTTP, room_id: str, user_id: str) -> None:
    for _ in range(200):
        joined = await matrix.request("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members")
        if user_id in joined.get("joined", {}):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{user_id} never joined {room_id}")


async def _wait_for_notice(matrix: MatrixHTTP, room_id: str, sender: str, text: str) -> None:
    for _ in range(200):
        page = await matrix.request("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/messages",
                                    params={"dir": "b", "limit": "50"})
        if any(e.get("sender") == sender and text in e.get("content", {}).get("body", "")
               for e in page.get("chunk", [])):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no notice {text!r} from {sender} in {room_id}")


async def test_two_bridge_processes_on_one_synapse_and_postgres_bridge_their_chats_and_share_a_hub_room(
    tmp_path: Path,
) -> None:
    server = postgres_server_url()
    user_localpart = "scaleout"
    user_id = f"@{user_localpart}:{SERVER_NAME}"
    # The other process's ghosts are relayed like any Matrix user with `relay`.
    permissions = {user_id: "user", SERVER_NAME: "relay"}
    async with scale_out(tmp_path, server, NETWORKS, permissions) as cluster, \
            aiohttp.ClientSession() as http:
        _, token = await cluster.synapse.register_user(user_localpart, "password")
        matrix = MatrixHTTP(cluster.synapse.url, token, http)
        sync = SyncWatcher(matrix)
        await sync.start()
        chats: dict[str, str] = {}
        friends: dict[str, LoopbackClient] = {}
        admins: dict[str, LoopbackClient] = {}
        for seq, name in enumerate(NETWORKS):
            net = cluster.networks[name]
            admin = admins[name] = LoopbackClient(net.service.url)
            me = await admin.admin_create_user("me", f"Me on {name}")
            friend = await admin.admin_create_user("friend", f"Friend on {name}")
            friends[name] = admin.as_user(friend["token"])
            chats[name] = (await admin.admin_create_chat(f"{name} chat", ["me", "friend"]))["id"]
            await net.deployment.seed_login(user_id, name, "me", me["token"])
        await cluster.start_bridges()
        try:
            # Each network's message arrives through its own bridge, from its own ghost.
            for seq, name in enumerate(NETWORKS):
                await friends[name].send_message(chats[name], bench_body(name, seq))
            await sync.wait_for(lambda: all((n, s) in sync.seen for s, n in enumerate(NETWORKS)),
                                60, "a message from each network")
            rooms = {}
            for seq, name in enumerate(NETWORKS):
                seen = sync.seen[(name, seq)]
                deployment = cluster.networks[name].deployment
                assert seen.sender == deployment.ghost_mxid(name, "friend")
                rooms[name] = seen.room_id
            assert rooms["alpha"] != rooms["beta"]

            # Answers from Matrix reach the right network, sent by the user's own login.
            for seq, name in enumerate(NETWORKS, start=10):
                await matrix.send_message(rooms[name], {"msgtype": "m.text",
                                                        "body": bench_body(name, seq)})
            for seq, name in enumerate(NETWORKS, start=10):
                body = bench_body(name, seq)
                message = await wait_for_remote(admins[name], chats[name],
                                                lambda m, body=body: m["text"] == body)
                assert message["sender"] == "me"
                other = admins[NETWORKS[1 - NETWORKS.index(name)]]
                other_chat = chats[NETWORKS[1 - NETWORKS.index(name)]]
                assert all(m["text"] != body for m in await other.admin_get_messages(other_chat))

            # Hub room across processes: both chats linked into the alpha room, each by
            # its own process; the room itself is the hub.
            hub = rooms["alpha"]
            beta_bot = f"@hubbridge_beta:{SERVER_NAME}"
            await matrix.request("POST", f"/_matrix/client/v3/rooms/{quote(hub)}/invite",
                                 {"user_id": beta_bot})
            await _wait_until_member(matrix, hub, beta_bot)
            for name in NETWORKS:
                await matrix.send_message(hub, {"msgtype": "m.text",
                                                "body": f"!bridge link {name} {chats[name]}"})
            for name in NETWORKS:
                await _wait_for_notice(matrix, hub, f"@hubbridge_{name}:{SERVER_NAME}", "Linked")
            await friends["alpha"].send_message(chats["alpha"], "from alpha, via the hub")
            relayed = await wait_for_remote(admins["beta"], chats["beta"],
                                            lambda m: m["text"].endswith(": from alpha, via the hub"))
            assert relayed["sender"] == "me" and "Friend on alpha" in relayed["text"]
            await friends["beta"].send_message(chats["beta"], "from beta, via the hub")
            relayed = await wait_for_remote(admins["alpha"], chats["alpha"],
                                            lambda m: m["text"].endswith(": from beta, via the hub"))
            assert relayed["sender"] == "me" and "Friend on beta" in relayed["text"]
        finally:
            await sync.stop()
            for admin in admins.values():
                await admin.close()
