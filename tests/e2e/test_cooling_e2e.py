"""The cooling twin as a process (`python -m twin.cooling`) in the chain facility-sim -> ingest ->
telemetry.samples.v1 -> power -> power.state.v1 -> cooling -> cooling.state.v1 -> power (PUE), on the GB200
NVL72 hall preset (16 liquid racks): the plant's heat is exactly the IT power the power twin stored for the
same tick, the power twin's site state carries the cooling power the cooling twin published, CoolingService
answers over gRPC, and SIGTERM drains the process cleanly.
"""

from __future__ import annotations

import pytest
from e2e_support import Procs, rows, wait_until

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.core.embedded.kafka import free_port
from twin.power.v1 import power_pb2 as ppb

pytestmark = pytest.mark.timeout(240)

FACILITY = "gb200-nvl72-hall"
SITE = "hall-gb200"


def _plant_rows(db: str) -> list[tuple]:
    try:
        return rows(db, "SELECT time, message FROM cooling_state WHERE entity_id = %s ORDER BY time", (SITE,))
    except Exception:  # noqa: BLE001 - the table does not exist until the service migrated
        return []


def test_simulator_to_power_to_cooling_and_back_to_power_as_processes(kafka, fresh_database, procs: Procs):
    import grpc

    from twin.cooling.v1 import cooling_pb2_grpc as cpb_grpc

    env = {"TWIN_FACILITY": FACILITY}
    procs.start("ingest", "twin.ingest", env=env)
    procs.start("power", "twin.power", env={
        **env, "POWER_GRPC_PORT": str(free_port()), "POWER_HTTP_PORT": "0", "POWER_STATUS_INTERVAL_S": "1",
        "POWER_SESSION_TIMEOUT_MS": "3000"})
    port = free_port()
    cooling = procs.start("cooling", "twin.cooling", env={
        **env, "COOLING_GRPC_PORT": str(port), "COOLING_STATUS_INTERVAL_S": "1", "COOLING_SESSION_TIMEOUT_MS": "3000"})
    sim = procs.start("facility-sim", "twin.facility_sim", "--rate-hz", "1", "--duration", "10",
                      "--metrics-port", "-1", "--seed", "7", env=env)
    assert sim.wait(120) == 0, sim.log()[-3000:]

    def plant_matches_power():
        # a plant row whose heat is the sum of the 16 racks' input power the power twin stored for that tick
        for t, blob in reversed(_plant_rows(fresh_database)):
            plant = cpb.CoolingState.FromString(bytes(blob))
            racks = rows(fresh_database, "SELECT input_power_w FROM power_state WHERE scope = %s AND time = %s",
                         (ppb.POWER_SCOPE_RACK, t))
            if len(racks) == 16 and plant.plant.it_power_w == pytest.approx(sum(r[0] for r in racks), rel=1e-9):
                return plant
        return None

    plant = wait_until(plant_matches_power, 90, "a plant state matching the power twin's racks", procs)
    assert plant.plant.cooling_power_w > 0 and plant.plant.pue_cooling > 1.0

    def power_has_cooling():
        published = {round(cpb.CoolingState.FromString(bytes(b)).plant.cooling_power_w, 6)
                     for _, b in _plant_rows(fresh_database)}
        got = rows(fresh_database, "SELECT message FROM power_state_latest WHERE entity_id = %s", (SITE,))
        if not got:
            return None
        site = ppb.PowerState.FromString(bytes(got[0][0]))
        return site if round(site.site.cooling_power_w, 6) in published else None

    site = wait_until(power_has_cooling, 60, "the power twin's site state with the published cooling power", procs)
    assert site.site.pue == pytest.approx(site.input_power_w / site.output_power_w, rel=1e-9)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = cpb_grpc.CoolingServiceStub(channel)
        now = stub.GetState(cpb.GetStateRequest(scope=cpb.COOLING_SCOPE_LOOP), timeout=10)
        assert sorted(s.entity_id for s in now.states) == ["loop-a", "loop-b"]
        assert all(s.loop.carries for s in now.states)
        outcome = stub.WhatIfFailure(cpb.WhatIfFailureRequest(cdu_ids=["cdu-a-1", "cdu-a-2"]), timeout=30).outcome
        assert sorted(r.rack_id for r in outcome.racks) == [f"a-{i:04d}" for i in range(8)]
    assert cooling.alive(), cooling.log()[-3000:]
    assert cooling.stop() == 0, cooling.log()[-3000:]
