"""The benchmark's options (``python -m bench --help``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

ALL_STAGES = ("a", "b", "c", "d", "e", "f")
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"


@dataclass
class BenchOptions:
    messages: int = 1000
    """N: messages per measurement (each flood and each rate-controlled run)."""
    rate: float = 100.0
    """Messages per second of the latency runs."""
    latency_seconds: float = 60.0
    """A latency run sends at most ``rate * latency_seconds`` messages (bounds the run
    time when the rate had to be lowered to the homeserver's ceiling)."""
    rounds: int = 3
    """The floods are split into this many rounds, (a) and (b) alternating."""
    no_rate_cap: bool = False
    """Keep ``rate`` even above half the measured ceiling (the homeserver then queues)."""
    synapse_postgres: str | None = None
    """Run Synapse on a throwaway database on this PostgreSQL server instead of SQLite."""
    chats: int = 4
    """Chats (portal rooms) the messages are spread over; each keeps its order."""
    senders: int = 8
    """Remote people (ghosts) sending the messages."""
    portals: int = 10_000
    ghosts: int = 100_000
    db_messages: int = 100_000
    """Message id mappings in the start-up database, besides portals and ghosts."""
    probe_messages: int = 200
    """Transactions sent to the freshly started bridge to see what one message costs."""
    postgres: str | None = DEFAULT_POSTGRES
    """A PostgreSQL server to create a throwaway database on; None skips PostgreSQL."""
    stages: tuple[str, ...] = ALL_STAGES
    workdir: Path | None = None
    keep: bool = False
    stage_timeout: float = 300.0


def parse_options(argv: list[str] | None = None) -> BenchOptions:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the bridge against Synapse's own ceiling; prints one JSON object.",
    )
    d = BenchOptions()
    parser.add_argument("-n", "--messages", type=int, default=d.messages,
                        help=f"messages per measurement (default {d.messages})")
    parser.add_argument("--rate", type=float, default=d.rate,
                        help=f"messages/s of the latency runs (default {d.rate:g})")
    parser.add_argument("--latency-seconds", type=float, default=d.latency_seconds,
                        help="longest a latency run may send for (default 60)")
    parser.add_argument("--rounds", type=int, default=d.rounds,
                        help="split each flood into this many rounds (default 3)")
    parser.add_argument("--no-rate-cap", action="store_true",
                        help="keep --rate even above half the homeserver's measured ceiling")
    parser.add_argument("--synapse-postgres", metavar="URL",
                        help="run Synapse on PostgreSQL (a throwaway database on this server)")
    parser.add_argument("--chats", type=int, default=d.chats, help="chats/rooms (default 4)")
    parser.add_argument("--senders", type=int, default=d.senders, help="senders (default 8)")
    parser.add_argument("--portals", type=int, default=d.portals,
                        help="portals in the start-up database (default 10000)")
    parser.add_argument("--ghosts", type=int, default=d.ghosts,
                        help="ghosts in the start-up database (default 100000)")
    parser.add_argument("--db-messages", type=int, default=d.db_messages,
                        help="message mappings in the start-up database (default 100000)")
    parser.add_argument("--probe-messages", type=int, default=d.probe_messages,
                        help="one-message transactions sent after start-up (default 200)")
    parser.add_argument("--postgres", default=d.postgres,
                        help="PostgreSQL server URL for stage f, or 'none' (default %(default)s)")
    parser.add_argument("--stages", default=",".join(ALL_STAGES),
                        help="comma-separated stages to run (default a,b,c,d,e,f)")
    parser.add_argument("--workdir", type=Path,
                        help="where to keep files (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--stage-timeout", type=float, default=d.stage_timeout,
                        help="seconds any one stage may take (default 300)")
    args = parser.parse_args(argv)
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = [s for s in stages if s not in ALL_STAGES]
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(unknown)}")
    if min(args.messages, args.chats, args.senders, args.rounds) < 1 or args.rate <= 0:
        parser.error("--messages, --rate, --rounds, --chats and --senders must be positive")
    return BenchOptions(
        messages=args.messages,
        rate=args.rate,
        rounds=args.rounds,
        latency_seconds=args.latency_seconds,
        no_rate_cap=args.no_rate_cap,
        synapse_postgres=args.synapse_postgres,
        chats=args.chats,
        senders=args.senders,
        portals=args.portals,
        ghosts=args.ghosts,
        db_messages=args.db_messages,
        probe_messages=args.probe_messages,
        postgres=None if str(args.postgres).lower() in ("none", "") else args.postgres,
        stages=stages,
        workdir=args.workdir,
        keep=args.keep,
        stage_timeout=args.stage_timeout,
    )
