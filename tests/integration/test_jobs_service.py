"""The job twin as a service against the real broker (Tansu or TWIN_KAFKA_BOOTSTRAP), real PostgreSQL and a
running fabric twin (FabricApp in-process), with real gRPC over loopback both ways.

Facility: the DGX H100 SU preset re-cabled like tests/integration/test_fabric_live_state.py (4 leaf groups of 8
nodes, 4 spines, 8:1 oversubscription), so a job on two nodes of leaf group 0 and two of leaf group 1 sends its
data-parallel traffic over the spine: losing one of the rail-0 leaf's 4 uplinks slows its DP collectives, and
bringing the uplink back gives the healthy answer exactly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import psycopg
import pytest
from service_harness import Running, jobs_config, live_fabric_config, poll, read_until, small_leaf_facility

from twin.core import topics
from twin.core.kafka import EventProducer
from twin.fabric.app import FabricApp
from twin.fabric.v1 import fabric_pb2 as fpb
from twin.jobs.adapters import codec
from twin.jobs.adapters.slurm_feed import SlurmPublisher, replay_sacct
from twin.jobs.app import JobsApp
from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.domain.spec import JobSpec, ModelShape, Parallelism, TrainingSetup
from twin.jobs.v1 import jobs_pb2 as pb
from twin.jobs.v1 import jobs_pb2_grpc as pb_grpc
from twinctl.__main__ import main as twinctl_main

pytestmark = pytest.mark.timeout(240)

SITE = "it-jobs"
UPLINK = "leaf-r0-g0/spine1"
# nodes 0, 1 (leaf group 0) and 8, 9 (leaf group 1): 4 DGX H100, 32 GPUs
NODES = ("su1-0000-n00", "su1-0000-n01", "su1-0002-n00", "su1-0002-n01")
SPEC = JobSpec(ModelShape(layers=32, hidden=4096, ffn_hidden=14336, heads=32, kv_heads=8, vocab=128256, seq_len=8192,
                          gated_ffn=True),
               Parallelism(tp=8, dp=4), TrainingSetup(micro_batch=1, global_batch=4), gpu="h100-sxm")


@pytest.fixture
def facility_file(tmp_path: Path) -> Path:
    return small_leaf_facility(tmp_path, SITE)




def job_event(job_id: str, kind: EventKind, t: float, **kw) -> pb.JobEvent:
    return codec.event_to_proto(JobEvent(job_id=job_id, kind=kind, time_s=t, source="test", **kw))


async def start_job_j(cfg, producer: EventProducer, stub) -> tuple[Callable[[], Awaitable[pb.JobState]], pb.JobState]:
    """Submit and start job "j" (SPEC on NODES, 32 GPUs) now; (its GetJob reader, its first running state)."""
    t0 = time.time()
    await producer.send(cfg.events_topic, "j", job_event("j", EventKind.SUBMITTED, t0, spec=SPEC))
    await producer.send(cfg.events_topic, "j", job_event("j", EventKind.STARTED, t0 + 1, nodes=NODES, n_gpus=32))

    async def job() -> pb.JobState:
        try:
            return (await stub.GetJob(pb.GetJobRequest(job_id="j"))).job
        except grpc.aio.AioRpcError:
            return pb.JobState()

    return job, await poll(job, lambda j: j.status == pb.JOB_STATUS_RUNNING and j.predicted_step_time_s > 0)


def link_event(kind: int, t: float) -> fpb.LinkEvent:
    msg = fpb.LinkEvent(link_id=UPLINK, kind=kind, reason="integration test")
    msg.event_time.FromNanoseconds(int(t * 1e9))
    return msg


def reason(record) -> str:
    return dict(record.headers)["dlq_reason"].decode()


async def test_link_failure_under_a_job_slows_it_and_repair_restores_it(kafka_bootstrap, fresh_database,
                                                                        facility_file, unique_topic, capsys):
    fcfg = await live_fabric_config(kafka_bootstrap, fresh_database, facility_file, unique_topic,
                                    f"fabric-it-{uuid.uuid4().hex[:8]}")
    async with Running(FabricApp(fcfg)) as fabric:
        cfg = jobs_config(kafka_bootstrap, fresh_database, facility_file, unique_topic, f"127.0.0.1:{fabric.port}",
                          fabric_topic=fcfg.state_topic)
        async with Running(JobsApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer, \
                grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            stub = pb_grpc.JobServiceStub(channel)
            t0 = time.time()
            await producer.send(cfg.events_topic, "j1", job_event("j1", EventKind.SUBMITTED, t0, spec=SPEC,
                                                                  attributes={"owner": "ml"}))
            await producer.send(cfg.events_topic, "j1", job_event("j1", EventKind.STARTED, t0 + 1, nodes=NODES,
                                                                  n_gpus=32))

            async def job() -> pb.JobState:
                try:
                    return (await stub.GetJob(pb.GetJobRequest(job_id="j1"))).job
                except grpc.aio.AioRpcError:
                    return pb.JobState()

            healthy = await poll(job, lambda j: j.status == pb.JOB_STATUS_RUNNING and j.predicted_step_time_s > 0)
            assert list(healthy.placement.node_ids) == list(NODES) and len(healthy.placement.gpu_ids) == 32
            assert healthy.comm_source == pb.COMM_SOURCE_FABRIC_TWIN, "fabric answered: no fallback"
            assert "timed by the fabric twin" in healthy.comm_source_detail
            assert healthy.energy_overhead_source == pb.ENERGY_OVERHEAD_SOURCE_SETTING  # no power twin here
            assert healthy.energy_overhead_factor == cfg.pue
            assert app.fabric.calls > 0 and healthy.mfu > 0 and healthy.power_w > 0 and 0 < healthy.goodput_fraction < 1

            await producer.send(fcfg.events_topic, UPLINK, link_event(fpb.LINK_EVENT_KIND_DOWN, t0 + 2))
            slowed = await poll(job, lambda j: j.predicted_step_time_s > healthy.predicted_step_time_s)
            flags = [f for f in slowed.risk_flags if f.kind == pb.RISK_KIND_DEGRADED_LINK]
            assert [f.entity_id for f in flags] == ["leaf-r0-g0"] and flags[0].slowdown_fraction > 0.05
            assert UPLINK in flags[0].detail
            assert slowed.breakdown.exposed_dp_s >= healthy.breakdown.exposed_dp_s

            # what-ifs on the live twin
            fail = await stub.WhatIfFailure(pb.WhatIfFailureRequest(
                target_kind=pb.FAILURE_TARGET_KIND_NODE, target_id=NODES[0], duration_s=600))
            assert [i.job_id for i in fail.impacts] == ["j1"] and fail.impacts[0].stops
            assert fail.goodput_lost_gpu_hours > 32 * 600 / 3600
            cap = await stub.WhatIfPowerCap(pb.WhatIfPowerCapRequest(job_id="j1", gpu_power_cap_w=400))
            assert cap.step_time_after_s > cap.step_time_before_s and cap.power_after_w < cap.power_before_w
            assert cap.step_time_before_s == pytest.approx(slowed.predicted_step_time_s)

            await producer.send(fcfg.events_topic, UPLINK, link_event(fpb.LINK_EVENT_KIND_UP, t0 + 3))
            restored = await poll(job, lambda j: j.predicted_step_time_s != slowed.predicted_step_time_s)
            assert restored.predicted_step_time_s == healthy.predicted_step_time_s
            assert not [f for f in restored.risk_flags if f.kind == pb.RISK_KIND_DEGRADED_LINK]

            # published: the three predictions in order on jobs.state.v1, stored in job_state
            def seen(recs) -> list[float]:
                out: list[float] = []
                for r in recs:
                    v = pb.JobState.FromString(r.value).predicted_step_time_s
                    if v and (not out or out[-1] != v):
                        out.append(v)
                return out

            want = [healthy.predicted_step_time_s, slowed.predicted_step_time_s, restored.predicted_step_time_s]
            recs = await read_until(kafka_bootstrap, cfg.state_topic,
                                    lambda rs: seen(rs)[-3:] == want)
            assert all(r.key == b"j1" for r in recs)
            moves = await read_until(kafka_bootstrap, cfg.recommendations_topic,
                                     lambda rs: any(pb.JobRecommendation.FromString(r.value).kind ==
                                                    pb.RECOMMENDATION_KIND_MOVE_JOB for r in rs))
            move = next(m for m in map(lambda r: pb.JobRecommendation.FromString(r.value), moves)
                        if m.kind == pb.RECOMMENDATION_KIND_MOVE_JOB)
            assert move.job_id == "j1" and move.entity_id == "leaf-r0-g0" and "leaf-r0-g0" in move.message
            with psycopg.connect(fresh_database) as conn:
                rows = conn.execute("SELECT predicted_step_time_s FROM job_state WHERE job_id = 'j1' ORDER BY time"
                                    ).fetchall()
                latest = conn.execute("SELECT status FROM job_state_latest WHERE job_id = 'j1'").fetchone()
            stored = [r[0] for r in rows if r[0]]
            assert slowed.predicted_step_time_s in stored and stored[-1] == restored.predicted_step_time_s
            assert latest == (pb.JOB_STATUS_RUNNING,)

            # list, and INVALID_ARGUMENT naming the field
            listed = await stub.ListJobs(pb.ListJobsRequest(status=pb.JOB_STATUS_RUNNING))
            assert [j.job_id for j in listed.jobs] == ["j1"]
            bad_spec = codec.spec_to_proto(SPEC)
            bad_spec.parallel.tp = 3
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.WhatIfPlacement(pb.WhatIfPlacementRequest(
                    spec=bad_spec, candidates=[pb.PlacementCandidate(candidate_id="a", rack_ids=["su1-0004"])]))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert err.value.details().startswith("spec.parallel")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.WhatIfPlacement(pb.WhatIfPlacementRequest(
                    spec=codec.spec_to_proto(SPEC), candidates=[pb.PlacementCandidate(rack_ids=["nope"])]))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert err.value.details().startswith("candidates[0].rack_ids[0]")

            # twinctl jobs over the same gRPC
            target = ["jobs", "--target", f"127.0.0.1:{app.grpc_port}"]
            capsys.readouterr()
            assert await asyncio.to_thread(twinctl_main, [*target, "list", "--status", "running"]) == 0
            table = capsys.readouterr().out.splitlines()
            assert table[0].split()[:3] == ["job", "status", "GPUs"] and table[1].split()[:3] == ["j1", "running", "32"]
            assert await asyncio.to_thread(twinctl_main, [*target, "show", "j1"]) == 0
            shown = capsys.readouterr().out
            assert shown.startswith("job j1  running  owner ml") and f"{restored.predicted_step_time_s * 1e3:.1f} ms" in shown
            assert "comm      fabric twin (" in shown and "overhead factor 1.300 (JOBS_PUE setting)" in shown
            assert await asyncio.to_thread(twinctl_main, [*target, "whatif-placement", "--job", "j1", "--candidate",
                                                          "su1-0000", "--candidate", "su1-0004"]) == 0
            ranked = capsys.readouterr().out.splitlines()
            assert ranked[1].split()[:2] == ["1", "#2"] and ranked[2].split()[:2] == ["2", "#1"]
            assert "does not fit: 32 GPUs needed, 16 free" in ranked[2]
            node = restored.placement.node_ids[0]
            assert await asyncio.to_thread(twinctl_main, [*target, "whatif-failure", "--node", node]) == 0
            impacts = capsys.readouterr().out.splitlines()
            assert impacts[1].split()[:2] == ["j1", "stops"] and impacts[-1].startswith("goodput lost: ")
            assert await asyncio.to_thread(twinctl_main, [*target, "whatif-failure", "--node", "nope"]) == 3
            capsys.readouterr()
            assert await asyncio.to_thread(twinctl_main, [*target, "whatif-cap", "j1", "--gpu-power-cap-w", "400"]) == 0
            capped = capsys.readouterr().out.splitlines()
            assert capped[0].startswith("job j1 capped at 400 W per GPU") and capped[2].split()[:2] == ["step", "time"]
            assert float(capped[2].split()[3].replace(",", "")) >= float(capped[2].split()[2].replace(",", ""))
            capsys.readouterr()
            assert await asyncio.to_thread(twinctl_main, [*target, "show", "nope"]) == 3


async def test_bad_events_go_to_the_dlq_with_a_reason(kafka_bootstrap, fresh_database, facility_file, unique_topic):
    # no fabric twin at all: the job twin uses its own estimate and says so
    cfg = jobs_config(kafka_bootstrap, fresh_database, facility_file, unique_topic, "127.0.0.1:9")
    async with Running(JobsApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.JobServiceStub(channel)
        t0 = time.time()
        send = producer.send
        await send(cfg.events_topic, "a", job_event("a", EventKind.SUBMITTED, t0, spec=SPEC))
        await send(cfg.events_topic, "a", job_event("a", EventKind.STARTED, t0 + 1, nodes=NODES, n_gpus=32))

        async def job() -> pb.JobState:
            try:
                return (await stub.GetJob(pb.GetJobRequest(job_id="a"))).job
            except grpc.aio.AioRpcError:
                return pb.JobState()

        # "a" holds its GPUs before "b" (on another partition) asks for them
        await poll(job, lambda j: j.status == pb.JOB_STATUS_RUNNING)
        # 1. progress for a job nobody submitted
        await send(cfg.events_topic, "ghost", job_event("ghost", EventKind.PROGRESS, t0 + 2, step=1, step_time_s=1.0))
        # 2. a placement on GPUs job "a" holds
        await send(cfg.events_topic, "b", job_event("b", EventKind.SUBMITTED, t0 + 2, spec=SPEC))
        await send(cfg.events_topic, "b", job_event("b", EventKind.STARTED, t0 + 3, nodes=NODES, n_gpus=32))
        # 3. an impossible spec (TP x DP is not the job's GPU count)
        impossible = job_event("c", EventKind.SUBMITTED, t0 + 3)
        impossible.spec.CopyFrom(codec.spec_to_proto(SPEC))
        impossible.spec.parallel.tp = 3
        await send(cfg.events_topic, "c", impossible)
        # 4. a node the facility does not have
        await send(cfg.events_topic, "d", job_event("d", EventKind.SUBMITTED, t0 + 4, spec=SPEC))
        await send(cfg.events_topic, "d", job_event("d", EventKind.STARTED, t0 + 5, nodes=("nowhere-n00",), n_gpus=32))
        # 5. bytes that are no JobEvent
        await producer.send_raw(cfg.events_topic.name, b"e", b"\xff\xfe not protobuf",
                                producer.headers_for(cfg.events_topic))
        # a good progress report after all of them: the partition keeps flowing
        await send(cfg.events_topic, "a", job_event("a", EventKind.PROGRESS, t0 + 6, step=10, step_time_s=9.0))

        dlq = await read_until(kafka_bootstrap, cfg.events_topic, lambda rs: len(rs) >= 5, dlq=True)
        reasons = sorted(reason(r) for r in dlq)
        assert len(reasons) == 5
        assert any("unknown job 'ghost'" in r for r in reasons)
        assert any("taken by running job(s) a" in r for r in reasons)
        assert any(r.startswith("validation: spec.parallel: ") and "!= n_gpus = 32" in r for r in reasons)
        assert any("unknown node(s): nowhere-n00" in r for r in reasons)
        assert any(r.startswith("decode") for r in reasons)

        state = await poll(job, lambda j: j.measured_step_time_s == 9.0)
        assert state.step_time_error_ratio == pytest.approx(9.0 / state.predicted_step_time_s)
        assert state.comm_source == pb.COMM_SOURCE_OWN_ESTIMATE and state.comm_source_detail  # the reason
        assert not [f for f in state.risk_flags if f.kind == pb.RISK_KIND_UNSPECIFIED]  # provenance is no risk
        slower = [f for f in state.risk_flags if f.kind == pb.RISK_KIND_SLOWER_THAN_PREDICTED]
        assert state.step_time_error_ratio > 1.15 and slower and "no cause the twin can see" in slower[0].detail
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetJob(pb.GetJobRequest(job_id="ghost"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


SACCT = """JobID|JobIDRaw|Cluster|Partition|Account|User|Submit|Start|End|State|ExitCode|NNodes|AllocTRES|NodeList|JobName|Comment
101|101|su|gpu|ml|alice|2026-11-01T10:00:00|2026-11-01T10:01:00|2026-11-01T12:00:00|COMPLETED|0:0|2|billing=16,gres/gpu=16|su1-0001-n[00-01]|pretrain|twin: gpu=H100-SXM layers=32 hidden=4096 ffn_hidden=14336 heads=32 kv_heads=8 vocab=128256 seq_len=8192 gated=true tp=8 pp=1 cp=1 micro_batch=1 global_batch=32
102|102|su|gpu|ml|bob|2026-11-01T10:05:00|2026-11-01T10:06:00|2026-11-01T10:30:00|NODE_FAIL|0:0|1|billing=8,gres/gpu=8|su1-0003-n00|finetune|
103|103|su|gpu|ml|carol|2026-11-01T10:07:00|not a time|Unknown|RUNNING|0:0|1|billing=8,gres/gpu=8|su1-0003-n01|broken|
"""


async def test_sacct_replay_produces_the_expected_event_sequence(kafka_bootstrap, fresh_database, facility_file,
                                                                 unique_topic):
    cfg = jobs_config(kafka_bootstrap, fresh_database, facility_file, unique_topic, None)
    async with Running(JobsApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer:
        publisher = SlurmPublisher(producer, cfg.events_topic, source="sacct")
        events = await replay_sacct(SACCT, publisher)
        assert [(e.job_id, e.kind) for e in events] == [
            ("101", EventKind.SUBMITTED), ("101", EventKind.STARTED), ("102", EventKind.SUBMITTED),
            ("102", EventKind.STARTED), ("102", EventKind.FAILED), ("101", EventKind.FINISHED)]
        assert publisher.stats.rejected == 1
        again = await replay_sacct(SACCT, publisher)  # a re-export: nothing published twice
        assert len(again) == 6 and publisher.stats.published == 6 and publisher.stats.duplicates == 6

        recs = await read_until(kafka_bootstrap, cfg.events_topic,
                                lambda rs: len(rs) >= 6)
        by_job: dict[str, list[int]] = {}
        for r in sorted(recs, key=lambda r: (r.partition, r.offset)):
            msg = pb.JobEvent.FromString(r.value)
            assert r.key.decode() == msg.job_id
            by_job.setdefault(msg.job_id, []).append(msg.kind)
        assert by_job == {"101": [pb.JOB_EVENT_KIND_SUBMITTED, pb.JOB_EVENT_KIND_STARTED, pb.JOB_EVENT_KIND_FINISHED],
                          "102": [pb.JOB_EVENT_KIND_SUBMITTED, pb.JOB_EVENT_KIND_STARTED, pb.JOB_EVENT_KIND_FAILED]}
        dlq = await read_until(kafka_bootstrap, cfg.events_topic, lambda rs: len(rs) >= 1, dlq=True)
        assert reason(dlq[0]).startswith("slurm: ") and b"103" in dlq[0].value

        async def statuses():
            return {j: r.status.value for j, r in app.twin.book.jobs.items()}

        final = await poll(statuses, lambda s: s == {"101": "finished", "102": "failed"})
        assert app.twin.book.jobs["102"].failure_cause.value == "node"
        assert app.twin.book.jobs["101"].spec is not None and app.twin.book.jobs["101"].n_gpus == 16
        assert final and not app.twin.book.holders


async def test_cooling_and_power_inputs_then_a_restart_rebuilds_the_book(kafka_bootstrap, fresh_database,
                                                                        facility_file, unique_topic):
    from twin.cooling.v1 import cooling_pb2 as cpb
    from twin.power.v1 import power_pb2 as ppb

    cfg = jobs_config(kafka_bootstrap, fresh_database, facility_file, unique_topic, None)
    async with Running(JobsApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.JobServiceStub(channel)
        job, base = await start_job_j(cfg, producer, stub)
        alert = cpb.CoolingAlert(alert_id="cool-1", site_id=SITE, entity_id="su1-0002", kind=cpb.ALERT_KIND_THROTTLE_PREDICTED,
                                 severity=cpb.SEVERITY_WARNING, time_to_throttle_s=240.0)
        alert.alert_time.FromNanoseconds(int(time.time() * 1e9))
        await producer.send(cfg.cooling_alerts_topic, alert.entity_id, alert)
        flagged = await poll(job, lambda j: any(f.kind == pb.RISK_KIND_THERMAL_THROTTLE for f in j.risk_flags))
        assert flagged.predicted_step_time_s == base.predicted_step_time_s  # predicted, not yet throttling
        recs = await read_until(kafka_bootstrap, cfg.recommendations_topic,
                                lambda rs: any(pb.JobRecommendation.FromString(r.value).entity_id == "su1-0002"
                                               for r in rs))
        ckpt = next(m for m in (pb.JobRecommendation.FromString(r.value) for r in recs) if m.entity_id == "su1-0002")
        assert ckpt.kind == pb.RECOMMENDATION_KIND_CHECKPOINT_NOW and 200 < ckpt.deadline_s <= 240
        assert ckpt.message.startswith("checkpoint now: rack su1-0002 is predicted to throttle in")
        # the cooling twin's clear: the thermal flag goes, as a published state change
        clear = cpb.CoolingAlert(alert_id="cool-1-clear", site_id=SITE, entity_id="su1-0002",
                                 kind=cpb.ALERT_KIND_THROTTLE_PREDICTED, severity=cpb.SEVERITY_WARNING, cleared=True)
        clear.alert_time.FromNanoseconds(int(time.time() * 1e9))
        await producer.send(cfg.cooling_alerts_topic, clear.entity_id, clear)
        await poll(job, lambda j: not any(f.kind == pb.RISK_KIND_THERMAL_THROTTLE for f in j.risk_flags))

        # an alert on the PDU of one of its racks (power.alerts.v1, scope PDU; pdu-3 feeds su1-0002): the job's power
        # path is flagged, naming the PDU and the rack; the power twin's clear lifts it
        def pdu_alert(cleared: bool) -> ppb.PowerAlert:
            m = ppb.PowerAlert(alert_id="pdu-3/over", site_id=SITE, entity_id="pdu-3", scope=ppb.POWER_SCOPE_PDU,
                               kind=ppb.ALERT_KIND_OVER_THRESHOLD, severity=ppb.SEVERITY_WARNING, cleared=cleared,
                               message="pdu-3 carries 42.0 kW, 84% of its 50.0 kW rating")
            m.alert_time.FromNanoseconds(int(time.time() * 1e9))
            return m

        def pdu_flags(j: pb.JobState) -> list[pb.RiskFlag]:
            return [f for f in j.risk_flags if f.kind == pb.RISK_KIND_POWER_CAP and f.entity_id == "pdu-3"]

        await producer.send(cfg.power_alerts_topic, "pdu-3", pdu_alert(False))
        (flag,) = pdu_flags(await poll(job, lambda j: bool(pdu_flags(j))))
        assert "su1-0002" in flag.detail and "su1-0000" not in flag.detail
        await producer.send(cfg.power_alerts_topic, "pdu-3", pdu_alert(True))
        await poll(job, lambda j: not any(f.kind == pb.RISK_KIND_POWER_CAP for f in j.risk_flags))

        # GPU telemetry (telemetry.samples.v1) of the job's GPUs: measured energy, then an XID on one of them
        from twin.telemetry.v1 import telemetry_pb2 as tpb

        def samples(t: float, xid_gpu: int | None = None) -> list[tuple[str, tpb.TelemetrySamples]]:
            out = []
            for rack in sorted({n.rsplit("-n", 1)[0] for n in NODES}):
                msg = tpb.TelemetrySamples()
                b = msg.batch
                b.site_id, b.rack_id = SITE, rack
                b.sample_time.FromNanoseconds(int(t * 1e9))
                for node in (n for n in NODES if n.startswith(rack + "-n")):
                    g = b.nodes.add(node_id=node).gpus
                    g.gpu_index.extend(range(8))
                    g.power_w.extend([600.0] * 8)
                    g.sm_active.extend([0.8] * 8)
                    g.xid_errors.extend([79 if (xid_gpu is not None and node == NODES[0] and i == xid_gpu) else 0
                                         for i in range(8)])
                out.append((rack, msg))
            return out

        ts = time.time()
        # 1 Hz for 16 s, as DCGM reports; the last-XID field holds 79 from the 8th second on (DCGM keeps the
        # last XID). The service reads each rack every 2.5-7.5 s of sample time (random), so which seconds it
        # integrates varies per rack; at constant power the energy is 600 W x 16 GPUs (one rack's share of the
        # job) x the whole seconds integrated on each of the two racks (at most 15 each).
        for k in range(16):
            for rack, msg in samples(ts + k, xid_gpu=2 if k >= 8 else None):
                await producer.send(cfg.samples_topic, rack, msg)
        measured = await poll(job, lambda j: j.measured_gpu_energy_j >= 32 * 600.0 * 5 * 0.999
                              and any(f.kind == pb.RISK_KIND_GPU_ERRORS for f in j.risk_flags))
        rack_seconds = measured.measured_gpu_energy_j / (16 * 600.0)  # summed over the two racks
        assert 10 <= round(rack_seconds) <= 30 and rack_seconds == pytest.approx(round(rack_seconds))
        assert measured.measured_energy_j > measured.measured_gpu_energy_j and measured.measured_cost_usd > 0
        gpu_flag = next(f for f in measured.risk_flags if f.kind == pb.RISK_KIND_GPU_ERRORS)
        assert gpu_flag.entity_id == NODES[0] and "XID 79" in gpu_flag.detail

        gpus = list(base.placement.gpu_ids)
        plan = ppb.CurtailmentPlan(plan_id="plan-1", site_id=SITE, event_id="grid-1", duration_s=3600,
                                   capped_gpu_ids=gpus, cap_w=[350.0] * len(gpus))
        plan.created_time.FromNanoseconds(int(time.time() * 1e9))
        await producer.send(cfg.power_plans_topic, SITE, plan)
        capped = await poll(job, lambda j: any(f.kind == pb.RISK_KIND_POWER_CAP for f in j.risk_flags))
        assert capped.predicted_step_time_s > base.predicted_step_time_s and capped.power_w < base.power_w
        assert capped.clock_fraction < base.clock_fraction
        energy = capped.energy_j
        # a throttle predicted on su1-0000, still in force when the process stops (the plan is too)
        hot = cpb.CoolingAlert(alert_id="cool-2", site_id=SITE, entity_id="su1-0000",
                               kind=cpb.ALERT_KIND_THROTTLE_PREDICTED, severity=cpb.SEVERITY_WARNING,
                               time_to_throttle_s=300.0)
        hot.alert_time.FromNanoseconds(int(time.time() * 1e9))
        await producer.send(cfg.cooling_alerts_topic, hot.entity_id, hot)
        await poll(job, lambda j: any(f.kind == pb.RISK_KIND_THERMAL_THROTTLE and f.entity_id == "su1-0000"
                                      for f in j.risk_flags))

    # The groups committed past the plan and the alert: the new process's consumers never see them again, only
    # its start-up replay (stream.restore_conditions) does.
    for topic, group in ((cfg.cooling_alerts_topic, f"{cfg.group_id}-cooling"),
                         (cfg.power_plans_topic, f"{cfg.group_id}-power-plans")):
        assert await committed_to_end(kafka_bootstrap, topic, group)

    # a new process (same group): the book comes back from jobs.events.v1, energy from job_state_latest, the plan
    # and the alert in force from their topics
    async with Running(JobsApp(cfg)) as app2, grpc.aio.insecure_channel(f"127.0.0.1:{app2.grpc_port}") as channel:
        again = (await pb_grpc.JobServiceStub(channel).GetJob(pb.GetJobRequest(job_id="j"))).job
        assert again.status == pb.JOB_STATUS_RUNNING and list(again.placement.node_ids) == list(NODES)
        assert again.energy_j >= energy > 0
        assert app2.twin.book.holders[NODES[0]] == {"j": 8}
        assert set(app2.twin.plans) and set(app2.twin.thermal) == {"su1-0000"}
        stub2 = pb_grpc.JobServiceStub(channel)

        async def job2() -> pb.JobState:
            return (await stub2.GetJob(pb.GetJobRequest(job_id="j"))).job

        kinds = {pb.RISK_KIND_POWER_CAP, pb.RISK_KIND_THERMAL_THROTTLE}
        back = await poll(job2, lambda j: kinds <= {f.kind for f in j.risk_flags})
        assert back.predicted_step_time_s == capped.predicted_step_time_s


async def committed_to_end(bootstrap: str, topic: topics.Topic, group: str) -> bool:
    """Whether `group` has committed every partition of `topic` up to its end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        ends = await consumer.end_offsets(tps)
        return all([(await consumer.committed(tp) or 0) == ends[tp] for tp in tps])
    finally:
        await consumer.stop()
