"""A progress bar on stderr for long operations, drawn only when stderr is a terminal (scripts and
pipes see nothing; --json output on stdout is never mixed with it).

    with Progress(len(points), "sweep") as bar:
        for p in points:
            ...; bar.step(f"{p} °C")
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str, *, stream: TextIO | None = None, enabled: bool | None = None,
                 width: int = 28) -> None:
        self.total, self.label, self.width = max(total, 1), label, width
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self.t0 = time.monotonic()

    def render(self, note: str = "") -> str:
        frac = min(self.done / self.total, 1.0)
        filled = int(round(frac * self.width))
        elapsed = time.monotonic() - self.t0
        return (f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                f"{elapsed:5.1f} s {note}")[:120]

    def step(self, note: str = "") -> None:
        self.done += 1
        if self.enabled:
            self.stream.write("\x1b[2K" + self.render(note))
            self.stream.flush()

    def __enter__(self) -> Progress:
        if self.enabled:
            self.stream.write(self.render())
            self.stream.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.stream.write("\x1b[2K\r")
            self.stream.flush()
