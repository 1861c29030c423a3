"""Drive tests/support/strict_js/client.mjs: matrix-js-sdk's Rust crypto, strict mode.

The client runs under Node as a subprocess and speaks JSON lines: requests on stdin,
replies and what it sees (messages, undecryptable events, invites) on stdout. Its crypto
is set to "exclude insecure devices" (OnlySignedDevicesIsolationMode), so it shares room
keys only with devices their owners cross-signed and cannot decrypt messages from others.

Needs ``node`` and the SDK from ``scripts/install-strict-js-client.sh``; a missing one
fails in CI (CI=true) and skips with the reason elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.devtools.synapse import LocalSynapse

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "strict_js" / "client.mjs"
SDK_LIB = ROOT / ".tools" / "strict-js" / "node_modules" / "matrix-js-sdk" / "lib"

Event = dict[str, Any]


def _require_tools() -> str:
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed"
    elif not (SDK_LIB / "index.js").exists():
        missing = "matrix-js-sdk is not installed (run scripts/install-strict-js-client.sh)"
    if missing is None:
        assert node is not None
        return node
    if os.environ.get("CI") == "true":
        pytest.fail(f"the strict JS client is required in CI: {missing}")
    pytest.skip(f"the strict JS client is not available: {missing}")


class JsStrictClient:
    """One logged-in user of matrix-js-sdk in "exclude insecure devices" mode."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self._process = process
        self.log_path = log_path
        self.events: list[Event] = []
        self.user_id = ""
        self.device_id = ""
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="strict js client")

    @classmethod
    async def start(cls, synapse: LocalSynapse, localpart: str, workdir: Path) -> JsStrictClient:
        node = _require_tools()
        user_id, _ = await synapse.register_user(localpart)
        workdir.mkdir(parents=True, exist_ok=True)
        log_path = workdir / f"{localpart}.stderr.log"
        env = {
            **os.environ,
            "HOMESERVER": synapse.url,
            "USER_ID": user_id,
            "PASSWORD": "password",
            "DEVICE_ID": "JS" + secrets.token_hex(4).upper(),
            "MATRIX_JS_SDK": SDK_LIB.as_uri(),
        }
        with open(log_path, "wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                node, str(SCRIPT), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=stderr, env=env,
            )
        client = cls(process, log_path)
        try:
            ready = await client.wait_for(lambda e: e.get("event") in ("ready", "failed"), 60, "the first sync")
            if ready["event"] == "failed":
                raise AssertionError(f"js client could not start: {ready['error']}")
        except BaseException:
            await client.close()
            raise
        client.user_id, client.device_id = ready["user_id"], ready["device_id"]
        return client

    async def _read(self) -> None:
        assert self._process.stdout is not None
        while line := await self._process.stdout.readline():
            message = json.loads(line)
            if "id" in message:
                future = self._replies.pop(message["id"], None)
                if future is not None and not future.done():
                    if message["ok"]:
                        future.set_result(message.get("result"))
                    else:
                        future.set_exception(AssertionError(f"js client: {message['error']}"))
            else:
                self.events.append(message)
            self._changed.set()
            self._changed = asyncio.Event()
        for future in self._replies.values():
            if not future.done():
                future.set_exception(AssertionError(f"js client exited; see {self.log_path}"))
        self._changed.set()  # waiters see that the client is gone

    async def request(self, op: str, timeout: float = 30, **arguments: Any) -> Any:
        """Run one operation in the client (create_room, join, send) and return its result."""
        assert self._process.stdin is not None
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies[self._next_id] = future
        line = json.dumps({"id": self._next_id, "op": op, **arguments}) + "\n"
        self._process.stdin.write(line.encode())
        await self._process.stdin.drain()
        async with asyncio.timeout(timeout):
            return await future

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 20, what: str = "") -> Event:
        """The first event the client reported that matches, waiting for it."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed
                    found = next((e for e in self.events if predicate(e)), None)
                    if found is not None:
                        return found
                    if self._reader.done() or self._process.stdout is None or self._process.stdout.at_eof():
                        raise AssertionError(f"js client exited; see {self.log_path}")
                    await changed.wait()
        except TimeoutError:
            seen = [(e.get("event"), e.get("sender"), e.get("body") or e.get("code")) for e in self.events[-15:]]
            raise AssertionError(f"js client: timed out waiting for {what}; last seen: {seen}") from None

    async def wait_for_message(self, room: str, body: str, timeout: float = 20) -> Event:
        """A decrypted (or plain) message with this body; an undecryptable one fails the wait."""

        def match(event: Event) -> bool:
            return event.get("room") == room and event.get("event") == "message" and event.get("body") == body

        return await self.wait_for(match, timeout, f"{body!r} in {room}")

    def undecryptable(self, senders: Callable[[str], bool]) -> list[Event]:
        """Events that stayed undecryptable, from senders that match."""
        decrypted = {e["event_id"] for e in self.events if e.get("event") == "message"}
        return [
            e for e in self.events
            if e.get("event") == "undecryptable" and e["event_id"] not in decrypted and senders(e["sender"])
        ]

    async def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            async with asyncio.timeout(10):
                await self._process.wait()
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
