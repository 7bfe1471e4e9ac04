"""WhatIfPlacement on the live job twin asks a running fabric twin (FabricApp in-process, real gRPC over loopback
both ways, real broker and PostgreSQL) for every candidate's collectives in one exchange.

Facility: the DGX H100 SU re-cabled into 4 leaf groups of 8 nodes (as test_jobs_service.py). Two candidates of the
same shape, each two nodes in one leaf group and two in the next: "degraded" on groups 0 and 1, whose rail-0 leaf
in group 0 has an uplink the fabric twin knows is degraded (fabric.events.v1), and "clean" on groups 2 and 3.

WhatIfFailure(LINK) on a job crossing leaf-r0-g0 asks the running fabric twin with the uplink assumed down: its step
time after equals what the live job twin predicts (from the fabric twin) once the uplink really goes down, where the
uplink binds (8:1) and where it does not (4:1); without a fabric twin the own estimate still answers.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
from service_harness import Running, jobs_config, live_fabric_config, poll, small_leaf_facility

from twin.core.kafka import EventProducer
from twin.fabric.app import FabricApp
from twin.fabric.v1 import fabric_pb2 as fpb
from twin.fabric.v1 import fabric_pb2_grpc as fpb_grpc
from twin.jobs import whatif
from twin.jobs.adapters import codec
from twin.jobs.adapters.fabric_client import _COLLECTIVE, communicator_shape, communicators
from twin.jobs.app import JobsApp
from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.domain.spec import JobSpec, ModelShape, Parallelism, TrainingSetup
from twin.jobs.live import CommAnswer, call_key
from twin.jobs.v1 import jobs_pb2 as pb
from twin.jobs.v1 import jobs_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(240)

SITE = "it-jobs-whatif"
UPLINK = "leaf-r0-g0/spine1"
SPEC = JobSpec(ModelShape(layers=32, hidden=4096, ffn_hidden=14336, heads=32, kv_heads=8, vocab=128256, seq_len=8192,
                          gated_ffn=True),
               Parallelism(tp=8, dp=4), TrainingSetup(micro_batch=1, global_batch=4), gpu="h100-sxm")
DEGRADED = ("su1-0000-n00", "su1-0000-n01", "su1-0002-n00", "su1-0002-n01")   # leaf groups 0 and 1
CLEAN = ("su1-0004-n00", "su1-0004-n01", "su1-0006-n00", "su1-0006-n01")      # leaf groups 2 and 3


@pytest.fixture
def facility_file(tmp_path: Path) -> Path:
    return small_leaf_facility(tmp_path, SITE)


async def _fabric_time(stub, gpus: list[int], calls) -> list[float]:
    resp = await stub.EstimateBatch(fpb.EstimateBatchRequest(
        collectives=[_COLLECTIVE[c.collective] for c in calls],
        size_bytes=[max(1, int(np.ceil(c.size_bytes))) for c in calls],
        placement=fpb.Placement(gpus=fpb.GpuList(gpu_ids=gpus))), timeout=10)
    return [e.time_s for e in resp.estimates]


async def test_a_candidate_crossing_a_degraded_link_ranks_below_an_equal_clean_one(
        kafka_bootstrap, fresh_database, facility_file, unique_topic):
    fcfg = await live_fabric_config(kafka_bootstrap, fresh_database, facility_file, unique_topic,
                                    f"fabric-it-{uuid.uuid4().hex[:8]}")
    async with Running(FabricApp(fcfg)) as fabric:
        cfg = jobs_config(kafka_bootstrap, fresh_database, facility_file, unique_topic,
                          f"127.0.0.1:{fabric.port}", fcfg.state_topic)
        async with Running(JobsApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer, \
                grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel, \
                grpc.aio.insecure_channel(f"127.0.0.1:{fabric.port}") as fchannel:
            stub = pb_grpc.JobServiceStub(channel)
            fstub = fpb_grpc.FabricSimulationServiceStub(fchannel)
            twin = app.twin
            request = pb.WhatIfPlacementRequest(spec=codec.spec_to_proto(SPEC), candidates=[
                pb.PlacementCandidate(candidate_id="degraded", node_ids=DEGRADED),
                pb.PlacementCandidate(candidate_id="clean", node_ids=CLEAN)])

            # healthy fabric: the two candidates are one shape and get the same step time from the fabric twin
            healthy = {o.candidate_id: o for o in (await stub.WhatIfPlacement(request, timeout=30)).outcomes}
            assert {o.comm_source for o in healthy.values()} == {pb.COMM_SOURCE_FABRIC_TWIN}
            assert healthy["degraded"].predicted_step_time_s == healthy["clean"].predicted_step_time_s

            msg = fpb.LinkEvent(link_id=UPLINK, kind=fpb.LINK_EVENT_KIND_DEGRADED, capacity_fraction=0.25,
                                reason="integration test")
            msg.event_time.FromNanoseconds(int(time.time() * 1e9))
            await producer.send(fcfg.events_topic, UPLINK, msg)
            await poll(lambda: _links(twin), lambda links: UPLINK in links)  # fabric.state.v1 reached the job twin

            resp = await stub.WhatIfPlacement(request, timeout=30)
            out = {o.candidate_id: o for o in resp.outcomes}
            assert [o.candidate_id for o in resp.outcomes] == ["clean", "degraded"]
            assert [o.rank for o in resp.outcomes] == [1, 2]
            bad, good = out["degraded"], out["clean"]
            assert bad.comm_source == good.comm_source == pb.COMM_SOURCE_FABRIC_TWIN
            assert "timed by the fabric twin" in bad.comm_source_detail
            assert bad.predicted_step_time_s > good.predicted_step_time_s
            assert good.predicted_step_time_s == healthy["clean"].predicted_step_time_s
            assert bad.network_risk > 0 and good.network_risk == 0

            # each candidate's step time is the fabric twin's answer for every one of its communicators, asked
            # directly (the clean one's TP groups were answered through the degraded one's equal-shaped ones)
            assert "through an equal-shaped communicator's answer" in good.comm_source_detail
            now = time.time()
            for nodes, outcome in ((DEGRADED, bad), (CLEAN, good)):
                inp = twin.inputs_for(SPEC, nodes, twin.site.gpu_ids(list(nodes), SPEC.n_gpus), now)
                calls = twin.calls(inp)
                table: dict = {}
                for group_calls, _, ids in communicators(SPEC, sorted(inp.gpu_ids), calls, set(), 10**6):
                    for row in ids:
                        for c, t in zip(group_calls, await _fabric_time(fstub, row, group_calls), strict=True):
                            table[call_key(c)] = max(table.get(call_key(c), 0.0), t)
                direct = twin.predict_what_if(inp, CommAnswer(table, "fabric", "direct")).step_time_s
                assert outcome.predicted_step_time_s == pytest.approx(direct, rel=1e-12)
                own = twin.predict_what_if(inp, None).step_time_s
                assert direct != pytest.approx(own, rel=1e-6), "not the job twin's own estimate"

            # communicators of one shape (and no impaired link) get one answer from the real fabric twin
            shape = communicator_shape(twin.site.inventory)
            gpus = twin.site.gpu_ids
            a = gpus(["su1-0004-n00", "su1-0004-n01", "su1-0005-n00", "su1-0005-n01"], 32)
            b = gpus(["su1-0006-n00", "su1-0006-n01", "su1-0007-n00", "su1-0007-n01"], 32)
            dp = [c for c in calls if c.kind == "dp"]
            for rail in (0, 5):
                ra, rb = list(a[rail::8]), list(b[rail::8])
                assert shape(np.asarray([ra, rb]))[0] == shape(np.asarray([ra, rb]))[1]
                assert await _fabric_time(fstub, ra, dp) == await _fabric_time(fstub, rb, dp)


async def _links(twin) -> dict:
    return dict(twin.links)


# -- WhatIfFailure(LINK) asks the fabric twin with the link assumed down --------------------------------------------

JOB_NODES = DEGRADED   # leaf groups 0 and 1: the job crosses leaf-r0-g0's uplinks


async def _start_job(cfg, producer, stub) -> pb.JobState:
    t0 = time.time()
    await producer.send(cfg.events_topic, "j", codec.event_to_proto(JobEvent(
        job_id="j", kind=EventKind.SUBMITTED, time_s=t0, source="test", spec=SPEC)))
    await producer.send(cfg.events_topic, "j", codec.event_to_proto(JobEvent(
        job_id="j", kind=EventKind.STARTED, time_s=t0 + 1, source="test", nodes=JOB_NODES, n_gpus=32)))

    async def job() -> pb.JobState:
        try:
            return (await stub.GetJob(pb.GetJobRequest(job_id="j"), timeout=10)).job
        except grpc.aio.AioRpcError:
            return pb.JobState()

    return await poll(job, lambda j: j.status == pb.JOB_STATUS_RUNNING and j.predicted_step_time_s > 0)


def _link_failure(duration_s: float = 600.0) -> pb.WhatIfFailureRequest:
    return pb.WhatIfFailureRequest(target_kind=pb.FAILURE_TARGET_KIND_LINK, target_id=UPLINK, duration_s=duration_s)


@pytest.mark.parametrize("oversubscription, binds", [(8.0, True), (4.0, False)])
async def test_the_link_failure_what_if_predicts_what_the_live_twin_predicts_once_the_link_is_down(
        kafka_bootstrap, fresh_database, tmp_path, unique_topic, oversubscription, binds):
    """8:1 over 4 spines: the job's rail leaves' uplinks bind, one of 4 down slows it; 4:1: they do not (the fabric
    twin's answer is unchanged), where the job twin's own estimate (a leaf keeps 3/4 of its uplinks) slowed it."""
    facility_file = small_leaf_facility(tmp_path, SITE, oversubscription)
    fcfg = await live_fabric_config(kafka_bootstrap, fresh_database, facility_file, unique_topic,
                                    f"fabric-it-{uuid.uuid4().hex[:8]}")
    async with Running(FabricApp(fcfg)) as fabric:
        cfg = jobs_config(kafka_bootstrap, fresh_database, facility_file, unique_topic,
                           f"127.0.0.1:{fabric.port}", fcfg.state_topic)
        async with Running(JobsApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer, \
                grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            stub = pb_grpc.JobServiceStub(channel)
            healthy = await _start_job(cfg, producer, stub)
            assert healthy.comm_source == pb.COMM_SOURCE_FABRIC_TWIN
            own = whatif.failure(app.twin, "link", UPLINK, 600.0, time.time())  # the job twin's own estimate
            assert [i.job_id for i in own] == ["j"] and own[0].slowdown > 0.01

            fail = await stub.WhatIfFailure(_link_failure(), timeout=30)
            [imp] = fail.impacts
            assert imp.job_id == "j" and not imp.stops
            assert imp.comm_source == pb.COMM_SOURCE_FABRIC_TWIN  # the answer says where it came from
            assert imp.step_time_before_s == healthy.predicted_step_time_s
            if binds:
                assert imp.slowdown_fraction > 0.01 and imp.goodput_lost_gpu_hours > 0
            else:
                assert imp.step_time_after_s == imp.step_time_before_s and imp.slowdown_fraction == 0.0
                assert imp.goodput_lost_gpu_hours == 0.0
            assert fabric.live.snapshot().health.capacity_fraction.min() == 1.0, "the live fabric state untouched"

            # the link really goes down: the live twin's prediction with the fabric twin's answer is the what-if's
            msg = fpb.LinkEvent(link_id=UPLINK, kind=fpb.LINK_EVENT_KIND_DOWN, reason="integration test")
            msg.event_time.FromNanoseconds(time.time_ns())
            await producer.send(fcfg.events_topic, UPLINK, msg)

            async def live():
                return app.twin.jobs.get("j")

            await poll(live, lambda lv: lv is not None and lv.inputs is not None and lv.comm is not None
                       and lv.comm.source == "fabric" and any(k == UPLINK for k, _, _ in lv.inputs.links))
            after = (await stub.GetJob(pb.GetJobRequest(job_id="j"), timeout=10)).job
            assert after.comm_source == pb.COMM_SOURCE_FABRIC_TWIN
            assert after.predicted_step_time_s == pytest.approx(imp.step_time_after_s, rel=1e-12)
            # asked again with the link down for real: nothing more to lose
            [again] = (await stub.WhatIfFailure(_link_failure(), timeout=30)).impacts
            assert again.step_time_before_s == after.predicted_step_time_s
            assert again.step_time_after_s == pytest.approx(again.step_time_before_s, rel=1e-12)


async def test_the_link_failure_what_if_without_a_fabric_twin_gives_the_own_estimate(
        kafka_bootstrap, fresh_database, facility_file, unique_topic):
    cfg = jobs_config(kafka_bootstrap, fresh_database, facility_file, unique_topic, None)
    async with Running(JobsApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.JobServiceStub(channel)
        healthy = await _start_job(cfg, producer, stub)
        assert healthy.comm_source != pb.COMM_SOURCE_FABRIC_TWIN
        [imp] = (await stub.WhatIfFailure(_link_failure(), timeout=30)).impacts
        [own] = whatif.failure(app.twin, "link", UPLINK, 600.0, time.time())
        assert imp.job_id == "j" and imp.slowdown_fraction > 0.01
        assert imp.comm_source == pb.COMM_SOURCE_OWN_ESTIMATE and imp.comm_source_detail
        assert imp.step_time_after_s == pytest.approx(own.after_s, rel=1e-12)
