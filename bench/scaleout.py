"""Scale-out: several bridge processes (one per network) against one homeserver and one
PostgreSQL server, each with its own registration, namespaces and database.

Hub rooms keep working across processes because the homeserver room itself is the hub:
each process only relays what it sees in the room. Used by tests/test_scale_out.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from bridge.devtools.processes import ServiceProcess, start_loopback_service
from bridge.devtools.synapse import LocalSynapse

from .bridge_process import BridgeProcess
from .deploy import BridgeDeployment, free_port
from .postgres import throwaway_database


@dataclass
class NetworkProcess:
    """One network served by its own bridge process and its own loopback service."""

    network: str
    service: ServiceProcess
    deployment: BridgeDeployment
    process: BridgeProcess | None = None


@dataclass
class ScaleOut:
    synapse: LocalSynapse
    networks: dict[str, NetworkProcess] = field(default_factory=dict)

    async def start_bridges(self) -> None:
        for net in self.networks.values():
            net.process = BridgeProcess(net.deployment.config_path, net.deployment.log_path)
            await net.process.start()


@contextlib.asynccontextmanager
async def scale_out(workdir: Path, postgres_server: str, networks: list[str],
                    permissions: dict[str, str]) -> AsyncIterator[ScaleOut]:
    """Start one Synapse and, per network, a loopback service, a database on the shared
    PostgreSQL server and a bridge deployment (the bridges start with ``start_bridges``,
    after the caller has seeded their logins)."""
    synapse_port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        nets: dict[str, NetworkProcess] = {}
        for name in networks:
            service = await start_loopback_service(log_path=workdir / f"{name}-loopback.log")
            stack.push_async_callback(service.stop)
            db_url = await stack.enter_async_context(
                throwaway_database(postgres_server, f"scaleout_{name}"))
            deployment = BridgeDeployment(
                workdir=workdir / f"bridge-{name}",
                homeserver_url=f"http://127.0.0.1:{synapse_port}",
                networks={name: {"connector": "loopback", "address": service.url,
                                 "display_name": name.capitalize()}},
                db_uri=db_url,
                appservice_id=f"hubbridge_{name}",
                bot_username=f"hubbridge_{name}",
                ghost_prefix=f"hub{name}_",
                permissions=permissions,
            )
            deployment.write()
            nets[name] = NetworkProcess(name, service, deployment)
        synapse = LocalSynapse(
            workdir / "synapse", port=synapse_port,
            registrations=[n.deployment.registration_path for n in nets.values()],
        )
        await synapse.start()
        stack.push_async_callback(synapse.stop)
        out = ScaleOut(synapse, nets)
        try:
            yield out
        finally:
            for net in nets.values():
                if net.process is not None:
                    await net.process.stop()
