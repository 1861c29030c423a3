"""Async client for the loopback network's HTTP API (see docs/loopback-api.md).

One method per endpoint; answers come back as the decoded JSON (dicts and lists). Any
non-2xx answer raises :class:`LoopbackError`; connection problems propagate as
``aiohttp.ClientError``.
"""

from __future__ import annotations

import base64
import json
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from yarl import URL


class LoopbackError(Exception):
    """A non-2xx answer from the loopback network."""

    def __init__(
        self, status: int, errcode: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {errcode}: {message}")
        self.status = status
        self.errcode = errcode
        self.message = message
        self.retry_after = retry_after


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Default of optional PATCH arguments: leave that field alone (None would clear it)."""


def _seg(value: str) -> str:
    # ids and emoji go into one path segment each; "/" and "%" must not leak through
    return quote(value, safe="")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def media_payload(kind: str, name: str, mime: str, data: bytes) -> dict[str, Any]:
    """The ``media`` object of a message body, with the bytes base64-encoded."""
    return {"kind": kind, "name": name, "mime": mime, "data": _b64(data)}


class LoopbackClient:
    """Talks to one loopback network, as one user (``token``) and/or as admin."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._session = session
        self._owns_session = session is None
        self._parent: LoopbackClient | None = None

    async def __aenter__(self) -> LoopbackClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def as_user(self, token: str) -> LoopbackClient:
        """A client for another user sharing this one's connection pool (don't close it)."""
        child = LoopbackClient(self.base_url, token, self._session)
        child._owns_session = False
        child._parent = self._parent or self
        return child

    def _get_session(self) -> aiohttp.ClientSession:
        if self._parent is not None:
            return self._parent._get_session()
        if self._session is None or self._session.closed:
            # no overall timeout: long polls set their own per request
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
            self._session = aiohttp.ClientSession(timeout=timeout)
            self._owns_session = True
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        timeout: float = 60.0,
        raw: bool = False,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = URL(self.base_url + path, encoded=True)
        async with self._get_session().request(
            method,
            url,
            json=body,
            params=params,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            data = await resp.read()
            if not 200 <= resp.status < 300:
                raise _error_from(resp, data)
            if raw:
                return data, resp.headers.get("Content-Type", "application/octet-stream")
            return await resp.json(content_type=None)

    # --- admin -----------------------------------------------------------------------

    async def admin_create_user(
        self,
        user_id: str,
        display_name: str,
        *,
        phone: str | None = None,
        username: str | None = None,
        avatar: bytes | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Create a user; returns ``{"id", "token"}``."""
        body: dict[str, Any] = {"id": user_id, "display_name": display_name}
        body.update(phone=phone, username=username, avatar=_b64(avatar) if avatar else None)
        if token is not None:
            body["token"] = token
        return await self._request("POST", "/admin/users", body=body)

    async def admin_list_users(self) -> list[dict[str, Any]]:
        return await self._request("GET", "/admin/users")

    async def admin_get_user(self, user_id: str) -> dict[str, Any]:
        """A user's profile including their token."""
        return await self._request("GET", f"/admin/users/{_seg(user_id)}")

    async def admin_update_user(
        self,
        user_id: str,
        *,
        display_name: str | _Unset = UNSET,
        avatar: bytes | None | _Unset = UNSET,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if not isinstance(display_name, _Unset):
            body["display_name"] = display_name
        if not isinstance(avatar, _Unset):
            body["avatar"] = _b64(avatar) if avatar is not None else None
        return await self._request("PATCH", f"/admin/users/{_seg(user_id)}", body=body)

    async def admin_create_chat(
        self,
        title: str,
        members: list[str],
        *,
        chat_id: str | None = None,
        topic: str | None = None,
        kind: str = "group",
    ) -> dict[str, Any]:
        """Create a chat as the network itself; returns ``{"id"}``."""
        body: dict[str, Any] = {"title": title, "members": members, "kind": kind}
        if chat_id is not None:
            body["id"] = chat_id
        if topic is not None:
            body["topic"] = topic
        return await self._request("POST", "/admin/chats", body=body)

    async def admin_list_chats(self) -> list[dict[str, Any]]:
        return await self._request("GET", "/admin/chats")

    async def admin_get_chat(self, chat_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/admin/chats/{_seg(chat_id)}")

    async def admin_get_messages(
        self, chat_id: str, *, limit: int | None = None, before: str | None = None
    ) -> list[dict[str, Any]]:
        """A chat's history (oldest first) without needing to be a member."""
        return await self._request(
            "GET", f"/admin/chats/{_seg(chat_id)}/messages", params=_page(limit, before)
        )

    async def admin_get_media(self, media_id: str) -> tuple[bytes, str]:
        """Media bytes and their content type."""
        return await self._request("GET", f"/admin/media/{_seg(media_id)}", raw=True)

    async def set_faults(
        self,
        *,
        rate_limit: dict[str, Any] | None | _Unset = UNSET,
        fail_sends: dict[str, Any] | None | _Unset = UNSET,
        drop_event_streams: bool | _Unset = UNSET,
    ) -> dict[str, Any]:
        """Inject faults, e.g. ``rate_limit={"count": 2, "retry_after": 0.5}``."""
        body: dict[str, Any] = {}
        if not isinstance(rate_limit, _Unset):
            body["rate_limit"] = rate_limit
        if not isinstance(fail_sends, _Unset):
            body["fail_sends"] = fail_sends
        if not isinstance(drop_event_streams, _Unset):
            body["drop_event_streams"] = drop_event_streams
        return await self._request("POST", "/admin/faults", body=body)

    async def get_faults(self) -> dict[str, Any]:
        return await self._request("GET", "/admin/faults")

    async def clear_faults(self) -> dict[str, Any]:
        return await self._request("DELETE", "/admin/faults")

    # --- user: profiles and chats ----------------------------------------------------

    async def me(self) -> dict[str, Any]:
        return await self._request("GET", "/me")

    async def get_user(self, user_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/users/{_seg(user_id)}")

    async def list_chats(self) -> list[dict[str, Any]]:
        return await self._request("GET", "/chats")

    async def get_chat(self, chat_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/chats/{_seg(chat_id)}")

    async def create_chat(
        self, title: str, members: list[str], *, kind: str = "group"
    ) -> dict[str, Any]:
        """Create a chat with the caller in it; returns ``{"id", "invite_link"}``."""
        body = {"title": title, "members": members, "kind": kind}
        return await self._request("POST", "/chats", body=body)

    async def update_chat(
        self,
        chat_id: str,
        *,
        title: str | _Unset = UNSET,
        topic: str | None | _Unset = UNSET,
        avatar: bytes | None | _Unset = UNSET,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if not isinstance(title, _Unset):
            body["title"] = title
        if not isinstance(topic, _Unset):
            body["topic"] = topic
        if not isinstance(avatar, _Unset):
            body["avatar"] = _b64(avatar) if avatar is not None else None
        return await self._request("PATCH", f"/chats/{_seg(chat_id)}", body=body)

    async def add_member(self, chat_id: str, user_id: str) -> dict[str, Any]:
        body = {"user_id": user_id}
        return await self._request("POST", f"/chats/{_seg(chat_id)}/members", body=body)

    async def remove_member(self, chat_id: str, user_id: str) -> dict[str, Any]:
        """Remove a member; removing yourself leaves the chat."""
        path = f"/chats/{_seg(chat_id)}/members/{_seg(user_id)}"
        return await self._request("DELETE", path)

    # --- user: messages --------------------------------------------------------------

    async def send_message(
        self,
        chat_id: str,
        text: str | None = None,
        *,
        entities: list[dict[str, Any]] | None = None,
        reply_to: str | None = None,
        media: dict[str, Any] | None = None,
        txn_id: str | None = None,
    ) -> dict[str, Any]:
        """Post a message; returns ``{"id"}``. ``media["data"]`` may be raw bytes."""
        if media is not None and isinstance(media.get("data"), bytes):
            media = {**media, "data": _b64(media["data"])}
        body: dict[str, Any] = {"reply_to": reply_to, "media": media, "txn_id": txn_id}
        if text is not None:
            body["text"] = text
        if entities is not None:
            body["entities"] = entities
        return await self._request("POST", f"/chats/{_seg(chat_id)}/messages", body=body)

    async def get_messages(
        self, chat_id: str, *, limit: int | None = None, before: str | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` messages (default 50), oldest first, optionally before a message."""
        return await self._request(
            "GET", f"/chats/{_seg(chat_id)}/messages", params=_page(limit, before)
        )

    async def edit_message(
        self,
        chat_id: str,
        message_id: str,
        text: str,
        *,
        entities: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text}
        if entities is not None:
            body["entities"] = entities
        path = f"/chats/{_seg(chat_id)}/messages/{_seg(message_id)}"
        return await self._request("PATCH", path, body=body)

    async def delete_message(self, chat_id: str, message_id: str) -> dict[str, Any]:
        path = f"/chats/{_seg(chat_id)}/messages/{_seg(message_id)}"
        return await self._request("DELETE", path)

    async def add_reaction(self, chat_id: str, message_id: str, emoji: str) -> dict[str, Any]:
        path = f"/chats/{_seg(chat_id)}/messages/{_seg(message_id)}/reactions/{_seg(emoji)}"
        return await self._request("PUT", path)

    async def remove_reaction(self, chat_id: str, message_id: str, emoji: str) -> dict[str, Any]:
        path = f"/chats/{_seg(chat_id)}/messages/{_seg(message_id)}/reactions/{_seg(emoji)}"
        return await self._request("DELETE", path)

    async def set_typing(self, chat_id: str, typing: bool = True) -> dict[str, Any]:
        body = {"typing": typing}
        return await self._request("POST", f"/chats/{_seg(chat_id)}/typing", body=body)

    async def mark_read(self, chat_id: str, message_id: str) -> dict[str, Any]:
        body = {"message_id": message_id}
        return await self._request("POST", f"/chats/{_seg(chat_id)}/read", body=body)

    async def get_media(self, media_id: str) -> tuple[bytes, str]:
        """Media bytes and their content type."""
        return await self._request("GET", f"/media/{_seg(media_id)}", raw=True)

    # --- user: events ----------------------------------------------------------------

    async def get_events(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Long-poll for unacknowledged events; the list is empty if none came in time."""
        params = {"timeout": str(timeout)}
        # the HTTP timeout must outlive the server-side wait
        body = await self._request("GET", "/events", params=params, timeout=timeout + 15)
        return body["events"]

    async def ack_events(self, up_to: int) -> dict[str, Any]:
        """Acknowledge every event with ``seq <= up_to``; returns ``{"acked"}``."""
        return await self._request("POST", "/events/ack", body={"up_to": up_to})


def _page(limit: int | None, before: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if limit is not None:
        params["limit"] = str(limit)
    if before is not None:
        params["before"] = before
    return params


def _error_from(resp: aiohttp.ClientResponse, data: bytes) -> LoopbackError:
    errcode, message, retry_after = "LB_UNKNOWN", data.decode("utf-8", "replace")[:500], None
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict):
        errcode = str(body.get("errcode", errcode))
        message = str(body.get("error", message))
        if isinstance(body.get("retry_after"), (int, float)):
            retry_after = float(body["retry_after"])
    if retry_after is None and resp.headers.get("Retry-After", "").isdigit():
        retry_after = float(resp.headers["Retry-After"])
    return LoopbackError(resp.status, errcode, message or resp.reason or "", retry_after)
