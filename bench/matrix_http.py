"""A minimal Matrix client over plain HTTP, for scripts that must not share the bridge's code."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp


class MatrixHTTPError(Exception):
    pass


class MatrixHTTP:
    def __init__(self, base_url: str, token: str, user_id: str) -> None:
        self.base_url = base_url
        self.token = token
        self.user_id = user_id
        self._txn = itertools.count()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def close(self) -> None:
        await self._http.close()

    async def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self._http.request(method, self.base_url + path, headers=headers, **kwargs) as r:
            body = await r.json(content_type=None)
            if r.status >= 300:
                raise MatrixHTTPError(f"{method} {path}: {r.status} {body}")
            return body

    async def send_text(self, room_id: str, body: str, txn_id: str | None = None) -> str:
        txn = txn_id or f"t{next(self._txn)}"
        path = f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{txn}"
        return (await self.call("PUT", path, json={"msgtype": "m.text", "body": body}))["event_id"]

    async def send_until_accepted(self, room_id: str, body: str, txn_id: str, give_up: float) -> None:
        """Retry with the same transaction id while the homeserver is away (no duplicates)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + give_up
        while True:
            try:
                await self.send_text(room_id, body, txn_id)
                return
            except (aiohttp.ClientError, asyncio.TimeoutError, MatrixHTTPError):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def create_room(self, **content: Any) -> str:
        return (await self.call("POST", "/_matrix/client/v3/createRoom", json=content))["room_id"]

    async def join(self, room_id: str) -> None:
        await self.call("POST", f"/_matrix/client/v3/join/{room_id}", json={})

    async def sync(self, since: str | None, timeout_ms: int = 1000) -> dict[str, Any]:
        params = {"timeout": str(timeout_ms)} | ({"since": since} if since else {})
        return await self.call("GET", "/_matrix/client/v3/sync", params=params)

    async def wait_for(self, predicate, what: str, timeout: float = 60) -> tuple[str, dict]:
        """Sync until ``predicate(room_id, event_or_invite)`` holds; invites are {"type": "invite"}."""
        since = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            sync = await self.sync(since)
            since = sync["next_batch"]
            rooms = sync.get("rooms", {})
            for room_id, joined in rooms.get("join", {}).items():
                for event in joined.get("timeline", {}).get("events", []):
                    if predicate(room_id, event):
                        return room_id, event
            for room_id in rooms.get("invite", {}):
                if predicate(room_id, {"type": "invite"}):
                    return room_id, {"type": "invite"}
        raise TimeoutError(f"timed out waiting for {what}")

    async def room_bodies(self, room_id: str) -> list[tuple[str, str]]:
        """Every (sender, body) of m.room.message events in the room, oldest first."""
        out: list[tuple[str, str]] = []
        token = None
        while True:
            params = {"dir": "b", "limit": "1000"} | ({"from": token} if token else {})
            page = await self.call("GET", f"/_matrix/client/v3/rooms/{room_id}/messages", params=params)
            for event in page.get("chunk", []):
                if event.get("type") == "m.room.message":
                    out.append((event["sender"], event.get("content", {}).get("body", "")))
            token = page.get("end")
            if not page.get("chunk") or not token:
                break
        out.reverse()
        return out
