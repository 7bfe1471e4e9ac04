"""The power twin's Kafka side: three batch handlers for ``run_consumer`` (at-least-once: offsets are
committed only after a handler returned, i.e. after its rows were written and its events acknowledged).

    telemetry.samples.v1 (key rack) ──RackHandler──▶ power.state.v1   rack states (key rack)
                                        │          ├▶ power.racks.v1   the same state, key site (stage 2 input)
                                        │          ├▶ power.alerts.v1  suspect sensor (raised, cleared)
                                        │          └▶ power_state      rack rows
    power.racks.v1 (key site) ──────SiteHandler──▶ power.state.v1   PDU, UPS group, UPS, transformer, feed, site
                                                   ├▶ power.alerts.v1  over threshold, redundancy, ramp, unpowered
                                                   │                   (raised, and once ``cleared`` when they end)
                                                   └▶ power_state      aggregate rows
    grid.events.v1 (key event) ─────GridHandler──▶ power.plans.v1   a CurtailmentPlan per curtailment (key site)

Stage 1 is keyed by rack and stage 2 by site, so any number of processes in one consumer group can
share the racks: each rack's contribution is its absolute latest power, and the site's total is
computed by whichever process owns the site's partition of power.racks.v1.

Why not twin.core.stateful (faust tables): its step publishes one output per state key and batch,
but a rack record here has three outputs (its state keyed by rack, the same state keyed by site for
stage 2, maybe an alert), and a site batch publishes every component's state. Until the kit can emit
several outputs per key, these handlers keep their state in memory and rebuild it from storage:
stage 2 loads the site's latest rack states from ``power_state_latest`` the first time it sees the
site (and again after ``restore_after_s`` without a batch for it: the partition may have been
elsewhere meanwhile), so a process that takes a site over starts from every rack's stored value, not
from zero. Stage 1 keeps only the GPUs' last activity, to fill GPUs missing from a batch; a process
that takes a rack over models those GPUs idle until they report (one tick).

Output events carry ``ce_id`` derived from (topic, entity, state time), so a replayed batch repeats
its ids and idempotent sinks drop the copies.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry import trace

from twin.core import topics
from twin.core.kafka import BatchResult, EventProducer, Record, Rejected, replay_topic
from twin.core.telemetry import Causes
from twin.core.topics import Topic
from twin.power.adapters import codec
from twin.power.adapters.codec import CodecError, SiteIndex
from twin.power.domain.alerts import Alert
from twin.power.domain.grid import GridEvent, import_limit_at, upsert
from twin.power.live import RackStage, SiteStage, suspect_alert
from twin.power.v1 import power_pb2 as pb

log = logging.getLogger("twin.power.stream")
_tracer = trace.get_tracer("twin.power")

#: stage 2's input: every rack's PowerState, keyed by site (kit change proposed: register it in twin.core.topics)
RACK_CONTRIBUTIONS = topics.POWER_RACKS  # declared in the registry like every topic

_NS = uuid.UUID("6a1d3f2e-91b4-4c0a-8e57-d2b0c4a9e311")


def ce_id(topic: Topic, msg: pb.PowerState) -> str:
    return str(uuid.uuid5(_NS, f"{topic.name}/{msg.entity_id}/{msg.state_time.ToNanoseconds()}"))


class Store:
    """What the handlers need of storage (PowerStateRepository or InMemoryPowerStore)."""

    async def write(self, states: list[pb.PowerState]) -> int: ...

    async def latest(self, site_id: str, scope: int | None = None) -> list[pb.PowerState]: ...


@dataclass
class StreamStats:
    racks: int = 0
    site_evaluations: int = 0
    states_published: int = 0
    alerts_published: int = 0
    plans_published: int = 0
    rows_written: int = 0
    restored_racks: int = 0
    last_site_w: float = 0.0


async def _gather(futures: list) -> None:
    if futures:
        await asyncio.gather(*futures)


class RackHandler:
    """Stage 1: telemetry.samples.v1 -> per-rack power (measured wins, the model fills the rest)."""

    def __init__(self, index: SiteIndex, stage: RackStage, producer: EventProducer, store: Store, *,
                 state_topic: Topic, racks_topic: Topic, alerts_topic: Topic, stats: StreamStats) -> None:
        self.index, self.stage, self.producer, self.store = index, stage, producer, store
        self.state_topic, self.racks_topic, self.alerts_topic = state_topic, racks_topic, alerts_topic
        self.stats = stats
        self.suspect: dict[str, Alert] = {}   # rack -> its suspect-sensor alert in force (cleared when it ends)

    async def __call__(self, records: list[Record]) -> BatchResult:
        rejected: list[Rejected] = []
        readings = []
        cause: dict[str, Record] = {}  # rack -> its newest record: the trace its outputs go on in
        for rec in records:
            if rec.message.batch.HasField("equipment"):
                continue  # cooling equipment readings (CDU, CRAH, plant): the cooling twin's, not a rack's power
            try:
                readings.append(codec.rack_reading(rec.message, self.index))
                cause[rec.message.batch.rack_id] = rec
            except CodecError as exc:
                rejected.append(Rejected(rec, f"validation: {exc}", "validation"))
        results = self.stage.apply(readings)
        states = [codec.rack_state(r) for r in results]
        suspect_before = dict(self.suspect)
        try:
            await self._emit(results, states, cause)
        except BaseException:
            # the batch will be redelivered: its alerts and clears must go out then, so forget having sent them
            self.suspect = suspect_before
            raise
        self.stats.racks += len(results)
        self.stats.states_published += len(states)
        return BatchResult(rejected)

    async def _emit(self, results: list, states: list[pb.PowerState], cause: dict[str, Record]) -> None:
        self.stats.rows_written += await self.store.write(states)
        futures = []
        for s in states:
            futures.append(await self.producer.enqueue(self.state_topic, s.entity_id, s,
                                                       ce_id=ce_id(self.state_topic, s), cause=cause.get(s.entity_id)))
            futures.append(await self.producer.enqueue(self.racks_topic, s.site_id, s, ce_id=ce_id(self.racks_topic, s),
                                                       cause=cause.get(s.entity_id)))
        alerts = 0
        for r in results:
            if r.suspect == (r.rack_id in self.suspect):
                continue
            if r.suspect:
                raised = self.suspect[r.rack_id] = suspect_alert(r, self.stage.sensor_tolerance)
                a = codec.alert(raised, r.site_id, r.time_s)
            else:                                # the PDU agrees with the model again: the clear, once
                a = codec.cleared_alert(self.suspect.pop(r.rack_id), r.site_id, r.time_s)
            futures.append(await self.producer.enqueue(self.alerts_topic, a.entity_id, a, ce_id=a.alert_id,
                                                       cause=cause.get(r.rack_id)))
            alerts += 1
        await _gather(futures)
        self.stats.alerts_published += alerts


class SiteHandler:
    """Stage 2: power.racks.v1 (keyed by site) -> the chain's components and the site, alerts."""

    def __init__(self, index: SiteIndex, stage: SiteStage, producer: EventProducer, store: Store, *,
                 state_topic: Topic, alerts_topic: Topic, stats: StreamStats, min_change_w: float = 1.0,
                 restore_after_s: float = 30.0, monotonic: Callable[[], float] = time.monotonic,
                 cooling: Callable[[], tuple[float, int]] | None = None) -> None:
        self.index, self.stage, self.producer, self.store = index, stage, producer, store
        self.state_topic, self.alerts_topic = state_topic, alerts_topic
        self.stats, self.min_change_w, self.restore_after_s = stats, min_change_w, restore_after_s
        self.monotonic = monotonic
        self.cooling = cooling           # () -> (cooling power W, source) from the cooling twin's read model
        self.last_batch: float | None = None
        self.published: dict[str, float] = {}   # entity -> output watts last published

    async def restore(self) -> int:
        rows = await self.store.latest(self.index.site_id, pb.POWER_SCOPE_RACK)
        updates = []
        for s in rows:
            try:
                updates.append(codec.rack_update(s, self.index.rack_index))
            except CodecError:
                continue  # a rack the current facility spec no longer has
        n = self.stage.restore(updates)
        self.stats.restored_racks += n
        if n:
            log.info("restored %d rack states of site %s from power_state_latest", n, self.index.site_id)
        return n

    async def __call__(self, records: list[Record]) -> BatchResult:
        rejected: list[Rejected] = []
        updates = []
        for rec in records:
            if rec.key != self.index.site_id or rec.message.site_id != self.index.site_id:
                rejected.append(Rejected(rec, f"validation: site_id: {rec.message.site_id!r} is not this twin's "
                                              f"site {self.index.site_id!r}", "validation"))
                continue
            try:
                updates.append(codec.rack_update(rec.message, self.index.rack_index))
            except CodecError as exc:
                rejected.append(Rejected(rec, f"validation: {exc}", "validation"))
        now = self.monotonic()
        if self.last_batch is None or now - self.last_batch > self.restore_after_s:
            await self.restore()
        self.last_batch = now
        if self.cooling is not None:
            self.stage.set_cooling(*self.cooling())
        active_before = dict(self.stage.active)
        res = self.stage.apply(updates)
        if res is None:
            return BatchResult(rejected)
        causes = Causes()
        causes.add(records)  # the site's evaluation: in the newest rack state's trace, linked to the others
        try:
            with causes.span(_tracer, "power site evaluate", attributes={"twin.site_id": self.index.site_id}):
                await self._emit(res)
        except BaseException:
            # the batch will be redelivered: its updates are merged already, so evaluate again then
            self.stage.active, self.stage.dirty = active_before, True
            raise
        return BatchResult(rejected)

    async def _emit(self, res) -> None:
        net = self.stage.model.network
        site = codec.site_state(net, res)
        states = [s for s in codec.component_states(net, res)
                  if abs(s.output_power_w - self.published.get(s.entity_id, -1e300)) >= self.min_change_w
                  or s.entity_id not in self.published] + [site]
        alerts = [codec.alert(a, net.site_id, res.time_s) for a in res.new_alerts]
        alerts += [codec.cleared_alert(a, net.site_id, res.time_s) for a in res.cleared_alerts]
        self.stats.rows_written += await self.store.write(states)
        futures = [await self.producer.enqueue(self.state_topic, s.entity_id, s, ce_id=ce_id(self.state_topic, s))
                   for s in states]
        futures += [await self.producer.enqueue(self.alerts_topic, a.entity_id, a, ce_id=a.alert_id) for a in alerts]
        await _gather(futures)
        for s in states:
            self.published[s.entity_id] = s.output_power_w
        self.stats.site_evaluations += 1
        self.stats.states_published += len(states)
        self.stats.alerts_published += len(alerts)
        self.stats.last_site_w = site.input_power_w




@dataclass
class GridBook:
    """The grid events in force (same id replaces; overlapping limits resolve to the latest)."""

    events: tuple[GridEvent, ...] = ()
    cancelled: set[str] = field(default_factory=set)

    def apply(self, event: GridEvent, cancelled: bool) -> None:
        if cancelled:
            self.events = tuple(e for e in self.events if e.event_id != event.event_id)
            self.cancelled.add(event.event_id)
        else:
            self.events = upsert(self.events, event)
            self.cancelled.discard(event.event_id)

    def expire(self, now_s: float) -> None:
        self.events = tuple(e for e in self.events if any(iv.end_s > now_s for iv in e.intervals))


async def restore_book(bootstrap: str, topic: Topic, book: GridBook, *, now_s: float, timeout_s: float = 30.0,
                       **client_options) -> int:
    """Rebuild the event book from grid.events.v1 itself (read from the beginning to the current end,
    no consumer group, nothing committed): a restarted process knows the events in force, not only
    those after its committed offset. Expired events are dropped. Returns the events in the book."""

    def apply(raw) -> None:
        try:
            msg = topic.decode(raw.value)
            book.apply(codec.grid_event(msg), msg.cancelled)
        except (ValueError, CodecError):
            pass  # the consumer dead-letters it when it reaches it

    await replay_topic(bootstrap, topic, apply, timeout_s=timeout_s, name="grid event book", **client_options)
    book.expire(now_s)
    return len(book.events)


class GridHandler:
    """grid.events.v1 -> the event book -> a CurtailmentPlan on power.plans.v1 for each limit interval
    still ahead (or running) that is the limit in force (the latest event wins an overlap)."""

    def __init__(self, site_id: str, plan: Callable[..., object], encode: Callable[..., pb.CurtailmentPlan],
                 producer: EventProducer, *, plans_topic: Topic, stats: StreamStats,
                 rack_w: Callable[[], Awaitable[object]] | None = None, context: Callable[[], dict] | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), book: GridBook | None = None) -> None:
        self.site_id, self.plan, self.encode, self.producer = site_id, plan, encode, producer
        self.rack_w = rack_w
        self.context = context           # () -> extra planner arguments (jobs, cooling), read on the event loop
        self.plans_topic, self.stats, self.now = plans_topic, stats, now
        self.book = book or GridBook()

    async def __call__(self, records: list[Record]) -> BatchResult:
        rejected: list[Rejected] = []
        for rec in records:
            try:
                event = codec.grid_event(rec.message)
            except CodecError as exc:
                rejected.append(Rejected(rec, f"validation: {exc}", "validation"))
                continue
            self.book.apply(event, rec.message.cancelled)
            if rec.message.cancelled:
                log.info("grid event %s cancelled", event.event_id)
                continue
            for msg in await self.plans_for(event):
                await self.producer.send(self.plans_topic, msg.site_id, msg, ce_id=msg.plan_id)
                self.stats.plans_published += 1
        return BatchResult(rejected)

    async def plans_for(self, event: GridEvent) -> list[pb.CurtailmentPlan]:
        now = self.now()
        now_s = now.timestamp()
        self.book.expire(now_s)
        out = []
        for iv in event.intervals:
            if iv.import_limit_kw is None or iv.end_s <= now_s:
                continue
            start_s = max(iv.start.timestamp(), now_s)
            _, in_force = import_limit_at(self.book.events, datetime.fromtimestamp(start_s, UTC))
            if in_force != event.event_id:
                log.info("grid event %s interval %d: overridden by the later event %s", event.event_id,
                         iv.interval_id, in_force)
                continue
            deadline_s = start_s - now_s
            duration_s = min(iv.end_s - start_s, 7 * 86400.0)  # "until further notice": plan a week
            rack_w = await self.rack_w() if self.rack_w is not None else None
            extra = self.context() if self.context is not None else {}
            p = await asyncio.to_thread(self.plan, limit_w=iv.import_limit_kw * 1e3, deadline_s=deadline_s,
                                        duration_s=duration_s, rack_w=rack_w, **extra)
            out.append(self.encode(p, site_id=self.site_id, created_s=now_s, event_id=event.event_id))
        return out
