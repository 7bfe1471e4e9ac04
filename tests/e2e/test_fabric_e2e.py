"""facility-sim → ingest → telemetry.samples.v1 → fabric, as processes; fabric answers gRPC meanwhile."""

from __future__ import annotations

import time

import grpc
import pytest
from e2e_support import scalar, wait_until

from twin.core.embedded.kafka import free_port
from twin.fabric.v1 import fabric_pb2 as pb
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(120)

GiB = 1 << 30


def test_fabric_answers_estimate_collective_while_consuming(kafka, fresh_database, procs, tmp_path):
    port = free_port()
    procs.start("ingest", "twin.ingest")
    fabric = procs.start("fabric", "twin.fabric", env={
        "FABRIC_GRPC_PORT": str(port), "FABRIC_GRPC_HOST": "127.0.0.1", "FABRIC_PUBLISH_INTERVAL_S": "1"})
    sim = procs.start("facility-sim", "twin.facility_sim", "--rate-hz", "4", "--duration", "6",
                      "--metrics-port", "-1", "--seed", "3")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.FabricSimulationServiceStub(channel)
        # wait until telemetry is flowing through ingest, then ask while the simulator still runs
        wait_until(lambda: scalar(fresh_database, "SELECT count(*) FROM telemetry_batches") > 0, 60,
                   "ingest storing batches", procs)
        answers = []
        while sim.alive() and len(answers) < 5:
            resp = stub.EstimateCollective(pb.EstimateCollectiveRequest(
                collective=pb.COLLECTIVE_ALL_REDUCE, size_bytes=GiB,
                placement=pb.Placement(ranks=pb.RankCount(n_ranks=8))), timeout=10)
            answers.append(resp)
            time.sleep(0.3)
        assert answers, "the simulator ended before fabric was asked"
        for resp in answers:
            assert (resp.n_ranks, resp.n_nodes) == (8, 1)
            assert 3.0e-3 < resp.estimate.time_s < 5.5e-3  # DESIGN §8 anchor, healthy fabric
        state = stub.GetFabricState(pb.GetFabricStateRequest(), timeout=10)
        assert state.state.site_id == "su-h100" and state.state.links_down == 0
    assert sim.wait(60) == 0
    assert fabric.alive(), fabric.log()[-3000:]
