"""The one screen `make run` shows once the stack is up (pure: figures in, lines out; no I/O).

    where to look     console URL, each gRPC port, the database URL, the Kafka bootstrap, the token
    services          per service: up / restarting, restarts, records/s consumed, consumer lag, DLQ
    site              the twins' own one-line answers (power, cooling, jobs), cut to the width
    last alerts       the newest alerts and recommendations, newest first

`render_screen` fits it to `width` x `height` (80 x 24 by default): a long line is cut with "…", and
the alerts get the rows that are left. `rates` turns two offset readings into records per second.
On a terminal the stack redraws it in place (ANSI home + clear); otherwise it prints plain lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

CLEAR = "\x1b[H\x1b[2J"   # cursor home, clear screen (ECMA-48 CUP + ED)


@dataclass(frozen=True)
class Offsets:
    """One reading of a consumer group set: records consumed (committed offsets), lag, DLQ records."""

    at: float          # monotonic seconds
    consumed: int
    lag: int
    dlq: int


@dataclass(frozen=True)
class ServiceRow:
    name: str
    state: str                          # "up", "restarting", "down", "stopped"
    restarts: int = 0
    rate: float | None = None           # records/s consumed (None: not measured yet, or consumes nothing)
    lag: int | None = None
    dlq: int | None = None
    note: str = ""                      # e.g. the probe's error class


@dataclass
class Screen:
    title: str
    where: list[tuple[str, str]]        # (label, value)
    services: list[ServiceRow]
    site: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)   # newest first
    lower_bounds: bool = False          # lag/DLQ read on the embedded broker are lower bounds
    message: str = ""                   # the newest supervisor message (a restart)


def rates(before: Offsets | None, now: Offsets) -> float | None:
    """Records/s consumed between two readings (None without an earlier one or with no time between)."""
    if before is None or now.at <= before.at:
        return None
    return max(now.consumed - before.consumed, 0) / (now.at - before.at)


def cut(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _num(x: float | int | None, lower_bound: bool = False) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.0f}" if x >= 10 or x == 0 else f"{x:,.1f}"
    return (">=" if lower_bound else "") + f"{x:,}"


def render_screen(s: Screen, width: int = 80, height: int = 24) -> list[str]:
    """The screen as at most `height` lines of at most `width` characters."""
    lines = [cut(s.title, width)]
    label_w = max((len(k) for k, _ in s.where), default=0) + 2
    lines += [cut(f"{k:<{label_w}}{v}", width) for k, v in s.where]
    lines.append(cut(f"{'service':<13}{'state':<11}{'restarts':>8}{'records/s':>10}{'lag':>9}{'dlq':>7}", width))
    for r in s.services:
        lag = _num(r.lag, s.lower_bounds)
        dlq = _num(r.dlq, s.lower_bounds)
        row = f"{r.name:<13}{r.state:<11}{r.restarts:>8}{_num(r.rate):>10}{lag:>9}{dlq:>7}"
        lines.append(cut(row + (f"  {r.note}" if r.note else ""), width))
    lines += [cut(x, width) for x in s.site]
    if s.message:
        lines.append(cut(s.message, width))
    room = height - len(lines)
    if room >= 1:
        lines.append(cut("last alerts" + ("" if s.alerts else ": none yet"), width))
        lines += [cut("  " + a, width) for a in s.alerts[: max(room - 1, 0)]]
    return lines[:height]


def plain_rates(services: Sequence[ServiceRow], lower_bounds: bool = False) -> str:
    """The services part as one line (when stdout is not a terminal)."""
    at_least = ">=" if lower_bounds else "="
    parts = []
    for r in services:
        if r.rate is None and r.lag is None:
            parts.append(f"{r.name} {r.state}" + (f" ({r.restarts} restarts)" if r.restarts else ""))
            continue
        parts.append(f"{r.name} {_num(r.rate)}/s lag{at_least}{_num(r.lag)} dlq{at_least}{_num(r.dlq)}"
                     + (f" ({r.restarts} restarts)" if r.restarts else ""))
    return "rates: " + " | ".join(parts)
