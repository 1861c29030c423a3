"""The HTTP side of the appservice: the homeserver pushes transactions here.

A transaction is answered only after its events are handed to the bridge and the
transaction id is recorded, so a repeat (after a timeout or a restart) is answered without
being processed twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any, Awaitable, Callable, Protocol

from aiohttp import web

log = logging.getLogger("bridge.matrix.appservice")


class TransactionSink(Protocol):
    async def seen(self, txn_id: str) -> bool: ...

    async def mark(self, txn_id: str, now_ms: int) -> None: ...


TransactionHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Takes a transaction id and body; returns once the events are durably recorded (and may
record the transaction id itself, atomically with them)."""


def transaction_key(txn_id: str, body: dict[str, Any]) -> str:
    """The id under which a transaction is remembered: its id plus a digest of its content.

    Synapse numbers transactions anew from its last *completed* one after a restart, so
    the same id can arrive again with different events; only the same id with the same
    content is a repeat.
    """
    events = body.get("events") or []
    ids = [e.get("event_id") if isinstance(e, dict) else None for e in events]
    ephemeral = body.get("ephemeral") or body.get("de.sorunome.msc2409.ephemeral") or []
    material = json.dumps([ids, ephemeral], sort_keys=True, default=str)
    return f"{txn_id}:{hashlib.sha256(material.encode('utf-8')).hexdigest()[:16]}"


def _error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


class AppserviceServer:
    def __init__(
        self,
        hs_token: str,
        handler: TransactionHandler,
        transactions: TransactionSink,
        user_exists: Callable[[str], Awaitable[bool]],
    ) -> None:
        self._hs_token = hs_token.encode("utf-8")
        self._handler = handler
        self._transactions = transactions
        self._user_exists = user_exists
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        for prefix in ("/_matrix/app/v1", ""):
            self.app.router.add_put(prefix + "/transactions/{txn_id}", self._transaction)
            self.app.router.add_get(prefix + "/users/{user_id}", self._query_user)
            self.app.router.add_get(prefix + "/rooms/{alias}", self._query_alias)
        self.app.router.add_post("/_matrix/app/v1/ping", self._ping)
        self.app.router.add_get("/_matrix/mau/live", self._live)

    def _auth_error(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        if token is None:
            token = request.query.get("access_token")
        if token is None:
            return _error(401, "M_UNAUTHORIZED", "Missing hs_token")
        # Constant time, so the token can't be guessed byte by byte from response timing.
        if not hmac.compare_digest(token.encode("utf-8"), self._hs_token):
            return _error(403, "M_FORBIDDEN", "Invalid hs_token")
        return None

    async def _transaction(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        try:
            body = await request.json(loads=json.loads)
        except (ValueError, UnicodeDecodeError, LookupError):
            return _error(400, "M_NOT_JSON", "Transaction body is not JSON")
        except RecursionError:
            return _error(400, "M_BAD_JSON", "Transaction body is nested too deeply")
        if not isinstance(body, dict):
            return _error(400, "M_BAD_JSON", "Transaction body must be a JSON object")
        for key in ("events", "ephemeral", "de.sorunome.msc2409.ephemeral"):
            if key in body and not isinstance(body[key], list):
                return _error(400, "M_BAD_JSON", f"'{key}' must be a list")
        txn_id = transaction_key(request.match_info["txn_id"], body)
        if await self._transactions.seen(txn_id):
            return web.json_response({})
        try:
            await self._handler(txn_id, body)
        except Exception:
            log.exception("Failed to handle transaction %s", txn_id)
            # The homeserver retries the transaction, so nothing is lost.
            return _error(500, "M_UNKNOWN", "The bridge failed to handle the transaction")
        await self._transactions.mark(txn_id, int(time.time() * 1000))
        return web.json_response({})

    async def _query_user(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        if await self._user_exists(request.match_info["user_id"]):
            return web.json_response({})
        return _error(404, "M_NOT_FOUND", "No such user")

    async def _query_alias(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        return _error(404, "M_NOT_FOUND", "The bridge has no room aliases")

    async def _ping(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        return web.json_response({})

    async def _live(self, _: web.Request) -> web.Response:
        return web.json_response({})

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        log.info("Appservice listening on %s:%d", host, port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
