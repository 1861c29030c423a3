"""The README's benchmark command runs every stage and prints the figures it promises
(a small run: this checks the command, not the machine's speed)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.conftest import postgres_url


async def test_bench_command_prints_every_stage_and_the_ratios(tmp_path: Path) -> None:
    postgres = postgres_url() or "none"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench", "-n", "24", "--rounds", "2", "--rate", "20",
        "--portals", "50", "--ghosts", "300", "--db-messages", "100", "--probe-messages", "5",
        "--postgres", postgres, "--workdir", str(tmp_path / "bench"),
        cwd=Path(__file__).resolve().parent.parent,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    result = json.loads(out)

    assert result["machine"]["cpus"] >= 1
    for stage in ("a_ceiling", "b_network_to_matrix", "c_matrix_to_network"):
        assert result[stage]["throughput_msgs_per_s"] > 0
        assert result[stage]["messages"] == 24
    assert result["latency_messages"] == 24
    assert result["b_network_to_matrix"]["latency"]["end_to_end"]["n"] == 24
    assert result["b_network_to_matrix"]["latency"]["bridge_added"]["n"] == 24
    c = result["c_matrix_to_network"]["latency"]
    assert c["end_to_end"]["n"] == 24 and c["transaction_answer"]["n"] >= 1
    assert result["ratios"]["b_over_a"] > 0
    # Stages whose feature is missing say why instead of inventing a figure.
    for stage in ("d", "e"):
        key = {"d": "d_encrypted", "e": "e_hub_fanout"}[stage]
        assert result[key] is not None or result[f"{stage}_reason"]
    for backend in ("sqlite",) + (("postgres",) if postgres != "none" else ()):
        full = result["f_startup"][backend]["full"]
        assert full["first_message_delivered_s"] > 0
        assert full["peak_rss_mib"] > 0
        assert full["probe_transaction_answer"]["n"] == 5
