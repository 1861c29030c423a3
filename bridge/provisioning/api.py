"""The provisioning API: login flows, logins, chats and linking, over HTTP.

Off by default (``provisioning.enabled``). Every request but ``GET /openapi.json`` needs
``Authorization: Bearer <provisioning.shared_secret>``; every user-scoped request names
the Matrix user with ``?user_id=@user:server``, as mautrix bridges do, and that user
needs the ``user`` permission level. The contract is ``openapi.yaml`` next to this file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from importlib import resources
from typing import Any

import yaml
from aiohttp import web

from .. import __version__
from ..config import ProvisioningConfig, parse_listen
from ..core.connector import Capabilities, NetworkLogin, Unsupported
from ..core.context import BridgeContext
from ..core.events import ChatInfo
from ..core.ids import LoginID, NetworkID, PortalKey, RemoteChatID, UserID
from ..core.linking import LinkError, link_chat
from ..core.login_status import user_logins
from .http import (
    MAX_BODY_BYTES,
    ApiError,
    auth_middleware,
    error_middleware,
    json_object,
    matrix_user,
    query_number,
    text_field,
)
from .sessions import LoginSessions, ProcessGone, login_json

log = logging.getLogger("bridge.provisioning")

PREFIX = "/_hubbridge/provision/v1"
OPENAPI_PATH = "/openapi.json"
MAX_WAIT_SECONDS = 30

_LINK_ERROR_STATUS = {
    "bad_room_id": 400,
    "unknown_network": 404,
    "no_login": 404,
    "chat_not_visible": 404,
    "not_in_room": 403,
    "no_power": 403,
    "room_not_joinable": 409,
    "already_linked": 409,
}


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI 3 document (shipped as ``openapi.yaml`` in this package)."""
    text = resources.files(__package__).joinpath("openapi.yaml").read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    document["info"]["version"] = __version__
    return document


class ProvisioningAPI:
    def __init__(self, ctx: BridgeContext, config: ProvisioningConfig) -> None:
        self.ctx = ctx
        self.host, self.port = parse_listen(config.listen, "provisioning.listen")
        self.sessions = LoginSessions(ctx)
        self._openapi = json.dumps(openapi_document())
        self._runner: web.AppRunner | None = None
        self.app = web.Application(
            client_max_size=MAX_BODY_BYTES,
            middlewares=[
                error_middleware(),
                auth_middleware(config.shared_secret, frozenset({OPENAPI_PATH})),
            ],
        )
        r = self.app.router
        r.add_get(OPENAPI_PATH, self.get_openapi)
        r.add_get(PREFIX + "/networks", self.get_networks)
        r.add_get(PREFIX + "/logins", self.get_logins)
        r.add_post(PREFIX + "/login", self.start_login)
        r.add_get(PREFIX + "/login/{process_id}", self.get_login)
        r.add_post(PREFIX + "/login/{process_id}", self.submit_login)
        r.add_delete(PREFIX + "/login/{process_id}", self.cancel_login)
        r.add_delete(PREFIX + "/logins/{network}/{login_id}", self.logout)
        r.add_get(PREFIX + "/logins/{network}/{login_id}/chats", self.get_chats)
        r.add_post(PREFIX + "/portals", self.link)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("Provisioning API at http://%s:%d%s", self.host, self.port, PREFIX)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.sessions.close()

    # Bridge-wide -------------------------------------------------------------------------

    async def get_openapi(self, _: web.Request) -> web.Response:
        return web.Response(text=self._openapi, content_type="application/json")

    async def get_networks(self, _: web.Request) -> web.Response:
        networks = []
        for network_id, connector in sorted(self.ctx.logins.connectors.items()):
            networks.append({
                "id": network_id,
                "display_name": connector.display_name,
                "login_flows": [
                    {"id": f.id, "name": f.name, "description": f.description}
                    for f in connector.login_flows()
                ],
                "capabilities": _capabilities(connector.capabilities),
            })
        return web.json_response({"networks": networks})

    # Logins ------------------------------------------------------------------------------

    async def get_logins(self, request: web.Request) -> web.Response:
        user = matrix_user(request, self.ctx)
        records = await user_logins(self.ctx, user)
        session = self.sessions.pending_of(user)
        return web.json_response({
            "logins": [login_json(r) for r in records],
            "login_in_progress": session.as_json() if session else None,
        })

    async def start_login(self, request: web.Request) -> web.Response:
        user = matrix_user(request, self.ctx)
        body = await json_object(request, {"network", "flow"})
        network = text_field(body, "network")
        flow = text_field(body, "flow", required=False)
        assert network is not None
        try:
            session = await self.sessions.start(user, network.lower(), flow)
        except KeyError as e:
            raise ApiError(404, "HB_UNKNOWN_NETWORK", str(e.args[0])) from None
        return web.json_response(session.as_json())

    async def get_login(self, request: web.Request) -> web.Response:
        user = matrix_user(request, self.ctx)
        wait = query_number(request, "wait", 0, 0, MAX_WAIT_SECONDS)
        session = await self._session(request, user)
        await self.sessions.wait(session, session.version, wait)
        return web.json_response((await self._session(request, user)).as_json())

    async def submit_login(self, request: web.Request) -> web.Response:
        user = matrix_user(request, self.ctx)
        session = await self._session(request, user)
        body = await json_object(request, {"input"})
        text = text_field(body, "input")
        assert text is not None
        try:
            await self.sessions.submit(session, text)
        except ValueError as e:
            raise ApiError(409, "HB_BAD_STATE", str(e)) from None
        return web.json_response(session.as_json())

    async def cancel_login(self, request: web.Request) -> web.Response:
        user = matrix_user(request, self.ctx)
        session = await self._session(request, user)
        await self.sessions.cancel(session)
        return web.json_response(session.as_json())

    async def _session(self, request: web.Request, user: UserID):
        try:
            return await self.sessions.get(user, request.match_info["process_id"])
        except ProcessGone:
            raise ApiError(404, "M_NOT_FOUND", "no such login process (it may have expired)") from None

    async def logout(self, request: web.Request) -> web.Response:
        user = matrix_user(request, self.ctx)
        network, login_id = request.match_info["network"], request.match_info["login_id"]
        login = self._running_login(user, network, login_id)
        if login is not None:
            await self.ctx.logins.logout(login)
        else:
            stored = await self.ctx.db.logins.get(NetworkID(network), LoginID(login_id))
            if stored is None or stored.owner != user:
                raise ApiError(404, "M_NOT_FOUND", "you have no such login")
            await self.ctx.db.logins.delete(stored.network, stored.login_id)
        log.info("Logged out %s on %s through the provisioning API", login_id, network)
        return web.json_response({"logged_out": {"network": network, "login_id": login_id}})

    # Chats and portals ---------------------------------------------------------------------

    async def get_chats(self, request: web.Request) -> web.Response:
        user = matrix_user(request, self.ctx)
        network, login_id = request.match_info["network"], request.match_info["login_id"]
        login = self._running_login(user, network, login_id)
        if login is None:
            raise ApiError(404, "M_NOT_FOUND", "you have no such login running")
        try:
            chats = await login.list_chats()
        except Unsupported:
            raise ApiError(501, "HB_UNSUPPORTED", "this network can't list chats") from None
        except Exception as e:
            log.warning("Listing chats of %s on %s failed: %s", login_id, network, type(e).__name__)
            raise ApiError(502, "HB_NETWORK_ERROR", "the network did not answer the chat list") from None
        return web.json_response({"chats": [await self._chat_json(login, chat) for chat in chats]})

    async def _chat_json(self, login: NetworkLogin, chat: ChatInfo) -> dict[str, Any]:
        portal = await self.ctx.db.portals.get(PortalKey(login.record.network, RemoteChatID(chat.chat_id)))
        return {
            "chat_id": chat.chat_id,
            "name": chat.name,
            "topic": chat.topic,
            "is_direct": chat.is_direct,
            "member_count": len(chat.members),
            "room_id": portal.room_id if portal else None,
        }

    async def link(self, request: web.Request) -> web.Response:
        user = matrix_user(request, self.ctx)
        body = await json_object(request, {"network", "chat_id", "room_id", "login_id"})
        network, chat_id, room_id = (text_field(body, k) for k in ("network", "chat_id", "room_id"))
        login_id = text_field(body, "login_id", required=False)
        assert network is not None and chat_id is not None and room_id is not None
        try:
            result = await link_chat(self.ctx, user, network.lower(), chat_id, room_id, login_id=login_id)
        except LinkError as e:
            status = _LINK_ERROR_STATUS.get(e.code, 400)
            raise ApiError(status, "HB_" + e.code.upper(), e.reason) from None
        portal = result.portal
        if result.created and portal.room_id:
            # What the link command says in the room; here nobody else would tell it.
            chat = result.info.name or portal.key.chat_id
            await self.ctx.matrix.notice(
                portal.room_id,
                f"{user} linked the {result.network_name} chat '{chat}' to this room. Messages "
                "are relayed with display names only.",
            )
        return web.json_response({
            "created": result.created,
            "moved_from": result.moved_from,
            "portal": {
                "network": portal.key.network,
                "chat_id": portal.key.chat_id,
                "room_id": portal.room_id,
                "name": portal.name,
            },
        })

    def _running_login(self, user: str, network: str, login_id: str) -> NetworkLogin | None:
        login = self.ctx.logins.get(NetworkID(network), LoginID(login_id))
        return login if login is not None and login.record.owner == user else None


def _capabilities(caps: Capabilities) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(caps):
        value = getattr(caps, f.name)
        out[f.name] = sorted(v.value for v in value) if isinstance(value, frozenset) else value
    return out
