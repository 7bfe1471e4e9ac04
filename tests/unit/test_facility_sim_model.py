"""facility-sim domain: power from activity under a cap, thermal RC, power chain losses, determinism."""

import numpy as np
import pytest

from twin.core.facility.spec import load_facility_spec
from twin.facility_sim.domain import gpu, rack
from twin.facility_sim.domain.model import FacilityModel
from twin.facility_sim.domain.workload import PH_COMM, PH_DENSE, PH_IDLE, PH_MEMORY, PHASE_ACTIVITY
from twin.facility_sim.layout import build_layout

H100 = dict(idle_w=90.0, max_w=700.0, f_max=1980.0)


def _h100(activity, busy=True, cap=700.0):
    n = np.size(activity)
    ones = np.ones(n)
    return gpu.capped_clock_and_power(ones * H100["idle_w"], ones * H100["max_w"], ones * cap, ones * H100["f_max"],
                                      np.asarray(activity, float) * ones, np.full(n, busy))


def _phase_activity(phase):
    t, s, d = PHASE_ACTIVITY[phase, :3]
    return gpu.dynamic_activity(np.array([t]), np.array([s]), np.array([d]))


def test_power_never_exceeds_cap_clock_is_lowered_instead():
    activity = np.linspace(0.0, 1.4, 200)
    for cap in (700.0, 500.0, 300.0, 200.0):
        clock, power = _h100(activity, cap=cap)
        assert (power <= cap + 1e-9).all()
        uncapped = gpu.power_w(90.0, 700.0, activity, 1.0)
        over = uncapped > cap
        assert over.any()
        assert (clock[over] < 1980.0).all(), "over-cap GPUs must run below boost clock"
        assert (clock[~over] == 1980.0).all(), "GPUs under the cap keep boost clock"
        assert (power[over] > cap - 40.0).all(), "throttling stops close to the cap (15 MHz steps)"
        assert (np.mod(clock, gpu.CLOCK_STEP_MHZ) == 0).all()


def test_memory_bound_reads_full_utilization_at_about_half_dense_power():
    dense_clock, dense_p = _h100(_phase_activity(PH_DENSE))
    mem_clock, mem_p = _h100(_phase_activity(PH_MEMORY))
    assert PHASE_ACTIVITY[PH_DENSE, 3] == PHASE_ACTIVITY[PH_MEMORY, 3] == 100.0   # both show 100 % util
    assert 0.40 <= mem_p[0] / dense_p[0] <= 0.62
    assert dense_p[0] > 650.0
    _, idle_p = _h100(_phase_activity(PH_IDLE), busy=False)
    _, comm_p = _h100(_phase_activity(PH_COMM))
    assert idle_p[0] == pytest.approx(90.0)
    assert idle_p[0] < comm_p[0] < mem_p[0]


def test_temperature_rises_with_load_and_relaxes_with_rc_time_constant():
    ref, r = np.array([25.0]), np.array([gpu.R_GPU_AIR_K_PER_W])
    t_idle, _ = gpu.steady_temps_c(ref, r, np.array([90.0]))
    t_hot, _ = gpu.steady_temps_c(ref, r, np.array([700.0]))
    temp = t_idle.copy()
    history = []
    for _ in range(200):
        temp = gpu.rc_step(temp, t_hot, 1.0, gpu.TAU_GPU_S)
        history.append(temp[0])
    history = np.array(history)
    assert (np.diff(history) > 0).all()
    tau = int(gpu.TAU_GPU_S)
    # after one time constant, 1 − 1/e of the step is done
    done = (history[tau - 1] - t_idle[0]) / (t_hot[0] - t_idle[0])
    assert done == pytest.approx(1 - np.exp(-1), abs=1e-6)
    assert history[-1] == pytest.approx(t_hot[0], abs=0.05)  # 8 τ: e^-8 of the step left
    # and it relaxes back the same way
    cool = gpu.rc_step(np.array([history[-1]]), t_idle, float(tau), gpu.TAU_GPU_S)
    assert (history[-1] - cool[0]) / (history[-1] - t_idle[0]) == pytest.approx(1 - np.exp(-1), abs=1e-3)
    assert 60.0 < t_hot[0] < 87.0, "a 700 W air-cooled H100 runs hot but below slowdown"


def test_psu_curve_and_pdu_power_exceed_it_power():
    assert rack.psu_efficiency(np.array([0.1, 0.2, 0.5, 1.0])) == pytest.approx([0.90, 0.94, 0.96, 0.91])
    layout = build_layout(load_facility_spec("dgx-h100-su"))
    model = FacilityModel(layout.arrays, seed=3)
    state = model.initial_state()
    for k in range(20):
        state, tick = model.step(state, float(k), 1.0)
        assert (tick.rack_input_w > tick.rack_it_w).all()
        assert tick.pdu_phase_w.sum(axis=1) == pytest.approx(tick.rack_input_w)
        gpu_sum = np.bincount(layout.arrays.gpu_node, weights=tick.power_w)
        assert (tick.node_it_w > gpu_sum).all()
        assert (tick.power_w <= layout.arrays.gpu_cap_w + 1e-9).all()
        assert (tick.outlet_air_c > tick.inlet_air_c).all()
        ratio = tick.rack_input_w / tick.rack_it_w
        assert ((ratio > 1.03) & (ratio < 1.25)).all()


def test_liquid_rack_coolant_heat_balance():
    layout = build_layout(load_facility_spec("gb200-nvl72-hall"), racks=2)
    model = FacilityModel(layout.arrays, seed=1)
    state, tick = model.step(model.initial_state(), 0.0, 1.0)
    a = layout.arrays
    m_kg_s = a.rack_coolant_flow_lpm / 60.0 * rack.WATER_DENSITY_KG_PER_L
    q_liquid = m_kg_s * rack.WATER_CP_J_PER_KG_K * (tick.coolant_return_c - tick.coolant_supply_c)
    assert q_liquid == pytest.approx(a.rack_liquid_fraction * tick.rack_input_w)
    assert (tick.coolant_flow_lpm > 0).all()


def test_training_swings_and_links_count_communication():
    layout = build_layout(load_facility_spec("dgx-h100-su"))
    model = FacilityModel(layout.arrays, seed=0)
    state = model.initial_state()
    phases, tx_prev = [], state.tx_bytes
    comm_bytes, other_bytes = [], []
    for k in range(60):
        state, tick = model.step(state, float(k), 1.0)
        phases.append(tick.phase)
        inc = (tick.tx_bytes - tx_prev).astype(float)
        tx_prev = tick.tx_bytes
        in_comm = tick.phase[layout.arrays.nic_node] == PH_COMM
        comm_bytes += list(inc[in_comm])
        other_bytes += list(inc[~in_comm])
    phases = np.array(phases)
    assert (phases == PH_DENSE).any() and (phases == PH_COMM).any()
    # a training node alternates compute and communication over a minute
    training = [n for n in range(phases.shape[1]) if (phases[:, n] == PH_DENSE).any()]
    assert training and all((phases[:, n] == PH_COMM).any() for n in training)
    nic_bps = 400e9 / 8
    assert np.mean(comm_bytes) == pytest.approx(0.85 * nic_bps, rel=0.05)
    assert np.mean(other_bytes) < 0.1 * nic_bps


def test_deterministic_for_a_seed():
    layout = build_layout(load_facility_spec("dgx-h100-su"), racks=2)
    runs = []
    for _ in range(2):
        m = FacilityModel(layout.arrays, seed=42)
        st = m.initial_state()
        for k in range(5):
            st, tick = m.step(st, float(k), 1.0)
        runs.append(tick)
    for attr in ("power_w", "gpu_temp_c", "sm_clock_mhz", "tx_bytes", "pdu_phase_w"):
        np.testing.assert_array_equal(getattr(runs[0], attr), getattr(runs[1], attr))
    other = FacilityModel(layout.arrays, seed=43)
    _, t2 = other.step(other.initial_state(), 0.0, 1.0)
    assert not np.array_equal(t2.power_w, runs[0].power_w)
