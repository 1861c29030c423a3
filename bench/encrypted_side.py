"""The encrypting bridge of stage (d): a second bridge process with ``encryption.allow``
and ``encryption.default`` on, so its portals are created encrypted, against the same
Synapse and loopback network as the plain bridge, with its own registration, database,
timing proxy, loopback users and chats, and a Matrix user whose client (matrix-nio)
really decrypts.

Two processes rather than one with some rooms encrypted: the plain bridge of stages
(a)-(c) keeps the default configuration (no to-device or device-list traffic), and the
ratio (d)/(b) is then the whole cost of turning encryption on.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path


from bridge.devtools.processes import ServiceProcess
from bridge.devtools.synapse import LocalSynapse

from .bridge_process import BridgeProcess
from .deploy import SERVER_NAME, BridgeDeployment, free_port
from .loopback_side import LoopbackWorld, NetworkObserver
from .matrix_http import bench_body
from .nio_watcher import DecryptingWatcher
from .side import BridgeSide
from .txn_proxy import TxnProxy

ENCRYPTED_USER = "benchcrypto"
ENCRYPTED_PREFIX = "e"
"""Loopback user and chat ids of this side start with it (the plain side's with "b")."""


@dataclass
class EncryptedBridge:
    workdir: Path
    deployment: BridgeDeployment
    proxy_port: int
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    side: BridgeSide | None = None
    _proxy: TxnProxy | None = None
    _watcher: DecryptingWatcher | None = None
    _world: LoopbackWorld | None = None
    _observer: NetworkObserver | None = None
    _bridge: BridgeProcess | None = None

    @classmethod
    def write(cls, workdir: Path, homeserver_url: str, loopback_url: str) -> EncryptedBridge:
        """Write config and registration; Synapse must read the registration at its start."""
        proxy_port = free_port()
        deployment = BridgeDeployment(
            workdir=workdir,
            homeserver_url=homeserver_url,
            networks={"loopback": {"address": loopback_url}},
            db_uri=f"sqlite:{workdir / 'bridge.db'}",
            appservice_id="hubbridge_e2ee",
            bot_username="hubbridge_e2ee",
            ghost_prefix="hube2ee_",
            registration_url=f"http://127.0.0.1:{proxy_port}",
            permissions={f"@{ENCRYPTED_USER}:{SERVER_NAME}": "user"},
            settings={"encryption": {
                "allow": True,
                "default": True,
                # A throwaway secret: the benchmark's keys die with its working directory.
                "pickle_key": secrets.token_urlsafe(24),
            }},
        )
        deployment.write()
        return cls(workdir, deployment, proxy_port)

    @property
    def registration_path(self) -> Path:
        return self.deployment.registration_path

    async def start(self, synapse: LocalSynapse, loopback: ServiceProcess, chats: int,
                    senders: int) -> BridgeSide:
        """Start the bridge and its watchers, and warm both directions up: every ghost's
        device exists and has shared its room key, the client has shared its own."""
        self._proxy = TxnProxy(self.deployment.url)
        await self._proxy.start(self.proxy_port)
        user_id, _ = await synapse.register_user(ENCRYPTED_USER, self.password)
        self._watcher = await DecryptingWatcher.log_in(synapse.url, user_id, self.password,
                                                       self.workdir / "nio")
        self._world = await LoopbackWorld.create(loopback.url, ENCRYPTED_PREFIX, senders, chats)
        await self.deployment.seed_login(user_id, "loopback", f"{ENCRYPTED_PREFIX}me",
                                         self._world.me_token)
        self._bridge = BridgeProcess(self.deployment.config_path, self.deployment.log_path)
        await self._bridge.start()
        self._observer = NetworkObserver(self._world.admin.as_user(self._world.observer_token),
                                         f"{ENCRYPTED_PREFIX}me")
        self._observer.start()
        synapse_pid = int((synapse.workdir / "homeserver.pid").read_text().strip())
        self.side = BridgeSide(
            name="encrypted", deployment=self.deployment, bridge=self._bridge,
            proxy=self._proxy, world=self._world, observer=self._observer,
            watcher=self._watcher, send_text=self._watcher.send_text,
            synapse_log=synapse.log_path, synapse_pid=synapse_pid,
            loopback_pid=loopback.process.pid,
        )
        await self._warm(chats, senders)
        return self.side

    async def _warm(self, chats: int, senders: int) -> None:
        assert self.side and self._watcher and self._world and self._observer
        watcher, world = self._watcher, self._world
        for k, chat in enumerate(world.chat_ids):
            for i, sender in enumerate(world.senders):
                await sender.send_message(chat, bench_body("warmd", k * senders + i))
        total = chats * senders
        await watcher.wait_for(lambda: watcher.count("warmd") >= total, 120,
                               "the warm-up messages through the encrypting bridge")
        rooms = {seq // senders: s.room_id for (stage, seq), s in watcher.seen.items()
                 if stage == "warmd"}
        self.side.portal_rooms = [rooms[k] for k in range(chats)]
        plain = [r for r in self.side.portal_rooms if not watcher.is_encrypted(r)]
        if plain:
            raise RuntimeError(f"the encrypting bridge made unencrypted portals: {plain}")
        for k, room in enumerate(self.side.portal_rooms):
            await watcher.prepare_room(room)
            await watcher.send_text(room, bench_body("warmdm", k))
        await self._observer.wait_for(lambda: self._observer.count("warmdm") >= chats, 60,
                                      "the encrypted warm-up messages on the network")

    def rss_mib(self) -> float | None:
        return self._bridge.rss_mib()[0] if self._bridge and self._bridge.process else None

    async def stop(self) -> None:
        for step in (
            self._observer.stop() if self._observer else None,
            self._watcher.stop() if self._watcher else None,
            self._bridge.stop() if self._bridge else None,
            self._proxy.stop() if self._proxy else None,
            self._world.close() if self._world else None,
        ):
            if step is not None:
                await step
