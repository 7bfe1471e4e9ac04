"""The fabric twin's Kafka side: batch handlers for run_consumer and the fabric.state.v1 publisher.

- `LinkEventHandler` (fabric.events.v1): validates each LinkEvent (known link id, kind set,
  capacity_fraction in 0..1) and rejects the rest to fabric.events.v1.dlq with a reason; applies the
  valid ones to the live state, which writes fabric_state before returning. run_consumer commits the
  offsets only after the handler returned, i.e. after the state write.
- `LinkCounterHandler` (telemetry.samples.v1): takes the batch's link counters (LinkSamples) and
  turns them into utilization. Ports the facility does not know are counted and skipped (a
  telemetry batch is not dead-lettered for a port the fabric does not model); a batch whose
  parallel arrays disagree is rejected.
- `StatePublisher`: FabricState keyed by site_id on every change (coalesced) and every interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from twin.core.clock import Clock, SystemClock
from twin.core.kafka import BatchResult, EventProducer, Record, Rejected
from twin.core.topics import Topic
from twin.fabric.adapters import codec
from twin.fabric.adapters.topology import UnknownLink
from twin.fabric.domain.link_health import event_errors
from twin.fabric.live_state import LiveFabricState
from twin.fabric.simulation import InvalidArgument

log = logging.getLogger("twin.fabric.stream")


class LinkEventHandler:
    def __init__(self, live: LiveFabricState) -> None:
        self.live = live

    def validate(self, record: Record) -> tuple[np.ndarray, codec.LinkEventData] | str:
        ev = codec.link_event(record.message, record.envelope.time)
        if not ev.link_id:
            return "validation: link_id: empty"
        try:
            slots = self.live.index.slots(ev.link_id)
        except UnknownLink as exc:
            return f"validation: link_id: {exc}"
        err = event_errors(np.array([ev.kind]), np.array([ev.capacity_fraction]))[0]
        if err is not None:
            return f"validation: {err}"
        return slots, ev

    async def __call__(self, records: list[Record]) -> BatchResult:
        rejected: list[Rejected] = []
        slots, kinds, caps, times = [], [], [], []
        for rec in records:
            checked = self.validate(rec)
            if isinstance(checked, str):
                rejected.append(Rejected(rec, checked, "validation"))
                continue
            s, ev = checked
            slots.append(s)
            kinds.append(np.full(s.size, ev.kind))
            caps.append(np.full(s.size, ev.capacity_fraction))
            times.append(np.full(s.size, ev.time_s))
        if slots:
            await self.live.apply_events(np.concatenate(slots), np.concatenate(kinds), np.concatenate(caps),
                                         np.concatenate(times))
        return BatchResult(rejected)


class LinkCounterHandler:
    def __init__(self, live: LiveFabricState) -> None:
        self.live = live

    async def __call__(self, records: list[Record]) -> BatchResult:
        rejected: list[Rejected] = []
        slots: list[int] = []
        tx: list[np.ndarray] = []
        rx: list[np.ndarray] = []
        t: list[np.ndarray] = []
        index = self.live.index
        stats = self.live.stats
        for rec in records:
            try:
                ps = codec.port_samples(rec.message, rec.envelope.time)
            except InvalidArgument as exc:
                rejected.append(Rejected(rec, f"validation: {exc}", "validation"))
                continue
            if not ps.port_ids:
                continue
            keep = np.ones(len(ps.port_ids), dtype=bool)
            for i, port in enumerate(ps.port_ids):
                try:
                    slots.append(index.port_slot(port))
                except UnknownLink:
                    keep[i] = False
                    stats.unknown_ports += 1
                    if len(stats.unknown_port_examples) < 10:
                        stats.unknown_port_examples.append(port)
            tx.append(ps.tx_bytes[keep])
            rx.append(ps.rx_bytes[keep])
            t.append(np.full(int(keep.sum()), ps.time_s))
        if slots:
            await self.live.apply_counters(np.asarray(slots, dtype=np.int64), np.concatenate(tx), np.concatenate(rx),
                                           np.concatenate(t))
        return BatchResult(rejected)


class StatePublisher:
    """Publishes the live state on change (at most every `min_interval_s`) and every `interval_s`."""

    def __init__(self, live: LiveFabricState, producer: EventProducer, topic: Topic, *, interval_s: float = 10.0,
                 min_interval_s: float = 0.1, max_links: int = 10_000, clock: Clock | None = None,
                 on_published: Callable[[int], None] | None = None) -> None:
        self.live = live
        self.producer = producer
        self.topic = topic
        self.interval_s = interval_s
        self.min_interval_s = min_interval_s
        self.max_links = max_links
        self.clock = clock or SystemClock()
        self.published = 0
        self.on_published = on_published

    def snapshot_message(self):
        snap = self.live.snapshot()
        return codec.fabric_state(self.live.site_id, self.clock.now().timestamp(), snap.health,
                                  self.live.index.link_id, max_links=self.max_links)

    async def publish_once(self) -> None:
        await self.producer.send(self.topic, self.live.site_id, self.snapshot_message())
        self.published += 1
        if self.on_published:
            self.on_published(self.live.version)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            waiter = asyncio.ensure_future(self.live.changed.wait())
            stopper = asyncio.ensure_future(stop.wait())
            done, pending = await asyncio.wait({waiter, stopper}, timeout=self.interval_s,
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if stop.is_set():
                break
            self.live.changed.clear()
            try:
                await self.publish_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next change or tick publishes again
                log.warning("publishing %s failed: %r", self.topic.name, exc)
                self.live.changed.set()
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.min_interval_s)
