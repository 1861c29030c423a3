"""Runs the stages in order and assembles the one JSON object the benchmark prints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bridge import __version__

from .options import BenchOptions
from .stack import BenchStack, StackOptions
from .stages import ceiling, encrypted, hub_fanout, matrix_to_remote, remote_to_matrix, startup
from .stages.common import FloodResult, combine
from .stats import ratio

log = logging.getLogger("bench")

RATE_HEADROOM = 0.5
"""Latency runs go at most at this fraction of the measured ceiling: above it the
homeserver queues, and the figure would measure the queue, not the bridge."""


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        memory_gib = round(int(first.split()[1]) / 1024 / 1024, 1)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": memory_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "synapse": _version("matrix-synapse"),
        "mautrix": _version("mautrix"),
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _split(total: int, rounds: int) -> list[int]:
    base, extra = divmod(total, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds) if base or i < extra]


async def run(opts: BenchOptions) -> dict[str, Any]:
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="hub-bench-"))
    result: dict[str, Any] = {
        "benchmark": "hub-bridge",
        "bridge_version": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "load_average_at_start": list(os.getloadavg()),
        "options": {
            "messages": opts.messages, "rate": opts.rate, "rounds": opts.rounds,
            "latency_seconds": opts.latency_seconds,
            "chats": opts.chats, "senders": opts.senders, "portals": opts.portals,
            "ghosts": opts.ghosts, "db_messages": opts.db_messages,
            "synapse_database": "postgres" if opts.synapse_postgres else "sqlite",
            "stages": list(opts.stages),
        },
    }
    stack = BenchStack(workdir, StackOptions(chats=opts.chats, senders=opts.senders,
                                             synapse_postgres=opts.synapse_postgres,
                                             encrypted="d" in opts.stages,
                                             hub="e" in opts.stages))
    started = time.perf_counter()
    try:
        await stack.start()
        result["setup_seconds"] = round(time.perf_counter() - started, 1)
        result["bridge_ready_seconds"] = round(stack.bridge_ready_s, 2)
        await _run_stages(stack, opts, result)
    finally:
        await stack.stop()
        if opts.workdir is None and not opts.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif opts.keep or opts.workdir:
            result["workdir"] = str(workdir)
    result["load_average_at_end"] = list(os.getloadavg())
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    result["ratios"] = {
        "b_over_a": ratio(_get(result, "b_network_to_matrix", "throughput_msgs_per_s"),
                          _get(result, "a_ceiling", "throughput_msgs_per_s")),
        "d_over_b": ratio(
            _get(result, "d_encrypted", "network_to_matrix", "throughput_msgs_per_s"),
            _get(result, "b_network_to_matrix", "throughput_msgs_per_s")),
        "d_over_c": ratio(
            _get(result, "d_encrypted", "matrix_to_network", "throughput_msgs_per_s"),
            _get(result, "c_matrix_to_network", "throughput_msgs_per_s")),
    }
    result["targets"] = _targets(result)
    return result


async def _run_stages(stack: BenchStack, opts: BenchOptions, result: dict[str, Any]) -> None:
    stages, n, timeout = set(opts.stages), opts.messages, opts.stage_timeout
    plain, crypt = stack.main, stack.encrypted
    assert plain is not None and (crypt is not None or "d" not in stages)
    # The floods of (a), (b) and (d) alternate round by round, so a change in the
    # machine's load (it is shared) hits all alike and their ratios stay fair.
    a_rounds: list[FloodResult] = []
    b_rounds: list[FloodResult] = []
    d_rounds: list[FloodResult] = []
    for r, count in enumerate(_split(n, opts.rounds)):
        if "a" in stages:
            a_rounds.append(await ceiling.flood_round(stack, count, f"aflood{r}", timeout))
        if "b" in stages:
            b_rounds.append(await remote_to_matrix.flood_round(plain, count, f"bflood{r}",
                                                               timeout))
        if crypt is not None:
            d_rounds.append(await remote_to_matrix.flood_round(crypt, count, f"dflood{r}",
                                                               timeout))
    rate = opts.rate
    if a_rounds:
        result["a_ceiling"] = combine(a_rounds)
        ceiling_rate = result["a_ceiling"]["throughput_msgs_per_s"] or 0
        if not opts.no_rate_cap and rate > ceiling_rate * RATE_HEADROOM:
            rate = max(1.0, round(ceiling_rate * RATE_HEADROOM))
            result["latency_rate_note"] = (
                f"the homeserver's own ceiling here is {ceiling_rate} msg/s, so the latency "
                f"runs use {rate:g} msg/s (half of it) instead of the requested {opts.rate:g}")
    result["latency_rate_msgs_per_s"] = rate
    latency_n = max(1, min(n, int(rate * opts.latency_seconds)))
    result["latency_messages"] = latency_n
    if "a" in stages:
        result["a_ceiling"]["latency"] = await ceiling.latency(stack, latency_n, rate, timeout)
    if "b" in stages:
        result["b_network_to_matrix"] = combine(b_rounds)
        result["b_network_to_matrix"]["latency"] = await remote_to_matrix.latency(
            plain, latency_n, rate, timeout)
        result["b_network_to_matrix"]["bridge_rss_mib"] = plain.bridge.rss_mib()[0]
    d: dict[str, Any] = {}
    if crypt is not None:
        d["network_to_matrix"] = combine(d_rounds)
        d["network_to_matrix"]["latency"] = await remote_to_matrix.latency(
            crypt, latency_n, rate, timeout, stage="dlat")
    if "c" in stages or crypt is not None:
        await _matrix_to_network(stack, opts, latency_n, rate, result, d)
    if crypt is not None:
        d.update(encrypted.checks(crypt))
        result["d_encrypted"] = d
    if "e" in stages:
        assert stack.hub is not None
        # One room at the rate each of the (b)/(c) rooms gets (see stages/hub_fanout.py).
        hub_rate = rate / opts.chats
        hub_n = max(1, min(n, int(hub_rate * opts.latency_seconds)))
        result["e_hub_fanout"] = await hub_fanout.run(plain, stack.hub, hub_n, hub_rate, n,
                                                      timeout)
    if "f" in stages:
        result["f_startup"] = await asyncio.wait_for(startup.run(stack, opts), timeout * 2)


async def _matrix_to_network(stack: BenchStack, opts: BenchOptions, latency_n: int, rate: float,
                             result: dict[str, Any], d: dict[str, Any]) -> None:
    """(c), and (d) in the same direction: latency runs, then floods alternating."""
    timeout, plain, crypt = opts.stage_timeout, stack.main, stack.encrypted
    assert plain is not None
    run_c = "c" in opts.stages
    c: dict[str, Any] = {}
    if run_c:
        c["latency"] = await matrix_to_remote.latency(plain, latency_n, rate, timeout)
    if crypt is not None:
        d["matrix_to_network"] = {"latency": await matrix_to_remote.latency(
            crypt, latency_n, rate, timeout, stage="dmlat")}
    since = time.perf_counter()
    c_rounds: list[FloodResult] = []
    d_rounds: list[FloodResult] = []
    for r, count in enumerate(_split(opts.messages, opts.rounds)):
        if run_c:
            c_rounds.append(await matrix_to_remote.flood_round(plain, count, f"cflood{r}",
                                                               timeout))
        if crypt is not None:
            d_rounds.append(await matrix_to_remote.flood_round(crypt, count, f"dmflood{r}",
                                                               timeout))
    if run_c:
        c.update(combine(c_rounds))
        c["flood_transaction_answer"] = matrix_to_remote.flood_transactions(
            plain, since, c_rounds)
        result["c_matrix_to_network"] = c
    if crypt is not None:
        d["matrix_to_network"].update(combine(d_rounds))
        d["matrix_to_network"]["flood_transaction_answer"] = matrix_to_remote.flood_transactions(
            crypt, since, d_rounds)


def _get(result: dict[str, Any], *path: str) -> Any:
    value: Any = result
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    """Each target of the performance issue: the figure, the bound and whether it is met."""

    def check(value: Any, bound: float, at_most: bool) -> dict[str, Any]:
        met = None if value is None else (value <= bound if at_most else value >= bound)
        return {"value": value, ("max" if at_most else "min"): bound, "met": met}

    targets = {
        "b_over_a_throughput": check(_get(result, "ratios", "b_over_a"), 0.9, False),
        "bridge_added_latency_p99_ms": check(
            _get(result, "b_network_to_matrix", "latency", "bridge_added", "p99_ms"), 15, True),
        "transaction_answer_p99_ms": check(
            _get(result, "c_matrix_to_network", "latency", "transaction_answer", "p99_ms"),
            5, True),
        "d_over_b_throughput": check(_get(result, "ratios", "d_over_b"), 0.8, False),
    }
    for backend in ("sqlite", "postgres"):
        full = _get(result, "f_startup", backend, "full")
        if isinstance(full, dict):
            targets[f"startup_s_{backend}"] = check(full.get("first_message_delivered_s"), 3, True)
            targets[f"rss_mib_{backend}"] = check(full.get("peak_rss_mib"), 150, True)
    return targets
