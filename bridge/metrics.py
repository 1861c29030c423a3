"""Prometheus metrics: what the bridge bridged, what failed and why, and how long it took.

Each bridge has its own registry (not prometheus_client's global one), so several bridges
in one process (as in the tests) keep separate counts. Label values come from small fixed
sets (network names, two directions, the failure reasons below), except the queue depth,
which names only the portals that have work waiting at the moment of the scrape.

The endpoint is off by default (``metrics.enabled``); when on, it serves ``GET /metrics``
and asks for ``Authorization: Bearer <metrics.token>`` when a token is configured.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from .config import MetricsConfig, parse_listen

if TYPE_CHECKING:
    from .core.context import BridgeContext

log = logging.getLogger("bridge.metrics")

TO_MATRIX = "to_matrix"
TO_NETWORK = "to_network"

Job = Callable[[], Awaitable[None]]

# Failure reasons, a fixed set so the label can't grow without bound. Matched in order
# against the reason text when the error carries no code of its own.
_REASON_PHRASES: tuple[tuple[str, str], ...] = (
    ("not logged in", "not_logged_in"),
    ("permission", "no_permission"),
    ("too big", "too_big"),
    ("encrypted", "encrypted_media"),
    ("never bridged", "unknown_target"),
    ("doesn't support", "unsupported"),
    ("doesn't accept", "unsupported"),
    ("homeserver", "homeserver"),
)
FAILURE_REASONS = frozenset(
    {reason for _, reason in _REASON_PHRASES}
    | {"network_refused", "rate_limited", "refused", "internal"}
)


def failure_reason(error: BaseException | str) -> str:
    """Sort a failure into one of :data:`FAILURE_REASONS`."""
    from .core.connector import SendError, Unsupported  # the core imports this module

    if isinstance(error, BaseException):
        code = getattr(error, "code", None)
        if isinstance(code, str) and code in FAILURE_REASONS:
            return code
        cause = error.__cause__
        if isinstance(error, SendError) or isinstance(cause, SendError):
            send_error = error if isinstance(error, SendError) else cause
            assert isinstance(send_error, SendError)
            return "rate_limited" if send_error.retry_after is not None else "network_refused"
        if isinstance(error, Unsupported) or isinstance(cause, Unsupported):
            return "unsupported"
        if type(error).__name__ not in ("DeliveryError", "MatrixError", "LinkError"):
            return "internal"
    text = str(error).lower()
    for phrase, reason in _REASON_PHRASES:
        if phrase in text:
            return reason
    return "refused"


class BridgeMetrics:
    """Counters and histograms the core updates; live gauges are read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter(
            "hubbridge_messages_bridged",
            "Messages bridged, by network and direction (to_matrix or to_network)",
            ["network", "direction"],
            registry=self.registry,
        )
        self.failures = Counter(
            "hubbridge_failures",
            "Events that could not be bridged, by network, direction and reason",
            ["network", "direction", "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hubbridge_event_handling_seconds",
            "Seconds from receiving an event to finishing it, waiting in its portal's queue included",
            ["network", "direction"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.decryption_failures = Counter(
            "hubbridge_decryption_failures",
            "Encrypted Matrix events the bridge could not decrypt, by reason",
            ["reason"],
            registry=self.registry,
        )
        self._live: _LiveState | None = None

    def message_bridged(self, network: str, direction: str) -> None:
        self.messages.labels(network, direction).inc()

    def failed(self, network: str, direction: str, error: BaseException | str) -> None:
        self.failures.labels(network, direction, failure_reason(error)).inc()

    def decryption_failed(self, reason: str) -> None:
        self.decryption_failures.labels(reason).inc()

    def timed(self, network: str, direction: str, job: Job) -> Job:
        """Wrap a queued job: its latency counts from now (submission) to its end.

        A job that raises is counted as a failure and the exception passes on.
        """
        submitted = time.monotonic()

        async def run() -> None:
            try:
                await job()
            except Exception as e:
                self.failed(network, direction, e)
                raise
            finally:
                self.latency.labels(network, direction).observe(time.monotonic() - submitted)

        return run

    def watch(self, ctx: BridgeContext) -> None:
        """Report the bridge's logins and queues (read at every scrape)."""
        if self._live is None:
            self._live = _LiveState(ctx)
            self.registry.register(self._live)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveState(Collector):
    """Gauges computed from the bridge's state when scraped, so they can't drift."""

    def __init__(self, ctx: BridgeContext) -> None:
        self.ctx = ctx

    def describe(self) -> list[Any]:
        return []  # unchecked: names are only known at collection time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        logins = GaugeMetricFamily(
            "hubbridge_logins", "Logins by network and state", labels=["network", "state"]
        )
        connected = GaugeMetricFamily(
            "hubbridge_connected_logins", "Logins currently connected", labels=["network"]
        )
        counts: dict[tuple[str, str], int] = {}
        for login in self.ctx.logins.all():
            key = (login.record.network, login.record.state.value)
            counts[key] = counts.get(key, 0) + 1
        for network in sorted(self.ctx.logins.connectors):
            connected.add_metric([network], counts.get((network, "connected"), 0))
        for (network, state), count in sorted(counts.items()):
            logins.add_metric([network, state], count)
        yield logins
        yield connected

        depth = GaugeMetricFamily(
            "hubbridge_queue_depth",
            "Events waiting in a portal's queue (only portals with work waiting are listed)",
            labels=["network", "portal"],
        )
        total = 0
        for key, waiting in sorted(self.ctx.queues.depths().items(), key=lambda kv: str(kv[0])):
            total += waiting
            depth.add_metric([str(getattr(key, "network", "")), str(key)], waiting)
        yield depth
        yield GaugeMetricFamily(
            "hubbridge_queue_depth_total", "Events waiting in all portal queues", value=total
        )


class MetricsServer:
    """``GET /metrics`` over HTTP, with an optional bearer token (constant-time check)."""

    def __init__(self, metrics: BridgeMetrics, config: MetricsConfig) -> None:
        self.metrics = metrics
        self.host, self.port = parse_listen(config.listen, "metrics.listen")
        self._token = config.token.encode("utf-8")
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=1024)
        self.app.router.add_get("/metrics", self._scrape)

    async def _scrape(self, request: web.Request) -> web.Response:
        if self._token:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return web.Response(status=401, text="Bearer token required\n",
                                    headers={"WWW-Authenticate": "Bearer"})
            if not hmac.compare_digest(header.removeprefix("Bearer ").encode("utf-8"), self._token):
                return web.Response(status=403, text="Wrong token\n")
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("Metrics at http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
