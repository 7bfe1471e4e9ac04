"""Equipment events -> conditions; bad events are rejected naming the field (for the DLQ)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.cooling.domain import EquipmentEvent, EventRejected, apply_event, design_conditions, evaluate
from twin.cooling.site import build_cooling_site
from twin.core.facility import load_facility_spec


@pytest.fixture(scope="module")
def hall():
    return build_cooling_site(load_facility_spec("gb200-nvl72-hall"))


def test_failure_and_repair_round_trip(hall):
    net = hall.network
    cond = design_conditions(net)
    down = apply_event(net, cond, EquipmentEvent("cdu_failure", "cdu-a-1", 10.0))
    assert not down.cdu_up[net.cdu_ids.index("cdu-a-1")]
    slow = apply_event(net, down, EquipmentEvent("pump_failure", "cdu-a-2", 11.0, flow_fraction=0.4))
    assert slow.cdu_flow_factor[net.cdu_ids.index("cdu-a-2")] == 0.4
    it = np.full(net.n_racks, 100e3)
    assert not evaluate(net, it, slow).loop_carries[0]  # 800 L/min for 2,000 L/min of racks
    back = apply_event(
        net,
        apply_event(net, slow, EquipmentEvent("cdu_repair", "cdu-a-1", 12.0)),
        EquipmentEvent("pump_repair", "cdu-a-2", 13.0),
    )
    assert back.cdu_up.all() and (back.cdu_flow_factor == 1).all()
    crah = apply_event(net, cond, EquipmentEvent("crah_failure", net.crah_ids[0], 1.0))
    assert not crah.crah_up[0]
    hot = apply_event(
        net,
        cond,
        EquipmentEvent("ambient_change", net.site_id, 1.0, dry_bulb_temp_c=41.0, wet_bulb_temp_c=26.0),
    )
    assert (hot.dry_bulb_c, hot.wet_bulb_c) == (41.0, 26.0)
    sp = apply_event(
        net,
        cond,
        EquipmentEvent(
            "setpoint_change", net.site_id, 1.0, facility_supply_temp_c=35.0, supply_air_temp_c=25.0
        ),
    )
    assert sp.facility_supply_c == 35.0 and (sp.crah_supply_c == 25.0).all()


@pytest.mark.parametrize(
    ("event", "last", "field"),
    [
        (EquipmentEvent("cdu_failure", "cdu-z-9", 1.0), None, "entity_id"),
        (EquipmentEvent("crah_failure", "cdu-a-1", 1.0), None, "entity_id"),
        (EquipmentEvent("pump_failure", "cdu-a-1", 1.0, flow_fraction=1.5), None, "flow_fraction"),
        (
            EquipmentEvent("setpoint_change", "hall-gb200", 1.0, facility_supply_temp_c=95.0),
            None,
            "facility_supply_temp_c",
        ),
        (EquipmentEvent("setpoint_change", "hall-gb200", 1.0), None, "facility_supply_temp_c"),
        (
            EquipmentEvent("ambient_change", "hall-gb200", 1.0, dry_bulb_temp_c=20.0, wet_bulb_temp_c=25.0),
            None,
            "wet_bulb_temp_c",
        ),
        (EquipmentEvent("ambient_change", "cdu-a-1", 1.0, dry_bulb_temp_c=20.0), None, "entity_id"),
        (EquipmentEvent("cdu_failure", "cdu-a-1", 5.0), 9.0, "event_time"),
        (EquipmentEvent("leak", "cdu-a-1", 5.0), None, "kind"),
    ],
)
def test_bad_events_are_rejected_naming_the_field(hall, event, last, field):
    with pytest.raises(EventRejected) as err:
        apply_event(hall.network, design_conditions(hall.network), event, last)
    assert err.value.field == field
