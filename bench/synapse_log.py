"""Reads Synapse's access log: when Synapse began handling each message send.

Synapse logs one ``Processed request`` line per request with its end time (ms) and its
duration, and the bridge's send requests carry a deterministic transaction id. Together
they say, per message, when the bridge's request reached Synapse, without a proxy in the
hot path.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

_LINE = re.compile(
    r"^(?P<when>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - synapse\.access\.\S+ - .*?"
    r"Processed request: (?P<real>[\d.]+)sec/.*?\"PUT (?P<path>\S+) HTTP/[\d.]+\""
)
_SEND = re.compile(r"/send/[^/]+/(?P<txn>[^/?]+)")


def parse_send_starts(text: str) -> dict[str, float]:
    """Map each send request's transaction id to the wall-clock time Synapse began it.

    Times are Unix seconds (the log's local time, read back as local time).
    """
    starts: dict[str, float] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        send = _SEND.search(match.group("path"))
        if send is None:
            continue
        end = datetime.strptime(match.group("when"), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        starts[unquote(send.group("txn"))] = end - float(match.group("real"))
    return starts


def read_send_starts(log_path: Path, offset: int = 0) -> dict[str, float]:
    """``parse_send_starts`` over the part of the log after byte ``offset``."""
    with log_path.open("rb") as f:
        f.seek(offset)
        return parse_send_starts(f.read().decode("utf-8", errors="replace"))


def log_size(log_path: Path) -> int:
    try:
        return log_path.stat().st_size
    except FileNotFoundError:
        return 0
