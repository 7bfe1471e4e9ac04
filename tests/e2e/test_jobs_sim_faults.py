"""facility-sim with a requested straggler node and a sick GPU -> ingest -> telemetry.samples.v1 -> the job twin:
the straggler's job (and only it) is flagged RISK_KIND_STRAGGLER naming the node, the sick GPU's job (and only it)
RISK_KIND_GPU_ERRORS naming the GPU and its XID. Ingest and the job twin run as processes; the simulator runs in
the test's own thread (its ticks are driven here) so that the twin's 120 s averages can fill without a 2-minute
wait: the first ~150 s of sample time are published as fast as they go (sample times in the recent past, which
ingest accepts), then ticks follow the wall clock so the twin's latest samples stay fresh.

Two stragglers, one run each, both making their job 1.5x slower: host-bound (the twin's "idle" rule: the node's
averaged GPU utilization, DCGM_FI_DEV_GPU_UTIL, more than 20 % below its job's median node; its power and SM
activity alone would show it only from a ~3x slowdown, as its peers' wait in the collective draws power too), and
power-limited (the "clock" rule: power more than 20 % below the median at equal or higher activity)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest
from e2e_support import wait_until

from twin.core.embedded.kafka import free_port
from twin.facility_sim.app import SimConfig, build_sim
from twin.jobs.v1 import jobs_pb2 as pb
from twin.jobs.v1 import jobs_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(420)
SEED = 1
BACKFILL_S = 150          # sample time published at once: more than the twin's 120 s averaging history


class SimThread(threading.Thread):
    """The simulator in its own event loop: tick 0 (the jobs start), then on ``go`` the backfill and wall-clock
    ticks until ``stop``."""

    def __init__(self, config: SimConfig) -> None:
        super().__init__(daemon=True)
        self.config = config
        self.go = threading.Event()
        self.stop = threading.Event()
        self.started_jobs = threading.Event()
        self.sim = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.started_jobs.set()

    async def _run(self) -> None:
        self.sim = sim = await build_sim(self.config)
        await sim.start()
        try:
            t0 = datetime.now(UTC) - timedelta(seconds=BACKFILL_S)
            await sim.tick(t0)
            await sim.publisher.flush()
            self.started_jobs.set()
            while not self.go.wait(0.2):
                if self.stop.is_set():
                    return
            deadline = time.monotonic() + 400
            while not self.stop.is_set() and time.monotonic() < deadline:
                ahead = (t0 + timedelta(seconds=sim.stats.ticks) - datetime.now(UTC)).total_seconds()
                if ahead > 0:
                    await asyncio.sleep(ahead)
                await sim.tick(t0)
        finally:
            await sim.stop()


def _flags(state: pb.JobState, kind: int) -> list[pb.RiskFlag]:
    return [f for f in state.risk_flags if f.kind == kind]


@pytest.mark.parametrize(("cause", "factor", "seen_as"), [("host", 1.5, "waits outside its GPUs"),
                                                          ("power", 1.5, "busy longer at less power")])
def test_a_straggler_node_and_a_sick_gpu_flag_exactly_their_jobs(kafka, procs, cause, factor, seen_as):
    config = SimConfig(kafka_bootstrap=kafka, facility="dgx-h100-su", seed=SEED, metrics_port=None, equipment=False,
                       jobs_progress_s=5.0, straggler_node="auto", straggler_factor=factor, straggler_cause=cause,
                       sick_gpu="auto", sick_gpu_xid=92)
    jobs_port = free_port()
    procs.start("ingest", "twin.ingest")
    jobs = procs.start("jobs", "twin.jobs", env={
        "JOBS_GRPC_PORT": str(jobs_port), "JOBS_FABRIC_TARGET": "", "JOBS_TICK_S": "0.5",
        "JOBS_SESSION_TIMEOUT_MS": "3000", "JOBS_STATUS_INTERVAL_S": "1", "JOBS_TELEMETRY_INTERVAL_S": "1"})
    sim = SimThread(config)
    with grpc.insecure_channel(f"127.0.0.1:{jobs_port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = pb_grpc.JobServiceStub(channel)
        sim.start()
        try:
            assert sim.started_jobs.wait(60) and sim.error is None, sim.error
            faults = sim.sim.model.faults
            layout = sim.sim.layout
            straggler_node = layout.node_ids[faults.straggler.node]
            sick_node = layout.node_ids[faults.sick.node]
            job_of = {layout.node_ids[int(n)]: job_id for job_id, nodes in sim.sim.jobs.jobs for n in nodes}
            straggler_job, sick_job = job_of[straggler_node], job_of[sick_node]
            assert straggler_job != sick_job
            # nodes the simulator runs under an operator's GPU power cap (the preset caps a share of nodes): a
            # capped node of a synchronous job really is a lower-clock straggler, so the twin may flag it
            site = sim.sim.model.site
            capped = {layout.node_ids[n] for n in np.flatnonzero(np.bincount(
                site.gpu_node, weights=site.gpu_cap_w < site.gpu_max_w, minlength=len(layout.node_ids)))}
            assert straggler_node not in capped

            def running() -> dict[str, pb.JobState]:
                resp = stub.ListJobs(pb.ListJobsRequest(status=pb.JOB_STATUS_RUNNING), timeout=10)
                return {j.job_id: j for j in resp.jobs}

            # the book must hold the jobs before their telemetry comes (samples of GPUs of no running job are
            # not kept): then the backfill
            wait_until(lambda: set(running()) == {j for j, _ in sim.sim.jobs.jobs}, 60, "every job running", procs)
            sim.go.set()

            def flagged() -> bool:
                states = running()
                return (any(f.entity_id == straggler_node
                            for f in _flags(states.get(straggler_job, pb.JobState()), pb.RISK_KIND_STRAGGLER))
                        and bool(_flags(states.get(sick_job, pb.JobState()), pb.RISK_KIND_GPU_ERRORS)))

            wait_until(flagged, 300, "the straggler's and the sick GPU's jobs flagged", procs)
            states = running()
        finally:
            sim.stop.set()
            sim.go.set()
            sim.join(30)
    assert sim.error is None, sim.error
    (lag,) = _flags(states[straggler_job], pb.RISK_KIND_STRAGGLER)
    assert lag.entity_id == straggler_node and "of the job's median node" in lag.detail and seen_as in lag.detail
    (err,) = _flags(states[sick_job], pb.RISK_KIND_GPU_ERRORS)
    assert err.entity_id == sick_node and f"GPU {faults.sick.gpu} ({sick_node}): XID 92" in err.detail
    def unexplained_stragglers(s: pb.JobState) -> list[pb.RiskFlag]:
        return [f for f in _flags(s, pb.RISK_KIND_STRAGGLER)
                if not (f.entity_id in capped and "busy longer at less power" in f.detail)]

    others = {j: s for j, s in states.items() if j not in (straggler_job, sick_job)}
    assert others and not [j for j, s in others.items()
                           if unexplained_stragglers(s) or _flags(s, pb.RISK_KIND_GPU_ERRORS)]
    assert not _flags(states[straggler_job], pb.RISK_KIND_GPU_ERRORS)
    assert not unexplained_stragglers(states[sick_job])
    # the straggler's job reports the stretched step time the slowest node sets
    period = float(sim.sim.model.workloads.iteration_s[faults.straggler.node])
    assert states[straggler_job].measured_step_time_s == pytest.approx(factor * period)
    assert jobs.alive(), jobs.log()[-3000:]
