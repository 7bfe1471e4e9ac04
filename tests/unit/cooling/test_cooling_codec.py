"""Cooling codec: domain ↔ twin.cooling.v1 messages; bad requests and events name the proto field."""

from __future__ import annotations

import numpy as np
import pytest

from twin.cooling.adapters import codec
from twin.cooling.domain import (
    EquipmentEvent,
    cooling_alerts,
    design_conditions,
    evaluate,
    forecast,
    split_power,
    steady_state,
)
from twin.cooling.site import build_cooling_site
from twin.cooling.v1 import cooling_pb2 as pb
from twin.core import topics
from twin.core.facility import load_facility_spec

T0 = 1_764_400_000.0


@pytest.fixture(scope="module")
def hall():
    site = build_cooling_site(load_facility_spec("gb200-nvl72-hall"))
    n = len(site.gpus.gpu_rack)
    board = np.full(n, 1000.0)
    core, hbm = split_power(board, np.full(n, 0.3), site.gpus.hbm_peak_TBps)
    it = np.bincount(site.gpus.gpu_rack, weights=board * 1.35)
    cond = design_conditions(site.network, dry_bulb_c=20.0, wet_bulb_c=14.0)
    state = steady_state(core, hbm, evaluate(site.network, it, cond).rack_coolant_c[site.gpus.gpu_rack])
    return site, core, hbm, it, cond, state


def test_states_cover_every_entity_and_round_trip(hall):
    site, core, hbm, it, cond, state = hall
    net = site.network
    st = evaluate(net, it, cond)
    fc = forecast(net, site.gpus, site.gpu, state, core, hbm, it, cond)
    msgs = codec.states(net, st, cond, time_s=T0, fc=fc)
    scopes = [m.scope for m in msgs]
    assert scopes.count(pb.COOLING_SCOPE_RACK) == 16 and scopes.count(pb.COOLING_SCOPE_CDU) == 4
    assert scopes.count(pb.COOLING_SCOPE_LOOP) == 2 and scopes.count(pb.COOLING_SCOPE_PLANT) == 1
    rack = topics.COOLING_STATE.decode(msgs[0].SerializeToString())
    assert rack.entity_id == "a-0000" and rack.rack.loop_id == "loop-a"
    assert rack.rack.liquid_heat_w + rack.rack.air_heat_w == pytest.approx(rack.rack.it_power_w)
    assert not rack.rack.HasField("time_to_throttle_s") and rack.rack.gpus_at_risk == 0
    loop = next(m for m in msgs if m.scope == pb.COOLING_SCOPE_LOOP)
    assert (
        list(loop.loop.cdu_ids) == ["cdu-a-1", "cdu-a-2"] and loop.loop.redundancy == pb.REDUNDANCY_N_PLUS_1
    )
    plant = msgs[-1]
    assert plant.entity_id == net.site_id and plant.plant.cooling_power_w > plant.plant.plant_power_w > 0
    assert codec.seconds(plant.state_time) == pytest.approx(T0)


def test_what_if_failure_request_and_outcome(hall):
    site, core, hbm, it, cond, state = hall
    net = site.network
    after, horizon = codec.failure_request(net, cond, pb.WhatIfFailureRequest(cdu_ids=["cdu-a-1", "cdu-a-2"]))
    assert horizon == 3600.0
    fc = forecast(net, site.gpus, site.gpu, state, core, hbm, it, cond, after, horizon)
    out = codec.what_if_outcome(net, fc)
    assert [r.rack_id for r in out.racks] == [f"a-{i:04d}" for i in range(8)]
    assert all(len(r.gpu_ids) == 72 and r.HasField("time_to_throttle_s") for r in out.racks)
    assert (
        out.gpus_affected == 576 and list(out.loops_not_carrying) == ["loop-a"] and not out.redundancy_carries
    )
    alerts = [codec.alert(net, a, T0) for a in cooling_alerts(net, fc.after, site.gpus, fc)]
    throttle = [a for a in alerts if a.kind == pb.ALERT_KIND_THROTTLE_PREDICTED]
    assert (
        len(throttle) == 8 and throttle[0].scope == pb.COOLING_SCOPE_RACK and len(throttle[0].gpu_ids) == 72
    )
    again = codec.alert(net, cooling_alerts(net, fc.after, site.gpus, fc)[0], T0)
    assert again.alert_id == alerts[0].alert_id  # deterministic id: re-sends dedupe


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (pb.WhatIfFailureRequest(cdu_ids=["cdu-z"]), "cdu_ids"),
        (pb.WhatIfFailureRequest(crah_ids=["cdu-a-1"]), "crah_ids"),
        (
            pb.WhatIfFailureRequest(pumps=[pb.PumpFlow(cdu_id="cdu-a-1", flow_fraction=2.0)]),
            "pumps.flow_fraction",
        ),
        (
            pb.WhatIfFailureRequest(rack_flows=[pb.RackFlow(rack_id="z-0001", flow_fraction=0.5)]),
            "rack_flows.rack_id",
        ),
        (pb.WhatIfFailureRequest(horizon_s=-1.0), "horizon_s"),
    ],
)
def test_bad_failure_requests_name_the_field(hall, req, field):
    site, *_, cond, _ = hall
    with pytest.raises(codec.CodecError) as err:
        codec.failure_request(site.network, cond, req)
    assert err.value.field == field


def test_setpoint_request(hall):
    site, *_, cond, _ = hall
    net = site.network
    after, _ = codec.setpoint_request(
        net, cond, pb.WhatIfSetpointRequest(facility_supply_temp_c=40.0, supply_air_temp_c=27.0)
    )
    assert after.facility_supply_c == 40.0 and (after.crah_supply_c == 27.0).all()
    for req, field in (
        (pb.WhatIfSetpointRequest(facility_supply_temp_c=90.0), "facility_supply_temp_c"),
        (pb.WhatIfSetpointRequest(dry_bulb_temp_c=10.0, wet_bulb_temp_c=20.0), "wet_bulb_temp_c"),
    ):
        with pytest.raises(codec.CodecError) as err:
            codec.setpoint_request(net, cond, req)
        assert err.value.field == field


def test_events_round_trip_and_reject_what_they_cannot_take():
    e = EquipmentEvent("pump_failure", "cdu-a-1", T0, flow_fraction=0.25)
    msg = codec.event_to_proto(e, site_id="hall-gb200")
    back = codec.event(topics.COOLING_EVENTS.decode(msg.SerializeToString()))
    assert back == e and msg.kind == pb.COOLING_EVENT_KIND_PUMP_FAILURE
    for bad, field in (
        (pb.CoolingEvent(entity_id="cdu-a-1", event_time=codec.timestamp(T0)), "kind"),
        (pb.CoolingEvent(kind=pb.COOLING_EVENT_KIND_CDU_FAILURE, entity_id="cdu-a-1"), "event_time"),
        (
            pb.CoolingEvent(kind=pb.COOLING_EVENT_KIND_CDU_FAILURE, event_time=codec.timestamp(T0)),
            "entity_id",
        ),
    ):
        with pytest.raises(codec.CodecError) as err:
            codec.event(bad)
        assert err.value.field == field
