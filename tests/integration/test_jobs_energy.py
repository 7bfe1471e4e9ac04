"""A job's measured energy beyond its GPUs, on the real broker and PostgreSQL (issue 11 item 3): the node platform
share from its racks' PDU power in telemetry.samples.v1 (rack PDU - the rack's GPU power, shared per GPU; the
facility spec's figure on a rack without a PDU reading) and the conversion + cooling overhead from the power
twin's site state on power.state.v1 (facility / IT power; JOBS_PUE while there is none).

At constant power every integrated second of a rack adds the same GPU and platform energy, so the ratio of
measured energy to measured GPU energy is exact whichever seconds the service integrated.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import grpc
import pytest
from service_harness import Running, poll, read_until
from test_jobs_service import (  # noqa: F401
    NODES,
    SITE,
    SPEC,
    facility_file,
    job_event,
    jobs_config,
    start_job_j,
)

from twin.core import topics
from twin.core.kafka import EventProducer
from twin.jobs.app import JobsApp
from twin.jobs.v1 import jobs_pb2 as pb
from twin.jobs.v1 import jobs_pb2_grpc as pb_grpc
from twin.power.v1 import power_pb2 as ppb
from twin.telemetry.v1 import telemetry_pb2 as tpb

pytestmark = pytest.mark.timeout(240)

JOB_W, OTHER_W, PLATFORM_W = 600.0, 300.0, 250.0   # per GPU: the job's, the rack's other GPUs', measured platform
SPEC_PLATFORM_W = 3000.0 / 8                        # dgx-h100-su: cpu_and_platform_w 3000 per 8-GPU node
SECONDS = 6


def rack_batch(rack: str, t: float, with_pdu: bool) -> tpb.TelemetrySamples:
    """Every node of the rack (4 DGX H100, 32 GPUs): the job's nodes at JOB_W per GPU, the others at OTHER_W;
    the PDU reads the GPUs plus PLATFORM_W per GPU, split over three phases."""
    msg = tpb.TelemetrySamples()
    b = msg.batch
    b.site_id, b.rack_id = SITE, rack
    b.sample_time.FromNanoseconds(int(t * 1e9))
    total = 0.0
    for i in range(4):
        node = f"{rack}-n{i:02d}"
        w = JOB_W if node in NODES else OTHER_W
        g = b.nodes.add(node_id=node).gpus
        g.gpu_index.extend(range(8))
        g.power_w.extend([w] * 8)
        total += 8 * (w + PLATFORM_W)
    if with_pdu:
        b.rack.pdu_input_power_w.extend([total / 3] * 3)
    return msg


def site_state(facility_w: float, it_w: float, scope=ppb.POWER_SCOPE_SITE, entity: str = SITE) -> ppb.PowerState:
    msg = ppb.PowerState(site_id=SITE, entity_id=entity, scope=scope, input_power_w=facility_w, output_power_w=it_w)
    msg.state_time.FromNanoseconds(int(time.time() * 1e9))
    return msg


async def test_measured_energy_uses_rack_pdu_power_and_the_power_twins_site_overhead(
        kafka_bootstrap, fresh_database, facility_file, unique_topic):  # noqa: F811
    # every rack batch read (telemetry_interval_s 0), so the seconds integrated are known
    cfg = replace(jobs_config(kafka_bootstrap, fresh_database, facility_file, unique_topic, None),
                  telemetry_interval_s=0.0, pue=1.3)
    assert cfg.power_state_topic is not None and cfg.power_state_topic.name != topics.POWER_STATE.name
    async with Running(JobsApp(cfg)) as app, EventProducer(kafka_bootstrap, source="test") as producer, \
            grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.JobServiceStub(channel)
        job, _ = await start_job_j(cfg, producer, stub)

        async def run_seconds(start: float, pdu_on_0002: bool, gpu_j_before: float) -> pb.JobState:
            for k in range(SECONDS):
                for rack in ("su1-0000", "su1-0002"):
                    await producer.send(cfg.samples_topic, rack, rack_batch(rack, start + k, rack == "su1-0000"
                                                                            or pdu_on_0002))
            # every rack's samples read: (SECONDS - 1) integrated seconds per rack (the first one starts a rack)
            want = gpu_j_before + 32 * JOB_W * (SECONDS - 1)
            return await poll(job, lambda j: j.measured_gpu_energy_j >= want * 0.999999)

        # 1. no site state: JOBS_PUE; rack su1-0000 measured (250 W per GPU), su1-0002 without a PDU reading: the
        #    facility spec's 375 W per GPU
        assert app.twin.overhead.current(time.time()) == (1.3, "setting")
        first = await run_seconds(time.time(), pdu_on_0002=False, gpu_j_before=0.0)
        gpu_j = first.measured_gpu_energy_j
        assert gpu_j == pytest.approx(32 * JOB_W * (SECONDS - 1))
        platform_j = gpu_j / (32 * JOB_W) * (16 * PLATFORM_W + 16 * SPEC_PLATFORM_W)
        assert first.measured_energy_j == pytest.approx((gpu_j + platform_j) * 1.3, rel=1e-9)
        assert "JOBS_PUE" in app.status_line()
        # the state says which factor and where from; no fabric twin configured: the own estimate, and why
        assert (first.energy_overhead_source, first.energy_overhead_factor) == (pb.ENERGY_OVERHEAD_SOURCE_SETTING, 1.3)
        assert first.comm_source == pb.COMM_SOURCE_OWN_ESTIMATE and first.comm_source_detail
        assert not [f for f in first.risk_flags if f.kind == pb.RISK_KIND_UNSPECIFIED]

        # 2. the power twin's site state (facility / IT = 1.25), among states of other entities on its partition
        #    and an implausible one (facility / IT = 4: refused, counted)
        await producer.send(cfg.power_state_topic, SITE, site_state(4.0e6, 1.0e6))
        await producer.send(cfg.power_state_topic, SITE, site_state(1.25e6, 1.0e6))
        await producer.send(cfg.power_state_topic, "su1-0000", site_state(9e6, 1e6, ppb.POWER_SCOPE_RACK, "su1-0000"))
        deadline = time.monotonic() + 60.0
        while app.stats.site_states < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert app.stats.site_states == 1 and app.stats.site_states_refused == 1
        assert app.twin.overhead.current(time.time())[1] == "site"
        assert "energy overhead 1.250 (site state" in app.status_line()
        # the change of source is published on jobs.state.v1 (and stored) with the factor
        def site_sourced(recs) -> list[pb.JobState]:
            states = [pb.JobState.FromString(r.value) for r in recs]
            return [st for st in states if st.energy_overhead_source == pb.ENERGY_OVERHEAD_SOURCE_SITE_STATE]

        recs = await read_until(kafka_bootstrap, cfg.state_topic, site_sourced)
        published = site_sourced(recs)[0]
        assert published.job_id == "j" and published.energy_overhead_factor == pytest.approx(1.25)
        assert published.comm_source == pb.COMM_SOURCE_OWN_ESTIMATE

        # 3. both racks measured now: the job's share is 16 GPUs x 250 W on each, times 1.25 (sample times two
        #    minutes on: the gap to the first part's samples is longer than the meter integrates across)
        second = await run_seconds(time.time() + 120.0, pdu_on_0002=True, gpu_j_before=gpu_j)
        d_gpu = second.measured_gpu_energy_j - gpu_j
        assert d_gpu == pytest.approx(32 * JOB_W * (SECONDS - 1))
        d_energy = second.measured_energy_j - first.measured_energy_j
        assert d_energy == pytest.approx(d_gpu * (JOB_W + PLATFORM_W) / JOB_W * 1.25, rel=1e-9)
        assert second.measured_cost_usd == pytest.approx(second.measured_energy_j / 3.6e6 * cfg.tariff_usd_per_kwh)
        assert (second.energy_overhead_source, second.energy_overhead_factor) == (
            pb.ENERGY_OVERHEAD_SOURCE_SITE_STATE, pytest.approx(1.25))
