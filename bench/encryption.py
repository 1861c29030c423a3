"""Messages per second through an encrypted portal, against the same run unencrypted.

Starts a throwaway Synapse, the loopback network and one bridge (encryption allowed), then
for an unencrypted and an encrypted portal measures both directions:

* loopback -> Matrix: a loopback user posts N messages; the clock stops when a matrix-nio
  client has received (and, in the encrypted room, decrypted) all of them;
* Matrix -> loopback: the nio client sends N messages one after another (encrypting them
  in the encrypted room); the clock stops when all are in the loopback chat.

Both sides of every message are real: the homeserver, the bridge's crypto (python-olm)
and the client's (vodozemac). Prints one JSON object.

    python bench/encryption.py [--messages 100] [--rounds 5]

The two rooms take turns (``--rounds``), so load from elsewhere on the machine hits both
alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.devtools.processes import start_loopback_service  # noqa: E402
from bridge.devtools.synapse import LocalSynapse  # noqa: E402
from bridge.networks.loopback.client import LoopbackClient  # noqa: E402
from tests.support.bridge_env import BridgeUnderTest, free_port  # noqa: E402
from tests.support.flows import body_of, setup_portal  # noqa: E402
from tests.support.matrix_client import TestClient, make_client  # noqa: E402


async def loopback_to_matrix(client: TestClient, room: str, bob, chat: str, n: int, tag: str) -> float:
    bodies = [f"{tag} in {i}" for i in range(n)]
    expected = set(bodies)
    start = time.perf_counter()
    for body in bodies:
        await bob.api.send_message(chat, body)
    await client._wait_until(
        lambda: True if expected <= {body_of(e) for e in client.events(room)} else None,
        timeout=60 + n, what=f"{n} messages in {room}",
    )
    return n / (time.perf_counter() - start)


async def matrix_to_loopback(
    client: TestClient, room: str, loopback: LoopbackClient, chat: str, n: int, tag: str
) -> float:
    bodies = [f"{tag} out {i}" for i in range(n)]
    expected = set(bodies)
    start = time.perf_counter()
    for body in bodies:
        await client.send_text(room, body)
    deadline = time.monotonic() + 60 + n
    while True:
        seen = {m["text"] for m in await loopback.admin_get_messages(chat, limit=500)}
        if expected <= seen:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(expected & seen)} of {n} messages arrived")
        await asyncio.sleep(0.02)
    return n / (time.perf_counter() - start)


async def prepare(client: TestClient, env: BridgeUnderTest, loopback: LoopbackClient, tag: str):
    counter = iter(range(1_000_000))
    portal = await setup_portal(client, env, loopback, lambda p: f"{p}-{tag}-{next(counter)}")
    # One warm-up message each way: devices, Olm and Megolm sessions are set up here.
    await loopback_to_matrix(client, portal.room_id, portal.bob, portal.chat_id, 1, f"{tag} warm")
    await matrix_to_loopback(client, portal.room_id, loopback, portal.chat_id, 1, f"{tag} warm")
    return portal


async def measure_rounds(portals: dict, loopback: LoopbackClient, n: int, rounds: int) -> dict:
    """Alternate the rooms round by round, so load from elsewhere hits both alike."""
    per_round = max(1, n // rounds)
    seconds = {(tag, way): 0.0 for tag in portals for way in ("in", "out")}
    for round_no in range(rounds):
        for tag, (client, portal) in portals.items():
            label = f"{tag} r{round_no}"
            rate = await loopback_to_matrix(
                client, portal.room_id, portal.bob, portal.chat_id, per_round, label
            )
            seconds[(tag, "in")] += per_round / rate
            rate = await matrix_to_loopback(
                client, portal.room_id, loopback, portal.chat_id, per_round, label
            )
            seconds[(tag, "out")] += per_round / rate
    total = per_round * rounds
    return {
        tag: {
            "room_encrypted": bool(client.nio.rooms[portal.room_id].encrypted),
            "loopback_to_matrix_per_s": round(total / seconds[(tag, "in")], 1),
            "matrix_to_loopback_per_s": round(total / seconds[(tag, "out")], 1),
        }
        for tag, (client, portal) in portals.items()
    }


async def run(n: int, rounds: int, workdir: Path) -> dict[str, Any]:
    loopback_service = await start_loopback_service(log_path=workdir / "loopback.log")
    synapse_port = free_port()
    env = BridgeUnderTest(
        workdir=workdir / "bridge",
        homeserver_url=f"http://127.0.0.1:{synapse_port}",
        networks={"loopback": {"address": loopback_service.url}},
        db_uri=f"sqlite:{workdir / 'bridge' / 'bridge.db'}",
        settings={"encryption": {"allow": True, "pickle_key": "benchmark pickle key, not secret"}},
    )
    env.write_files()
    synapse = LocalSynapse(workdir / "synapse", port=synapse_port,
                           registrations=[env.registration_path])
    await synapse.start()
    loopback = LoopbackClient(loopback_service.url)
    clients: list[TestClient] = []
    try:
        bridge = await env.start()
        portals = {}
        for tag, encrypted in (("plain", False), ("encrypted", True)):
            bridge.config.encryption.default = encrypted
            client = await make_client(synapse, f"bench-{tag}", workdir / tag, encryption=True)
            clients.append(client)
            env.allow(client.user_id, "user")
            portals[tag] = (client, await prepare(client, env, loopback, tag))
        results = await measure_rounds(portals, loopback, n, rounds)
        return {
            "benchmark": "encryption",
            "messages": max(1, n // rounds) * rounds,
            "rounds": rounds,
            "unencrypted": results["plain"],
            "encrypted": results["encrypted"],
            "encrypted_vs_unencrypted": {
                key: round(results["encrypted"][key] / results["plain"][key], 2)
                for key in ("loopback_to_matrix_per_s", "matrix_to_loopback_per_s")
            },
        }
    finally:
        for client in clients:
            await client.close()
        await env.stop()
        await loopback.close()
        await synapse.stop()
        await loopback_service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100, help="messages per direction")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the two rooms")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-encryption-") as tmp:
        result = asyncio.run(run(args.messages, args.rounds, Path(tmp)))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
