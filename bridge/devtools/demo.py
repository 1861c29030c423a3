"""A local demo: Synapse, the loopback network and the bridge, all on 127.0.0.1.

``python -m bridge.devtools.demo`` starts everything in ``./demo-data`` and prints how to
log in with any Matrix client and how to post as a loopback user. ``--smoke-test`` runs
the same set-up, walks through the printed steps with a script and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

import aiohttp
import yaml

from ..config import load_config
from ..registration import write_registration
from .processes import ServiceProcess, start_loopback_service
from .synapse import LocalSynapse

SEED = {
    "users": [
        {"id": "alice", "display_name": "Alice", "token": "alice-demo-token",
         "phone": "+49 151 0000001"},
        {"id": "bob", "display_name": "Bob", "token": "bob-demo-token", "username": "bob"},
    ],
    "chats": [{"id": "demo", "title": "Demo chat", "topic": "Bridged by the hub bridge",
               "members": ["alice", "bob"]}],
}
DEMO_USER, DEMO_PASSWORD = "demo", "demo"


def _write_bridge_files(data: Path, synapse_port: int, loopback_url: str, bridge_port: int) -> Path:
    config = {
        "homeserver": {"address": f"http://127.0.0.1:{synapse_port}", "domain": "localhost"},
        "appservice": {
            "address": f"http://127.0.0.1:{bridge_port}",
            "hostname": "127.0.0.1",
            "port": bridge_port,
            "registration": "registration.yaml",
        },
        "database": {"uri": f"sqlite:{data / 'bridge.db'}"},
        "bridge": {"permissions": {"localhost": "user", f"@{DEMO_USER}:localhost": "admin"}},
        "logging": {"level": "INFO"},
        "networks": {"loopback": {"address": loopback_url}},
    }
    path = data / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    write_registration(load_config(path))
    return path


def _instructions(synapse: LocalSynapse, loopback_url: str) -> str:
    cli = f"{Path(sys.executable).name} -m bridge.networks.loopback.cli --url {loopback_url}"
    return f"""
The demo is running. Everything stays on this machine.

  Homeserver:  {synapse.url}   (server name: localhost)
  Matrix user: @{DEMO_USER}:localhost   password: {DEMO_PASSWORD}

1. Log in with any Matrix client (Element, nheko, ...; use {synapse.url} as the homeserver).
2. Start a direct chat with @hubbridge:localhost and send:   login loopback
3. When the bot asks for the token, send:                    alice-demo-token
   You are now Alice on the loopback network.
4. Post as Bob on the loopback network (another terminal):
     {cli} post --as bob --chat demo "Hello from the loopback network"
   The chat appears in your client as a room; answer there and see it arrive:
     {cli} messages --chat demo

Press Ctrl-C to stop.
"""


async def _smoke_test(synapse: LocalSynapse, loopback_url: str) -> None:
    """Do what the instructions say, with plain HTTP, and check that it worked."""
    async with aiohttp.ClientSession() as http:
        async def call(method: str, path: str, token: str | None = None, **kw):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.request(method, synapse.url + path, headers=headers, **kw) as r:
                body = await r.json()
                if r.status >= 300:
                    raise RuntimeError(f"{method} {path}: {r.status} {body}")
                return body

        _, token = await synapse.login(DEMO_USER, DEMO_PASSWORD)
        room = (await call("POST", "/_matrix/client/v3/createRoom", token,
                           json={"invite": ["@hubbridge:localhost"], "is_direct": True}))["room_id"]

        async def wait_for(pred, what: str) -> dict:
            since = None
            for _ in range(60):
                params = {"timeout": "1000"} | ({"since": since} if since else {})
                sync = await call("GET", "/_matrix/client/v3/sync", token, params=params)
                since = sync["next_batch"]
                for room_id, joined in sync.get("rooms", {}).get("join", {}).items():
                    for event in joined["timeline"]["events"]:
                        if pred(room_id, event):
                            return event
                for room_id in sync.get("rooms", {}).get("invite", {}):
                    if pred(room_id, {"type": "invite"}):
                        return {"room_id": room_id}
            raise RuntimeError(f"timed out waiting for {what}")

        def bot_said(text: str):
            return lambda r, e: r == room and text in e.get("content", {}).get("body", "")

        await wait_for(bot_said("Send 'help'"), "the bot to join")
        txn = 0

        async def send(body: str) -> None:
            nonlocal txn
            txn += 1
            await call("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/demo{txn}",
                       token, json={"msgtype": "m.text", "body": body})

        await send("login loopback")
        await wait_for(bot_said("Send the token"), "the token prompt")
        await send("alice-demo-token")
        await wait_for(bot_said("Logged in"), "the login")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge.networks.loopback.cli", "--url", loopback_url,
            "post", "--as", "bob", "--chat", "demo", "Hello from the loopback network",
        )
        if await proc.wait() != 0:
            raise RuntimeError("posting as bob failed")
        invite = await wait_for(lambda r, e: r != room and e.get("type") == "invite", "the portal")
        portal = invite["room_id"]
        await call("POST", f"/_matrix/client/v3/join/{portal}", token, json={})
        await wait_for(
            lambda r, e: r == portal and e.get("content", {}).get("body") == "Hello from the loopback network",
            "Bob's message",
        )
    print("Smoke test passed: logged in through the bot and received Bob's message.")


async def run(data: Path, smoke_test: bool) -> int:
    data.mkdir(parents=True, exist_ok=True)
    seed = data / "loopback-seed.json"
    seed.write_text(json.dumps(SEED, indent=2), encoding="utf-8")
    loopback: ServiceProcess = await start_loopback_service(seed=seed, log_path=data / "loopback.log")
    synapse_dir = data / "synapse"
    synapse = LocalSynapse(synapse_dir, port=None if smoke_test else _preferred_port(8008))
    bridge_port = _preferred_port(29400)
    config_path = _write_bridge_files(data, synapse.port, loopback.url, bridge_port)
    synapse.registrations = [(data / "registration.yaml").resolve()]
    bridge = None
    try:
        await synapse.start()
        await synapse.register_user(DEMO_USER, DEMO_PASSWORD, admin=True)
        from ..core.bridge import Bridge
        from ..logs import setup_logging

        config = load_config(config_path)
        setup_logging(config.logging)
        logging.getLogger().setLevel(logging.WARNING)
        bridge = Bridge(config)
        await bridge.start()
        if smoke_test:
            await asyncio.wait_for(_smoke_test(synapse, loopback.url), 120)
            return 0
        print(_instructions(synapse, loopback.url), flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        return 0
    finally:
        if bridge is not None:
            await bridge.stop(drain_timeout=5)
        await synapse.stop()
        await loopback.stop()


def _preferred_port(port: int) -> int:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.devtools.demo", description=__doc__)
    parser.add_argument("--data", default="demo-data", help="where the demo keeps its files")
    parser.add_argument("--smoke-test", action="store_true", help="run the steps and exit")
    args = parser.parse_args(argv)
    return asyncio.run(run(Path(args.data).resolve(), args.smoke_test))


if __name__ == "__main__":
    sys.exit(main())
