"""Small statistics: percentiles and summaries of latency samples (pure code)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method.

    Nearest rank never invents a value between two samples, so a p99 is a latency that
    some message really had.
    """
    if not samples:
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize_ms(samples_s: Sequence[float]) -> dict[str, Any]:
    """p50/p90/p99/max/mean in milliseconds (rounded to 0.1 ms) of samples in seconds."""
    if not samples_s:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None,
                "mean_ms": None}
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p90_ms": round(percentile(ms, 90), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(sum(ms) / len(ms), 1),
    }


def rate(count: int, seconds: float) -> float | None:
    """Events per second, rounded to 0.1; None when nothing was timed."""
    if seconds <= 0 or count <= 0:
        return None
    return round(count / seconds, 1)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator rounded to 0.001, or None when either is missing."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)
