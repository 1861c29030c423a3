"""A stub of the signal-cli daemon: its JSON-RPC protocol over TCP, with no Signal servers.

It speaks what signal-cli 0.13.19 speaks in multi-account mode with
``--receive-mode manual`` (see signal-cli-jsonrpc(5) and the contract test, which checks
the same answers against the real daemon): newline-delimited JSON-RPC 2.0, an
``account`` parameter on per-account methods, error codes -1/-4/-5/-32601/-32602, and
``receive`` notifications wrapped in ``{"subscription", "result": {"envelope", "account"}}``.

Like Signal's servers, it keeps an account's incoming envelopes while no client is
subscribed and hands them over on ``subscribeReceive``; once a notification is written it
is gone (signal-cli acknowledges on delivery). Tests play the phone and the contacts:
``deliver`` envelopes, ``scan`` a link QR code, ``fail_next`` a method, and read
``requests`` to see what the bridge sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

VERSION = "0.13.19"


class RpcFailure(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


@dataclass
class StubAccount:
    number: str
    aci: str
    name: str
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """ACI -> listContacts entry (the account itself is added on creation)."""
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    attachments: dict[str, bytes] = field(default_factory=dict)
    avatars: dict[str, bytes] = field(default_factory=dict)
    """``group:<id>`` or ``profile:<aci>`` -> image bytes."""
    pending: list[dict[str, Any]] = field(default_factory=list)
    """Envelopes waiting "on Signal's servers" while nobody is subscribed."""


@dataclass(eq=False)
class _Client:
    writer: asyncio.StreamWriter
    subscriptions: dict[int, str] = field(default_factory=dict)
    """Subscription id -> account number."""


def contact_entry(number: str | None, aci: str, given: str = "", family: str = "", **extra: Any) -> dict[str, Any]:
    """A ``listContacts`` entry shaped like signal-cli's ``JsonContact``."""
    entry: dict[str, Any] = {
        "number": number, "uuid": aci, "username": None, "name": "", "givenName": None, "familyName": None,
        "nickName": None, "nickGivenName": None, "nickFamilyName": None, "note": None, "color": None,
        "isBlocked": False, "isHidden": False, "messageExpirationTime": 0, "profileSharing": True,
        "unregistered": False,
        "profile": {"lastUpdateTimestamp": 1, "givenName": given or None, "familyName": family or None,
                    "about": None, "aboutEmoji": None, "hasAvatar": False, "mobileCoinAddress": None},
        "internal": None,
    }
    entry.update(extra)
    return entry


class StubDaemon:
    def __init__(self) -> None:
        self.accounts: dict[str, StubAccount] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.failures: dict[str, list[RpcFailure]] = {}
        self.stickers: dict[tuple[str, int], bytes] = {}
        self._clients: set[_Client] = set()
        self._server: asyncio.Server | None = None
        self._subscription_ids = itertools.count(0)
        self._links: dict[str, asyncio.Future[str]] = {}
        self._waiting: set[str] = set()
        """Link URIs whose finishLink is waiting for the phone."""
        self._clock = 0
        self.port = 0
        self.changed = asyncio.Event()

    # Server ------------------------------------------------------------------------------------

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, limit=64 * 1024 * 1024)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def drop_connections(self) -> None:
        """Close every client connection, as a daemon restart would."""
        for client in list(self._clients):
            client.writer.close()
        self._clients.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(writer)
        self._clients.add(client)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while line := await reader.readline():
                # signal-cli answers requests in parallel (finishLink blocks for minutes).
                task = asyncio.create_task(self._answer(client, line))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.discard(client)
            for task in tasks:
                task.cancel()
            writer.close()

    async def _answer(self, client: _Client, line: bytes) -> None:
        request = json.loads(line)
        method, params, request_id = request.get("method"), dict(request.get("params") or {}), request.get("id")
        self.requests.append((method, dict(params)))
        self._touch()
        try:
            if self.failures.get(method):
                raise self.failures[method].pop(0)
            handler = getattr(self, f"rpc_{method}", None)
            if handler is None:
                raise RpcFailure(-32601, "Method not implemented")
            result = await handler(client, params)
            reply: dict[str, Any] = {"jsonrpc": "2.0", "result": result, "id": request_id}
        except RpcFailure as e:
            reply = {"jsonrpc": "2.0", "error": {"code": e.code, "message": e.message, "data": e.data}, "id": request_id}
        self._write(client, reply)

    def _write(self, client: _Client, message: dict[str, Any]) -> None:
        if not client.writer.is_closing():
            client.writer.write(json.dumps(message).encode() + b"\n")

    def _touch(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    # Test controls -----------------------------------------------------------------------------

    def add_account(self, name: str, number: str | None = None) -> StubAccount:
        number = number or "+49151" + str(uuid.uuid4().int)[:8]
        account = StubAccount(number=number, aci=str(uuid.uuid4()), name=name)
        account.contacts[account.aci] = contact_entry(number, account.aci, name)
        self.accounts[number] = account
        return account

    @property
    def last_timestamp(self) -> int:
        """The timestamp of the newest message the stub made (e.g. the bridge's last send)."""
        return self._clock

    def timestamp(self) -> int:
        """A fresh, increasing Signal timestamp (milliseconds)."""
        self._clock = max(self._clock + 1, int(time.time() * 1000))
        return self._clock

    def deliver(self, account: StubAccount, envelope: dict[str, Any]) -> None:
        """An envelope arrives for ``account``: sent now if subscribed, else kept."""
        targets = [(c, sid) for c in self._clients for sid, number in c.subscriptions.items() if number == account.number]
        if not targets:
            account.pending.append(envelope)
            return
        for client, subscription in targets:
            self._notify(client, subscription, account, envelope)

    def _notify(self, client: _Client, subscription: int, account: StubAccount, envelope: dict[str, Any]) -> None:
        self._write(client, {"jsonrpc": "2.0", "method": "receive",
                             "params": {"subscription": subscription, "result": {"envelope": envelope, "account": account.number}}})

    def subscribed(self, account: StubAccount) -> bool:
        return any(number == account.number for c in self._clients for number in c.subscriptions.values())

    def fail_next(self, method: str, code: int, message: str, data: Any = None) -> None:
        self.failures.setdefault(method, []).append(RpcFailure(code, message, data))

    async def wait_for(self, predicate, timeout: float = 20) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked after every request)."""
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                changed = self.changed
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), 0.1)
            return result

    async def wait_for_request(self, method: str, match=lambda p: True, timeout: float = 20) -> dict[str, Any]:
        return await self.wait_for(lambda: next((p for m, p in self.requests if m == method and match(p)), None), timeout)

    async def scan(self, account: StubAccount, timeout: float = 20) -> None:
        """The phone scans the newest link QR code, linking ``account``."""
        waiting = lambda: next((u for u, f in reversed(self._links.items()) if not f.done() and u in self._waiting), None)  # noqa: E731
        uri = await self.wait_for(waiting, timeout)
        self._links[uri].set_result(account.number)

    # Methods (names as in signal-cli) -----------------------------------------------------------

    def _account(self, params: dict[str, Any]) -> StubAccount:
        number = params.pop("account", None)
        if number is None:
            raise RpcFailure(-32602, "Method requires valid account parameter")
        if number not in self.accounts:
            raise RpcFailure(-32602, "Specified account does not exist")
        return self.accounts[number]

    async def rpc_version(self, client: _Client, params: dict[str, Any]) -> Any:
        return {"version": VERSION}

    async def rpc_listAccounts(self, client: _Client, params: dict[str, Any]) -> Any:
        return [{"number": n} for n in self.accounts]

    async def rpc_startLink(self, client: _Client, params: dict[str, Any]) -> Any:
        uri = f"sgnl://linkdevice?uuid={uuid.uuid4().hex[:22]}&pub_key=BQ{uuid.uuid4().hex}"
        self._links[uri] = asyncio.get_running_loop().create_future()
        return {"deviceLinkUri": uri}

    async def rpc_finishLink(self, client: _Client, params: dict[str, Any]) -> Any:
        uri = params.get("deviceLinkUri", "")
        future = self._links.get(uri)
        if future is None:
            raise RpcFailure(-1, "Link request error: unknown link")
        self._waiting.add(uri)
        try:
            return {"number": await future}
        finally:
            self._waiting.discard(uri)

    async def rpc_subscribeReceive(self, client: _Client, params: dict[str, Any]) -> Any:
        account = self._account(params)
        subscription = next(self._subscription_ids)
        client.subscriptions[subscription] = account.number
        pending, account.pending = account.pending, []
        for envelope in pending:
            self._notify(client, subscription, account, envelope)
        return subscription

    async def rpc_unsubscribeReceive(self, client: _Client, params: dict[str, Any]) -> Any:
        self._account(params)
        if client.subscriptions.pop(params.get("subscription"), None) is None:
            raise RpcFailure(-1, "Unknown subscription id")
        return {}

    async def rpc_listContacts(self, client: _Client, params: dict[str, Any]) -> Any:
        account = self._account(params)
        wanted = params.get("recipient") or []
        entries = list(account.contacts.values())
        if wanted:
            entries = [c for c in entries if c["uuid"] in wanted or c["number"] in wanted]
        return entries

    async def rpc_listGroups(self, client: _Client, params: dict[str, Any]) -> Any:
        account = self._account(params)
        wanted = params.get("groupId") or []
        return [g for g in account.groups.values() if not wanted or g["id"] in wanted]

    async def rpc_getAvatar(self, client: _Client, params: dict[str, Any]) -> Any:
        account = self._account(params)
        key = f"group:{params['groupId']}" if "groupId" in params else f"profile:{params.get('profile')}"
        if key not in account.avatars:
            raise RpcFailure(-1, "Could not find avatar")
        return {"data": base64.b64encode(account.avatars[key]).decode()}

    async def rpc_getAttachment(self, client: _Client, params: dict[str, Any]) -> Any:
        account = self._account(params)
        if params.get("id") not in account.attachments:
            raise RpcFailure(-1, "Attachment file not found")
        return {"data": base64.b64encode(account.attachments[params["id"]]).decode()}

    async def rpc_getSticker(self, client: _Client, params: dict[str, Any]) -> Any:
        self._account(params)
        data = self.stickers.get((params.get("packId"), params.get("stickerId")))
        if data is None:
            raise RpcFailure(-1, "Sticker not found")
        return {"data": base64.b64encode(data).decode()}

    def _sent(self, account: StubAccount, params: dict[str, Any]) -> dict[str, Any]:
        recipients = params.get("recipient") or []
        if not recipients and "groupId" not in params:
            raise RpcFailure(-1, "No recipients given")
        if "groupId" in params:
            group = account.groups.get(params["groupId"])
            if group is None:
                raise RpcFailure(-1, "Invalid group id")
            recipients = [m["uuid"] for m in group["members"] if m["uuid"] != account.aci]
        results = [{"recipientAddress": {"uuid": r, "number": None, "username": None}, "groupId": params.get("groupId"),
                    "type": "SUCCESS", "token": None, "retryAfterSeconds": None} for r in recipients]
        return {"timestamp": self.timestamp(), "results": results}

    async def rpc_send(self, client: _Client, params: dict[str, Any]) -> Any:
        account = self._account(params)
        if not params.get("message") and not params.get("attachment") and not params.get("sticker"):
            raise RpcFailure(-1, "Sending empty message is not allowed, either a message, attachment or sticker must be given.")
        return self._sent(account, params)

    async def rpc_sendReaction(self, client: _Client, params: dict[str, Any]) -> Any:
        return self._sent(self._account(params), params)

    async def rpc_remoteDelete(self, client: _Client, params: dict[str, Any]) -> Any:
        return self._sent(self._account(params), params)

    async def rpc_sendTyping(self, client: _Client, params: dict[str, Any]) -> Any:
        self._account(params)
        return {}

    async def rpc_sendReceipt(self, client: _Client, params: dict[str, Any]) -> Any:
        account = self._account(params)
        return self._sent(account, {"recipient": [params.get("recipient")]})

    async def rpc_updateGroup(self, client: _Client, params: dict[str, Any]) -> Any:
        account = self._account(params)
        group_id = params.get("groupId")
        if group_id is None:
            group_id = base64.b64encode(uuid.uuid4().bytes * 2).decode()
            account.groups[group_id] = group_entry(group_id, params.get("name", ""), [account])
        group = account.groups.get(group_id)
        if group is None:
            raise RpcFailure(-1, "Invalid group id")
        if "name" in params:
            group["name"] = params["name"]
        if "description" in params:
            group["description"] = params["description"]
        if "avatar" in params:
            account.avatars[f"group:{group_id}"] = base64.b64decode(params["avatar"].split("base64,", 1)[1])
        for aci in params.get("member") or []:
            group["members"].append({"number": None, "uuid": aci})
        removed = set(params.get("removeMember") or [])
        group["members"] = [m for m in group["members"] if m["uuid"] not in removed]
        return {"groupId": group_id, "timestamp": self.timestamp()}

    async def rpc_unregister(self, client: _Client, params: dict[str, Any]) -> Any:
        self._account(params)
        return {}

    async def rpc_deleteLocalAccountData(self, client: _Client, params: dict[str, Any]) -> Any:
        account = self._account(params)
        del self.accounts[account.number]
        for c in self._clients:
            for sid in [s for s, n in c.subscriptions.items() if n == account.number]:
                del c.subscriptions[sid]
        return {}


def group_entry(group_id: str, name: str, members: list[StubAccount | str], description: str = "", timer: int = 0) -> dict[str, Any]:
    """A ``listGroups`` entry shaped like signal-cli's ``JsonGroup`` (members are ``{number, uuid}``)."""

    def member(m: StubAccount | str) -> dict[str, Any]:
        return {"number": m.number, "uuid": m.aci} if isinstance(m, StubAccount) else {"number": None, "uuid": m}

    return {
        "id": group_id, "name": name, "description": description, "isMember": True, "isBlocked": False,
        "messageExpirationTime": timer, "members": [member(m) for m in members], "pendingMembers": [],
        "requestingMembers": [], "admins": [], "banned": [], "permissionAddMember": "EVERY_MEMBER",
        "permissionEditDetails": "EVERY_MEMBER", "permissionSendMessage": "EVERY_MEMBER", "groupInviteLink": None,
    }
