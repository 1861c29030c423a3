"""Profile the bridge process under one benchmark workload with py-spy.

``python -m bench.profile b`` starts the benchmark's stack, samples the bridge process
while a flood of network -> Matrix messages goes through (``c``: Matrix -> network at the
latency rate) and prints where its CPU time goes: the functions of the bridge and of
the libraries it calls, inclusive and self time. The raw collapsed stacks are kept in
the working directory for flame graphs.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from .stack import BenchStack
from .stages import matrix_to_remote, remote_to_matrix


_IDLE_LEAVES = ("EpollSelector.select", "_connection_worker_thread", "Condition.wait",
                "Queue.get", "Event.wait")
"""Leaf frames of a thread that waits (py-spy counts some of them as active here)."""


def summarize(collapsed: str, top: int = 25) -> str:
    """Inclusive and self sample counts per function from py-spy's collapsed stacks,
    over the samples in which the bridge was working (waiting threads left out)."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if stack.rsplit(";", 1)[-1].startswith(_IDLE_LEAVES):
            idle += count
            continue
        total += count
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1]
                  if " (" in f else f for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"{total} working samples ({idle} waiting samples left out)"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        lines.append(f"-- {title} --")
        lines += [f"{100 * c / total:5.1f}%  {frame}" for frame, c in counter.most_common(top)]
    return "\n".join(lines)


async def profile(stage: str, messages: int, rate: float, workdir: Path) -> str:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    stack = BenchStack(workdir)
    out = workdir / f"profile-{stage}.txt"
    try:
        await stack.start()
        assert stack.bridge is not None and stack.main is not None
        spy = await asyncio.create_subprocess_exec(
            py_spy, "record", "--pid", str(stack.bridge.pid), "--format", "raw",
            "--rate", "250", "--output", str(out), "--nonblocking",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(1)  # py-spy attaches
        if stage == "b":
            await remote_to_matrix.flood_round(stack.main, messages, "pflood", 600)
        else:
            await matrix_to_remote.latency(stack.main, messages, rate, 600, stage="plat")
        spy.send_signal(signal.SIGINT)
        await asyncio.wait_for(spy.wait(), 60)
    finally:
        await stack.stop()
    return summarize(out.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("stage", choices=["b", "c"])
    parser.add_argument("-n", "--messages", type=int, default=600)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hub-profile-"))
    print(asyncio.run(profile(args.stage, args.messages, args.rate, workdir)))
    print(f"(collapsed stacks in {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
