"""The live twin without Kafka: heat only moves forward, events keep their order, telemetry calibrates the
GPUs it covers (a GPU that runs hotter than the spec says is seen as hotter), rack coolant sensors that
contradict ṁ·c_p·ΔT are flagged, conditions survive a JSON round trip, and states publish on change."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.cooling.adapters import codec
from twin.cooling.adapters.repository import conditions_from_json, conditions_to_json
from twin.cooling.adapters.stream import changed
from twin.cooling.domain.coolant import delta_t_k
from twin.cooling.domain.events import EquipmentEvent, EventRejected
from twin.cooling.domain.thermal import split_power, steady_temperatures
from twin.cooling.live import CoolingLive, GpuReading
from twin.cooling.site import build_cooling_site
from twin.core.facility import load_facility_spec


@pytest.fixture(scope="module")
def hall():
    return build_cooling_site(load_facility_spec("gb200-nvl72-hall"))


def test_rack_heat_only_moves_forward_and_events_keep_their_order(hall):
    live = CoolingLive(hall)
    assert live.apply_power([(0, 10.0, 100e3), (1, 10.0, 90e3)]) == 2
    assert live.apply_power([(0, 9.0, 1.0)]) == 0 and live.rack_it_w[0] == 100e3       # a replay of the past
    assert live.apply_power([(0, 10.0, 100e3)]) == 0                                   # the same value again
    live.apply_event(EquipmentEvent("cdu_failure", "cdu-a-1", 20.0))
    with pytest.raises(EventRejected) as err:
        live.apply_event(EquipmentEvent("cdu_repair", "cdu-a-1", 19.0))
    assert err.value.field == "event_time"
    assert not live.cond.cdu_up[0]
    back = conditions_from_json(conditions_to_json(live.cond), live.cond)
    assert back is not None and back.cdu_up.tolist() == live.cond.cdu_up.tolist()
    assert back.facility_supply_c == live.cond.facility_supply_c


def test_telemetry_calibrates_the_gpus_it_covers(hall):
    """Rack 0's GPUs run with 30 % more resistance than the spec: after a few minutes of samples at 1 s the
    calibrated model predicts their temperature; rack 1 (no temperatures) keeps the spec defaults."""
    live = CoolingLive(hall, min_calibration_samples=5)
    rack_w = np.full(hall.network.n_racks, 110e3)
    live.apply_power([(r, 0.0, float(rack_w[r])) for r in range(hall.network.n_racks)])
    live.evaluate(0.0)
    idx = live.gpus_of(0)
    g = hall.gpus
    truth = hall.gpu.take(idx)
    truth = type(truth)(**{k: getattr(truth, k) * (1.3 if k in ("r_slow_k_per_w", "r_fast_k_per_w") else 1.0)
                           for k in truth.__dataclass_fields__})
    coolant = live.last.tick.state.rack_coolant_c[0]
    rng = np.random.default_rng(3)
    for k in range(1, 240):
        power = np.full(len(idx), 700.0 if (k // 40) % 2 else 1100.0)
        core, hbm = split_power(power, np.full(len(idx), 0.3), g.hbm_peak_TBps[idx])
        gpu_t, hbm_t = steady_temperatures(truth, core, hbm, np.full(len(idx), coolant))
        live.apply_telemetry([GpuReading(rack=0, time_s=float(k) * 60.0, gpu=idx, power_w=power,
                                         gpu_temp_c=gpu_t + rng.normal(0, 0.2, len(idx)),
                                         hbm_temp_c=hbm_t, dram_active=np.full(len(idx), 0.3))])
    assert live.calibrated_gpus[idx].all() and not live.calibrated_gpus[live.gpus_of(1)].any()
    fitted = live.params.take(idx)
    np.testing.assert_allclose(fitted.r_total_k_per_w, truth.r_total_k_per_w, rtol=0.1)
    assert (live.params.take(live.gpus_of(1)).r_total_k_per_w == hall.gpu.take(live.gpus_of(1)).r_total_k_per_w).all()


def test_rack_coolant_sensors_that_contradict_the_heat_are_suspect(hall):
    net = hall.network
    live = CoolingLive(hall)
    live.apply_power([(r, 0.0, 100e3) for r in range(net.n_racks)])
    st = live.evaluate(0.0).tick.state
    supply, flow = float(st.rack_supply_c[0]), float(st.rack_flow_lpm[0])
    empty = np.zeros(0)
    readings = []
    for rack, heat in ((0, float(st.rack_liquid_w[0])), (1, 0.5 * float(st.rack_liquid_w[1]))):
        ret = supply + float(delta_t_k(net.secondary_coolant, heat, flow, supply))
        readings.append(GpuReading(rack=rack, time_s=1.0, gpu=empty.astype(np.int64), power_w=empty, gpu_temp_c=empty,
                                   hbm_temp_c=empty, dram_active=empty, coolant_flow_lpm=flow,
                                   coolant_supply_c=supply, coolant_return_c=ret))
    live.apply_telemetry(readings)
    ev = live.evaluate(1.0)
    assert [a.entity_id for a in ev.sensor_alerts] == [net.rack_ids[1]]
    assert ev.sensor_values[net.rack_ids[1]][0] == pytest.approx(0.5 * st.rack_liquid_w[1], rel=1e-6)
    assert set(ev.sensor_values) == {net.rack_ids[0], net.rack_ids[1]}


def test_states_publish_again_only_when_a_number_moves_by_its_resolution(hall):
    net = hall.network
    live = CoolingLive(hall)
    live.apply_power([(r, 0.0, 100e3) for r in range(net.n_racks)])
    ev = live.evaluate(0.0)
    a = codec.states(net, ev.tick.state, ev.cond, time_s=0.0)[-1]
    b = type(a)()
    b.CopyFrom(a)
    b.plant.cooling_power_w += 99.0
    b.state_time.FromSeconds(5)
    assert not changed(a, b, 100.0) and changed(None, b, 100.0)
    b.plant.cooling_power_w += 2.0
    assert changed(a, b, 100.0)
    b.CopyFrom(a)
    b.plant.facility_supply_temp_c = math.nan
    assert changed(a, b, 100.0)
    r = codec.states(net, ev.tick.state, ev.cond, time_s=0.0, fc=ev.tick.forecast)[0]
    q = type(r)()
    q.CopyFrom(r)
    q.rack.time_to_throttle_s = 100.0          # a throttle forecast appears
    assert changed(r, q, 100.0)


def test_calibration_interval_bounds_the_steps_per_rack(hall):
    live = CoolingLive(hall, calibrate_interval_s=100.0)
    live.apply_power([(r, 0.0, 100e3) for r in range(hall.network.n_racks)])
    live.evaluate(0.0)
    idx = live.gpus_of(2)
    for k in range(1, 11):                     # every 60 s: steps at 60, 180, 300, 420, 540
        live.apply_telemetry([GpuReading(rack=2, time_s=60.0 * k, gpu=idx, power_w=np.full(len(idx), 800.0 + k),
                                         gpu_temp_c=np.full(len(idx), 55.0), hbm_temp_c=np.full(len(idx), 50.0),
                                         dram_active=np.full(len(idx), 0.3))])
    assert (live.cal[2].samples == 5).all()
    assert (live.board_w[idx] == 810.0).all()  # measured power still follows every sample
