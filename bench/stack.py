"""Everything the benchmark runs against: Synapse, the loopback network, the bridge
process behind a timing proxy, a bare "ceiling" appservice and a Matrix user; for stage
(d) an encrypting bridge with a decrypting client, for stage (e) a hub room linked to
chats on two more loopback services.

``BenchStack.start()`` brings it all up and warms it (portals created, ghosts joined, one
message per sender in every chat) so the stages measure steady-state work only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bridge.devtools.processes import ServiceProcess, start_loopback_service
from bridge.devtools.synapse import LocalSynapse

from .bridge_process import BridgeProcess
from .cpu import CpuMeter
from .deploy import SERVER_NAME, BridgeDeployment, CeilingAppservice, free_port
from .encrypted_side import EncryptedBridge
from .hub_side import HubNetworks
from .loopback_side import LoopbackWorld, NetworkObserver
from .matrix_http import MatrixHTTP, SyncWatcher, bench_body
from .postgres import PostgresSynapse, throwaway_database
from .side import BridgeSide
from .txn_proxy import TxnProxy

log = logging.getLogger("bench.stack")

BENCH_USER = "benchuser"
LOOPBACK_PREFIX = "b"


@dataclass
class StackOptions:
    chats: int = 4
    senders: int = 8
    synapse_postgres: str | None = None
    """A PostgreSQL server for Synapse's database; None keeps Synapse on SQLite."""
    encrypted: bool = False
    """Also run the encrypting bridge and its decrypting client (stage d)."""
    hub: bool = False
    """Also link a hub room to chats on two more loopback services (stage e)."""
    setup_timeout: float = 240.0


@dataclass
class BenchStack:
    workdir: Path
    options: StackOptions = field(default_factory=StackOptions)
    loopback: ServiceProcess | None = None
    synapse: LocalSynapse | None = None
    deployment: BridgeDeployment | None = None
    bridge: BridgeProcess | None = None
    proxy: TxnProxy | None = None
    ceiling: CeilingAppservice | None = None
    http: aiohttp.ClientSession | None = None
    user: MatrixHTTP | None = None
    user_id: str = ""
    ceiling_client: MatrixHTTP | None = None
    sync: SyncWatcher | None = None
    world: LoopbackWorld | None = None
    observer: NetworkObserver | None = None
    portal_rooms: list[str] = field(default_factory=list)
    """Portal room of loopback chat ``k`` at index ``k``."""
    ceiling_rooms: list[str] = field(default_factory=list)
    ceiling_ghosts: list[str] = field(default_factory=list)
    bridge_ready_s: float = 0.0
    main: BridgeSide | None = None
    """The plain bridge as stages (b), (c) and (e) drive it."""
    encrypted_bridge: EncryptedBridge | None = None
    encrypted: BridgeSide | None = None
    """The encrypting bridge as stage (d) drives it."""
    hub: HubNetworks | None = None
    _cleanup: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def start(self) -> None:
        async with asyncio.timeout(self.options.setup_timeout):
            await self._start()

    async def _start(self) -> None:
        opts = self.options
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.loopback = await start_loopback_service(log_path=self.workdir / "loopback.log")
        synapse_port, proxy_port = free_port(), free_port()
        homeserver_url = f"http://127.0.0.1:{synapse_port}"
        networks: dict[str, dict[str, str]] = {"loopback": {"address": self.loopback.url}}
        if opts.hub:
            self.hub = await HubNetworks.start(self.workdir)
            networks.update(self.hub.network_configs())
        self.deployment = BridgeDeployment(
            workdir=self.workdir / "bridge",
            homeserver_url=homeserver_url,
            networks=networks,
            db_uri=f"sqlite:{self.workdir / 'bridge' / 'bridge.db'}",
            registration_url=f"http://127.0.0.1:{proxy_port}",
            permissions={f"@{BENCH_USER}:{SERVER_NAME}": "user"},
        )
        self.deployment.write()
        self.ceiling = CeilingAppservice(self.workdir / "ceiling")
        self.ceiling.write()
        registrations = [self.deployment.registration_path, self.ceiling.registration_path]
        if opts.encrypted:
            self.encrypted_bridge = EncryptedBridge.write(
                self.workdir / "bridge-encrypted", homeserver_url, self.loopback.url)
            registrations.append(self.encrypted_bridge.registration_path)
        if opts.synapse_postgres:
            url = await self._cleanup.enter_async_context(
                throwaway_database(opts.synapse_postgres, "bench_synapse")
            )
            self.synapse = PostgresSynapse(self.workdir / "synapse", port=synapse_port,
                                           registrations=registrations, database_url=url)
        else:
            self.synapse = LocalSynapse(self.workdir / "synapse", port=synapse_port,
                                        registrations=registrations)
        await self.synapse.start()
        self.proxy = TxnProxy(self.deployment.url)
        await self.proxy.start(proxy_port)
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        self.user_id, token = await self.synapse.register_user(BENCH_USER, "bench-password")
        self.user = MatrixHTTP(self.synapse.url, token, self.http)
        self.ceiling_client = MatrixHTTP(self.synapse.url, self.ceiling.as_token, self.http)
        self.sync = SyncWatcher(self.user)
        await self.sync.start()

        self.world = await LoopbackWorld.create(
            self.loopback.url, LOOPBACK_PREFIX, opts.senders, opts.chats
        )
        await self.deployment.seed_login(
            self.user_id, "loopback", f"{LOOPBACK_PREFIX}me", self.world.me_token
        )
        if self.hub is not None:
            members = [f"{LOOPBACK_PREFIX}me", f"{LOOPBACK_PREFIX}obs"] + [
                f"{LOOPBACK_PREFIX}s{i}" for i in range(opts.senders)]
            await self.hub.prepare(self.world.admin, members, self.user_id, self.deployment)
        self.bridge = BridgeProcess(self.deployment.config_path, self.deployment.log_path)
        self.bridge_ready_s = await self.bridge.start()
        self.observer = NetworkObserver(
            self.world.admin.as_user(self.world.observer_token), f"{LOOPBACK_PREFIX}me"
        )
        self.observer.start()
        self.main = BridgeSide(
            name="plain", deployment=self.deployment, bridge=self.bridge, proxy=self.proxy,
            world=self.world, observer=self.observer, watcher=self.sync,
            send_text=self._send_text, synapse_log=self.synapse.log_path,
            synapse_pid=self._synapse_pid(), loopback_pid=self.loopback.process.pid,
        )
        warm = [self._warm_bridge(), self._warm_ceiling()]
        if self.encrypted_bridge is not None:
            warm.append(self._start_encrypted())
        await asyncio.gather(*warm)

    async def _send_text(self, room_id: str, body: str) -> str:
        assert self.user is not None
        return await self.user.send_message(room_id, {"msgtype": "m.text", "body": body})

    def _synapse_pid(self) -> int:
        assert self.synapse is not None
        return int((self.synapse.workdir / "homeserver.pid").read_text().strip())

    async def _start_encrypted(self) -> None:
        assert self.encrypted_bridge and self.synapse and self.loopback
        self.encrypted = await self.encrypted_bridge.start(
            self.synapse, self.loopback, self.options.chats, self.options.senders)

    async def _warm_bridge(self) -> None:
        """One message per sender in every chat: portals exist, every ghost has joined."""
        assert self.world is not None and self.sync is not None
        opts = self.options
        for k, chat in enumerate(self.world.chat_ids):
            for i, sender in enumerate(self.world.senders):
                await sender.send_message(chat, bench_body("warmb", k * opts.senders + i))
        total = opts.chats * opts.senders
        await self.sync.wait_for(lambda: self.sync.count("warmb") >= total, 90,
                                 "the warm-up messages through the bridge")
        rooms = {}
        for (stage, seq), seen in self.sync.seen.items():
            if stage == "warmb":
                rooms[seq // opts.senders] = seen.room_id
        self.portal_rooms = [rooms[k] for k in range(opts.chats)]
        assert self.main is not None
        self.main.portal_rooms = self.portal_rooms
        if self.hub is not None:
            assert self.user and self.deployment and self.observer
            await self.hub.link(self.user, self.sync, self.deployment.bot_mxid, self.observer,
                                self.world.senders)

    async def _warm_ceiling(self) -> None:
        """The ceiling's rooms, ghosts and memberships, made as a bridge would make them."""
        assert self.ceiling is not None and self.ceiling_client is not None and self.sync
        opts, client = self.options, self.ceiling_client
        self.ceiling_ghosts = [
            await client.register_ghost(self.ceiling.ghost_localpart(i), SERVER_NAME)
            for i in range(opts.senders)
        ]
        for k in range(opts.chats):
            room = await client.create_room([self.user_id, *self.ceiling_ghosts],
                                            name=f"Ceiling {k}")
            for ghost in self.ceiling_ghosts:
                await client.join(room, user_id=ghost)
            self.ceiling_rooms.append(room)
        for k, room in enumerate(self.ceiling_rooms):
            for i, ghost in enumerate(self.ceiling_ghosts):
                await client.send_message(
                    room, ceiling_content(bench_body("warma", k * opts.senders + i)),
                    user_id=ghost, ts=int(time.time() * 1000),
                )
        total = opts.chats * opts.senders
        await self.sync.wait_for(lambda: self.sync.count("warma") >= total, 90,
                                 "the warm-up messages of the ceiling")

    def cpu_meter(self) -> CpuMeter:
        """CPU accounting for Synapse, the plain bridge, the loopback network and this
        process."""
        assert self.main is not None
        return self.main.cpu_meter()

    async def stop(self) -> None:
        for step in (
            self.hub.stop() if self.hub else None,
            self.encrypted_bridge.stop() if self.encrypted_bridge else None,
            self.observer.stop() if self.observer else None,
            self.sync.stop() if self.sync else None,
            self.bridge.stop() if self.bridge else None,
            self.proxy.stop() if self.proxy else None,
            self.world.close() if self.world else None,
            self.http.close() if self.http else None,
            self.synapse.stop() if self.synapse else None,
            self.loopback.stop() if self.loopback else None,
            self._cleanup.aclose(),
        ):
            if step is not None:
                try:
                    await step
                except Exception:
                    log.warning("Stopping part of the stack failed", exc_info=True)


def ceiling_content(body: str) -> dict[str, str]:
    """The content the bridge sends for a plain text message (same keys, same size)."""
    return {"msgtype": "m.text", "body": body, "org.hubbridge.origin": "0" * 16}
