"""A client for the signal-cli daemon's JSON-RPC interface (TCP or UNIX socket).

The daemon speaks newline-delimited JSON-RPC 2.0 (signal-cli-jsonrpc(5)): one request or
response per line, with ``receive`` notifications interleaved. It answers requests in
parallel, so several calls may be in flight on one connection. Attachments travel as
base64 inside one line, so the line limit is generous.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger("bridge.networks.signal.rpc")

MAX_LINE_BYTES = 512 * 1024 * 1024
"""The daemon returns attachments base64-encoded in one line."""

# Error codes signal-cli uses (SignalJsonRpcCommandHandler and JSON-RPC itself).
USER_ERROR = -1
IO_ERROR = -3
UNTRUSTED_IDENTITY = -4
RATE_LIMITED = -5
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
"""Also what an unknown ``account`` gets: "Specified account does not exist"."""


class DaemonUnavailable(Exception):
    """The daemon can't be reached, or the connection to it broke."""


class SignalRpcError(Exception):
    """The daemon answered a request with an error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data

    @property
    def response(self) -> dict[str, Any] | None:
        """The partial result signal-cli attaches to some errors (e.g. per-recipient send results)."""
        if isinstance(self.data, dict) and isinstance(self.data.get("response"), dict):
            return self.data["response"]
        return None

    @property
    def unknown_account(self) -> bool:
        return self.code == INVALID_PARAMS and "account" in self.message.lower()


@dataclass(frozen=True)
class DaemonAddress:
    """Where the daemon listens: ``host:port`` (TCP) or a UNIX socket path."""

    host: str | None = None
    port: int | None = None
    path: str | None = None

    @classmethod
    def parse(cls, value: str) -> DaemonAddress:
        """Accepts ``tcp://127.0.0.1:7583``, ``127.0.0.1:7583``, ``unix:///run/x.sock`` or a path."""
        text = value.strip()
        if text.startswith("unix://"):
            return cls(path=text[len("unix://"):])
        if text.startswith("unix:"):
            return cls(path=text[len("unix:"):])
        if text.startswith("/"):
            return cls(path=text)
        text = text.removeprefix("tcp://")
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"not a daemon address: {value!r} (use host:port or a socket path)")
        return cls(host=host.strip("[]") or "127.0.0.1", port=int(port))

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.path else f"{self.host}:{self.port}"


Notification = Callable[[str, Any], None]


class SignalRpc:
    """One connection to the daemon; ``on_notification(method, params)`` gets notifications.

    Use :meth:`open` to connect. When the connection breaks, every pending call raises
    :class:`DaemonUnavailable` and :attr:`closed` is set.
    """

    def __init__(self, address: DaemonAddress, on_notification: Notification | None = None) -> None:
        self.address = address
        self._on_notification = on_notification
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._ids = itertools.count(1)
        self._read_task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_reason = "not connected"

    @classmethod
    async def open(
        cls, address: DaemonAddress, on_notification: Notification | None = None, timeout: float = 10
    ) -> SignalRpc:
        rpc = cls(address, on_notification)
        await rpc._connect(timeout)
        return rpc

    async def _connect(self, timeout: float) -> None:
        try:
            if self.address.path:
                opening = asyncio.open_unix_connection(self.address.path, limit=MAX_LINE_BYTES)
            else:
                opening = asyncio.open_connection(self.address.host, self.address.port, limit=MAX_LINE_BYTES)
            self._reader, self._writer = await asyncio.wait_for(opening, timeout)
        except (OSError, asyncio.TimeoutError) as e:
            self.closed.set()
            raise DaemonUnavailable(
                f"can't reach the signal-cli daemon at {self.address} ({e.__class__.__name__}: {e})"
            ) from None
        self.close_reason = ""
        self._read_task = asyncio.create_task(self._read_loop(), name=f"signal-rpc-{self.address}")

    async def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 120) -> Any:
        """Send one request and return its ``result``; raise :class:`SignalRpcError` on an error."""
        if self._writer is None or self.closed.is_set():
            raise DaemonUnavailable(f"not connected to the signal-cli daemon ({self.close_reason})")
        request_id = next(self._ids)
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params:
            request["params"] = {k: v for k, v in params.items() if v is not None}
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (method, future)
        try:
            self._writer.write(json.dumps(request, separators=(",", ":")).encode() + b"\n")
            await self._writer.drain()
            return await asyncio.wait_for(future, timeout)
        except (ConnectionError, OSError) as e:
            raise DaemonUnavailable(f"the connection to the signal-cli daemon broke ({e})") from None
        except asyncio.TimeoutError:
            raise DaemonUnavailable(f"the signal-cli daemon did not answer {method} in {timeout:.0f} s") from None
        finally:
            self._pending.pop(request_id, None)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        reason = "the daemon closed the connection"
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                self._dispatch(line)
        except asyncio.CancelledError:
            reason = "closed by the bridge"
            raise
        except (ConnectionError, OSError, asyncio.LimitOverrunError, ValueError) as e:
            reason = f"read failed: {e.__class__.__name__}"
        finally:
            self._fail_all(reason)

    def _dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            log.warning("Ignoring a line from the daemon that is not JSON")
            return
        if not isinstance(message, dict):
            return
        if "method" in message and "id" not in message:
            if self._on_notification is not None:
                try:
                    self._on_notification(str(message["method"]), message.get("params"))
                except Exception:
                    log.exception("Handling a %s notification failed", message.get("method"))
            return
        entry = self._pending.get(message.get("id"))  # type: ignore[arg-type]
        if entry is None or entry[1].done():
            return
        method, future = entry
        error = message.get("error")
        if isinstance(error, dict):
            future.set_exception(
                SignalRpcError(
                    method,
                    int(error.get("code") or 0),
                    str(error.get("message") or "unknown error"),
                    error.get("data"),
                )
            )
        else:
            future.set_result(message.get("result"))

    def _fail_all(self, reason: str) -> None:
        self.close_reason = reason
        self.closed.set()
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(DaemonUnavailable(f"the signal-cli daemon connection ended: {reason}"))
        if self._writer is not None:
            self._writer.close()

    async def close(self) -> None:
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task
            self._read_task = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self.closed.set()
