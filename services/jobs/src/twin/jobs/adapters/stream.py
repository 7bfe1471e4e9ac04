"""The job twin's Kafka side: batch handlers for ``run_consumer`` and the engine they share.

    jobs.events.v1 (key job) ───EventsHandler──┐  book (lifecycle, bad input -> jobs.events.v1.dlq + reason)
    fabric.state.v1 (key site) ─FabricHandler──┤  impaired links
    power.plans.v1 (key site) ──PlansHandler───┤  GPU caps in force, paused jobs          ┌▶ jobs.state.v1
    power.alerts.v1 ────────────PowerAlerts────┤  rack / PDU / UPS alerts, clears  Engine ──┼▶ jobs.recommendations.v1
    cooling.alerts.v1 ──────────CoolingAlerts──┤  predicted throttling (and its clear) .refresh └▶ job_state
    telemetry.samples.v1 ───────TelemetryHandler┤  GPU power / activity / XID / ECC, rack PDU power (platform share)
    power.state.v1 (site key) ──SitePowerReader─┘  facility / IT power of the site (energy overhead factor)
    tick (every tick_s) ──────────────────────────  time-driven changes (a plan starts, a throttle time comes)

Every handler updates the twin, then ``Engine.refresh``: the running jobs whose inputs changed are predicted
again (the twin marks them as events, conditions in their scope and time-driven changes arrive: a refresh visits
only those, and only the jobs touched since or due for republishing are checked for publishing) (communication from the fabric twin over gRPC, see ``fabric_client``), their states are written to
job_state and published, new recommendations published, and only then the handler returns, so
``run_consumer`` commits the offsets after the side effects (at-least-once). A job's state is published when
it changes (status, prediction, flags, goodput at once; measured step and running error at most every
``progress_publish_s``) and at least every ``republish_s`` while it runs (energy, cost and CO2 grow with time). Output events carry ``ce_id`` derived
from (job, time), so replays repeat their ids and the table keeps one row per (job_id, time).

One process holds the whole book: at start it is rebuilt from jobs.events.v1 itself (read from the beginning,
no group; the book ignores replays), energy and running error from ``job_state_latest``, the link state from
the fabric twin's GetFabricState. Several processes in one group would each need every job's events (the
book checks GPUs across jobs): scale-out by partition is still open (see the README).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from opentelemetry import metrics, trace

from twin.core.clock import Clock, SystemClock
from twin.core.kafka import BatchResult, EventProducer, Record, Rejected, replay_topic
from twin.core.telemetry import Causes
from twin.core.topics import Topic
from twin.jobs.adapters import codec
from twin.jobs.adapters.codec import InvalidMessage
from twin.jobs.adapters.fabric_client import FabricComm
from twin.jobs.domain.book import ENDED, EventRejected
from twin.jobs.domain.events import EventKind
from twin.jobs.domain.overhead import OverheadRefused
from twin.jobs.live import JobTwin

log = logging.getLogger("twin.jobs.stream")
_meter = metrics.get_meter("twin.jobs")
_tracer = trace.get_tracer("twin.jobs")
_error_ratio = _meter.create_histogram("twin.jobs.step_time_error_ratio", unit="1",
                                       description="measured / predicted step time per progress report")
_NS = uuid.UUID("9b2e4c6a-1f3d-4e8b-a7c5-2d0f6e9a8b31")


@dataclass
class EngineStats:
    events: int = 0
    recomputed: int = 0
    states_published: int = 0
    recommendations_published: int = 0
    rows_written: int = 0
    fabric_fallbacks: int = 0
    ticks: int = 0
    site_states: int = 0           # power.state.v1 site states taken (energy overhead factor)
    site_states_refused: int = 0   # ... refused (facility / IT not finite or outside [1, 3]; undecodable)


class Engine:
    def __init__(self, twin: JobTwin, fabric: FabricComm, producer: EventProducer | None, store, *,
                 state_topic: Topic, recommendations_topic: Topic, clock: Clock | None = None,
                 republish_s: float = 30.0, concurrency: int = 8, stats: EngineStats | None = None) -> None:
        self.twin, self.fabric, self.producer, self.store = twin, fabric, producer, store
        self.state_topic, self.recommendations_topic = state_topic, recommendations_topic
        self.clock = clock or SystemClock()
        self.republish_s = republish_s
        self.stats = stats or EngineStats()
        self._lock = asyncio.Lock()
        self._sem = asyncio.Semaphore(concurrency)
        self.causes = Causes()  # the input records since the last refresh (its span's parent and links)

    def now_s(self) -> float:
        return self.clock.now().timestamp()

    async def _recompute(self, job_id: str, inp, now_s: float) -> None:
        twin = self.twin
        calls = twin.calls(inp)
        hot = {g for link_id, _, _ in inp.links for g in inp.gpu_ids
               if (scope := twin.scope(link_id)) is not None
               and int(twin.site.inventory.gpu_node[g]) in scope.nodes}
        async with self._sem:
            comm = await self.fabric.answer(inp, calls, hot)
        if comm.source != "fabric":
            self.stats.fabric_fallbacks += 1
        rec = twin.book.jobs.get(job_id)
        if rec is not None and twin.inputs(rec, now_s) == inp:  # still the job it was asked for
            twin.compute(job_id, inp, comm, now_s)
            self.stats.recomputed += 1

    async def refresh(self) -> None:
        """Predict the jobs whose inputs changed, then store and publish what changed (see module docstring)."""
        async with self._lock, self.causes.span(_tracer, "jobs refresh"):
            now = self.now_s()
            twin = self.twin
            twin.expire(now)
            twin.check_health(now)
            twin.fabric_up = self.fabric.up
            stale = twin.stale(now)
            if stale:
                await asyncio.gather(*(self._recompute(j, inp, now) for j, inp in stale))
            twin.accrue(now)
            states, recs = [], []
            s = twin.settings
            tariff, carbon = s.tariff_usd_per_kwh, s.carbon_kg_per_kwh
            jobs, republish_s = twin.book.jobs, self.republish_s
            changed, view, new_recommendations = twin.changed, twin.view, twin.new_recommendations
            to_proto = codec.view_to_proto
            for job_id in twin.to_publish(now):  # touched since the last refresh or due for republishing
                if jobs[job_id].status in ENDED:
                    twin.forget_ended(job_id)
                if changed(job_id, now, republish_s):
                    states.append(to_proto(view(job_id), now, tariff_usd_per_kwh=tariff, carbon_kg_per_kwh=carbon))
                new = new_recommendations(job_id)
                if new:
                    recs.extend(codec.recommendation_to_proto(r, now) for r in new)
            await self._emit(states, recs)

    async def _emit(self, states, recs) -> None:
        if not states and not recs:
            return
        if states:
            self.stats.rows_written += await self.store.write(states)
        if self.producer is None:  # no Kafka (tests): stored and counted only
            self.stats.states_published += len(states)
            self.stats.recommendations_published += len(recs)
            return
        futures = []
        for st in states:
            ce = str(uuid.uuid5(_NS, f"{st.job_id}/{st.state_time.ToNanoseconds()}"))
            futures.append(await self.producer.enqueue(self.state_topic, st.job_id, st, ce_id=ce))
        for r in recs:
            futures.append(await self.producer.enqueue(self.recommendations_topic, r.job_id, r,
                                                       ce_id=r.recommendation_id, traced=True))
        if futures:
            await asyncio.gather(*futures)
        self.stats.states_published += len(states)
        self.stats.recommendations_published += len(recs)

    async def run_ticks(self, stop: asyncio.Event, tick_s: float) -> None:
        """Time-driven changes: plans starting or ending, throttle times arriving, the fabric back, energy."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), tick_s)
            except TimeoutError:
                pass
            if stop.is_set():
                break
            self.stats.ticks += 1
            await self.refresh()


def _reject(rec: Record, exc: Exception) -> Rejected:
    if isinstance(exc, InvalidMessage):
        return Rejected(rec, f"validation: {exc}", "validation")
    return Rejected(rec, f"rejected: {exc}", "rejected")


class EventsHandler:
    """jobs.events.v1 -> the job book; events it refuses go to the DLQ with the book's reason."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def __call__(self, records: list[Record]) -> BatchResult:
        rejected: list[Rejected] = []
        twin = self.engine.twin
        progressed: dict[str, None] = {}  # in order of first report (``progress_many`` runs after the batch)
        self.engine.causes.add(records)
        report_of, apply_progress = codec.progress_report, twin.apply_progress
        events = 0
        for rec in records:
            try:
                report = report_of(rec.message)  # the hottest event, without building a JobEvent
                if report is not None:
                    job_id = report[0]
                    if rec.key is not None and rec.key != job_id:
                        raise InvalidMessage("job_id", f"{job_id!r} differs from the record key {rec.key!r}")
                    apply_progress(*report, schedule=False)  # progress_many schedules its publishing
                    progressed[job_id] = None
                else:
                    ev, gpus = codec.job_event(rec.message)
                    job_id = ev.job_id
                    if rec.key is not None and rec.key != job_id:
                        raise InvalidMessage("job_id", f"{job_id!r} differs from the record key {rec.key!r}")
                    twin.apply(ev, gpus)
                    if ev.kind == EventKind.PROGRESS:
                        progressed[job_id] = None
            except (InvalidMessage, EventRejected) as exc:
                rejected.append(_reject(rec, exc))
                continue
            events += 1
        self.engine.stats.events += events
        reported = twin.progress_many(progressed)
        await self.engine.refresh()
        for job_id, live, n in reported:
            if live.error_n > n and twin.jobs.get(job_id) is live:
                _error_ratio.record(live.last_ratio, {"job_id": job_id})
        return BatchResult(rejected)


class FabricHandler:
    """fabric.state.v1 -> the impaired links (the latest snapshot of this site wins)."""

    def __init__(self, engine: Engine, site_id: str) -> None:
        self.engine, self.site_id = engine, site_id

    async def __call__(self, records: list[Record]) -> BatchResult:
        rejected: list[Rejected] = []
        latest = None
        self.engine.causes.add(records)
        for rec in records:
            if rec.message.site_id != self.site_id:
                rejected.append(Rejected(rec, f"validation: site_id: {rec.message.site_id!r} is not this twin's "
                                              f"site {self.site_id!r}", "validation"))
                continue
            try:
                latest = (codec.link_health(rec.message), rec.message.truncated)
            except InvalidMessage as exc:
                rejected.append(_reject(rec, exc))
        if latest is not None:
            self.engine.twin.set_links(*latest)
        await self.engine.refresh()
        return BatchResult(rejected)


class TelemetryHandler:
    """telemetry.samples.v1 -> measured energy (GPU power, and the rack's PDU power for the node platform share),
    GPU errors and stragglers of the running jobs (only their GPUs are kept); what the twin does not read (equipment batches, unknown nodes) is skipped, not dead-lettered:
    ingest validated the batch, and the cooling twin reads the same topic. A rack's batch is read at most every
    ``interval_s`` of sample time (energy then integrates over that gap; the last XID code and the cumulative
    DBE count are not lost by skipping samples): a 100,000-GPU site at 1 Hz costs ~15 % of a core to decode
    every batch, a fifth of that at 5 s (``python -m bench jobs``: ``telemetry_1hz``).

    The gap to a rack's next read is drawn uniformly from 0.5-1.5 × ``interval_s`` (mean ``interval_s``, same
    cost): reads at a fixed period would lock onto the phase of a job whose step time is a multiple of it
    (a 10 s step read every 5 s shows a rack the same phase forever), and the straggler check's time averages
    would then compare phases, not nodes. Random sampling instants make those averages unbiased."""

    def __init__(self, engine: Engine, interval_s: float = 5.0, seed: int | None = None) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.gpus_used = 0
        self.batches_skipped = 0
        self._rack_due_ns: dict[str, int] = {}
        self._rng = random.Random(seed)

    async def __call__(self, records: list[Record]) -> BatchResult:
        twin = self.engine.twin
        due = self._rack_due_ns
        every_ns = int(self.interval_s * 1e9)
        keep = []
        for rec in records:
            b = rec.message.batch
            rack = b.rack_id
            if rack and not twin.runs_on_rack(rack):  # no running job on the rack: nothing to read
                self.batches_skipped += 1
                continue
            if rack and every_ns > 0:  # a rack's batch at most every interval_s of sample time
                t_ns = b.sample_time.ToNanoseconds()
                next_ns = due.get(rack)
                if next_ns is not None and t_ns < next_ns:
                    self.batches_skipped += 1
                    continue
                # the first read of a rack is followed by one within [0, interval): the racks' reads spread
                due[rack] = t_ns + int(every_ns * (self._rng.uniform(0.5, 1.5) if next_ns is not None
                                                   else self._rng.random()))
            keep.append(rec.message)
        now = self.engine.now_s()
        for got in codec.gpu_samples_many(keep, twin.site):  # one array per field and sample time
            self.gpus_used += twin.apply_telemetry(*got, now_s=now)
        return BatchResult([])


class PlansHandler:
    """power.plans.v1 -> GPU caps in force (from each plan's deadline for its duration) and paused jobs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def __call__(self, records: list[Record]) -> BatchResult:
        rejected: list[Rejected] = []
        self.engine.causes.add(records)
        for rec in records:
            try:
                self.engine.twin.add_plan(codec.cap_plan(rec.message))
            except InvalidMessage as exc:
                rejected.append(_reject(rec, exc))
        await self.engine.refresh()
        return BatchResult(rejected)


class AlertsHandler:
    """power.alerts.v1 (alerts on racks and on the components above them: PDUs, UPS buses, UPSs, transformers,
    feeds, mapped to their racks by the twin) or cooling.alerts.v1 (predicted throttling) -> conditions."""

    def __init__(self, engine: Engine, decode, add) -> None:
        self.engine, self.decode, self.add = engine, decode, add

    async def __call__(self, records: list[Record]) -> BatchResult:
        rejected: list[Rejected] = []
        now = self.engine.now_s()
        self.engine.causes.add(records)
        for rec in records:
            try:
                alert = self.decode(rec.message, record_time_s(rec.timestamp_ms, now))
            except InvalidMessage as exc:
                rejected.append(_reject(rec, exc))
                continue
            if alert is not None:
                self.add(alert)
        await self.engine.refresh()
        return BatchResult(rejected)


def site_partition(site_id: str, partitions: int) -> int:
    """The power.state.v1 partition of the site's key: the producers' default partitioner (aiokafka's
    ``DefaultPartitioner``, Kafka's Java client's: murmur2 of the key bytes, sign bit cleared, modulo the
    partition count)."""
    from aiokafka.partitioner import murmur2

    return (murmur2(site_id.encode()) & 0x7FFFFFFF) % partitions


class SitePowerReader:
    """power.state.v1 -> the site's facility / IT power (the energy overhead factor, ``domain.overhead``).

    A broadcast input every jobs process needs, not work to share: a plain consumer (no group, nothing
    committed) assigned only the partition of the site's key (``site_partition``), started ``LOOKBACK``
    records before that partition's end so the latest site state is found at once; records of other keys
    (racks and components hashed to the same partition) are skipped before decoding. A state counts while
    its record is at most ``TwinSettings.overhead_fresh_s`` old (its Kafka timestamp: when the power twin
    produced it), so an old state read back at start does not pass for a live one."""

    #: Records read back from the end of the site's partition at start (assumption, stated: the partition holds
    #: ~1/12 of the rack and component states of each evaluation, about 270 on the 100,000-GPU preset's 3,125
    #: racks, so this covers over a dozen evaluations, seconds apart; older ones would be stale anyway).
    LOOKBACK = 5000

    def __init__(self, engine: Engine, site_id: str, topic: Topic) -> None:
        self.engine, self.site_id, self.topic = engine, site_id, topic
        self._key = site_id.encode()
        self.partition: int | None = None
        self._refused_logged = ""

    def apply(self, key: bytes | None, value: bytes, timestamp_ms: int) -> bool:
        """One record: True when it was this site's state and taken."""
        if key != self._key:
            return False
        stats = self.engine.stats
        try:
            got = codec.site_power(self.topic.decode(value), self.site_id)
            if got is None:
                return False
            t, facility_w, it_w = got
            taken = self.engine.twin.set_site_power(t, timestamp_ms / 1e3, facility_w, it_w)
        except (DecodeError, InvalidMessage, OverheadRefused) as exc:
            stats.site_states_refused += 1
            if str(exc) != self._refused_logged:  # once per distinct reason, not every evaluation
                self._refused_logged = str(exc)
                log.warning("power.state.v1 site state of %s not used for the energy overhead (%s): JOBS_PUE "
                            "stands in once the last good one is older than %.0f s", self.site_id, exc,
                            self.engine.twin.settings.overhead_fresh_s)
            return False
        stats.site_states += taken
        return taken

    async def run(self, bootstrap: str, stop: asyncio.Event, **client_options) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                    **client_options)
        await consumer.start()
        try:
            await consumer.topics()  # metadata: the real partition count (the key's partition depends on it)
            partitions = consumer.partitions_for_topic(self.topic.name) or set(range(self.topic.partitions))
            tp = TopicPartition(self.topic.name, site_partition(self.site_id, len(partitions)))
            self.partition = tp.partition
            consumer.assign([tp])
            begin, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, max(begin, end - self.LOOKBACK))
            while not stop.is_set():
                for records in (await consumer.getmany(timeout_ms=500, max_records=2000)).values():
                    for raw in records:
                        self.apply(raw.key, raw.value, raw.timestamp)
        finally:
            await consumer.stop()


async def restore_book(bootstrap: str, topic: Topic, twin: JobTwin, *, timeout_s: float = 60.0,
                       **client_options) -> int:
    """Rebuild the job book from jobs.events.v1 (from the beginning to the current end, no consumer group,
    nothing committed; events the book refuses are skipped: the consumer dead-letters them). Returns the
    events applied."""
    applied = 0

    def apply(raw) -> None:
        nonlocal applied
        try:
            ev, gpus = codec.job_event(topic.decode(raw.value))
            applied += twin.apply(ev, gpus)
        except (ValueError, DecodeError):
            pass  # EventRejected and InvalidMessage are ValueErrors

    await replay_topic(bootstrap, topic, apply, timeout_s=timeout_s, name="job book", **client_options)
    return applied


async def restore_conditions(bootstrap: str, twin: JobTwin, *, plans_topic: Topic, alerts_topics: Sequence[tuple],
                             now_s: float, timeout_s: float = 30.0, **client_options) -> int:
    """The curtailment plans and the power and cooling alerts in force when a restarted process comes up: its
    groups resume after their committed offsets, so without this a plan or alert published before the restart
    (neither twin repeats one while it is in force) would be unknown until it is cleared or replaced. Plans are
    read from the beginning (the twin drops those that have ended); alerts from `alert_ttl_s` ago, each counted
    from its record's time (an alert older than the TTL would lapse anyway). `alerts_topics` holds (topic,
    decode, add) as AlertsHandler takes them. Bad records are skipped (the consumers dead-letter them).
    Returns the plans and alerts taken."""
    taken = 0

    def plan(raw) -> None:
        nonlocal taken
        try:
            twin.add_plan(codec.cap_plan(plans_topic.decode(raw.value)))
            taken += 1
        except (ValueError, DecodeError):
            pass

    await replay_topic(bootstrap, plans_topic, plan, timeout_s=timeout_s, name="plans in force", **client_options)
    since_ms = int((now_s - twin.settings.alert_ttl_s) * 1000)
    for topic, decode, add in alerts_topics:
        def alert(raw, topic=topic, decode=decode, add=add) -> None:
            nonlocal taken
            try:
                got = decode(topic.decode(raw.value), record_time_s(raw.timestamp, now_s))
            except (ValueError, DecodeError):
                return
            if got is not None:
                add(got)
                taken += 1

        await replay_topic(bootstrap, topic, alert, since_ms=since_ms, timeout_s=timeout_s, name="alerts in force",
                           **client_options)
    twin.expire(now_s)
    return taken


def record_time_s(timestamp_ms: int | None, now_s: float) -> float:
    """When a record was published (its Kafka timestamp), never later than now; now when it has none (-1).
    An alert's TTL runs from here: one read late (a backlog, a new group reading from the earliest offset, a
    restart's replay) has been in force since it was published, not since it was read."""
    if timestamp_ms is None or timestamp_ms <= 0:
        return now_s
    return min(now_s, timestamp_ms / 1000.0)


async def restore_accounts(store, twin: JobTwin) -> int:
    """Energy (with the overhead factor last applied and its source) and running error of the jobs from their
    latest stored state (a restarted process goes on counting where the last one stopped)."""
    from twin.jobs.live import JobLive

    n = 0
    for st in await store.latest():
        if st.job_id not in twin.book.jobs:
            continue
        live = twin.jobs.setdefault(st.job_id, JobLive())
        live.energy_j = max(live.energy_j, st.energy_j)
        if st.measured_energy_j and not live.measured_j:
            live.measured_j = st.measured_energy_j
            live.measured_gpu_j = st.measured_gpu_energy_j
        if st.energy_overhead_source and not live.overhead_source:
            live.overhead_factor = st.energy_overhead_factor
            live.overhead_source = codec.OVERHEAD_SOURCE_BACK.get(st.energy_overhead_source, "")
        if st.step_time_error_ratio and not live.error_n:
            live.error_sum, live.error_n = st.step_time_error_ratio, 1
        twin.touch(st.job_id)
        n += 1
    return n
