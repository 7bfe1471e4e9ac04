"""Scenarios against the RUNNING twin (issue 14 item 1): inject events, then report what each twin concluded.

Used by `twinctl scenario run NAME` and by the console's scenario buttons::

    from twin.core.scenarios import SCENARIOS, Targets, run_scenario
    report = await run_scenario("cdu-failure", Targets.from_env(), on_step=print_step, restore=True)
    report.to_dict()   # JSON-ready: scenario, ok, started_at, steps [{name, at, elapsed_s, ok, summary, data}]

Every step reads the output topics from their end offsets taken BEFORE the injection (a `Watch` started
first), and/or asks the twins over gRPC; each wait is bounded by `Targets.step_timeout_s`. A step that
times out is reported (ok False, what was seen) and the scenario stops there (its restore still runs).

Scenarios (each has a restore step, so the demo can be re-run):
  cdu-failure       the smallest set of CDUs whose loss the cooling twin's own what-if says makes racks
                    throttle (one CDU if its loop cannot carry the loss, else every CDU of one loop) fails on
                    cooling.events.v1 -> cooling.alerts.v1 throttle alerts on exactly that loop's racks ->
                    jobs.state.v1 thermal flags + jobs.recommendations.v1 checkpoint-now for the jobs on them ->
                    power.state.v1 site state carrying the plant's new cooling power. Restore: repair them.
  grid-curtailment  OpenADR 3 IMPORT_CAPACITY_LIMIT 20 % below the present site draw, starting in 10 minutes,
                    POSTed to the power twin -> power.plans.v1 plan (caps, batteries, paused jobs, throughput
                    cost, meets or shortfall). Restore: the same event id with "cancelled": true.
  spine-failure     a leaf-spine uplink (under the leaf group most running jobs cross) goes DOWN on
                    fabric.events.v1 -> fabric.state.v1 -> jobs.state.v1: exactly the jobs spanning that leaf
                    group and another one slow down (before/after step time) -> recommendations. Restore: UP.
  job-landing       a 4,096-GPU job (or the largest every candidate can hold) on candidate racks (one
                    candidate per row, plus a mixed one) via JobService.WhatIfPlacement, ranked by step time,
                    power and thermal/network risk. Nothing is injected; restore has nothing to undo.

Addresses and the token default to the stack's (`make run`): Targets.from_env() reads TWIN_KAFKA_BOOTSTRAP,
TWINCTL_{POWER,COOLING,JOBS,FABRIC}_TARGET, TWINCTL_POWER_HTTP, TWINCTL_TOKEN / TWIN_STACK_TOKEN, TWIN_FACILITY.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.core import topics
from twin.fabric.v1 import fabric_pb2 as fpb
from twin.jobs.v1 import jobs_pb2 as jpb
from twin.power.v1 import power_pb2 as ppb

SOURCE = "twin-scenario"
GRID_EVENT_ID = "twin-scenario-grid-curtailment"   # one id: a re-run replaces the last event
CURTAIL_FRACTION = 0.20
CURTAIL_START_S = 600.0
CURTAIL_DURATION_S = 1800.0
LANDING_GPUS = 4096


# -- targets and reports ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """Where the running twin is, and how long one step may wait."""

    bootstrap: str = "127.0.0.1:9092"
    power: str = "127.0.0.1:50054"
    power_http: str = "http://127.0.0.1:8082"
    cooling: str = "127.0.0.1:50055"
    jobs: str = "127.0.0.1:50056"
    fabric: str = "127.0.0.1:50053"
    token: str = ""
    facility: str = "dgx-h100-su"
    step_timeout_s: float = 60.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Targets:
        from twin.core.settings import DEFAULT_FACILITY

        e = os.environ if env is None else env
        t = cls(bootstrap=e.get("TWIN_KAFKA_BOOTSTRAP", cls.bootstrap),
                power=e.get("TWINCTL_POWER_TARGET", cls.power),
                power_http=e.get("TWINCTL_POWER_HTTP", cls.power_http),
                cooling=e.get("TWINCTL_COOLING_TARGET", cls.cooling),
                jobs=e.get("TWINCTL_JOBS_TARGET", cls.jobs),
                fabric=e.get("TWINCTL_FABRIC_TARGET", cls.fabric),
                token=e.get("TWINCTL_TOKEN") or e.get("TWIN_STACK_TOKEN", ""),
                facility=e.get("TWIN_FACILITY", DEFAULT_FACILITY))
        return replace(t, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class Step:
    name: str
    at: str                    # ISO 8601 UTC when the step finished
    elapsed_s: float           # since the scenario started
    ok: bool
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    scenario: str
    started_at: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "ok": self.ok, "started_at": self.started_at,
                "steps": [asdict(s) for s in self.steps]}


class StepFailed(Exception):
    """A step could not conclude (timeout, refused injection); the scenario stops, restore still runs."""

    def __init__(self, summary: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(summary)
        self.summary, self.data = summary, data or {}


OnStep = Callable[[Step], None]


class Run:
    """One scenario run: the step log, the clients, the watch on the output topics."""

    def __init__(self, name: str, targets: Targets, on_step: OnStep | None) -> None:
        self.name, self.t, self.on_step = name, targets, on_step
        self.t0 = time.monotonic()
        self.report = Report(name, _iso(time.time()))
        self.channels: dict[str, Any] = {}
        self.watch: Watch | None = None
        self.producer = None
        self.state: dict[str, Any] = {}   # what restore needs (ids, healthy values)

    def record(self, name: str, ok: bool, summary: str, **data: Any) -> Step:
        s = Step(name, _iso(time.time()), round(time.monotonic() - self.t0, 3), ok, summary, _plain(data))
        self.report.steps.append(s)
        if self.on_step:
            self.on_step(s)
        return s

    # -- clients ----------------------------------------------------------------------------------
    def stub(self, kind: str):
        import grpc

        from twin.cooling.v1 import cooling_pb2_grpc
        from twin.fabric.v1 import fabric_pb2_grpc
        from twin.jobs.v1 import jobs_pb2_grpc
        from twin.power.v1 import power_pb2_grpc

        stubs = {"power": power_pb2_grpc.PowerServiceStub, "cooling": cooling_pb2_grpc.CoolingServiceStub,
                 "jobs": jobs_pb2_grpc.JobServiceStub, "fabric": fabric_pb2_grpc.FabricSimulationServiceStub}
        if kind not in self.channels:
            self.channels[kind] = grpc.aio.insecure_channel(getattr(self.t, kind))
        return stubs[kind](self.channels[kind])

    async def call(self, kind: str, rpc: str, request: Message) -> Any:
        import grpc

        md = (("authorization", f"Bearer {self.t.token}"),) if self.t.token else ()
        try:
            return await getattr(self.stub(kind), rpc)(request, timeout=self.t.step_timeout_s, metadata=md)
        except grpc.aio.AioRpcError as exc:
            raise StepFailed(f"{kind} {rpc} at {getattr(self.t, kind)}: {exc.code().name}: {exc.details()}") from None

    async def send(self, topic: topics.Topic, key: str, message: Message) -> None:
        from twin.core.kafka import EventProducer

        if self.producer is None:
            self.producer = await EventProducer(self.t.bootstrap, source=SOURCE).start()
        await self.producer.send(topic, key, message)

    async def close(self) -> None:
        if self.watch:
            await self.watch.stop()
        if self.producer:
            await self.producer.stop()
        for ch in self.channels.values():
            await ch.close()


class Watch:
    """Every record of `watched` topics from their end offsets at start(), decoded, kept in arrival order."""

    def __init__(self, bootstrap: str, watched: list[topics.Topic]) -> None:
        self.bootstrap, self.watched = bootstrap, watched
        self.seen: dict[str, list[Message]] = {t.name: [] for t in watched}
        self._consumer = None
        self._task: asyncio.Task | None = None

    async def start(self) -> Watch:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        await self._consumer.start()
        tps = [TopicPartition(t.name, p) for t in self.watched for p in range(t.partitions)]
        self._consumer.assign(tps)
        ends = await self._consumer.end_offsets(tps)
        for tp in tps:
            self._consumer.seek(tp, ends[tp])
        self._task = asyncio.create_task(self._pump())
        return self

    async def _pump(self) -> None:
        by_name = {t.name: t for t in self.watched}
        while True:
            got = await self._consumer.getmany(timeout_ms=200)
            for tp, recs in got.items():
                for r in recs:
                    try:
                        self.seen[tp.topic].append(by_name[tp.topic].decode(r.value))
                    except Exception:  # noqa: BLE001 - a record we cannot read is not a conclusion
                        continue

    async def until(self, topic: topics.Topic, conclude: Callable[[list[Message]], Any], timeout_s: float) -> Any:
        """conclude(records seen so far) until it returns something truthy; None after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = conclude(list(self.seen[topic.name]))
            if got:
                return got
            if time.monotonic() > deadline or (self._task is not None and self._task.done()):
                return None
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self._consumer:
            await self._consumer.stop()


# -- helpers -----------------------------------------------------------------------------------------


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ts(t: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(round(t * 1e9)))
    return ts


def _secs(ts: Timestamp) -> float:
    return ts.ToNanoseconds() / 1e9


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_plain(x) for x in (sorted(v) if isinstance(v, set) else v)]
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return v


def rack_of_node(node_id: str) -> str:
    """twin.core.facility naming: a node is `<rack>-nNN`."""
    return node_id.rsplit("-n", 1)[0]


async def running_jobs(run: Run) -> list[jpb.JobState]:
    out: list[jpb.JobState] = []
    token = ""
    while True:
        resp = await run.call("jobs", "ListJobs", jpb.ListJobsRequest(status=jpb.JOB_STATUS_RUNNING, page_size=1000,
                                                                      page_token=token))
        out += resp.jobs
        token = resp.next_page_token
        if not token:
            return out


def jobs_on_racks(jobs: list[jpb.JobState], racks: set[str]) -> list[str]:
    return sorted(j.job_id for j in jobs if {rack_of_node(n) for n in j.placement.node_ids} & racks)


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.0f} s"


# -- cdu-failure -----------------------------------------------------------------------------------


async def choose_cdus(loops: list[cpb.CoolingState], baseline: set[str],
                      whatif: Callable[[list[str]], Awaitable[cpb.WhatIfOutcome]]):
    """(cdu ids, outcome, racks it newly throttles, why): the first single CDU whose loop cannot carry its loss
    (the cooling twin's what-if) and whose loss makes racks throttle that do not throttle now (`baseline`), else
    every CDU of the first loop whose loss does."""
    ordered = [s for s in sorted(loops, key=lambda s: s.entity_id) if s.loop.cdu_ids]

    def new(out: cpb.WhatIfOutcome) -> list[str]:
        return sorted({r.rack_id for r in out.racks} - baseline)

    for loop in ordered:
        for cdu in loop.loop.cdu_ids:
            out = await whatif([cdu])
            if loop.entity_id in out.loops_not_carrying and new(out):
                return [cdu], out, new(out), (
                    f"{cdu} alone: {loop.entity_id} cannot carry the loss ({loop.loop.heat_w / 1e3:.0f} kW of heat, "
                    f"{loop.loop.capacity_if_one_fails_w / 1e3:.0f} kW left with one CDU down)")
    for loop in ordered:
        cdus = list(loop.loop.cdu_ids)
        out = await whatif(cdus)
        if new(out):
            red = "N+1" if loop.loop.redundancy == cpb.REDUNDANCY_N_PLUS_1 else "N"
            return cdus, out, new(out), (
                f"every CDU of {loop.entity_id} ({', '.join(cdus)}): its {red} group carries any single loss "
                f"({loop.loop.heat_w / 1e3:.0f} kW of heat, {loop.loop.capacity_if_one_fails_w / 1e3:.0f} kW left "
                f"with one CDU down), so all of them fail and the loop loses its flow")
    return [], None, [], "no CDU loss throttles a rack on this preset (air-cooled, or every loop carries it)"


async def cdu_failure(run: Run) -> None:
    w = run.t.step_timeout_s
    loops = (await run.call("cooling", "GetState", cpb.GetStateRequest(scope=cpb.COOLING_SCOPE_LOOP))).states
    if not loops:
        raise StepFailed("the cooling twin reports no CDU loops (an air-cooled preset such as dgx-h100-su, or no power "
                         "state yet): run the stack with --facility gb200-nvl72-hall for liquid-cooled racks")
    site = loops[0].site_id

    async def whatif(cdus: list[str]) -> cpb.WhatIfOutcome:
        return (await run.call("cooling", "WhatIfFailure", cpb.WhatIfFailureRequest(cdu_ids=cdus))).outcome

    racks_state = (await run.call("cooling", "GetState", cpb.GetStateRequest(scope=cpb.COOLING_SCOPE_RACK))).states
    baseline = {s.entity_id for s in racks_state if s.rack.HasField("time_to_throttle_s")}
    cdus, predicted, expect_racks, why = await choose_cdus(list(loops), baseline, whatif)
    if not cdus:
        raise StepFailed(why)
    loop_id = next(s.entity_id for s in loops if cdus[0] in s.loop.cdu_ids)
    loop_racks = sorted(s.entity_id for s in racks_state if s.rack.loop_id == loop_id)
    jobs = await running_jobs(run)
    expect_jobs = jobs_on_racks(jobs, set(expect_racks))
    plant = (await run.call("cooling", "GetState", cpb.GetStateRequest(scope=cpb.COOLING_SCOPE_PLANT))).states
    before_cooling_w = plant[0].plant.cooling_power_w if plant else float("nan")
    first = min(r.time_to_throttle_s for r in predicted.racks if r.rack_id in expect_racks)
    run.record("choose", True, f"fail {', '.join(cdus)} on {site}: {why}; the cooling twin's what-if predicts "
               f"{len(expect_racks)} more rack(s) throttling ({', '.join(expect_racks)}), first in {_fmt_s(first)}"
               + (f" (throttling already under present conditions: {', '.join(sorted(baseline))})" if baseline else "")
               + f"; {len(expect_jobs)} running job(s) on them",
               site=site, cdus=cdus, loop=loop_id, loop_racks=loop_racks, expected_racks=expect_racks,
               throttling_before=baseline,
               expected_jobs=expect_jobs, cooling_power_before_w=before_cooling_w,
               predicted_cooling_power_after_w=predicted.cooling_power_after_w)
    run.state.update(site=site, cdus=cdus, loop=loop_id)

    t_inject = time.time()
    for cdu in cdus:
        await run.send(topics.COOLING_EVENTS, cdu, cpb.CoolingEvent(
            event_id=f"{SOURCE}-{uuid.uuid4().hex[:12]}", site_id=site, entity_id=cdu,
            kind=cpb.COOLING_EVENT_KIND_CDU_FAILURE, event_time=_ts(t_inject), note="twinctl scenario cdu-failure"))
    run.record("inject", True, f"CDU_FAILURE for {', '.join(cdus)} on {topics.COOLING_EVENTS.name}",
               cdus=cdus, event_time=_iso(t_inject))

    def throttled(recs: list[cpb.CoolingAlert]):
        got: dict[str, cpb.CoolingAlert] = {}
        for a in recs:  # the first alert per rack (a later one may follow as the rack gets closer)
            if (a.kind == cpb.ALERT_KIND_THROTTLE_PREDICTED and not a.cleared
                    and a.entity_id in set(loop_racks) | set(expect_racks)
                    and _secs(a.alert_time) >= t_inject - 5):
                got.setdefault(a.entity_id, a)
        return got if set(expect_racks) <= set(got) else None

    alerts = await run.watch.until(topics.COOLING_ALERTS, throttled, w)
    if not alerts:
        raise StepFailed(f"no throttle alert for every rack of {loop_id} on {topics.COOLING_ALERTS.name} within {w:.0f} s")
    others = sorted({a.entity_id for a in run.watch.seen[topics.COOLING_ALERTS.name]
                     if a.kind == cpb.ALERT_KIND_THROTTLE_PREDICTED and not a.cleared} - set(alerts))
    ttt = {r: alerts[r].time_to_throttle_s for r in sorted(alerts)}
    run.record("cooling", True, f"cooling.alerts.v1: throttle predicted on {len(alerts)} rack(s) "
               f"({', '.join(sorted(alerts))}), {sum(len(a.gpu_ids) for a in alerts.values())} GPUs, time to "
               f"throttle {_fmt_s(min(ttt.values()))}..{_fmt_s(max(ttt.values()))}"
               + (f"; meanwhile other racks, not on {loop_id}: {', '.join(others)}" if others else ""),
               racks=sorted(alerts), other_racks_alerted=others, time_to_throttle_s=ttt,
               gpus={r: len(a.gpu_ids) for r, a in alerts.items()},
               severity={r: cpb.Severity.Name(a.severity) for r, a in alerts.items()})

    def flagged(recs: list[jpb.JobState]):
        got = {s.job_id: s for s in recs if any(f.kind == jpb.RISK_KIND_THERMAL_THROTTLE and f.entity_id in alerts
                                                for f in s.risk_flags)}
        return got if set(expect_jobs) <= set(got) else None

    def checkpoints(recs: list[jpb.JobRecommendation]):
        # only recommendations made after the failure: one made earlier from another alert on the same rack (a
        # design-day drift) carries that alert's longer deadline
        got = {r.job_id: r for r in recs if r.kind == jpb.RECOMMENDATION_KIND_CHECKPOINT_NOW
               and r.entity_id in alerts and _secs(r.recommendation_time) >= t_inject}
        return got if set(expect_jobs) <= set(got) else None

    states = await run.watch.until(topics.JOBS_STATE, flagged, w) if expect_jobs else {}
    recs = await run.watch.until(topics.JOBS_RECOMMENDATIONS, checkpoints, w) if expect_jobs else {}
    if expect_jobs and (states is None or recs is None):
        raise StepFailed(f"the jobs on {', '.join(expect_racks)} ({', '.join(expect_jobs)}) were not all flagged "
                         f"and told to checkpoint within {w:.0f} s", {"flagged": states is not None,
                                                                      "recommended": recs is not None})
    run.record("jobs", True, f"jobs.state.v1 / jobs.recommendations.v1: {len(states or {})} job(s) flagged thermal "
               f"throttle on those racks, checkpoint-now for {', '.join(sorted(recs or {})) or 'none (no job on those racks)'}",
               flagged=sorted(states or {}), checkpoint_now=sorted(recs or {}),
               deadlines_s={j: r.deadline_s for j, r in (recs or {}).items()},
               messages={j: r.message for j, r in (recs or {}).items()})

    def failed_at(recs: list[cpb.CoolingState]):
        down = {x.entity_id: _secs(x.state_time) for x in recs
                if x.scope == cpb.COOLING_SCOPE_CDU and x.entity_id in cdus and not x.cdu.up}
        return max(down.values()) if set(down) == set(cdus) else None

    t_fail = await run.watch.until(topics.COOLING_STATE, failed_at, w)

    def plant_after(recs: list[cpb.CoolingState]):
        # the plant states of the evaluations that saw the CDUs down (their state time is the CDU states')
        got = {round(x.plant.cooling_power_w, 3): x for x in recs if x.scope == cpb.COOLING_SCOPE_PLANT
               and x.entity_id == site and _secs(x.state_time) >= t_fail}
        return got or None

    def power_sees(recs: list[ppb.PowerState]):
        after = plant_after(run.watch.seen[topics.COOLING_STATE.name]) or {}
        got = [x for x in recs if x.scope == ppb.POWER_SCOPE_SITE and x.entity_id == site
               and round(x.site.cooling_power_w, 3) in after]
        return got[-1] if got else None

    plants = await run.watch.until(topics.COOLING_STATE, plant_after, w) if t_fail is not None else None
    site_state = await run.watch.until(topics.POWER_STATE, power_sees, w) if plants else None
    if site_state is None:
        raise StepFailed(f"no power.state.v1 site state carrying the plant's new cooling power within {w:.0f} s",
                         {"cdu_states_down": t_fail is not None, "plant_states_after": bool(plants)})
    # power_sees matched against every plant state seen so far, which may be newer than `plants` (taken
    # when the first one arrived): look the matching one up in the same set
    plant = (plant_after(run.watch.seen[topics.COOLING_STATE.name]) or plants)[round(site_state.site.cooling_power_w, 3)]
    d = site_state.site
    run.record("power", True, f"power.state.v1 site {site}: cooling {before_cooling_w / 1e3:.1f} -> "
               f"{d.cooling_power_w / 1e3:.1f} kW (the plant's, after the failure; what-if said "
               f"{predicted.cooling_power_after_w / 1e3:.1f} kW), site {site_state.input_power_w / 1e6:.3f} MW, "
               f"PUE {d.pue:.3f}",
               cooling_power_before_w=before_cooling_w, cooling_power_after_w=d.cooling_power_w,
               site_power_w=site_state.input_power_w, pue=d.pue, plant_heat_w=plant.plant.heat_load_w,
               plant_state_time=_iso(_secs(plant.state_time)), cdus_down_at=_iso(t_fail))


async def cdu_restore(run: Run) -> None:
    """Repair every CDU the cooling twin reports down (the scenario's, or any left from an earlier run)."""
    cdus = (await run.call("cooling", "GetState", cpb.GetStateRequest(scope=cpb.COOLING_SCOPE_CDU))).states
    down = sorted(s.entity_id for s in cdus if not s.cdu.up)
    if not down:
        run.record("restore", True, "no CDU is down: nothing to repair")
        return
    t = time.time()
    for cdu in down:
        site = next(s.site_id for s in cdus if s.entity_id == cdu)
        await run.send(topics.COOLING_EVENTS, cdu, cpb.CoolingEvent(
            event_id=f"{SOURCE}-{uuid.uuid4().hex[:12]}", site_id=site, entity_id=cdu,
            kind=cpb.COOLING_EVENT_KIND_CDU_REPAIR, event_time=_ts(t), note="twinctl scenario restore"))

    def repaired(recs: list[cpb.CoolingState]):
        up = {s.entity_id for s in recs if s.scope == cpb.COOLING_SCOPE_CDU and s.cdu.up}
        return set(down) <= up

    ok = await run.watch.until(topics.COOLING_STATE, repaired, run.t.step_timeout_s)
    run.record("restore", bool(ok), f"CDU_REPAIR for {', '.join(down)}: "
               + ("cooling.state.v1 shows them up" if ok else "not seen up within the step timeout"), cdus=down)


# -- grid-curtailment ------------------------------------------------------------------------------


def openadr_event(event_id: str, limit_kw: float, start: datetime, duration_s: float) -> dict[str, Any]:
    return {"id": event_id, "objectType": "EVENT", "programID": "twin-scenario", "eventName": "curtail-20pct",
            "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}],
            "intervalPeriod": {"start": start.isoformat().replace("+00:00", "Z"),
                               "duration": f"PT{int(duration_s)}S"},
            "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [round(limit_kw, 3)]}]}]}


async def post_event(run: Run, doc: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    headers = {"Authorization": f"Bearer {run.t.token}"} if run.t.token else {}
    url = run.t.power_http.rstrip("/") + "/openadr3/events"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=run.t.step_timeout_s)) as http, \
                http.post(url, json=doc, headers=headers) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 202:
                raise StepFailed(f"POST {url} answered {resp.status}: {body}")
            return body
    except aiohttp.ClientError as exc:
        raise StepFailed(f"POST {url}: {exc.__class__.__name__}: {exc}") from None


def plan_summary(p: ppb.CurtailmentPlan) -> dict[str, Any]:
    after = [w for t, w in zip(p.timeline_offset_s, p.timeline_site_import_w, strict=False)
             if t >= p.deadline_offset_s]
    return {"plan_id": p.plan_id, "event_id": p.event_id, "limit_w": p.limit_w,
            "baseline_site_power_w": p.baseline_site_power_w, "deadline_offset_s": p.deadline_offset_s,
            "duration_s": p.duration_s, "meets_limit": p.meets_limit,
            "meets_at_offset_s": p.meets_at_offset_s if p.HasField("meets_at_offset_s") else None,
            "shortfall_w": p.shortfall_w, "capped_gpus": len(p.cap_w),
            "cap_w_min": min(p.cap_w) if p.cap_w else None, "cap_w_max": max(p.cap_w) if p.cap_w else None,
            "sources": [{"kind": ppb.SourceKind.Name(s.kind), "id": s.source_id, "power_w": s.power_w,
                         "start_offset_s": s.start_offset_s} for s in p.sources],
            "paused_job_ids": list(p.paused_job_ids), "throughput_cost": p.throughput_cost,
            "lost_work_gpu_s": p.lost_work_gpu_s, "max_import_after_deadline_w": max(after) if after else None,
            "steps": list(p.steps)}


async def grid_curtailment(run: Run) -> None:
    w = run.t.step_timeout_s
    site = (await run.call("power", "GetSiteState", ppb.GetSiteStateRequest())).site
    draw_w = site.input_power_w
    limit_kw = draw_w * (1 - CURTAIL_FRACTION) / 1e3
    start = datetime.now(UTC) + timedelta(seconds=CURTAIL_START_S)
    event_id = f"{GRID_EVENT_ID}-{uuid.uuid4().hex[:8]}"
    run.record("choose", True, f"site {site.entity_id} draws {draw_w / 1e6:.3f} MW now: limit import to "
               f"{limit_kw / 1e3:.3f} MW ({CURTAIL_FRACTION:.0%} below) from {start:%H:%M:%S}Z for "
               f"{CURTAIL_DURATION_S / 60:.0f} min", site=site.entity_id, site_power_w=draw_w,
               limit_kw=limit_kw, start=start.isoformat(), event_id=event_id)
    body = await post_event(run, openadr_event(event_id, limit_kw, start, CURTAIL_DURATION_S))
    run.record("inject", True, f"POST /openadr3/events -> 202, event {body.get('event_id')}", response=body)

    def plan(recs: list[ppb.CurtailmentPlan]):
        mine = [p for p in recs if p.event_id == event_id]
        return mine[-1] if mine else None

    p = await run.watch.until(topics.POWER_PLANS, plan, w)
    if p is None:
        raise StepFailed(f"no plan for {event_id} on {topics.POWER_PLANS.name} within {w:.0f} s")
    s = plan_summary(p)
    sources = ", ".join(f"{x['id']} {x['power_w'] / 1e3:.0f} kW" for x in s["sources"]) or "none"
    when = f" from t+{s['meets_at_offset_s']:.0f} s" if s["meets_at_offset_s"] is not None else ""
    verdict = f"meets the limit{when}" if p.meets_limit else f"CANNOT meet it: short by {p.shortfall_w / 1e3:.1f} kW"
    run.record("power", True, f"power.plans.v1 {p.plan_id}: limit {p.limit_w / 1e6:.3f} MW vs "
               f"{p.baseline_site_power_w / 1e6:.3f} MW now; {verdict}; caps on {len(p.cap_w)} GPUs"
               + (f" ({min(p.cap_w):.0f}-{max(p.cap_w):.0f} W)" if p.cap_w else "")
               + f"; sources {sources}; pause {', '.join(p.paused_job_ids) or 'no job'}; throughput cost "
               f"{p.throughput_cost:.1%}", **s)
    run.state.update(event_id=event_id, event=openadr_event(event_id, limit_kw, start, CURTAIL_DURATION_S))
    if p.paused_job_ids:
        def told(recs: list[jpb.JobRecommendation]):
            got = {r.job_id: r for r in recs if r.kind == jpb.RECOMMENDATION_KIND_CHECKPOINT_NOW}
            return got if set(p.paused_job_ids) <= set(got) else None

        recs = await run.watch.until(topics.JOBS_RECOMMENDATIONS, told, w)
        if recs is None:
            raise StepFailed(f"the paused jobs got no checkpoint-now recommendation within {w:.0f} s")
        run.record("jobs", True, f"jobs.recommendations.v1: checkpoint-now for the paused job(s) "
                   f"{', '.join(sorted(recs))}", checkpoint_now=sorted(recs),
                   messages={j: r.message for j, r in recs.items()})


async def grid_restore(run: Run) -> None:
    doc = run.state.get("event")
    if doc is None:
        run.record("restore", True, "no grid event of this run to cancel")
        return
    body = await post_event(run, {**doc, "cancelled": True})
    run.record("restore", True, f"event {doc['id']} cancelled (202)", response=body)


# -- spine-failure ---------------------------------------------------------------------------------


def crossing_jobs(jobs: list[jpb.JobState], node_group: Callable[[str], int], group: int) -> list[str]:
    """Jobs with nodes in leaf group `group` and in another one: their traffic crosses that group's uplinks."""
    out = []
    for j in jobs:
        groups = {node_group(n) for n in j.placement.node_ids}
        if group in groups and len(groups) > 1:
            out.append(j.job_id)
    return sorted(out)


async def spine_failure(run: Run) -> None:
    from twin.core.facility import build_inventory, load_facility_spec

    w = run.t.step_timeout_s
    inv = build_inventory(load_facility_spec(run.t.facility))
    fabric = (await run.call("fabric", "GetFabricState", fpb.GetFabricStateRequest())).state
    if fabric.site_id != inv.spec.site_id:
        raise StepFailed(f"the fabric twin runs site {fabric.site_id!r}, not {inv.spec.site_id!r} "
                         f"({run.t.facility}): give --facility")
    jobs = await running_jobs(run)

    def group(node: str) -> int:
        return int(inv.node_leaf_group[inv.node_index[node]])

    counts = {g: crossing_jobs(jobs, group, g) for g in range(inv.n_leaf_groups)}
    if not any(counts.values()):
        raise StepFailed(f"no running job spans two leaf groups ({inv.n_leaf_groups} group(s) of "
                         f"{inv.spec.fabric.nodes_per_leaf} nodes on {inv.spec.site_id}): no spine traffic to slow; "
                         f"run the stack with --facility gb200-nvl72-hall (one leaf group per rack)")
    # the job twin's own what-if for one uplink (rail 0, spine 0) per crossed leaf group: the worst one wins
    predicted: dict[str, dict[str, float]] = {}
    for g in (g for g, js in counts.items() if js):
        link = f"leaf-r0-g{g}/spine0"
        resp = await run.call("jobs", "WhatIfFailure", jpb.WhatIfFailureRequest(
            target_kind=jpb.FAILURE_TARGET_KIND_LINK, target_id=link, duration_s=600))
        predicted[link] = {i.job_id: i.slowdown_fraction for i in resp.impacts}
    link = max(predicted, key=lambda k: (sum(predicted[k].values()), len(counts[int(k.split("-g")[1].split("/")[0])])))
    g = int(link.split("-g")[1].split("/")[0])
    expect = counts[g]
    before = {j.job_id: j.predicted_step_time_s for j in jobs}
    run.record("choose", True, f"take {link} down: leaf group {g} is crossed by {len(expect)} running job(s) "
               f"({', '.join(expect)}); the job twin's what-if predicts the largest slowdown of the "
               f"{len(predicted)} crossed leaf groups' uplinks there: "
               + (", ".join(f"{j} +{v:.1%}" for j, v in sorted(predicted[link].items())) or "none"),
               link=link, expected_jobs=expect, step_time_before_s={j: before[j] for j in expect},
               predicted_slowdown=predicted[link])
    t = time.time()
    await run.send(topics.FABRIC_EVENTS, link, fpb.LinkEvent(link_id=link, kind=fpb.LINK_EVENT_KIND_DOWN,
                                                             event_time=_ts(t), reason="twinctl scenario spine-failure"))
    run.record("inject", True, f"LinkEvent DOWN {link} on {topics.FABRIC_EVENTS.name}", link=link, event_time=_iso(t))

    def down(recs: list[fpb.FabricState]):
        for s in reversed(recs):
            for h in s.links:
                if h.link_id == link and h.capacity_fraction == 0:
                    return s
        return None

    state = await run.watch.until(topics.FABRIC_STATE, down, w)
    if state is None:
        raise StepFailed(f"fabric.state.v1 did not show {link} down within {w:.0f} s")
    run.record("fabric", True, f"fabric.state.v1: {link} capacity 0 ({state.links_down} link(s) down)",
               links_down=state.links_down)
    leaf = link.split("/")[0]

    def slowed(recs: list[jpb.JobState]):
        got: dict[str, jpb.JobState] = {}
        for s in recs:
            if any(f.kind == jpb.RISK_KIND_DEGRADED_LINK and f.entity_id == leaf for f in s.risk_flags):
                got[s.job_id] = s
        return got if set(expect) <= set(got) else None

    def rose(recs: list[jpb.JobState]):
        got = slowed(recs)
        return got if got and any(f.slowdown_fraction > 0 for j in expect for f in got[j].risk_flags
                                  if f.kind == jpb.RISK_KIND_DEGRADED_LINK) else None

    # every crossing job flagged (one whose traffic hides behind compute keeps its step time: said so)
    got = (await run.watch.until(topics.JOBS_STATE, rose, min(w, 10.0))
           or await run.watch.until(topics.JOBS_STATE, slowed, w))
    if got is None:
        raise StepFailed(f"not every job crossing {link} was slowed on jobs.state.v1 within {w:.0f} s")
    after = {j: s.predicted_step_time_s for j, s in got.items()}
    pct = {j: after[j] / before[j] - 1 if before.get(j) else None for j in got}
    flag = {j: next(f.slowdown_fraction for f in s.risk_flags if f.kind == jpb.RISK_KIND_DEGRADED_LINK)
            for j, s in got.items()}
    slower = sorted(j for j in got if flag[j] > 0)  # the twin's stated slowdown for the link (not other causes)
    same = sorted(set(got) - set(slower))
    # where the communication time came from: the fabric twin, or the job twin's own estimate (JobState.comm_source)
    own = {j: (st.comm_source_detail or "fabric twin unreachable")
           if st.comm_source == jpb.COMM_SOURCE_OWN_ESTIMATE else "" for j, st in got.items()}
    source = {j: ("own estimate: " + d) if d else "fabric twin" for j, d in own.items()}
    run.record("jobs", True, f"jobs.state.v1: {len(got)} job(s) flagged degraded link {leaf}; {len(slower)} slower: "
               + ", ".join(f"{j} +{flag[j]:.1%} ({before[j] * 1e3:.1f} -> {after[j] * 1e3:.1f} ms/step)"
                           for j in slower)
               + (f"; no slowdown stated for {', '.join(same)} (its collectives' time did not change)" if same else "")
               + ("; communication times from the job twin's own estimate for " + ", ".join(j for j in sorted(got)
                                                                                             if own[j])
                  if any(own.values()) else "; communication times from the fabric twin"),
               flagged=sorted(got), communication=source, slowed=slower, step_time_before_s={j: before.get(j) for j in got},
               step_time_after_s=after, step_time_rise=pct, slowdown_fraction=flag)
    run.state.update(link=link, before={j: before[j] for j in expect})

    def moves(recs: list[jpb.JobRecommendation]):
        mine = {r.job_id: r for r in recs if r.job_id in got and r.entity_id in (leaf, link)}
        return mine or None

    recs = await run.watch.until(topics.JOBS_RECOMMENDATIONS, moves, min(w, 15.0))
    run.record("recommendations", True,
               "jobs.recommendations.v1: " + ("; ".join(r.message for r in recs.values()) if recs else
                                              "none within 15 s (no slowdown above the job twin's move margin, or already "
                                              "recommended: each recommendation is published once per cause)"),
               recommendations={j: {"kind": jpb.RecommendationKind.Name(r.kind), "message": r.message,
                                    "gain": r.expected_gain_fraction} for j, r in (recs or {}).items()})


async def spine_restore(run: Run) -> None:
    """Bring back every link the fabric twin reports down (the scenario's, or left from an earlier run)."""
    state = (await run.call("fabric", "GetFabricState", fpb.GetFabricStateRequest())).state
    down = sorted(h.link_id for h in state.links if h.capacity_fraction == 0)
    if not down:
        run.record("restore", True, "no link is down: nothing to bring up")
        return
    t = time.time()
    for link in down:
        await run.send(topics.FABRIC_EVENTS, link, fpb.LinkEvent(link_id=link, kind=fpb.LINK_EVENT_KIND_UP,
                                                                 event_time=_ts(t), reason="twinctl scenario restore"))
    slowed: list[str] = sorted(run.state.get("before", {}))
    leaves = {link.split("/")[0] for link in down}

    def back(recs: list[jpb.JobState]):
        last = {s.job_id: s for s in recs if s.job_id in slowed}
        if set(last) != set(slowed):
            return None
        if any(f.kind == jpb.RISK_KIND_DEGRADED_LINK and f.entity_id in leaves for s in last.values()
               for f in s.risk_flags):
            return None
        return last

    last = await run.watch.until(topics.JOBS_STATE, back, run.t.step_timeout_s) if slowed else {}
    before: dict[str, float] = run.state.get("before", {})
    run.record("restore", last is not None, f"LinkEvent UP for {', '.join(down)}"
               + ("" if not slowed else "; the slowed jobs are no longer flagged: " + ", ".join(
                   f"{j} {last[j].predicted_step_time_s * 1e3:.1f} ms (healthy before {before[j] * 1e3:.1f} ms)"
                   for j in slowed) if last else "; the slowed jobs still carry the flag after the step timeout"),
               links=down, step_time_after_restore_s={j: s.predicted_step_time_s for j, s in (last or {}).items()})


# -- job-landing -----------------------------------------------------------------------------------


def landing_spec(n_gpus: int, gpus_per_node: int, gpu_model: str) -> jpb.JobSpec:
    """A Llama-3-70B-shaped job: TP over one node's GPUs (at most 8), PP 4, the rest data parallel."""
    tp = min(gpus_per_node, 8)
    pp = 4
    dp = max(n_gpus // (tp * pp), 1)
    return jpb.JobSpec(model=jpb.ModelShape(layers=80, hidden=8192, ffn_hidden=28672, heads=64, kv_heads=8,
                                            vocab=128256, seq_len_tokens=8192, gated_ffn=True),
                       parallel=jpb.Parallelism(tp=tp, pp=pp, dp=dp, cp=1, data_parallel=jpb.DATA_PARALLEL_ZERO1,
                                                sequence_parallel=tp > 1),
                       micro_batch_sequences=1, global_batch_sequences=dp * 16, precision=jpb.PRECISION_BF16,
                       recompute=jpb.RECOMPUTE_SELECTIVE, gpu_model=gpu_model, n_gpus=tp * pp * dp,
                       owner="twin-scenario")


def landing_candidates(inv, held: set[str]) -> list[tuple[str, list[str], int]]:
    """(candidate id, rack ids, free GPUs): one per row, and one mixing the first half of every row (a single row:
    the row and its two halves)."""
    rows: dict[str, list] = {}
    for r in inv.racks:
        rows.setdefault(r.row_id, []).append(r)
    out = []

    def free(racks) -> int:
        return sum(int(inv.node_gpus[inv.node_index[n]]) for r in racks for n in inv.node_ids(r) if n not in held)

    for row, racks in rows.items():
        out.append((f"row-{row}", [r.rack_id for r in racks], free(racks)))
    if len(rows) > 1:
        mixed = [r for racks in rows.values() for r in racks[:max(len(racks) // 2, 1)]]
        out.append(("mixed-rows", [r.rack_id for r in mixed], free(mixed)))
    else:  # one row: its two halves beside the whole row
        (row, racks), = rows.items()
        half = max(len(racks) // 2, 1)
        for name, part in ((f"row-{row}-first-half", racks[:half]), (f"row-{row}-second-half", racks[half:])):
            if part:
                out.append((name, [r.rack_id for r in part], free(part)))
    return out


async def job_landing(run: Run) -> None:
    from twin.core.facility import build_inventory, load_facility_spec

    inv = build_inventory(load_facility_spec(run.t.facility))
    jobs = await running_jobs(run)
    held = {n for j in jobs for n in j.placement.node_ids}
    cands = landing_candidates(inv, held)
    rack0 = inv.racks[0]
    per_node = inv.node_type_of_rack(rack0).gpus
    gpu_model = inv.node_type_of_rack(rack0).gpu_model
    tp, pp = min(per_node, 8), 4
    unit = tp * pp
    fit, which = min(c[2] for c in cands), "in every candidate"
    n = min(LANDING_GPUS, fit // unit * unit)
    if n <= 0:
        fit, which = max(c[2] for c in cands), "in the roomiest candidate"
        n = min(LANDING_GPUS, fit // unit * unit)
    if n <= 0:
        raise StepFailed(f"no candidate has {unit} free GPUs ({len(held)} of {inv.n_nodes} nodes run jobs)")
    why = ("" if n == LANDING_GPUS else f" ({LANDING_GPUS:,} do not fit: {inv.spec.site_id} has {inv.n_gpus:,} GPUs, "
           f"{fit:,} free {which}; the largest multiple of TP x PP = {unit} that fits)")
    spec = landing_spec(n, per_node, gpu_model)
    run.record("choose", True, f"a {n:,}-GPU Llama-3-70B-shaped job (TP {tp} PP {pp} DP {n // unit}){why} on "
               f"{len(cands)} candidates: " + ", ".join(f"{c} ({len(r)} racks, {f} GPUs free)" for c, r, f in cands),
               n_gpus=n, candidates={c: {"racks": r, "free_gpus": f} for c, r, f in cands})
    resp = await run.call("jobs", "WhatIfPlacement", jpb.WhatIfPlacementRequest(
        spec=spec, candidates=[jpb.PlacementCandidate(candidate_id=c, rack_ids=r) for c, r, _ in cands]))
    ranked = [{"rank": o.rank, "candidate": o.candidate_id, "step_time_s": o.predicted_step_time_s,
               "tokens_per_s": o.predicted_tokens_per_s, "power_w": o.power_w, "thermal_risk": o.thermal_risk,
               "network_risk": o.network_risk, "detail": o.detail} for o in resp.outcomes]
    run.record("jobs", True, "JobService.WhatIfPlacement: " + "; ".join(
        f"#{o['rank']} {o['candidate']} " + (f"{o['step_time_s'] * 1e3:.0f} ms/step, {o['power_w'] / 1e3:.0f} kW, "
                                            f"thermal {o['thermal_risk']:.2f}, network {o['network_risk']:.2f}"
                                            if o["step_time_s"] else o["detail"]) for o in ranked), ranked=ranked)


async def landing_restore(run: Run) -> None:
    run.record("restore", True, "nothing to undo: WhatIfPlacement changes nothing")


# -- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    watch: tuple[topics.Topic, ...]
    run: Callable[[Run], Awaitable[None]]
    restore: Callable[[Run], Awaitable[None]]


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("cdu-failure", "a CDU fails -> throttle alerts on its racks -> jobs flagged, checkpoint -> power sees "
             "the plant change", (topics.COOLING_ALERTS, topics.COOLING_STATE, topics.JOBS_STATE,
                                  topics.JOBS_RECOMMENDATIONS, topics.POWER_STATE), cdu_failure, cdu_restore),
    Scenario("grid-curtailment", "OpenADR 3 import limit 20 % below the present draw in 10 min -> a curtailment plan",
             (topics.POWER_PLANS, topics.JOBS_RECOMMENDATIONS), grid_curtailment, grid_restore),
    Scenario("spine-failure", "a leaf-spine link goes down -> the jobs crossing it slow down -> recommendations",
             (topics.FABRIC_STATE, topics.JOBS_STATE, topics.JOBS_RECOMMENDATIONS), spine_failure, spine_restore),
    Scenario("job-landing", "a 4,096-GPU job (or the largest that fits) ranked on candidate racks", (),
             job_landing, landing_restore),
)}


async def run_scenario(name: str, targets: Targets, *, on_step: OnStep | None = None, restore: bool = True,
                       only_restore: bool = False) -> Report:
    """Run scenario `name` against the running twin; `restore` undoes it at the end (also after a failed step)."""
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r} (one of {', '.join(SCENARIOS)})")
    sc = SCENARIOS[name]
    run = Run(name, targets, on_step)
    try:
        run.watch = await asyncio.wait_for(Watch(targets.bootstrap, list(sc.watch)).start(), targets.step_timeout_s)
        if not only_restore:
            try:
                await sc.run(run)
            except StepFailed as exc:
                run.record("failed", False, exc.summary, **exc.data)
        if restore or only_restore:
            try:
                await sc.restore(run)
            except StepFailed as exc:
                run.record("restore", False, exc.summary, **exc.data)
    except (OSError, TimeoutError) as exc:
        run.record("connect", False, f"cannot reach the twin's broker at {targets.bootstrap}: "
                   f"{exc.__class__.__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - aiokafka's connection errors; report, do not crash the caller
        if exc.__class__.__module__.startswith("aiokafka"):
            run.record("connect", False, f"broker {targets.bootstrap}: {exc.__class__.__name__}: {exc}")
        else:
            raise
    finally:
        await run.close()
    return run.report
