"""How messages are sent: an open-loop sender at a fixed rate, and a flood.

The rate-controlled sender starts message ``i`` at ``t0 + i / rate`` whether or not the
earlier ones are done (open loop), so a slow system shows up as latency instead of
quietly lowering the rate. The flood runs one sequential sender per chat (a chat's
messages must stay in order), all chats at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Send = Callable[[int], Awaitable[None]]
"""Sends message number ``i``."""


async def send_at_rate(count: int, per_second: float, send: Send, timeout: float) -> float:
    """Send ``count`` messages at ``per_second``; return the seconds the schedule took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: list[asyncio.Task[None]] = []
    async with asyncio.timeout(timeout):
        for i in range(count):
            delay = start + i / per_second - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(i)))
        await asyncio.gather(*tasks)
    return loop.time() - start


async def flood(count: int, lanes: int, send: Send, timeout: float) -> float:
    """Send ``count`` messages over ``lanes`` sequential senders; message ``i`` goes to
    lane ``i % lanes``. Returns the seconds until the last send returned."""
    start = time.perf_counter()

    async def lane(index: int) -> None:
        for i in range(index, count, lanes):
            await send(i)

    async with asyncio.timeout(timeout):
        await asyncio.gather(*(lane(k) for k in range(lanes)))
    return time.perf_counter() - start
