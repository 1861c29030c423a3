"""The benchmark's pure parts: percentiles, summaries and Synapse's access-log lines."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.matrix_http import bench_body, parse_bench_body
from bench.stats import percentile, ratio, summarize_ms
from bench.synapse_log import parse_send_starts

samples = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1)


@given(samples, st.floats(min_value=0, max_value=100))
def test_a_percentile_is_one_of_the_samples_and_bounded_by_them(values, q) -> None:
    p = percentile(values, q)
    assert p in values
    assert min(values) <= p <= max(values)


@given(samples)
def test_percentiles_grow_with_q(values) -> None:
    assert percentile(values, 50) <= percentile(values, 90) <= percentile(values, 99)


def test_nearest_rank_percentiles_of_one_to_a_hundred() -> None:
    values = list(range(100, 0, -1))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_is_in_milliseconds_and_empty_samples_give_nulls() -> None:
    summary = summarize_ms([0.001, 0.002, 0.010])
    assert summary["n"] == 3 and summary["p50_ms"] == 2.0 and summary["max_ms"] == 10.0
    assert summarize_ms([])["p99_ms"] is None
    assert ratio(9.0, 10.0) == 0.9 and ratio(None, 10.0) is None and ratio(1.0, 0) is None


@given(st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=12),
       st.integers(min_value=0, max_value=10**9))
def test_bench_bodies_round_trip(stage, seq) -> None:
    assert parse_bench_body(bench_body(stage, seq)) == (stage, seq)
    assert parse_bench_body("hello " + bench_body(stage, seq)) is None


def test_send_start_is_the_log_time_minus_the_request_duration() -> None:
    line = (
        "2026-11-22 21:17:28,455 - synapse.access.http.52745 - 643 - INFO - PUT-130 - "
        "127.0.0.1 - 52745 - {@hub_loopback_bs0:localhost} Processed request: "
        "0.093sec/0.000sec ru=(0.003sec, 0.001sec) db=(0.046sec/0.008sec/17) 59B 200 "
        '"PUT /_matrix/client/v3/rooms/%21abc/send/m.room.message/hub346b?ts=17&'
        'user_id=@hub_loopback_bs0:localhost HTTP/1.1" "hub-bridge" [0 dbevts]'
    )
    other = line.replace("PUT /_matrix/client/v3/rooms/%21abc/send/m.room.message/hub346b",
                         "PUT /_matrix/client/v3/profile/x/displayname")
    starts = parse_send_starts("\n".join([line, other, "unrelated line"]))
    end = time.mktime(datetime(2026, 11, 22, 21, 17, 28).timetuple()) + 0.455
    assert list(starts) == ["hub346b"]
    assert starts["hub346b"] == pytest.approx(end - 0.093, abs=1e-6)
