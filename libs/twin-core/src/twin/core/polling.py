"""The polling feed loop (DCGM-exporter scrapes, slurmrestd job lists, any pull-based source).

    await poll_loop(scrape_once, interval_s=10, stop=stop_event, name="dcgm")

`poll()` runs every `interval_s` (± `jitter` share, so many pollers started together spread out)
until `stop` is set. A poll that raises is logged and retried after an exponential backoff
(interval × 2^failures, capped at `max_backoff_s`, with the same jitter); the first success returns
to the normal interval. The loop itself never raises except CancelledError: a broken source must
not take its service down, and its failures are counted in `PollStats` for the status line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("twin.core.polling")


@dataclass
class PollStats:
    polls: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str = ""
    last_success_monotonic: float | None = None


def next_delay_s(interval_s: float, failures: int, max_backoff_s: float, jitter: float,
                 rng: random.Random | None = None) -> float:
    """The wait before the next poll after `failures` consecutive failures (0 = healthy)."""
    base = interval_s if failures == 0 else min(max_backoff_s, interval_s * 2.0 ** failures)
    spread = (rng or random).uniform(-jitter, jitter) if jitter > 0 else 0.0
    return max(0.0, base * (1.0 + spread))


async def poll_loop(poll: Callable[[], Awaitable[object]], *, interval_s: float, stop: asyncio.Event,
                    name: str = "poll", max_backoff_s: float = 300.0, jitter: float = 0.1,
                    stats: PollStats | None = None, rng: random.Random | None = None) -> PollStats:
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    stats = stats or PollStats()
    while not stop.is_set():
        stats.polls += 1
        try:
            await poll()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failing source is retried, never fatal
            stats.failures += 1
            stats.consecutive_failures += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("%s: poll failed (%d in a row): %s", name, stats.consecutive_failures, stats.last_error)
        else:
            stats.consecutive_failures = 0
            stats.last_success_monotonic = time.monotonic()
        delay = next_delay_s(interval_s, stats.consecutive_failures, max_backoff_s, jitter, rng)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
    return stats
