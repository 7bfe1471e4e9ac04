"""facility-sim codec: tick arrays → RackTelemetryBatch → arrays round trip, ids from the inventory."""

from datetime import UTC, datetime

import numpy as np

from twin.core.facility.inventory import Inventory
from twin.core.facility.spec import load_facility_spec
from twin.facility_sim.adapters.codec import GPU_FIELDS, TickEncoder, decode_rack
from twin.facility_sim.domain.model import FacilityModel
from twin.facility_sim.layout import build_layout
from twin.telemetry.v1 import telemetry_pb2 as pb

T = datetime(2025, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)


def _one_tick(preset: str, racks: int | None):
    layout = build_layout(load_facility_spec(preset), racks=racks)
    model = FacilityModel(layout.arrays, seed=7)
    state = model.initial_state()
    for k in range(3):
        state, tick = model.step(state, float(k), 1.0)
    return layout, tick


def test_round_trip_arrays_equal_through_the_wire():
    for preset, racks in (("dgx-h100-su", None), ("gb200-nvl72-hall", 2)):
        layout, tick = _one_tick(preset, racks)
        a = layout.arrays
        encoded = TickEncoder(layout).encode(tick, T, sequence=3)
        assert [e.rack_id for e in encoded] == layout.rack_ids
        gpu_rows = []
        for e in encoded:
            msg = pb.RackTelemetryBatch.FromString(e.message.SerializeToString())
            d = decode_rack(msg)
            assert d.sequence == 3 and d.sample_time.replace(tzinfo=UTC) == T
            assert msg.site_id == layout.site_id and msg.source == "facility-sim"
            g0 = int(a.rack_first_gpu[e.rack_index])
            g1 = g0 + int(a.rack_gpus[e.rack_index])
            assert e.n_gpu_rows == g1 - g0 == d.gpu["power_w"].size
            gpu_rows.append(e.n_gpu_rows)
            np.testing.assert_array_equal(d.gpu["gpu_index"], a.gpu_local_index[g0:g1])
            for field, attr in GPU_FIELDS:
                np.testing.assert_array_equal(d.gpu[field], np.asarray(getattr(tick, attr))[g0:g1], err_msg=field)
            n0 = int(a.rack_first_node[e.rack_index])
            assert d.node_ids == layout.node_ids[n0:n0 + int(a.rack_nodes[e.rack_index])]
            np.testing.assert_array_equal(d.pdu_input_power_w,
                                          tick.pdu_phase_w[e.rack_index, : a.rack_phases[e.rack_index]])
            assert d.rack["outlet_air_temp_c"] == tick.outlet_air_c[e.rack_index]
            assert d.rack["coolant_return_temp_c"] == tick.coolant_return_c[e.rack_index]
            nic_lo = int(a.node_first_nic[n0])
            nic_hi = nic_lo + len(d.port_ids)
            np.testing.assert_array_equal(d.links["tx_bytes"], tick.tx_bytes[nic_lo:nic_hi])
            np.testing.assert_array_equal(d.links["rx_errors"], tick.rx_errors[nic_lo:nic_hi])
            assert set(d.links["link_state"].tolist()) == {pb.LINK_STATE_UP}
        assert sum(gpu_rows) == a.n_gpus


def test_ids_follow_the_inventory_naming():
    spec = load_facility_spec("dgx-h100-su")
    inv = Inventory(spec)
    layout, tick = _one_tick("dgx-h100-su", 2)
    msg = TickEncoder(layout).encode(tick, T, sequence=1)[1].message
    rack = inv.racks[1]
    assert msg.rack_id == rack.rack_id
    assert [n.node_id for n in msg.nodes] == inv.node_ids(rack)
    assert list(msg.links.port_id) == inv.nic_ids(rack)
    assert all(nid in inv.node_index for nid in (n.node_id for n in msg.nodes))
