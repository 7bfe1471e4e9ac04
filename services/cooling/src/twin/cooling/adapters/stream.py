"""The cooling twin's Kafka side, in two stages like the power twin's: batch handlers for ``run_consumer``
(at-least-once: offsets are committed only after a handler returned, i.e. after what it forwarded was
acknowledged, or its rows were written and its outputs acknowledged).

    stage 1, keyed by rack / entity (RackStage: a live twin of its own for the calibration banks and event book)
    power.state.v1 (rack states, key rack) ──PowerHandler─────┐ RackHeat
    telemetry.samples.v1 (key rack) ─────────TelemetryHandler─┼ RackGpus (measured power, activity, coolant sensors,
                         (equipment batches: key site)         │           calibrated parameters), equipment batches
    cooling.events.v1 (key entity) ──────────EventHandler─────┘ CoolingEvent (validated)
                                                              └─▶ cooling.racks.v1 (CoolingStageInput, key site)
    stage 2, keyed by site (CoolingPipeline over the site's CoolingLive)
    cooling.racks.v1 ──SiteHandler──▶ CoolingLive ─evaluate─▶ cooling.state.v1 (on change)
          └▶ cooling_conditions (events, before commit)    (one tick) ├▶ cooling.alerts.v1 (new alerts, clears)
                                                                     └▶ cooling_state (rows = published)

Scale-out: the network couples every rack of a site (loops, air groups, the plant), so stage 2 holds a whole
site; stage 1 is keyed by rack, so any number of processes in one consumer group share the racks and their
calibration (~2 ms per 72-GPU rack and step: the costly per-GPU work), and whichever process owns the site's
partition of cooling.racks.v1 computes its CDU, loop and plant totals from every rack (the same states and
alerts, byte for byte, as one process: tests/e2e/test_cooling_e2e.py). A rack's IT power is its absolute
latest value; GPU telemetry and calibrated parameters replace older ones only (by sample time).

Stage 1's calibration needs each rack's IT power (to fill GPUs without a power reading) and the coolant at its
GPUs: from this process's stage 2 when its last evaluation is the newest (it owns the site; with one process
that is exactly the single-twin behaviour), else from the stored rack states (cooling_state_latest, re-read at
most every ``view_refresh_s``). Events: one entity's events stay in order in one partition of
cooling.events.v1, so the process reading it judges them (unknown ids, absurd values, the entity's past, too
far ahead: its DLQ) with an event book restored from cooling_conditions at start; stage 2 applies them and
saves the conditions before its batch is committed (an event older than the entity's last that slipped past a
stage 1 with an older book goes to cooling.racks.v1.dlq). Equipment batches are keyed by site and validated
in stage 1. Stage 2 re-reads the stored heat and conditions with its first batch and after
``restore_after_s`` without one (the site may have been elsewhere meanwhile); a what-if on a process whose
stage 2 is idle does the same first.

When a tick is evaluated: once every rack of the site has reported the newest state time (the power
twin publishes every rack per tick), or ``settle_s`` after the first new rack state when some rack
stays behind (never reported, or late: it counts at its last value); and right after a batch of equipment
events (at the latest event's time, or just after the last evaluation when the event is older). Each tick
is evaluated once, so its rows are final: cooling_state is written ON CONFLICT DO NOTHING and a replayed
batch writes nothing. Telemetry never triggers a tick: it feeds measured GPU power and the calibrated
parameters used by the next tick.

Publish on change: an entity's state is published (and stored) when one of its numbers moved by its
resolution (``min_change_w`` for watts, 0.1 °C / K, 1 L/min, 1 s, 0.001 for fractions) since the last
state published for it, or a flag changed (``changed``); alerts when they become active (entity, kind,
severity), and once more, cleared, when their condition ends (the kit's ``alert_state.transitions``). A batch
whose outputs fail is evaluated again when it is redelivered.

Output events carry ``ce_id`` derived from (topic, entity, state time) (alerts: their deterministic
alert id), so a replayed batch repeats its ids and idempotent sinks drop the copies.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from opentelemetry import trace

from twin.cooling.adapters import codec
from twin.cooling.adapters.codec import CodecError
from twin.cooling.adapters.inputs import equipment_reading, gpu_reading, is_equipment, power_update
from twin.cooling.adapters.repository import conditions_from_json
from twin.cooling.domain.alerts import CoolingAlert
from twin.cooling.domain.events import EventRejected
from twin.cooling.live import CoolingLive, Evaluation, RackGpus
from twin.cooling.v1 import cooling_pb2 as pb
from twin.core.alert_state import AlertKey, transitions
from twin.core.kafka import BatchResult, EventProducer, Record, Rejected
from twin.core.telemetry import Causes
from twin.core.topics import Topic

log = logging.getLogger("twin.cooling.stream")
_tracer = trace.get_tracer("twin.cooling")
_NS = uuid.UUID("0c2d7d4e-3b8a-4f61-a1c5-7e9d2f4b6a83")


def ce_id(topic: Topic, msg: pb.CoolingState) -> str:
    return str(uuid.uuid5(_NS, f"{topic.name}/{msg.entity_id}/{msg.state_time.ToNanoseconds()}"))


@dataclass
class StreamStats:
    power_states: int = 0
    telemetry_batches: int = 0
    equipment_readings: int = 0
    calibration_samples: int = 0
    events_applied: int = 0
    evaluations: int = 0
    states_published: int = 0
    alerts_published: int = 0
    rows_written: int = 0
    restored_racks: int = 0
    site_records: int = 0  # cooling.racks.v1 records stage 2 took
    calibrated_params: int = 0  # GPUs whose calibrated parameters stage 2 took
    last_cooling_w: float = 0.0
    last_pue_cooling: float | None = None  # None: no IT power (PUE undefined)


def _resolution(name: str, min_change_w: float) -> float:
    if name.endswith("_w"):
        return min_change_w
    if name.endswith(("_c", "_k")):
        return 0.1
    if name.endswith("_lpm") or name.endswith("_s"):
        return 1.0
    return 0.001


def changed(before: pb.CoolingState | None, after: pb.CoolingState, min_change_w: float) -> bool:
    """Whether ``after`` differs from the state last published for the entity: a number moved by its
    resolution (``min_change_w`` for watts, 0.1 °C / K, 1 L/min, 1 s, 0.001 else), a number appeared or
    became non-finite, or a flag, id list or the source changed. The state time does not count."""
    if (
        before is None
        or before.source != after.source
        or before.WhichOneof("detail") != after.WhichOneof("detail")
    ):
        return True
    which = after.WhichOneof("detail")
    if which is None:
        return False
    old, new = getattr(before, which), getattr(after, which)
    for f in new.DESCRIPTOR.fields:
        a, b = getattr(old, f.name), getattr(new, f.name)
        if f.has_presence and old.HasField(f.name) != new.HasField(f.name):
            return True
        if isinstance(b, float):
            if math.isfinite(a) and math.isfinite(b):
                if abs(a - b) >= _resolution(f.name, min_change_w):
                    return True
            elif not (a == b or (math.isnan(a) and math.isnan(b))):
                return True
        elif a != b:
            return True
    return False


class Store:
    """What the pipeline needs of storage (CoolingStateRepository or InMemoryCoolingStore)."""

    async def write(self, states: list[pb.CoolingState]) -> int: ...

    async def latest(self, site_id: str, scope: int | None = None) -> list[pb.CoolingState]: ...

    async def save_conditions(
        self, site_id: str, time_s: float, cond, event_times: dict[str, float]
    ) -> None: ...

    async def load_conditions(self, site_id: str) -> tuple[dict, dict[str, float]] | None: ...


@dataclass
class CoolingPipeline:
    live: CoolingLive
    producer: EventProducer
    store: Store
    state_topic: Topic
    alerts_topic: Topic
    stats: StreamStats = field(default_factory=StreamStats)
    min_change_w: float = 100.0
    settle_s: float = 2.0
    monotonic: Callable[[], float] = time.monotonic
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    published: dict[str, pb.CoolingState] = field(default_factory=dict)
    active: dict[AlertKey, CoolingAlert] = field(default_factory=dict)  # in force at the last evaluation
    floor_s: float = -math.inf  # the newest stored / evaluated state time
    pending_since: float | None = None  # monotonic time of the first rack state not evaluated yet
    last_plant: pb.CoolingState | None = None  # the plant state last published (what the power twin adds)
    causes: Causes = field(default_factory=Causes)  # rack states / events since the last tick (trace context)

    @property
    def site_id(self) -> str:
        return self.live.net.site_id

    async def restore(self) -> int:
        """Every rack's last stored IT power and the conditions in force (a restarted process)."""
        live = self.live
        rows = await self.store.latest(self.site_id, pb.COOLING_SCOPE_RACK)
        racks = []
        for s in rows:
            r = live.site.inventory.rack_index.get(s.entity_id)
            if r is not None and s.WhichOneof("detail") == "rack" and math.isfinite(s.rack.it_power_w):
                racks.append((r, codec.seconds(s.state_time), s.rack.it_power_w))
        for s in await self.store.latest(self.site_id):
            self.floor_s = max(self.floor_s, codec.seconds(s.state_time))
            self.published[s.entity_id] = s
        stored = await self.store.load_conditions(self.site_id)
        cond, times = (
            (None, {}) if stored is None else (conditions_from_json(stored[0], live.cond), stored[1])
        )
        n = live.restore(racks, cond, times)
        self.stats.restored_racks += n
        if n or stored:
            log.info(
                "cooling twin of %s restored: %d rack(s) from cooling_state_latest, conditions %s",
                self.site_id,
                n,
                "from cooling_conditions" if cond is not None else "at design",
            )
        return n

    # -- evaluation -------------------------------------------------------------------------------
    def tick_complete(self) -> bool:
        """Every rack of the site has reported the newest state time."""
        t = self.live.rack_time
        return bool((t > -math.inf).all()) and bool((t == t.max()).all())

    def newest_rack_time(self) -> float:
        t = self.live.rack_time
        return float(t.max()) if (t > -math.inf).any() else -math.inf

    async def maybe_evaluate(self, *, force: bool = False) -> Evaluation | None:
        """Evaluate the newest tick when it is complete (or ``force``: the settle time passed)."""
        async with self.lock:
            if self.pending_since is None:
                return None
            t = self.newest_rack_time()
            if t <= self.floor_s:
                self.pending_since = None  # late data of an older tick: the next tick includes it
                return None
            if not (force or self.tick_complete()):
                return None
            return await self._evaluate(t)

    async def settle(self, stop: asyncio.Event) -> None:
        """Evaluate a tick some racks never completed, ``settle_s`` after its first rack state."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(self.settle_s / 4, 0.05))
            except TimeoutError:
                pass
            if self.pending_since is not None and self.monotonic() - self.pending_since >= self.settle_s:
                await self.maybe_evaluate(force=True)

    async def evaluate_after_events(self, event_time_s: float) -> Evaluation | None:
        async with self.lock:
            if not (self.live.rack_time > -math.inf).any():
                return None  # no heat known yet: the first tick will use the new conditions
            t = max(event_time_s, self.newest_rack_time())
            if t <= self.floor_s:
                t = self.floor_s + 1e-3
            return await self._evaluate(t)

    async def _evaluate(self, time_s: float) -> Evaluation:
        live = self.live
        # the tick runs in the trace of the input that completed it (the newest cause), linked to the others
        span = self.causes.span(_tracer, "cooling evaluate", attributes={"twin.site_id": self.site_id,
                                                                         "twin.tick.time_s": time_s})
        try:
            with span:
                ev = await asyncio.to_thread(live.evaluate, time_s)
                await self._emit(ev, time_s)
        except BaseException:
            # the batch is redelivered but brings nothing new: evaluate this tick again then (dt = 0)
            self.pending_since = self.monotonic()
            raise
        self.floor_s, self.pending_since = time_s, None
        return ev

    async def _emit(self, ev: Evaluation, time_s: float) -> None:
        live = self.live
        tick = ev.tick
        states = codec.states(
            live.net,
            tick.state,
            ev.cond,
            time_s=time_s,
            rack_max_gpu_c=tick.rack_max_gpu_c,
            rack_max_hbm_c=tick.rack_max_hbm_c,
            fc=tick.forecast,
            sources=ev.sources,
        )
        self._measured(states)
        moved = [s for s in states if changed(self.published.get(s.entity_id), s, self.min_change_w)]
        alerts, active = self._new_alerts(list(tick.alerts) + ev.sensor_alerts, ev, time_s)
        self.stats.rows_written += await self.store.write(moved)
        futures = [
            await self.producer.enqueue(self.state_topic, s.entity_id, s, ce_id=ce_id(self.state_topic, s))
            for s in moved
        ]
        futures += [
            await self.producer.enqueue(self.alerts_topic, a.entity_id, a, ce_id=a.alert_id, traced=True)
            for a in alerts
        ]
        if futures:
            await asyncio.gather(*futures)
        self.active = active
        for s in moved:
            self.published[s.entity_id] = s
            if s.scope == pb.COOLING_SCOPE_PLANT:
                self.last_plant = s
        st = tick.state
        self.stats.evaluations += 1
        self.stats.states_published += len(moved)
        self.stats.alerts_published += len(alerts)
        self.stats.last_cooling_w, self.stats.last_pue_cooling = (
            float(st.cooling_power_w),
            st.pue_cooling_part,
        )

    def _measured(self, states: list[pb.CoolingState]) -> None:
        """Measured equipment values into the states: a CDU's differential pressure (its state is then MIXED:
        measured and modelled), a CRAH's return air."""
        live = self.live
        cdu_ix = {c: i for i, c in enumerate(live.net.cdu_ids)}
        crah_ix = {c: i for i, c in enumerate(live.net.crah_ids)}
        dp = live.cdu_meas["dp"]
        for s in states:
            if s.scope == pb.COOLING_SCOPE_CDU and np.isfinite(live.cdu_meas_time[cdu_ix[s.entity_id]]):
                i = cdu_ix[s.entity_id]
                if np.isfinite(dp[i]):
                    s.cdu.differential_pressure_kpa = float(dp[i])
                s.source = pb.VALUE_SOURCE_MIXED
            elif s.scope == pb.COOLING_SCOPE_CRAH and np.isfinite(live.crah_return_air[crah_ix[s.entity_id]]):
                s.crah.return_air_temp_c = float(live.crah_return_air[crah_ix[s.entity_id]])

    def _new_alerts(
        self, alerts: list[CoolingAlert], ev: Evaluation, time_s: float
    ) -> tuple[list[pb.CoolingAlert], dict[AlertKey, CoolingAlert]]:
        """The alerts to send (new conditions, then one clear per entity and kind that ended: the kit's
        ``alert_state.transitions`` rule) and the alerts in force now (the next ``active``)."""
        current: dict[AlertKey, CoolingAlert] = {}
        for a in alerts:
            current.setdefault((a.entity_id, a.kind, a.severity), a)
        raised, cleared = transitions(self.active, current)
        out = []
        live = self.live
        for a in raised:
            m = codec.alert(live.net, a, time_s)
            if a.kind == "suspect_sensor" and a.entity_id in ev.sensor_values:
                measured, model = ev.sensor_values[a.entity_id]
                part = "heat_removed" if a.entity_id in live.net.cdu_ids else "coolant"
                m.suspect_sensor_id = f"{a.entity_id}/{part}"
                m.measured_value, m.model_value = measured, model
                m.threshold = live.sensor_rel_tol
            elif a.kind == "throttle_predicted":
                m.threshold = live.horizon_s
            out.append(m)
        out += [codec.cleared_alert(live.net, a.entity_id, a.kind, a.severity, time_s) for a in cleared]
        return out, current


# -- stage 1 (keyed by rack / entity) ------------------------------------------------------------------


@dataclass
class RackStage:
    """Stage 1 of one process: its own live twin for the calibration banks of the racks whose telemetry it
    reads (and the event book of the entities whose events it reads), forwarding to ``racks_topic`` (key
    site). The racks' IT power and coolant its calibration needs come from this process's stage 2 when that
    evaluated last (it owns the site), else from the stored rack states (``cooling_state_latest``, re-read
    at most every ``view_refresh_s``): whichever is newer."""

    live: CoolingLive
    producer: EventProducer
    store: Store
    racks_topic: Topic
    stats: StreamStats = field(default_factory=StreamStats)
    site: CoolingPipeline | None = None  # this process's stage 2
    view_refresh_s: float = 10.0
    monotonic: Callable[[], float] = time.monotonic
    stored_view: tuple[float, np.ndarray, np.ndarray] | None = None  # (newest state time, IT W, coolant °C)
    view_read_at: float | None = None

    @property
    def site_id(self) -> str:
        return self.live.net.site_id

    async def restore(self) -> None:
        """The event book (conditions and each entity's last event time) as stored by stage 2."""
        stored = await self.store.load_conditions(self.site_id)
        if stored is not None:
            self.live.restore([], conditions_from_json(stored[0], self.live.cond), stored[1])

    async def refresh_view(self) -> None:
        now = self.monotonic()
        if self.view_read_at is None or now - self.view_read_at >= self.view_refresh_s:
            self.view_read_at = now
            rows = await self.store.latest(self.site_id, pb.COOLING_SCOPE_RACK)
            n = self.live.net.n_racks
            it_w, coolant = np.full(n, np.nan), np.full(n, np.nan)
            newest = -math.inf
            index = self.live.site.inventory.rack_index
            for s in rows:
                r = index.get(s.entity_id)
                if r is None or s.WhichOneof("detail") != "rack":
                    continue
                it_w[r], coolant[r] = s.rack.it_power_w, s.rack.coolant_temp_c
                newest = max(newest, codec.seconds(s.state_time))
            if rows:
                self.stored_view = (newest, it_w, coolant)
        local = self.site.live.last if self.site is not None else None
        stored = self.stored_view
        if local is not None and (stored is None or local.time_s >= stored[0]):
            self.live.set_rack_view(self.site.live.current_rack_it_w(), local.tick.state.rack_coolant_c)
        elif stored is not None:
            self.live.set_rack_view(stored[1], stored[2])
        else:
            self.live.set_rack_view(np.zeros(self.live.net.n_racks), None)  # nothing known: idle, facility supply

    async def forward(self, messages: list[tuple[pb.CoolingStageInput, Record | None]]) -> None:
        futures = [
            await self.producer.enqueue(self.racks_topic, m.site_id, m, cause=rec) for m, rec in messages
        ]
        if futures:
            await asyncio.gather(*futures)


class PowerHandler:
    """Stage 1: power.state.v1 rack states -> each rack's IT power on cooling.racks.v1 (key site)."""

    def __init__(self, stage: RackStage) -> None:
        self.stage = stage

    async def __call__(self, records: list[Record]) -> BatchResult:
        st = self.stage
        rejected: list[Rejected] = []
        out = []
        ids = st.live.net.rack_ids
        for rec in records:
            try:
                u = power_update(rec.message, st.live.site.inventory, st.site_id)
            except CodecError as exc:
                rejected.append(Rejected(rec, f"validation: {exc}", "validation"))
                continue
            if u is not None:
                out.append((codec.heat_input(st.site_id, ids[u[0]], u[1], u[2]), rec))
        await st.forward(out)
        st.stats.power_states += len(out)
        return BatchResult(rejected)


class TelemetryHandler:
    """Stage 1: telemetry.samples.v1 -> each rack's measured GPU power and activity, online calibration and
    coolant sensors on cooling.racks.v1; equipment batches (keyed by site) validated and passed on."""

    def __init__(self, stage: RackStage) -> None:
        self.stage = stage

    async def __call__(self, records: list[Record]) -> BatchResult:
        st = self.stage
        rejected: list[Rejected] = []
        readings, cause, out = [], {}, []
        for rec in records:
            try:
                if is_equipment(rec.message):
                    equipment_reading(rec.message, st.live.net, st.site_id)  # validates (DLQ here)
                    out.append((pb.CoolingStageInput(site_id=st.site_id, equipment=rec.message), rec))
                else:
                    r = gpu_reading(rec.message, st.live.site.inventory, st.site_id)
                    readings.append(r)
                    cause[r.rack] = rec
            except CodecError as exc:
                rejected.append(Rejected(rec, f"validation: {exc}", "validation"))
        fitted: list[RackGpus] = []
        if readings:
            await st.refresh_view()
            st.stats.calibration_samples += await asyncio.to_thread(st.live.apply_telemetry, readings, fitted)
        ids = st.live.net.rack_ids
        out += [(codec.gpus_input(st.site_id, ids, f), cause.get(f.reading.rack)) for f in fitted]
        await st.forward(out)
        st.stats.telemetry_batches += len(readings)
        return BatchResult(rejected)


class EventHandler:
    """Stage 1: cooling.events.v1 (key entity: one entity's events stay in order in one partition) ->
    validated against this process's event book (unknown ids, absurd values, wet bulb above dry bulb, the
    entity's past, too far ahead of the clock: DLQ) -> cooling.racks.v1 for the site's stage 2."""

    def __init__(
        self, stage: RackStage, *, now: Callable[[], float] = time.time, max_future_s: float = 300.0
    ) -> None:
        self.stage, self.now, self.max_future_s = stage, now, max_future_s

    async def __call__(self, records: list[Record]) -> BatchResult:
        st = self.stage
        rejected: list[Rejected] = []
        out = []
        for rec in records:
            msg = rec.message
            try:
                if msg.site_id and msg.site_id != st.site_id:
                    raise CodecError("site_id", f"{msg.site_id!r} is not this twin's site {st.site_id!r}")
                ev = codec.event(msg)
                if ev.time_s > self.now() + self.max_future_s:
                    raise CodecError("event_time", f"more than {self.max_future_s:.0f} s in the future")
                st.live.apply_event(ev)
            except (CodecError, EventRejected) as exc:
                rejected.append(Rejected(rec, f"validation: {exc}", "validation"))
                continue
            out.append((pb.CoolingStageInput(site_id=st.site_id, event=msg), rec))
        await st.forward(out)
        return BatchResult(rejected)


# -- stage 2 (keyed by site) ------------------------------------------------------------------------


def decode_stage_input(m: pb.CoolingStageInput, live: CoolingLive) -> tuple[str, object]:
    """One cooling.racks.v1 record -> (kind, the live twin's input): heat (rack, time, W), gpus ``RackGpus``,
    equipment ``EquipmentReading``, event ``EquipmentEvent``. CodecError naming the field otherwise."""
    site_id = live.net.site_id
    if m.site_id != site_id:
        raise CodecError("site_id", f"{m.site_id!r} is not this twin's site {site_id!r}")
    which = m.WhichOneof("input")
    index = live.site.inventory.rack_index
    if which == "heat":
        return which, codec.rack_heat(m.heat, index)
    if which == "gpus":
        return which, codec.rack_gpus(m.gpus, index, live.site.gpus.gpu_rack)
    if which == "equipment":
        return which, equipment_reading(m.equipment, live.net, site_id)
    if which == "event":
        return which, codec.event(m.event)
    raise CodecError("input", "empty")


class SiteHandler:
    """Stage 2: cooling.racks.v1 (key site) -> the site's live twin (heat, GPU telemetry and calibrated
    parameters, equipment readings, events) -> one evaluation per tick, as ``CoolingPipeline`` decides.
    The first batch (and one after ``restore_after_s`` without any: the site may have been elsewhere
    meanwhile) first re-reads the stored rack heat and conditions."""

    def __init__(
        self,
        pipeline: CoolingPipeline,
        *,
        restore_after_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.p, self.restore_after_s, self.monotonic = pipeline, restore_after_s, monotonic
        self.last_batch: float | None = None

    def restored(self) -> None:
        """The pipeline was restored just now (at start-up)."""
        self.last_batch = self.monotonic()

    async def refresh_if_idle(self) -> None:
        """Before a what-if: when this process's stage 2 has had no batch for ``restore_after_s`` (another
        process holds the site, or nothing arrives), re-read the stored heat and conditions. The GPUs' thermal
        state and calibrated parameters stay what this process last had (the spec's if it never held the site)."""
        if self.last_batch is not None and self.monotonic() - self.last_batch <= self.restore_after_s:
            return
        async with self.p.lock:
            await self.p.restore()

    async def __call__(self, records: list[Record]) -> BatchResult:
        p = self.p
        live = p.live
        now = self.monotonic()
        if self.last_batch is None or now - self.last_batch > self.restore_after_s:
            async with p.lock:  # the settle task may be evaluating
                await p.restore()
        self.last_batch = now
        rejected: list[Rejected] = []
        heat, gpus, equipment, events = [], [], [], []
        for rec in records:
            try:
                which, value = decode_stage_input(rec.message, live)
            except CodecError as exc:
                rejected.append(Rejected(rec, f"validation: {exc}", "validation"))
                continue
            {"heat": heat, "gpus": gpus, "equipment": equipment, "event": events}[which].append(
                (value, rec) if which == "event" else value
            )
            if which in ("heat", "event"):
                p.causes.add((rec,))
        latest = -math.inf
        async with p.lock:
            if gpus:
                p.stats.calibrated_params += live.apply_rack_gpus(gpus)
            p.stats.equipment_readings += live.apply_equipment(equipment)
            if live.apply_power(heat) and p.pending_since is None:
                p.pending_since = p.monotonic()
            for ev, rec in events:
                try:
                    live.apply_event(ev)
                except EventRejected as exc:  # stage 1 of another process had an older book of this entity
                    rejected.append(Rejected(rec, f"validation: {exc}", "validation"))
                    continue
                latest = max(latest, ev.time_s)
                p.stats.events_applied += 1
                log.info("cooling event %s %s at %.3f applied", ev.kind, ev.entity_id, ev.time_s)
            if latest > -math.inf:
                await p.store.save_conditions(p.site_id, latest, live.cond, live.event_time)
        p.stats.site_records += len(records) - len(rejected)
        if latest > -math.inf:
            await p.evaluate_after_events(latest)
        else:
            await p.maybe_evaluate()
        return BatchResult(rejected)
