"""The chaos run: messages both ways while the bridge is SIGKILLed and Synapse goes away.

    python -m bench.chaos [--messages 1000] [--kills 3] [--outage 60] [--db sqlite|postgres]

Starts Synapse, the loopback network and the bridge (as its own process) on 127.0.0.1,
logs a Matrix user in through the bot, then pushes ``--messages`` messages each way
while it kills the bridge with SIGKILL ``--kills`` times at random points (restarting
it each time) and stops Synapse for ``--outage`` seconds. At the end it counts what
arrived and prints one JSON object; ``lost`` and ``doubled`` must both be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import yaml

from bridge.config import load_config
from bridge.devtools.processes import start_bridge_process, start_loopback_service, wait_for_http
from bridge.devtools.synapse import LocalSynapse
from bridge.networks.loopback.client import LoopbackClient, LoopbackError
from bridge.registration import write_registration

from .chaos_client import ChaosClient
from .postgres import temporary_database

BOT = "@hubbridge:localhost"


class BridgeProcess:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await start_bridge_process(self.config, log_path=self.log)
        await wait_for_http(f"http://127.0.0.1:{self.port}/_matrix/mau/live", timeout=120)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 60)


def _write_config(data: Path, synapse_port: int, loopback_url: str, bridge_port: int, db_uri: str) -> Path:
    config = {
        "homeserver": {"address": f"http://127.0.0.1:{synapse_port}", "domain": "localhost"},
        "appservice": {"address": f"http://127.0.0.1:{bridge_port}", "port": bridge_port},
        "database": {"uri": db_uri},
        "bridge": {"permissions": {"localhost": "user"}, "backfill_limit": 0},
        "logging": {"level": "INFO"},
        "networks": {"loopback": {"address": loopback_url, "poll_timeout": 5}},
    }
    path = data / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    write_registration(load_config(path))
    return path


async def _setup_portal(matrix: ChaosClient, admin: LoopbackClient) -> tuple[str, str, LoopbackClient]:
    alice = await admin.admin_create_user("alice", "Alice")
    bob = await admin.admin_create_user("bob", "Bob")
    management = await matrix.create_direct_room(BOT)

    def bot_said(text: str):
        return lambda r, e: r == management and text in e.get("content", {}).get("body", "")

    await matrix.wait_for(bot_said("Send 'help'"), "the bot")
    await matrix.send_text(management, "login loopback")
    await matrix.wait_for(bot_said("Send the token"), "the token prompt")
    await matrix.send_text(management, alice["token"])
    await matrix.wait_for(bot_said("Logged in"), "the login")
    chat = (await admin.admin_create_chat("Chaos", ["alice", "bob"]))["id"]
    room, _ = await matrix.wait_for(lambda r, e: r != management and e["type"] == "invite", "the portal")
    await matrix.join(room)
    return chat, room, admin.as_user(bob["token"])


async def _post_remote(bob: LoopbackClient, chat: str, n: int, rate: float) -> None:
    for i in range(n):
        while True:
            try:
                await bob.send_message(chat, f"r-{i}", txn_id=f"chaos-r-{i}")
                break
            except LoopbackError:
                await asyncio.sleep(0.2)
        await asyncio.sleep(1 / rate)


async def _post_matrix(matrix: ChaosClient, room: str, n: int, rate: float, give_up: float) -> None:
    for i in range(n):
        await matrix.send_until_accepted(room, f"m-{i}", f"chaos-m-{i}", give_up)
        await asyncio.sleep(1 / rate)


async def _havoc(bridge: BridgeProcess, synapse: LocalSynapse, duration: float, kills: int,
                 outage: float, rng: random.Random, log: list[str]) -> None:
    start = time.monotonic()
    events = sorted([("kill", rng.uniform(0.05, 0.95) * duration) for _ in range(kills)]
                    + ([("outage", rng.uniform(0.3, 0.6) * duration)] if outage else []),
                    key=lambda e: e[1])
    for kind, at in events:
        await asyncio.sleep(max(0.0, at - (time.monotonic() - start)))
        if kind == "kill":
            log.append(f"{time.monotonic() - start:.1f}s: SIGKILL the bridge")
            await bridge.kill()
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            await bridge.start()
        else:
            log.append(f"{time.monotonic() - start:.1f}s: stop Synapse for {outage:.0f} s")
            await synapse.stop()
            await asyncio.sleep(outage)
            await synapse.start()


async def _network_texts(admin: LoopbackClient, chat: str, sender: str) -> list[str]:
    """Every text ``sender`` has in the chat, paging back through the whole history."""
    texts: list[str] = []
    before = None
    while True:
        page = await admin.admin_get_messages(chat, limit=500, before=before)
        texts += [m["text"] for m in page if m["sender"] == sender]
        if len(page) < 500:
            return texts
        before = page[0]["id"]


def _tally(expected: list[str], seen: list[str]) -> dict:
    counts = Counter(seen)
    missing = [body for body in expected if counts[body] == 0]
    doubled = [body for body in expected if counts[body] > 1]
    result: dict = {
        "lost": len(missing),
        "doubled": sum(counts[body] - 1 for body in doubled),
    }
    # Name the first few, so a failed run can be traced in the logs it leaves behind.
    if missing:
        result["missing_examples"] = missing[:10]
    if doubled:
        result["doubled_examples"] = doubled[:10]
    return result


async def run(messages: int, kills: int, outage: float, db: str, rate: float, seed: int,
              workdir: Path) -> dict:
    rng = random.Random(seed)
    began = time.monotonic()
    loopback = await start_loopback_service(log_path=workdir / "loopback.log")
    admin = LoopbackClient(loopback.url)
    synapse = LocalSynapse(workdir / "synapse")
    bridge_port = _free_port()
    async with temporary_database(db, workdir) as db_uri:
        config = _write_config(workdir, synapse.port, loopback.url, bridge_port, db_uri)
        synapse.registrations = [(workdir / "registration.yaml").resolve()]
        bridge = BridgeProcess(config, bridge_port, workdir / "bridge.log")
        matrix = None
        http = aiohttp.ClientSession()
        try:
            await synapse.start()
            user_id, token = await synapse.register_user("chaos", "chaos")
            await bridge.start()
            matrix = ChaosClient(synapse.url, token, user_id, http)
            chat, room, bob = await _setup_portal(matrix, admin)
            duration = messages / rate
            log: list[str] = []
            await asyncio.gather(
                _post_remote(bob, chat, messages, rate),
                _post_matrix(matrix, room, messages, rate, give_up=outage + 120),
                _havoc(bridge, synapse, duration, kills, outage, rng, log),
            )
            expected_r = [f"r-{i}" for i in range(messages)]
            expected_m = [f"m-{i}" for i in range(messages)]
            # Let everything settle: wait until all arrived (or time runs out), then a bit more
            # so a late duplicate would be counted.
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                in_room = [b for s, b in await matrix.room_bodies(room) if s != user_id]
                on_network = await _network_texts(admin, chat, "alice")
                if set(expected_r) <= set(in_room) and set(expected_m) <= set(on_network):
                    break
                await asyncio.sleep(2)
            await asyncio.sleep(5)
            in_room = [b for s, b in await matrix.room_bodies(room) if s != user_id]
            on_network = await _network_texts(admin, chat, "alice")
            network_to_matrix = _tally(expected_r, in_room)
            matrix_to_network = _tally(expected_m, on_network)
            return {
                "database": db,
                "messages_each_way": messages,
                "bridge_sigkills": kills,
                "homeserver_outage_s": outage,
                "seed": seed,
                "events": log,
                "network_to_matrix": network_to_matrix,
                "matrix_to_network": matrix_to_network,
                "lost": network_to_matrix["lost"] + matrix_to_network["lost"],
                "doubled": network_to_matrix["doubled"] + matrix_to_network["doubled"],
                "seconds": round(time.monotonic() - began, 1),
            }
        finally:
            await http.close()
            await bridge.stop()
            await synapse.stop()
            await admin.close()
            await loopback.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds Synapse is stopped")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second each way")
    parser.add_argument("--seed", type=int, default=secrets.randbelow(10_000))
    parser.add_argument("--workdir", help="keep the run's files here (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run(args.messages, args.kills, args.outage, args.db, args.rate,
                                 args.seed, workdir))
    print(json.dumps(result, indent=2))
    return 0 if result["lost"] == 0 and result["doubled"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
