"""The provisioning API's HTTP plumbing: authentication, errors and request parsing.

Every error is JSON, ``{"errcode": "...", "error": "..."}``, with Matrix-style codes
where Matrix has one (``M_MISSING_TOKEN``, ``M_UNKNOWN_TOKEN``, ``M_NOT_JSON``, ...) and
``HB_...`` codes for the bridge's own.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..core.context import BridgeContext
from ..core.ids import UserID

log = logging.getLogger("bridge.provisioning")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY_BYTES = 64 * 1024
MAX_FIELD_LENGTH = 4096
# Printable ASCII localpart (historical ids allow all of it), then a server name with an
# optional port. The OpenAPI document has the same pattern: keep them equal.
_USER_ID = re.compile(r"^@[!-9;-~]+:[A-Za-z0-9.:\[\]-]+$")


class ApiError(Exception):
    def __init__(self, status: int, errcode: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message
        self.headers = headers or {}


def error_response(status: int, errcode: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status, headers=headers)


_HTTP_ERRCODES = {404: "M_NOT_FOUND", 405: "M_UNRECOGNIZED", 413: "M_TOO_LARGE"}


def error_middleware() -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def handle_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            return error_response(e.status, e.errcode, e.message, e.headers)
        except web.HTTPException as e:  # the router's 404 and 405, aiohttp's 413
            if e.status < 400:
                raise
            headers = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
            return error_response(
                e.status, _HTTP_ERRCODES.get(e.status, "M_UNKNOWN"), e.reason, headers
            )
        except Exception:
            log.exception("Provisioning request %s %s failed", request.method, request.path)
            return error_response(500, "M_UNKNOWN", "internal error")

    return handle_errors


def auth_middleware(
    shared_secret: str, public_paths: frozenset[str]
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Require ``Authorization: Bearer <shared_secret>`` (compared in constant time)."""
    secret = shared_secret.encode("utf-8")

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in public_paths and request.method in ("GET", "HEAD"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise ApiError(401, "M_MISSING_TOKEN", "Authorization: Bearer <shared secret> is required",
                           {"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(header.removeprefix("Bearer ").encode("utf-8"), secret):
            raise ApiError(403, "M_UNKNOWN_TOKEN", "wrong shared secret")
        return await handler(request)

    return check_token


def matrix_user(request: web.Request, ctx: BridgeContext) -> UserID:
    """The ``user_id`` query parameter: a Matrix user allowed to log in to networks."""
    value = request.query.get("user_id")
    if not value:
        raise ApiError(400, "M_MISSING_PARAM", "the user_id query parameter is required")
    if len(value) > 255 or not _USER_ID.match(value):
        raise ApiError(400, "M_INVALID_PARAM", "user_id must be a Matrix user id (@user:server)")
    if value == ctx.matrix.bot_mxid or ctx.ghost_ids.parse(value) is not None:
        raise ApiError(403, "M_FORBIDDEN", "the bridge's own users can't use the bridge")
    if not ctx.permission_at_least(value, "user"):
        raise ApiError(403, "M_FORBIDDEN", f"{value} may not log in to networks on this bridge")
    return UserID(value)


def query_number(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "M_INVALID_PARAM", f"{name} must be a number") from None
    if not low <= value <= high:
        raise ApiError(400, "M_INVALID_PARAM", f"{name} must be between {low:g} and {high:g}")
    return value


async def json_object(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    """The request body as a JSON object holding only ``allowed`` keys."""
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "M_NOT_JSON", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "M_BAD_JSON", "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, "M_BAD_JSON", f"unknown field(s): {', '.join(unknown)}")
    return body


def text_field(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    """A string field; an optional one may be left out, but not be null."""
    if name not in body:
        if required:
            raise ApiError(400, "M_BAD_JSON", f"'{name}' is required")
        return None
    value = body[name]
    if not isinstance(value, str):
        raise ApiError(400, "M_BAD_JSON", f"'{name}' must be a string")
    if not value or len(value) > MAX_FIELD_LENGTH:
        raise ApiError(400, "M_BAD_JSON", f"'{name}' must be 1 to {MAX_FIELD_LENGTH} characters")
    return value
