"""The README's benchmark command runs every stage and prints the figures it promises,
the encrypted (d) and hub (e) stages included (a small run: this checks the command, not
the machine's speed)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.support.postgres import POSTGRES_ENV


async def test_bench_command_prints_every_stage_and_the_ratios(tmp_path: Path) -> None:
    # PostgreSQL where the run has it (always in CI, see scripts/test.sh).
    postgres = os.environ.get(POSTGRES_ENV) or "none"
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
    d = result["d_encrypted"]
    assert d["rooms_encrypted"] is True and d["events_left_undecrypted"] == 0
    assert d["messages_decrypted_by_client"] >= 2 * 24  # the flood and the latency run
    for direction in ("network_to_matrix", "matrix_to_network"):
        assert d[direction]["throughput_msgs_per_s"] > 0 and d[direction]["messages"] == 24
        assert d[direction]["latency"]["end_to_end"]["n"] == 24
    assert d["network_to_matrix"]["latency"]["bridge_added"]["n"] == 24
    assert d["matrix_to_network"]["latency"]["transaction_answer"]["n"] >= 1
    assert result["ratios"]["d_over_b"] > 0 and result["ratios"]["d_over_c"] > 0
    e = result["e_hub_fanout"]
    assert e["chats"] == 3
    assert e["from_chat"]["all_other_chats"]["n"] == e["from_matrix"]["all_chats"]["n"] >= 1
    assert set(e["from_chat"]["per_chat"]) == {"lbtwo", "lbthree"}
    assert e["from_chat_flood"]["throughput_msgs_per_s"] > 0
    assert e["from_chat"]["all_other_chats"]["p99_ms"] >= e["from_chat"]["all_other_chats"]["p50_ms"] > 0
    for backend in ("sqlite",) + (("postgres",) if postgres != "none" else ()):
        full = result["f_startup"][backend]["full"]
        assert full["first_message_delivered_s"] > 0
        assert full["peak_rss_mib"] > 0
        assert full["probe_transaction_answer"]["n"] == 5
