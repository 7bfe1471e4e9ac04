"""The live job twin without Kafka or a database: conditions -> predictions, flags, recommendations, what-ifs,
recompute only on input change, the fabric timer's communicators and its fallback."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from twin.core import topics
from twin.core.facility import load_facility_spec
from twin.core.rpc import InvalidArgument, NotFound
from twin.jobs import whatif
from twin.jobs.adapters import codec
from twin.jobs.adapters.codec import InvalidMessage
from twin.jobs.adapters.fabric_client import FabricComm, choose, group_instances, stride_of
from twin.jobs.adapters.repository import InMemoryJobStore
from twin.jobs.adapters.stream import Engine
from twin.jobs.domain.book import EventRejected
from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.domain.spec import JobSpec, ModelShape, Parallelism, TrainingSetup
from twin.jobs.live import CapPlan, CommAnswer, JobTwin, LinkHealth, ThermalAlert
from twin.jobs.site import build_site_map
from twin.jobs.v1 import jobs_pb2 as pb
from twin.power.v1 import power_pb2

SITE = build_site_map(load_facility_spec("dgx-h100-su"))
SPEC = JobSpec(ModelShape(layers=32, hidden=4096, ffn_hidden=14336, heads=32, kv_heads=8, vocab=128256, seq_len=8192,
                          gated_ffn=True), Parallelism(tp=8, dp=4), TrainingSetup(micro_batch=1, global_batch=4))
NODES = ("su1-0000-n00", "su1-0000-n01", "su1-0002-n00", "su1-0002-n01")
NIC = "su1-0000-n00/nic0"
T0 = 1_800_000_000.0


class CountingFabric(FabricComm):
    """No gRPC: answers with an empty table (the own estimate) and counts the questions."""

    def __init__(self, source: str = "fabric") -> None:
        super().__init__(None)
        self.asked = 0
        self.source = source

    @property
    def up(self) -> bool:
        return True

    async def answer(self, inp, calls, hot_gpus=()) -> CommAnswer:
        self.asked += 1
        return CommAnswer({}, self.source, "test", retry=self.source != "fabric")


def started(twin: JobTwin, job_id: str = "j", nodes=NODES, spec=SPEC, t: float = T0) -> None:
    twin.apply(JobEvent(job_id, EventKind.SUBMITTED, t, spec=spec))
    twin.apply(JobEvent(job_id, EventKind.STARTED, t + 1, nodes=nodes, n_gpus=spec.n_gpus))


def engine(twin: JobTwin, fabric=None, now: float = T0 + 10) -> Engine:
    class Clock:
        def now(self):
            from datetime import UTC, datetime

            return datetime.fromtimestamp(now, UTC)

    return Engine(twin, fabric or CountingFabric("local"), None, InMemoryJobStore(), state_topic=topics.JOBS_STATE,
                  recommendations_topic=topics.JOBS_RECOMMENDATIONS, clock=Clock())


def step(twin: JobTwin, job_id: str = "j") -> float:
    return twin.jobs[job_id].prediction.step_time_s


def test_step_time_never_shrinks_when_a_resource_is_lost() -> None:
    twin = JobTwin(SITE)
    started(twin)
    eng = engine(twin)
    times = []
    for cap in (1.0, 0.75, 0.5, 0.25, 0.0):
        twin.set_links({NIC: LinkHealth(cap)})
        asyncio.run(eng.refresh())
        times.append(step(twin))
    assert times == sorted(times) and times[-1] > times[0]
    flag = next(f for f in twin.jobs["j"].flags if f.kind == "degraded_link")
    assert flag.entity_id == NIC and flag.slowdown > 0
    # caps and throttling on top never speed it up
    now = T0 + 10
    twin.add_plan(CapPlan("p", "e", now - 1, now + 600, {g: 400.0 for g in range(32)}))
    asyncio.run(eng.refresh())
    capped = step(twin)
    assert capped > times[-1]
    twin.add_thermal(ThermalAlert("a", "su1-0000", frozenset(), now - 1, now))
    asyncio.run(eng.refresh())
    assert step(twin) >= capped
    kinds = {f.kind for f in twin.jobs["j"].flags}
    assert {"degraded_link", "power_cap", "thermal_throttle"} <= kinds


def test_recomputed_only_when_its_inputs_change() -> None:
    twin = JobTwin(SITE)
    started(twin)
    fabric = CountingFabric()
    eng = engine(twin, fabric)
    asyncio.run(eng.refresh())
    asyncio.run(eng.refresh())
    assert eng.stats.states_published == 1
    assert fabric.asked == 1 and eng.stats.recomputed == 1
    twin.set_links({"su1-0007-n03/nic0": LinkHealth(0.0)})  # a node the job does not use
    asyncio.run(eng.refresh())
    assert fabric.asked == 1
    twin.set_links({NIC: LinkHealth(0.0)})
    asyncio.run(eng.refresh())
    assert fabric.asked == 2
    assert eng.stats.states_published == 2  # published (and stored) once per change


def test_a_job_inside_one_nvlink_domain_crosses_no_link() -> None:
    twin = JobTwin(SITE)
    spec = JobSpec(SPEC.model, Parallelism(tp=8), TrainingSetup(micro_batch=1, global_batch=4))
    started(twin, nodes=("su1-0000-n00",), spec=spec)
    twin.set_links({"su1-0000-n00/nic0": LinkHealth(0.0), "spine0": LinkHealth(0.0)})
    asyncio.run(engine(twin).refresh())
    assert not [f for f in twin.jobs["j"].flags if f.kind == "degraded_link"]


def test_uplinks_matter_only_to_jobs_spanning_leaf_groups() -> None:
    spec = load_facility_spec("dgx-h100-su").model_copy(deep=True)
    fabric = spec.fabric.model_copy(update={"nodes_per_leaf": 8, "spines": 4})
    site = build_site_map(spec.model_copy(update={"fabric": fabric}))
    twin = JobTwin(site)
    started(twin)                                                     # leaf groups 0 and 1
    started(twin, "k", nodes=("su1-0004-n00", "su1-0004-n01", "su1-0004-n02", "su1-0004-n03"))  # group 2 only
    twin.set_links({"leaf-r0-g0/spine1": LinkHealth(0.0)})
    asyncio.run(engine(twin).refresh())
    assert [f.entity_id for f in twin.jobs["j"].flags if f.kind == "degraded_link"] == ["leaf-r0-g0"]
    assert not [f for f in twin.jobs["k"].flags if f.kind == "degraded_link"]
    assert twin.network_fraction(twin.jobs["j"].inputs.links) == pytest.approx(0.75)


def test_throttle_predicted_recommends_a_checkpoint_and_slows_only_when_it_comes() -> None:
    twin = JobTwin(SITE)
    started(twin)
    now = T0 + 10
    fabric = CountingFabric()
    eng = engine(twin, fabric, now=now)
    asyncio.run(eng.refresh())
    before = step(twin)
    twin.add_thermal(ThermalAlert("alert-1", "su1-0002", frozenset(), now + 240, now))
    asyncio.run(eng.refresh())
    assert step(twin) == before  # not throttling yet
    flag = next(f for f in twin.jobs["j"].flags if f.kind == "thermal_throttle")
    assert flag.slowdown > 0 and "predicted to throttle in 4 min" in flag.detail
    assert fabric.asked == 2  # a new alert on its rack is a new input
    assert eng.stats.recommendations_published >= 1
    ckpt = [r for r in twin.jobs["j"].recommendations if r.kind == "checkpoint_now"]
    assert ckpt and ckpt[0].entity_id == "su1-0002" and ckpt[0].deadline_s == pytest.approx(240)
    assert "checkpoint now: rack su1-0002 is predicted to throttle in 4 min" in ckpt[0].message
    assert not [r for r in twin.new_recommendations("j") if r.kind == "checkpoint_now"]  # published once already
    asyncio.run(engine(twin, now=now + 300).refresh())
    assert step(twin) > before


def test_plan_caps_apply_in_their_window_and_paused_jobs_are_told() -> None:
    twin = JobTwin(SITE)
    started(twin)
    now = T0 + 10
    msg = power_pb2.CurtailmentPlan(plan_id="p1", event_id="ev", deadline_offset_s=60, duration_s=600,
                                    capped_gpu_ids=list(range(8)), cap_w=[300.0] * 8, paused_job_ids=["j"])
    msg.created_time.FromNanoseconds(int(now * 1e9))
    twin.add_plan(codec.cap_plan(msg))
    asyncio.run(engine(twin, now=now).refresh())
    assert twin.jobs["j"].inputs.cap_w is None
    assert any(r.kind == "checkpoint_now" and "pauses this job in 60 s" in r.message
               for r in twin.jobs["j"].recommendations)
    asyncio.run(engine(twin, now=now + 61).refresh())
    assert twin.jobs["j"].inputs.cap_w == 300.0
    bad = power_pb2.CurtailmentPlan(plan_id="p2", capped_gpu_ids=[1, 2], cap_w=[300.0])
    bad.created_time.FromNanoseconds(int(now * 1e9))
    with pytest.raises(InvalidMessage) as err:
        codec.cap_plan(bad)
    assert err.value.field == "cap_w"


def test_measured_vs_predicted_running_error_and_flag() -> None:
    twin = JobTwin(SITE)
    started(twin)
    asyncio.run(engine(twin).refresh())
    p = step(twin)
    twin.apply(JobEvent("j", EventKind.PROGRESS, T0 + 5, step=10, step_time_s=p * 1.1))
    twin.progress("j")
    assert twin.jobs["j"].error_ratio == pytest.approx(1.1)
    assert not [f for f in twin.jobs["j"].flags if f.kind == "slower_than_predicted"]
    twin.apply(JobEvent("j", EventKind.PROGRESS, T0 + 6, step=20, step_time_s=p * 1.5))
    twin.progress("j")
    twin.progress("j")  # the same report twice counts once
    assert twin.jobs["j"].error_ratio == pytest.approx(1.3)
    slower = [f for f in twin.jobs["j"].flags if f.kind == "slower_than_predicted"]
    assert slower and slower[0].slowdown == pytest.approx(0.5)
    state = codec.view_to_proto(twin.view("j"), T0 + 7, tariff_usd_per_kwh=0.1, carbon_kg_per_kwh=0.5)
    assert state.step_time_error_ratio == pytest.approx(1.3) and len(state.placement.gpu_ids) == 32
    assert pb.RISK_KIND_SLOWER_THAN_PREDICTED in [f.kind for f in state.risk_flags]


def test_energy_accrues_while_running() -> None:
    twin = JobTwin(SITE)
    started(twin)
    asyncio.run(engine(twin, now=T0 + 10).refresh())
    asyncio.run(engine(twin, now=T0 + 20).refresh())
    live = twin.jobs["j"]
    p = live.prediction
    platform = 3000.0 / 8 * 32
    assert live.energy_j == pytest.approx((p.mean_power_w * 32 + platform) * twin.settings.pue * 10.0)
    state = codec.view_to_proto(twin.view("j"), T0 + 20, tariff_usd_per_kwh=0.1, carbon_kg_per_kwh=0.5)
    assert state.cost_usd == pytest.approx(live.energy_j / 3.6e6 * 0.1)
    assert state.co2_kg == pytest.approx(live.energy_j / 3.6e6 * 0.5)


def test_explicit_gpu_ids_are_checked() -> None:
    twin = JobTwin(SITE)
    twin.apply(JobEvent("a", EventKind.SUBMITTED, T0, spec=SPEC))
    with pytest.raises(EventRejected, match="does not exist"):
        twin.apply(JobEvent("a", EventKind.STARTED, T0 + 1, nodes=NODES, n_gpus=32), tuple(range(250, 282)))
    twin.apply(JobEvent("a", EventKind.STARTED, T0 + 1, nodes=NODES, n_gpus=32), tuple(range(32)))
    twin.apply(JobEvent("b", EventKind.SUBMITTED, T0, spec=SPEC))
    other = ("su1-0001-n00", "su1-0001-n01", "su1-0001-n02", "su1-0001-n03")
    with pytest.raises(EventRejected, match="GPU 0 is taken"):
        twin.apply(JobEvent("b", EventKind.STARTED, T0 + 2, nodes=other, n_gpus=32), tuple(range(32)))


def test_communicators_follow_megatron_rank_order() -> None:
    assert group_instances(8, 2, 1) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert group_instances(8, 2, 2) == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert group_instances(8, 2, 4) == [[0, 4], [1, 5], [2, 6], [3, 7]]
    gpus = list(range(100, 108))
    assert choose(group_instances(8, 2, 1), gpus, {106}, 2) == [[6, 7], [0, 1]]
    twin = JobTwin(SITE)
    started(twin)
    calls = twin.calls(twin.inputs(twin.book.jobs["j"], T0 + 10))
    assert {(c.kind, stride_of(SPEC, c)) for c in calls} == {("tp", 1), ("dp", 8)}


def test_unreachable_fabric_falls_back_and_is_not_asked_again_meanwhile() -> None:
    twin = JobTwin(SITE)
    started(twin)
    inp = twin.inputs(twin.book.jobs["j"], T0 + 10)

    async def go():
        fabric = FabricComm("127.0.0.1:9", timeout_s=2.0, retry_s=60.0)
        try:
            first = await fabric.answer(inp, twin.calls(inp))
            second = await fabric.answer(inp, twin.calls(inp))
        finally:
            await fabric.close()
        return fabric, first, second

    fabric, first, second = asyncio.run(go())
    assert first.source == "local" and "UNAVAILABLE" in first.detail
    assert second.source == "local" and fabric.failures == 1 and not fabric.up
    twin.compute("j", inp, first, T0 + 10)
    live = twin.jobs["j"]
    assert live.comm_source == "local" and "UNAVAILABLE" in live.comm_detail
    assert not [f for f in live.flags if f.entity_id == "fabric"]  # provenance is no risk flag
    state = codec.view_to_proto(twin.view("j"), T0 + 10, tariff_usd_per_kwh=0.1, carbon_kg_per_kwh=0.5)
    assert state.comm_source == pb.COMM_SOURCE_OWN_ESTIMATE and "UNAVAILABLE" in state.comm_source_detail
    assert grpc.StatusCode.UNAVAILABLE.name in fabric.last_error


def test_what_if_failures() -> None:
    twin = JobTwin(SITE)
    started(twin)
    now = T0 + 10
    asyncio.run(engine(twin, now=now).refresh())
    node = whatif.failure(twin, "node", NODES[2], 600, now)
    assert len(node) == 1 and node[0].stops and node[0].lost_gpu_h > 32 * 600 / 3600
    link = whatif.failure(twin, "link", NIC, 600, now)
    assert len(link) == 1 and not link[0].stops and link[0].after_s > link[0].before_s and link[0].lost_gpu_h > 0
    assert whatif.failure(twin, "link", "su1-0007-n00/nic0", 600, now) == []
    assert whatif.failure(twin, "ups", "ups-1", 600, now) == []  # N+1 bus: covered by redundancy
    with pytest.raises(NotFound):
        whatif.failure(twin, "cdu", "cdu-nope", 600, now)
    cap = whatif.power_cap(twin, "j", 300.0, now)
    assert cap.after.step_time_s > cap.before.step_time_s and cap.after.mean_power_w < cap.before.mean_power_w


def test_what_if_placement_ranks_fitting_candidates_by_step_time_and_risk() -> None:
    twin = JobTwin(SITE)
    started(twin)
    now = T0 + 10
    twin.add_thermal(ThermalAlert("a", "su1-0005", frozenset(), now - 1, now))
    cands = [("taken", whatif.candidate_nodes(SITE, ["su1-0000"], [], "c0")),
             ("hot", whatif.candidate_nodes(SITE, ["su1-0005"], [], "c1")),
             ("cool", whatif.candidate_nodes(SITE, ["su1-0004"], [], "c2"))]
    out = whatif.placement(twin, SPEC, cands, now)
    assert [o.candidate_id for o in out] == ["cool", "hot", "taken"]
    assert out[1].thermal_risk == 1.0 and out[0].thermal_risk == 0.0
    assert out[1].step_time_s > out[0].step_time_s and "does not fit" in out[2].detail
    with pytest.raises(InvalidArgument) as err:
        whatif.candidate_nodes(SITE, [], ["su1-0000-n99"], "candidates[3]")
    assert err.value.field == "candidates[3].node_ids[0]"


def test_tensor_parallelism_beyond_the_nvlink_domain_is_rejected() -> None:
    twin = JobTwin(SITE)
    spec = JobSpec(SPEC.model, Parallelism(tp=16, dp=2), TrainingSetup(micro_batch=1, global_batch=4))
    twin.apply(JobEvent("t", EventKind.SUBMITTED, T0, spec=spec))
    with pytest.raises(EventRejected, match=r"parallel.tp = 16 is larger than the NVLink domain .*8 of the job"):
        twin.apply(JobEvent("t", EventKind.STARTED, T0 + 1, nodes=NODES, n_gpus=32))
    assert twin.book.jobs["t"].status.value == "pending" and not twin.book.holders
