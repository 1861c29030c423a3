"""What the chaos run needs beyond the benchmark's Matrix client: retries through an
outage, waiting on /sync, and counting a room's messages."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import aiohttp

from .matrix_http import MatrixHTTP, MatrixRequestFailed


class ChaosClient(MatrixHTTP):
    def __init__(self, base_url: str, token: str, user_id: str, session: aiohttp.ClientSession) -> None:
        super().__init__(base_url, token, session)
        self.user_id = user_id

    async def send_text(self, room_id: str, body: str, txn_id: str | None = None) -> str:
        return await self.send_message(room_id, {"msgtype": "m.text", "body": body}, txn_id=txn_id)

    async def send_until_accepted(self, room_id: str, body: str, txn_id: str, give_up: float) -> None:
        """Retry with the same transaction id while the homeserver is away (no duplicates)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + give_up
        while True:
            try:
                await self.send_text(room_id, body, txn_id)
                return
            except (aiohttp.ClientError, asyncio.TimeoutError, MatrixRequestFailed):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def create_direct_room(self, invite: str) -> str:
        body = {"preset": "trusted_private_chat", "invite": [invite], "is_direct": True}
        return str((await self.request("POST", "/_matrix/client/v3/createRoom", body))["room_id"])

    async def wait_for(self, predicate, what: str, timeout: float = 60) -> tuple[str, dict]:
        """Sync until ``predicate(room_id, event_or_invite)`` holds; invites are {"type": "invite"}."""
        since = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            params = {"timeout": "1000"} | ({"since": since} if since else {})
            sync = await self.request("GET", "/_matrix/client/v3/sync", params=params)
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
            page: dict[str, Any] = await self.request(
                "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/messages", params=params
            )
            for event in page.get("chunk", []):
                if event.get("type") == "m.room.message":
                    out.append((event["sender"], event.get("content", {}).get("body", "")))
            token = page.get("end")
            if not page.get("chunk") or not token:
                break
        out.reverse()
        return out
