"""Request errors and deadlines shared by every service's query layer (no gRPC import here).

A servicer's work function raises `InvalidArgument(field, message)`, `NotFound(field, message)` or
`DeadlineExceeded()`; `twin.core.grpc_server.handle_rpc` maps them to INVALID_ARGUMENT, NOT_FOUND
and DEADLINE_EXCEEDED with details that start with the offending field name. Long computations take
a `Deadline` and call `check()` between chunks, so they stop once the caller gave up.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RequestError(Exception):
    """A request the service refuses; `field` names the offending request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class InvalidArgument(RequestError):
    pass


class NotFound(RequestError):
    pass


class FailedPrecondition(RequestError):
    """The request is well-formed but the twin cannot answer it yet (e.g. no state received)."""


class DeadlineExceeded(RequestError):
    def __init__(self, message: str = "deadline exceeded before the answer was computed") -> None:
        super().__init__("", message)


class Deadline:
    """A monotonic deadline (None = unbounded); `check()` raises DeadlineExceeded once it passed.
    `cancel()` makes the next check fail too (a caller that stopped waiting)."""

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.at = None if seconds is None else clock() + max(0.0, seconds)
        self.cancelled = False

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - self._clock()

    def check(self) -> None:
        if self.cancelled or (self.at is not None and self._clock() >= self.at):
            raise DeadlineExceeded()

    def cancel(self) -> None:
        self.cancelled = True
