"""What a refresh visits: only the jobs whose inputs changed (events, link changes crossing their placement,
alerts and plans concerning them, time-driven changes) are predicted again, and the book updates in place."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from twin.core import topics
from twin.core.facility import load_facility_spec
from twin.jobs.adapters.repository import InMemoryJobStore
from twin.jobs.adapters.stream import Engine
from twin.jobs.domain.book import EventRejected, Facility, JobBook, apply_event
from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.domain.spec import JobSpec, ModelShape, Parallelism, TrainingSetup
from twin.jobs.live import CapPlan, CommAnswer, JobTwin, LinkHealth, RackAlert, ThermalAlert
from twin.jobs.site import build_site_map

SPEC = JobSpec(ModelShape(layers=32, hidden=4096, ffn_hidden=14336, heads=32, kv_heads=8, vocab=128256, seq_len=8192,
                          gated_ffn=True), Parallelism(tp=8, dp=4), TrainingSetup(micro_batch=1, global_batch=4))
T0 = 1_800_000_000.0


def _site():
    """dgx-h100-su with 8 nodes per leaf: leaf group 0 = racks su1-0000/0001, 1 = 0002/0003, 2 = 0004/0005 ..."""
    spec = load_facility_spec("dgx-h100-su").model_copy(deep=True)
    fabric = spec.fabric.model_copy(update={"nodes_per_leaf": 8, "spines": 4})
    return build_site_map(spec.model_copy(update={"fabric": fabric}))


SITE = _site()
JOBS = {
    "j": ("su1-0000-n00", "su1-0000-n01", "su1-0002-n00", "su1-0002-n01"),   # leaf groups 0 and 1
    "k": ("su1-0004-n00", "su1-0004-n01", "su1-0004-n02", "su1-0004-n03"),   # group 2 only
    "m": ("su1-0005-n00", "su1-0005-n01", "su1-0006-n00", "su1-0006-n01"),   # groups 2 and 3
}


class Fabric:
    up = True

    async def answer(self, inp, calls, hot_gpus=()) -> CommAnswer:
        return CommAnswer({}, "fabric", "test")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


class Recorder:
    """Which jobs a refresh computes and how many it looks at (``inputs`` calls)."""

    def __init__(self, twin: JobTwin) -> None:
        self.computed: list[str] = []
        self.looked = 0
        compute, inputs = twin.compute, twin.inputs

        def counting_compute(job_id, inp, comm, now_s):
            self.computed.append(job_id)
            return compute(job_id, inp, comm, now_s)

        def counting_inputs(rec, now_s):
            self.looked += 1
            return inputs(rec, now_s)

        twin.compute, twin.inputs = counting_compute, counting_inputs

    def take(self) -> tuple[list[str], int]:
        out = sorted(self.computed), self.looked
        self.computed, self.looked = [], 0
        return out


def setup(jobs=JOBS):
    twin = JobTwin(SITE)
    for job_id, nodes in jobs.items():
        twin.apply(JobEvent(job_id, EventKind.SUBMITTED, T0, spec=SPEC))
        twin.apply(JobEvent(job_id, EventKind.STARTED, T0 + 1, nodes=nodes, n_gpus=SPEC.n_gpus))
    clock = Clock(T0 + 10)
    eng = Engine(twin, Fabric(), None, InMemoryJobStore(), state_topic=topics.JOBS_STATE,
                 recommendations_topic=topics.JOBS_RECOMMENDATIONS, clock=clock)
    rec = Recorder(twin)
    asyncio.run(eng.refresh())
    assert rec.take()[0] == sorted(jobs)
    return twin, eng, clock, rec


def refresh(eng: Engine, clock: Clock, dt: float = 1.0) -> None:
    clock.t += dt
    asyncio.run(eng.refresh())


def test_a_refresh_with_nothing_changed_visits_and_recomputes_no_job() -> None:
    twin, eng, clock, rec = setup()
    published = eng.stats.states_published
    for _ in range(3):
        refresh(eng, clock)
        assert rec.take() == ([], 0)
    assert eng.stats.states_published == published  # nothing to publish before the periodic republish
    refresh(eng, clock, eng.republish_s)
    assert rec.take() == ([], 0)
    assert eng.stats.states_published == published + len(JOBS)  # due: every running job once


def test_a_link_change_recomputes_exactly_the_jobs_crossing_it() -> None:
    twin, eng, clock, rec = setup()
    twin.set_links({"leaf-r0-g0/spine1": LinkHealth(0.5)})     # j only (k, m do not touch group 0)
    refresh(eng, clock)
    assert rec.take()[0] == ["j"]
    twin.set_links({"leaf-r0-g0/spine1": LinkHealth(0.5), "leaf-r0-g2/spine0": LinkHealth(0.5)})
    refresh(eng, clock)
    assert rec.take()[0] == ["m"]                               # k sits in group 2 alone: its traffic stays there
    twin.set_links({"leaf-r0-g0/spine1": LinkHealth(0.5), "leaf-r0-g2/spine0": LinkHealth(0.5, utilization=0.9)})
    refresh(eng, clock)
    assert rec.take()[0] == []                                  # utilization is no input
    twin.set_links({"leaf-r0-g2/spine0": LinkHealth(0.5), "su1-0004-n00/nic0": LinkHealth(0.0)})
    refresh(eng, clock)
    assert rec.take()[0] == ["j", "k"]                          # j healed; k spans NVLink domains on that NIC
    assert [f.entity_id for f in twin.jobs["m"].flags if f.kind == "degraded_link"] == ["leaf-r0-g2"]
    assert not [f for f in twin.jobs["j"].flags if f.kind == "degraded_link"]
    twin.set_links({"spine2": LinkHealth(0.5), "leaf-r0-g2/spine0": LinkHealth(0.5),
                    "su1-0004-n00/nic0": LinkHealth(0.0)})
    refresh(eng, clock)
    assert rec.take()[0] == ["j", "m"]                          # a spine: every job spanning leaf groups


def test_crossed_links_from_the_index_match_every_link_checked() -> None:
    twin, eng, clock, rec = setup()
    links = {f"leaf-r0-g{g}/spine{s}": LinkHealth(0.5) for g in range(4) for s in range(4)}
    links.update({f"{n}/nic{k}": LinkHealth(0.25) for nodes in JOBS.values() for n in nodes[:2] for k in range(2)})
    links["spine1"] = LinkHealth(0.75, flapping=True)
    twin.set_links(links)
    for job_id in JOBS:
        gpus = twin.gpu_ids(twin.book.jobs[job_id])
        nodes = SITE.nodes_of_gpus(gpus)
        every = tuple(sorted((i, round(h.capacity, 4), h.flapping) for i, h in twin.links.items()
                             if (sc := twin.scope(i)) is not None and SITE.crosses(sc, nodes, gpus)))
        assert twin.crossed_links(nodes, gpus) == every


def test_alerts_plans_and_time_recompute_only_the_jobs_they_concern() -> None:
    twin, eng, clock, rec = setup()
    now = clock.t
    twin.add_thermal(ThermalAlert("a1", "su1-0004", frozenset(), now + 5, now))   # k's rack, throttles in 5 s
    refresh(eng, clock)
    assert rec.take()[0] == ["k"]
    refresh(eng, clock)
    assert rec.take()[0] == []
    refresh(eng, clock, 5)                                      # the throttle time has come: no new message
    assert rec.take()[0] == ["k"]
    assert twin.jobs["k"].inputs.thermal_fraction < 1.0
    twin.add_rack_alert(RackAlert("r1", "su1-0006", "overload", critical=True, received_s=clock.t))  # m
    refresh(eng, clock)
    assert rec.take()[0] == ["m"]
    m_gpus = twin.gpu_ids(twin.book.jobs["m"])
    twin.add_plan(CapPlan("p1", "ev1", clock.t + 10, clock.t + 20, {g: 300.0 for g in m_gpus[:4]}))
    refresh(eng, clock)
    assert rec.take()[0] == ["m"]                               # the plan concerns it before it starts
    refresh(eng, clock, 10)
    assert rec.take()[0] == ["m"] and twin.jobs["m"].inputs.cap_w == 300.0
    refresh(eng, clock, 10)                                     # the plan has ended (and expired)
    assert rec.take()[0] == ["m"] and twin.jobs["m"].inputs.cap_w is None
    refresh(eng, clock, twin.settings.alert_ttl_s)              # the alerts lapse
    assert rec.take()[0] == ["k", "m"]


def test_events_recompute_their_job_and_a_restart_moves_it_in_the_indexes() -> None:
    twin, eng, clock, rec = setup()
    published = eng.stats.states_published
    twin.apply(JobEvent("k", EventKind.PROGRESS, clock.t, step=10, step_time_s=2.0))
    twin.progress("k")                                          # what EventsHandler does after a batch
    refresh(eng, clock)
    assert rec.take()[0] == []                                  # progress is no input: measured and published
    assert twin.jobs["k"].counted_step == 10 and eng.stats.states_published == published + 1
    twin.apply(JobEvent("j", EventKind.PREEMPTED, clock.t))
    twin.apply(JobEvent("j", EventKind.STARTED, clock.t + 1, nodes=("su1-0001-n00", "su1-0001-n01", "su1-0007-n00",
                                                                       "su1-0007-n01"), n_gpus=SPEC.n_gpus))
    refresh(eng, clock, 2)
    assert rec.take()[0] == ["j"]
    twin.set_links({"leaf-r0-g1/spine0": LinkHealth(0.5)})     # j's old group: no job there now
    refresh(eng, clock)
    assert rec.take()[0] == []
    twin.set_links({"leaf-r0-g3/spine0": LinkHealth(0.5)})     # its new group (and m's)
    refresh(eng, clock)
    assert rec.take()[0] == ["j", "m"]


def test_the_book_updates_in_place_keeps_its_checks_and_ignores_replays() -> None:
    fac = Facility({f"n{i}": 8 for i in range(4)})
    book = JobBook()
    events = [JobEvent("a", EventKind.SUBMITTED, 1), JobEvent("a", EventKind.STARTED, 2, nodes=("n0",), n_gpus=8),
              JobEvent("b", EventKind.SUBMITTED, 1)]
    for e in events:
        assert book.apply(e, fac) is not None
    pure = JobBook()
    for e in events:
        pure = apply_event(pure, e, fac)
    assert book == pure
    for e in events:
        assert book.apply(e, fac) is None                       # replays change nothing
    with pytest.raises(EventRejected, match="taken"):
        book.apply(JobEvent("b", EventKind.STARTED, 3, nodes=("n0",), n_gpus=4), fac)
    assert book == pure and book.holders == {"n0": {"a": 8}}  # a rejected event leaves the book as it was
    before = pure
    after = apply_event(pure, JobEvent("a", EventKind.FINISHED, 5), fac)
    assert before.holders == {"n0": {"a": 8}} and after.holders == {}  # the pure form copies
    book.apply(JobEvent("a", EventKind.FINISHED, 5), fac)
    assert book == after and [r.job_id for r in book.running()] == []


def test_a_state_from_the_cached_static_part_is_the_message_state_to_proto_builds() -> None:
    from twin.jobs.adapters import codec
    from twin.jobs.v1 import jobs_pb2 as pb

    def plain(view, t):  # what view_to_proto built before it cached the static part
        rec, live = view.rec, view.live
        running = rec.status.value == "running"
        msg = codec.state_to_proto(rec, live.prediction if running else None, t, goodput_fraction=live.goodput,
                                   optimal_checkpoint_interval_s=live.optimal_interval_s,
                                   failures_per_day=live.failures_per_day, step_time_error_ratio=live.error_ratio)
        msg.placement.gpu_ids.extend(view.gpu_ids)
        if running:
            msg.risk_flags.extend(pb.RiskFlag(kind=codec._RISK[f.kind], entity_id=f.entity_id,
                                              slowdown_fraction=f.slowdown, detail=f.detail) for f in live.flags)
            if live.prediction is not None and live.comm is not None:
                msg.comm_source = {"fabric": pb.COMM_SOURCE_FABRIC_TWIN,
                                   "local": pb.COMM_SOURCE_OWN_ESTIMATE}[live.comm.source]
                msg.comm_source_detail = live.comm_detail
        kwh = live.energy_j / 3.6e6
        msg.energy_j, msg.cost_usd, msg.co2_kg = live.energy_j, kwh * 0.1, kwh * 0.2
        if live.overhead_source:
            msg.energy_overhead_factor = live.overhead_factor
            msg.energy_overhead_source = {"site": pb.ENERGY_OVERHEAD_SOURCE_SITE_STATE,
                                          "setting": pb.ENERGY_OVERHEAD_SOURCE_SETTING}[live.overhead_source]
        return msg

    class Unreachable:
        up = True

        async def answer(self, inp, calls, hot_gpus=()) -> CommAnswer:
            return CommAnswer({}, "local", "fabric twin unreachable: UNAVAILABLE (test)", retry=True)

    def same(twin, clock) -> dict:
        out = {}
        for _ in range(2):  # built, then from the cache
            for job_id in JOBS:
                view = twin.view(job_id)
                got = codec.view_to_proto(view, clock.t, tariff_usd_per_kwh=0.1, carbon_kg_per_kwh=0.2)
                assert got == plain(view, clock.t)
                assert got.SerializeToString(deterministic=True) == plain(view, clock.t).SerializeToString(
                    deterministic=True)
                out[job_id] = got
        return out

    twin, eng, clock, rec = setup()
    twin.set_links({"leaf-r0-g0/spine1": LinkHealth(0.5)})
    refresh(eng, clock)
    twin.apply(JobEvent("k", EventKind.PROGRESS, clock.t, step=10, step_time_s=2.0))
    twin.apply(JobEvent("m", EventKind.FINISHED, clock.t))
    refresh(eng, clock)
    got = same(twin, clock)
    assert got["j"].comm_source == pb.COMM_SOURCE_FABRIC_TWIN and got["j"].comm_source_detail == "test"
    assert got["m"].comm_source == pb.COMM_SOURCE_UNSPECIFIED  # finished: no prediction
    assert got["k"].energy_overhead_source == pb.ENERGY_OVERHEAD_SOURCE_SETTING
    assert got["k"].energy_overhead_factor == twin.settings.pue
    # provenance changes without a new prediction: the cached static part is reused, the fields are not frozen
    statics = {j: codec._STATIC[j][1] for j in ("j", "k")}
    twin.set_site_power(clock.t, clock.t, 1.25e6, 1.0e6)
    refresh(eng, clock)
    got = same(twin, clock)
    assert all(codec._STATIC[j][1] is statics[j] for j in statics)
    assert got["k"].energy_overhead_source == pb.ENERGY_OVERHEAD_SOURCE_SITE_STATE
    assert got["k"].energy_overhead_factor == pytest.approx(1.25)
    # the fabric twin stops answering: the next prediction states the own estimate and why
    eng.fabric = Unreachable()
    twin.set_links({"leaf-r0-g0/spine1": LinkHealth(0.5), "su1-0004-n00/nic0": LinkHealth(0.5)})  # j and k again
    refresh(eng, clock)
    got = same(twin, clock)
    assert got["k"].comm_source == pb.COMM_SOURCE_OWN_ESTIMATE
    assert got["k"].comm_source_detail == "fabric twin unreachable: UNAVAILABLE (test)"
    assert not [f for f in got["k"].risk_flags if f.kind == pb.RISK_KIND_UNSPECIFIED]  # provenance, not a risk


def test_the_communication_source_follows_the_answer_and_its_change_republishes() -> None:
    from twin.jobs.adapters import codec
    from twin.jobs.v1 import jobs_pb2 as pb

    twin, eng, clock, rec = setup()
    live = twin.jobs["k"]
    inp, step = live.inputs, live.prediction.step_time_s
    assert live.comm_source == "fabric" and not twin.changed("k", clock.t, eng.republish_s)
    # the fallback on a job crossing no impaired link: same step time (the own estimate without degradation and
    # the fabric's empty table both time with the LinkModel), only the provenance differs -- published at once
    twin.compute("k", inp, CommAnswer({}, "local", "fabric twin unreachable: UNAVAILABLE (test)", retry=True), clock.t)
    assert live.prediction.step_time_s == step and live.comm_source == "local"
    assert twin.changed("k", clock.t, eng.republish_s)
    state = codec.view_to_proto(twin.view("k"), clock.t, tariff_usd_per_kwh=0.1, carbon_kg_per_kwh=0.2)
    assert state.comm_source == pb.COMM_SOURCE_OWN_ESTIMATE and "UNAVAILABLE" in state.comm_source_detail
    # the fabric twin is back: the job waiting for it is asked again at the next refresh and says so
    assert [j for j, _ in twin.stale(clock.t)] == ["k"]
    published = eng.stats.states_published
    rec.take()
    refresh(eng, clock)
    assert rec.take()[0] == ["k"] and live.comm_source == "fabric" and live.comm_detail == "test"
    assert eng.stats.states_published == published + 1
    state = asyncio.run(eng.store.latest_of("k"))
    assert state.comm_source == pb.COMM_SOURCE_FABRIC_TWIN and state.comm_source_detail == "test"
    twin.set_links({}, truncated=True)  # noted in the detail at the next prediction
    twin.compute("k", inp, CommAnswer({}, "fabric", "test"), clock.t)
    assert live.comm_detail == "test; fabric state truncated: some impaired links unseen"
    assert not [f for f in live.flags if f.kind == "unspecified"]
