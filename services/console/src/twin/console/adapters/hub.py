"""Fan-out of the live state to browsers over server-sent events (one connection per browser).

Every `flush_interval_s` the hub takes what changed in the `LiveState` (the newest state per entity,
new events), encodes it ONCE as an SSE frame and queues that frame for every connected browser; so the
cost per browser is one queue put per flush, whatever the event rate, and a browser is at most one
flush interval behind. A new browser first gets a `snapshot` frame (the whole picture), then
`update` frames. A browser that does not keep up (its queue of frames is full) is disconnected; its
EventSource reconnects and starts again from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from twin.console.domain.live import LiveState

log = logging.getLogger("twin.console.hub")


def sse_frame(event: str, data: Any) -> bytes:
    body = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"event: {event}\ndata: {body}\n\n".encode()


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue
    closed: bool = False


@dataclass
class Hub:
    state: LiveState
    flush_interval_s: float = 0.5
    queue_frames: int = 64
    max_subscribers: int = 100
    subscribers: set[Subscriber] = field(default_factory=set)
    frames_sent: int = 0
    dropped: int = 0
    closed: bool = False

    def snapshot_frame(self, extra: dict[str, Any] | None = None) -> bytes:
        return sse_frame("snapshot", {**self.state.snapshot(), **(extra or {})})

    def subscribe(self) -> Subscriber | None:
        """A new browser's queue, starting with the snapshot; None when the hub is full or closed."""
        if self.closed or len(self.subscribers) >= self.max_subscribers:
            return None
        sub = Subscriber(asyncio.Queue(self.queue_frames))
        sub.queue.put_nowait(self.snapshot_frame())
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def flush(self) -> int:
        """Send what changed to every browser; returns the number of browsers it went to."""
        changes = self.state.take_changes()
        if changes is None:
            return 0
        frame = sse_frame("update", changes)
        for sub in list(self.subscribers):
            try:
                sub.queue.put_nowait(frame)
                self.frames_sent += 1
            except asyncio.QueueFull:
                self._drop(sub)
        return len(self.subscribers)

    def _drop(self, sub: Subscriber) -> None:
        self.dropped += 1
        sub.closed = True
        self.subscribers.discard(sub)
        with contextlib.suppress(asyncio.QueueFull):
            sub.queue.put_nowait(None)
        log.warning("a browser fell %d frames behind; disconnected (it reconnects with a fresh snapshot)",
                    self.queue_frames)

    def close(self) -> None:
        """Every browser's stream ends (server shutdown)."""
        self.closed = True
        for sub in list(self.subscribers):
            sub.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)
            if sub.queue.full():  # make room for the end marker
                with contextlib.suppress(asyncio.QueueEmpty):
                    sub.queue.get_nowait()
                sub.queue.put_nowait(None)
        self.subscribers.clear()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.flush_interval_s)
                self.flush()
        finally:
            self.close()
