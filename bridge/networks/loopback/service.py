"""HTTP+JSON front end of the loopback network (see docs/loopback-api.md).

Run ``python -m bridge.networks.loopback.service --port 29410``. Admin endpoints have
no authentication, so the service is meant to listen on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .model import ApiError, bad_request
from .state import ServiceState

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 29410
MAX_BODY = 64 * 1024 * 1024  # base64 media travels inside JSON, so allow big bodies
MAX_POLL_TIMEOUT = 60.0

STATE_KEY = web.AppKey("loopback_state", ServiceState)


class Waiters:
    """Parked long polls, woken when their user's event log grows."""

    def __init__(self) -> None:
        self._by_user: dict[str, set[asyncio.Future[str]]] = {}

    def _resolve(self, futures: set[asyncio.Future[str]], outcome: str) -> int:
        woken = 0
        for fut in futures:
            if not fut.done():
                fut.set_result(outcome)
                woken += 1
        return woken

    def wake(self, user_id: str) -> None:
        self._resolve(self._by_user.get(user_id, set()), "event")

    def resolve_all(self, outcome: str) -> int:
        """End every parked poll with ``outcome``; returns how many were parked."""
        return sum(self._resolve(futs, outcome) for futs in self._by_user.values())

    async def wait(self, user_id: str, timeout: float) -> str:
        """Park until an event arrives ("event"), a drop/shutdown, or "timeout"."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        parked = self._by_user.setdefault(user_id, set())
        parked.add(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return "timeout"
        finally:
            parked.discard(fut)


WAITERS_KEY = web.AppKey("loopback_waiters", Waiters)

_STATUS_ERRCODES = {401: "LB_UNAUTHORIZED", 403: "LB_FORBIDDEN", 404: "LB_NOT_FOUND"}


def _error_response(err: ApiError) -> web.Response:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(0, round(err.retry_after)))
    return web.json_response(err.to_json(), status=err.status, headers=headers)


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer every failure with the JSON error shape, including aiohttp's own 404/405/413."""
    try:
        return await handler(request)
    except ApiError as err:
        return _error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        default = "LB_FAILED" if exc.status >= 500 else "LB_BAD_REQUEST"
        errcode = _STATUS_ERRCODES.get(exc.status, default)
        message = exc.reason
        if exc.status == 404:
            message = f"no route for {request.method} {request.path}"
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        return _error_response(ApiError(exc.status, errcode, message))
    except Exception:
        log.exception("loopback: unhandled error in %s %s", request.method, request.path)
        return _error_response(ApiError(500, "LB_FAILED", "internal error"))


# --- request helpers -----------------------------------------------------------------


def _state(request: web.Request) -> ServiceState:
    return request.app[STATE_KEY]


def _caller(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return _state(request).authenticate(token.strip() if scheme.lower() == "bearer" else None).id


def _sender(request: web.Request) -> str:
    """Authenticate a send/edit/delete/react call and apply any injected fault to it."""
    caller = _caller(request)
    fault = _state(request).faults.take_send_fault()
    if fault is not None:
        raise fault
    return caller


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise bad_request("request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None


def _query_number(request: web.Request, name: str, default: float, cap: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise bad_request(f"query parameter '{name}' must be a number") from None
    if not value >= 0:  # also rejects NaN
        raise bad_request(f"query parameter '{name}' must be >= 0")
    return min(value, cap)


def _ok(body: Any = None, status: int = 200) -> web.Response:
    return web.json_response({} if body is None else body, status=status)


def _media_response(request: web.Request) -> web.Response:
    media = _state(request).get_media(request.match_info["media_id"])
    return web.Response(body=media.data, headers={"Content-Type": media.mime})


def _history(request: web.Request) -> web.Response:
    limit = request.query.get("limit", "50")
    if not (limit.isascii() and limit.isdigit()) or int(limit) < 1:
        raise bad_request("query parameter 'limit' must be a positive integer")
    msgs = _state(request).history(
        request.match_info["chat_id"], min(int(limit), 500), request.query.get("before")
    )
    return _ok([m.to_json() for m in msgs])


routes = web.RouteTableDef()

# --- admin ---------------------------------------------------------------------------


@routes.post("/admin/users")
async def admin_create_user(request: web.Request) -> web.Response:
    user = _state(request).create_user(await _body(request))
    return _ok({"id": user.id, "token": user.token}, status=201)


@routes.get("/admin/users")
async def admin_list_users(request: web.Request) -> web.Response:
    return _ok([u.with_token() for u in _state(request).users.values()])


@routes.get("/admin/users/{user_id}")
async def admin_get_user(request: web.Request) -> web.Response:
    return _ok(_state(request).user(request.match_info["user_id"]).with_token())


@routes.patch("/admin/users/{user_id}")
async def admin_update_user(request: web.Request) -> web.Response:
    user = _state(request).update_user(request.match_info["user_id"], await _body(request))
    return _ok(user.with_token())


@routes.post("/admin/chats")
async def admin_create_chat(request: web.Request) -> web.Response:
    chat = _state(request).create_chat(await _body(request))
    return _ok({"id": chat.id}, status=201)


@routes.get("/admin/chats")
async def admin_list_chats(request: web.Request) -> web.Response:
    return _ok([c.to_json() for c in _state(request).chats.values()])


@routes.get("/admin/chats/{chat_id}")
async def admin_get_chat(request: web.Request) -> web.Response:
    return _ok(_state(request).chat(request.match_info["chat_id"]).to_json())


@routes.get("/admin/chats/{chat_id}/messages")
async def admin_history(request: web.Request) -> web.Response:
    return _history(request)


@routes.get("/admin/media/{media_id}")
async def admin_media(request: web.Request) -> web.Response:
    return _media_response(request)


@routes.get("/admin/faults")
async def admin_get_faults(request: web.Request) -> web.Response:
    return _ok(_state(request).faults.to_json())


@routes.post("/admin/faults")
async def admin_set_faults(request: web.Request) -> web.Response:
    body = await _body(request)
    faults = _state(request).set_faults(body)
    # A drop hits the polls parked right now; with none parked it stays armed for the next.
    if faults.drop_event_streams and request.app[WAITERS_KEY].resolve_all("drop"):
        faults.drop_event_streams = False
    return _ok(faults.to_json())


@routes.delete("/admin/faults")
async def admin_clear_faults(request: web.Request) -> web.Response:
    _state(request).clear_faults()
    return _ok(_state(request).faults.to_json())


# --- user: profiles and chats --------------------------------------------------------


@routes.get("/me")
async def me(request: web.Request) -> web.Response:
    return _ok(_state(request).user(_caller(request)).public())


@routes.get("/users/{user_id}")
async def get_user(request: web.Request) -> web.Response:
    user = _state(request).visible_user(_caller(request), request.match_info["user_id"])
    return _ok(user.public())


@routes.get("/chats")
async def list_chats(request: web.Request) -> web.Response:
    return _ok([c.to_json() for c in _state(request).chats_of(_caller(request))])


@routes.post("/chats")
async def create_chat(request: web.Request) -> web.Response:
    caller = _caller(request)
    chat = _state(request).create_chat(await _body(request), creator=caller)
    return _ok({"id": chat.id, "invite_link": f"loopback://join/{chat.id}"}, status=201)


@routes.get("/chats/{chat_id}")
async def get_chat(request: web.Request) -> web.Response:
    chat = _state(request).member_chat(_caller(request), request.match_info["chat_id"])
    return _ok(chat.to_json())


@routes.patch("/chats/{chat_id}")
async def update_chat(request: web.Request) -> web.Response:
    caller = _caller(request)
    chat = _state(request).update_chat(caller, request.match_info["chat_id"], await _body(request))
    return _ok(chat.to_json())


@routes.post("/chats/{chat_id}/members")
async def add_member(request: web.Request) -> web.Response:
    caller = _caller(request)
    chat = _state(request).add_member(caller, request.match_info["chat_id"], await _body(request))
    return _ok(chat.to_json())


@routes.delete("/chats/{chat_id}/members/{user_id}")
async def remove_member(request: web.Request) -> web.Response:
    m = request.match_info
    _state(request).remove_member(_caller(request), m["chat_id"], m["user_id"])
    return _ok()


# --- user: messages ------------------------------------------------------------------


@routes.post("/chats/{chat_id}/messages")
async def post_message(request: web.Request) -> web.Response:
    caller = _sender(request)
    msg, created = _state(request).post_message(
        caller, request.match_info["chat_id"], await _body(request)
    )
    return _ok({"id": msg.id}, status=201 if created else 200)


@routes.get("/chats/{chat_id}/messages")
async def history(request: web.Request) -> web.Response:
    _state(request).member_chat(_caller(request), request.match_info["chat_id"])
    return _history(request)


@routes.patch("/chats/{chat_id}/messages/{message_id}")
async def edit_message(request: web.Request) -> web.Response:
    caller, m = _sender(request), request.match_info
    msg = _state(request).edit_message(caller, m["chat_id"], m["message_id"], await _body(request))
    return _ok(msg.to_json())


@routes.delete("/chats/{chat_id}/messages/{message_id}")
async def delete_message(request: web.Request) -> web.Response:
    caller, m = _sender(request), request.match_info
    _state(request).delete_message(caller, m["chat_id"], m["message_id"])
    return _ok()


async def _react(request: web.Request, on: bool) -> web.Response:
    caller, m = _sender(request), request.match_info
    msg = _state(request).set_reaction(caller, m["chat_id"], m["message_id"], m["emoji"], on)
    return _ok(msg.to_json())


@routes.put("/chats/{chat_id}/messages/{message_id}/reactions/{emoji}")
async def add_reaction(request: web.Request) -> web.Response:
    return await _react(request, True)


@routes.delete("/chats/{chat_id}/messages/{message_id}/reactions/{emoji}")
async def remove_reaction(request: web.Request) -> web.Response:
    return await _react(request, False)


@routes.post("/chats/{chat_id}/typing")
async def typing(request: web.Request) -> web.Response:
    caller = _caller(request)
    _state(request).typing(caller, request.match_info["chat_id"], await _body(request))
    return _ok()


@routes.post("/chats/{chat_id}/read")
async def mark_read(request: web.Request) -> web.Response:
    caller = _caller(request)
    _state(request).mark_read(caller, request.match_info["chat_id"], await _body(request))
    return _ok()


@routes.get("/media/{media_id}")
async def media(request: web.Request) -> web.Response:
    _caller(request)
    return _media_response(request)


# --- user: events --------------------------------------------------------------------


def _dropped() -> ApiError:
    return ApiError(503, "LB_UNAVAILABLE", "event stream dropped (injected fault)")


@routes.get("/events")
async def events(request: web.Request) -> web.Response:
    state, caller = _state(request), _caller(request)
    timeout = _query_number(request, "timeout", 30.0, MAX_POLL_TIMEOUT)
    if state.faults.drop_event_streams:  # armed while no poll was parked: hit this one
        state.faults.drop_event_streams = False
        raise _dropped()
    pending = state.pending_events(caller)
    if not pending and timeout > 0:
        if await request.app[WAITERS_KEY].wait(caller, timeout) == "drop":
            raise _dropped()
        pending = state.pending_events(caller)
    return _ok({"events": pending})


@routes.post("/events/ack")
async def ack(request: web.Request) -> web.Response:
    caller = _caller(request)
    return _ok({"acked": _state(request).ack(caller, await _body(request))})


# --- app and entry point -------------------------------------------------------------


def create_app(state: ServiceState | None = None) -> web.Application:
    """Build the loopback network's aiohttp application around ``state`` (fresh if None)."""
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY)
    state = state if state is not None else ServiceState()
    waiters = Waiters()
    state.listeners.append(waiters.wake)
    app[STATE_KEY] = state
    app[WAITERS_KEY] = waiters
    app.add_routes(routes)

    async def release_polls(_app: web.Application) -> None:
        # parked polls would otherwise hold shutdown up for their whole timeout
        waiters.resolve_all("shutdown")

    app.on_shutdown.append(release_polls)
    return app


async def serve(state: ServiceState, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM, announcing the bound address on stdout."""
    runner = web.AppRunner(create_app(state))
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_port = runner.addresses[0][1]  # the real one when port 0 was asked for
        shown = f"[{host}]" if ":" in host else host
        print(f"loopback network listening on http://{shown}:{bound_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m bridge.networks.loopback.service",
        description="Run the loopback network, a simulated chat service (in memory).",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="bind address (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--seed", type=Path, help='JSON file {"users": [...], "chats": [...]}')
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    state = ServiceState()
    if args.seed is not None:
        try:
            state.load_seed(json.loads(args.seed.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            print(f"cannot read seed file {args.seed}: {exc}", file=sys.stderr)
            return 2
        except ApiError as exc:
            print(f"bad seed file {args.seed}: {exc.message}", file=sys.stderr)
            return 2
    try:
        asyncio.run(serve(state, args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
