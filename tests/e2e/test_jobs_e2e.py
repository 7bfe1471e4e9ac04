"""facility-sim's job mix -> jobs.events.v1 -> the job twin (asking the fabric twin over gRPC) -> jobs.state.v1,
job_state and JobService answers, every service a real process."""

from __future__ import annotations

import grpc
import pytest
from e2e_support import scalar, wait_until

from twin.core.embedded.kafka import free_port
from twin.core.facility import load_facility_spec
from twin.facility_sim.adapters.jobs import JobFeed
from twin.facility_sim.domain.model import FacilityModel
from twin.facility_sim.layout import build_layout
from twin.jobs.v1 import jobs_pb2 as pb
from twin.jobs.v1 import jobs_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(180)
SEED = 1


def expected_jobs() -> dict[str, tuple[list[str], float]]:
    """The simulator's own jobs for this seed: id -> (node ids, iteration period)."""
    layout = build_layout(load_facility_spec("dgx-h100-su"), racks=None, seed=SEED)
    model = FacilityModel(layout.arrays, seed=SEED)
    feed = JobFeed(layout, model.workloads)
    return {job_id: ([layout.node_ids[int(n)] for n in nodes], float(model.workloads.iteration_s[int(nodes[0])]))
            for job_id, nodes in feed.jobs}


def test_simulated_jobs_are_tracked_predicted_and_stored(kafka, fresh_database, procs):
    want = expected_jobs()
    assert len(want) >= 2
    fabric_port, jobs_port = free_port(), free_port()
    procs.start("fabric", "twin.fabric", env={"FABRIC_GRPC_PORT": str(fabric_port), "FABRIC_PUBLISH_INTERVAL_S": "1"})
    jobs = procs.start("jobs", "twin.jobs", env={
        "JOBS_GRPC_PORT": str(jobs_port), "JOBS_FABRIC_TARGET": f"127.0.0.1:{fabric_port}", "JOBS_TICK_S": "0.5",
        "JOBS_SESSION_TIMEOUT_MS": "3000", "JOBS_STATUS_INTERVAL_S": "1"})
    with grpc.insecure_channel(f"127.0.0.1:{jobs_port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = pb_grpc.JobServiceStub(channel)
        sim = procs.start("facility-sim", "twin.facility_sim", "--rate-hz", "2", "--duration", "8",
                          "--metrics-port", "-1", "--seed", str(SEED), "--jobs-progress-s", "2")

        def running() -> dict[str, pb.JobState]:
            resp = stub.ListJobs(pb.ListJobsRequest(status=pb.JOB_STATUS_RUNNING), timeout=10)
            return {j.job_id: j for j in resp.jobs}

        # a job's prediction waits for the fabric twin's answer (predicted 0 until then): wait for both
        wait_until(lambda: set(running()) == set(want) and all(j.measured_step_time_s and j.predicted_step_time_s
                                                                for j in running().values()),
                   90, "every simulated job running with a progress report and a prediction", procs)
        for job_id, state in running().items():
            nodes, period = want[job_id]
            assert list(state.placement.node_ids) == nodes and state.placement.n_gpus == 8 * len(nodes)
            assert state.predicted_step_time_s > 0 and state.measured_step_time_s == pytest.approx(period)
            assert state.step_time_error_ratio == pytest.approx(period / state.predicted_step_time_s, rel=1e-6)
            assert 0 < state.mfu < 1 and state.power_w > 0
            assert state.comm_source == pb.COMM_SOURCE_FABRIC_TWIN, ("the fabric twin answered", state.comm_source_detail)
    assert sim.wait(60) == 0
    wait_until(lambda: scalar(fresh_database, "SELECT count(DISTINCT job_id) FROM job_state_latest") == len(want), 30,
               "every job stored", procs)
    assert jobs.alive(), jobs.log()[-3000:]
    assert jobs.stop() == 0
