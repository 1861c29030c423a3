"""The hub room of stage (e): one Matrix room linked to three chats on three loopback
services (networks ``loopback``, ``lbtwo`` and ``lbthree``), all served by the plain
bridge, set up as an admin would: logins on the three networks, a room with the bot in
it, and ``!bridge link <network> <chat>`` for each chat.

The first chat is on the main loopback service (its members are the benchmark's
senders, so the hub's ghosts are theirs); the other two are on services of their own,
each with the Matrix user's login and an observer that timestamps what the bridge
relays into it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from bridge.devtools.processes import ServiceProcess, start_loopback_service
from bridge.networks.loopback.client import LoopbackClient

from .deploy import BridgeDeployment
from .loopback_side import NetworkObserver
from .matrix_http import MatrixHTTP, SyncWatcher, bench_body

HUB_PREFIX = "h"
EXTRA_NETWORKS = ("lbtwo", "lbthree")
HUB_NETWORKS = ("loopback", *EXTRA_NETWORKS)
CHAT_TITLE = "Bench hub {}"


@dataclass
class RemoteChat:
    """The hub's chat on one extra network, and who watches it."""

    network: str
    service: ServiceProcess
    admin: LoopbackClient
    me_token: str = ""
    observer_token: str = ""
    chat_id: str = ""
    observer: NetworkObserver | None = None


@dataclass
class HubNetworks:
    """The extra loopback services and the hub's chats.

    ``start`` runs before Synapse (the registration's ghost namespaces come from the
    bridge's networks, and Synapse reads them only at its start), ``prepare`` before the
    plain bridge starts (it restores the logins then), ``link`` after."""

    chats: dict[str, RemoteChat] = field(default_factory=dict)
    origin_chat: str = ""
    """The hub's chat on the main loopback service, where the benchmark posts."""
    room_id: str = ""

    @classmethod
    async def start(cls, workdir: Path) -> HubNetworks:
        hub = cls()
        for network in EXTRA_NETWORKS:
            service = await start_loopback_service(log_path=workdir / f"{network}.log")
            hub.chats[network] = RemoteChat(network, service, LoopbackClient(service.url))
        return hub

    async def prepare(self, main_admin: LoopbackClient, origin_members: list[str], owner: str,
                      deployment: BridgeDeployment) -> None:
        """Make the users and chats; seed the Matrix user's logins into the plain
        bridge's database."""
        origin = await main_admin.admin_create_chat(CHAT_TITLE.format(0), origin_members,
                                                    chat_id=f"{HUB_PREFIX}hub0")
        self.origin_chat = origin["id"]
        for n, chat in enumerate(self.chats.values(), start=1):
            me = await chat.admin.admin_create_user(f"{HUB_PREFIX}me", "Hub linker")
            obs = await chat.admin.admin_create_user(f"{HUB_PREFIX}obs", "Hub observer")
            made = await chat.admin.admin_create_chat(
                CHAT_TITLE.format(n), [f"{HUB_PREFIX}me", f"{HUB_PREFIX}obs"],
                chat_id=f"{HUB_PREFIX}hub{n}")
            chat.me_token, chat.observer_token, chat.chat_id = me["token"], obs["token"], made["id"]
            await deployment.seed_login(owner, chat.network, f"{HUB_PREFIX}me", me["token"])

    def network_configs(self) -> dict[str, dict[str, str]]:
        """The extra networks for the plain bridge's config."""
        return {
            network: {"connector": "loopback", "address": chat.service.url,
                      "display_name": f"Loopback {n}"}
            for n, (network, chat) in enumerate(self.chats.items(), start=2)
        }

    async def link(self, user: MatrixHTTP, sync: SyncWatcher, bot_mxid: str,
                   main_observer: NetworkObserver, senders: list[LoopbackClient]) -> None:
        """Make the room, link the three chats and warm up (ghosts joined, greetings
        sent, both directions once)."""
        self.room_id = await user.create_room([bot_mxid], name="Bench hub")
        await _wait_until_member(user, self.room_id, bot_mxid)
        links = {"loopback": self.origin_chat,
                 **{network: chat.chat_id for network, chat in self.chats.items()}}
        for n, (network, chat_id) in enumerate(links.items()):
            before = await _bot_events(user, self.room_id, bot_mxid)
            await user.send_message(self.room_id, {"msgtype": "m.text",
                                                   "body": f"!bridge link {network} {chat_id}"})
            await _wait_for_link(user, self.room_id, bot_mxid, before, CHAT_TITLE.format(n))
        for chat in self.chats.values():
            chat.observer = NetworkObserver(chat.admin.as_user(chat.observer_token),
                                            f"{HUB_PREFIX}me")
            chat.observer.start()
        for i, sender in enumerate(senders):
            await sender.send_message(self.origin_chat, bench_body("warme", i))
        await self.wait_relayed("warme", len(senders), 90)
        await sync.wait_for(lambda: sync.count("warme") >= len(senders), 90,
                            "the hub's warm-up messages in the room")
        await user.send_message(self.room_id, {"msgtype": "m.text",
                                               "body": bench_body("warmem", 0)})
        await self.wait_relayed("warmem", 1, 60)
        await main_observer.wait_for(lambda: main_observer.count("warmem") >= 1, 60,
                                     "the hub's warm-up message from Matrix")

    def observers(self) -> dict[str, NetworkObserver]:
        return {n: c.observer for n, c in self.chats.items() if c.observer is not None}

    async def wait_relayed(self, stage: str, count: int, timeout: float) -> None:
        """Wait until every extra network's chat holds ``count`` messages of ``stage``."""
        for network, observer in self.observers().items():
            await observer.wait_for(lambda o=observer: o.count(stage) >= count, timeout,
                                    f"{stage} messages relayed into the {network} chat")

    async def stop(self) -> None:
        for chat in self.chats.values():
            if chat.observer is not None:
                await chat.observer.stop()
            await chat.admin.close()
            await chat.service.stop()


async def _wait_until_member(matrix: MatrixHTTP, room_id: str, user_id: str) -> None:
    for _ in range(300):
        joined = await matrix.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members")
        if user_id in joined.get("joined", {}):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{user_id} never joined {room_id}")


async def _bot_events(matrix: MatrixHTTP, room_id: str, bot: str) -> dict[str, str]:
    """The bot's latest messages in the room: event id -> body."""
    page = await matrix.request("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/messages",
                                params={"dir": "b", "limit": "50"})
    return {
        str(e.get("event_id")): str((e.get("content") or {}).get("body", ""))
        for e in page.get("chunk", [])
        if e.get("sender") == bot and e.get("type") == "m.room.message"
    }


async def _wait_for_link(matrix: MatrixHTTP, room_id: str, bot: str, before: dict[str, str],
                         title: str) -> None:
    """Wait for the bot's answer to a link command; anything but "Linked" is a failure."""
    for _ in range(300):
        for event_id, body in (await _bot_events(matrix, room_id, bot)).items():
            if event_id in before:
                continue
            if body.startswith("Linked") and f"chat '{title}'" in body:
                return
            raise RuntimeError(f"linking {title!r} into the hub failed: {body}")
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the bot never answered the link command for {title!r}")
