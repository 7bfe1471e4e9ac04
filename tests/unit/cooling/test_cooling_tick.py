"""One site tick: GPU power from telemetry or the rack's share, temperatures that settle to the
steady state, and throttle alerts for racks that lost their loop under present conditions."""

from __future__ import annotations

import numpy as np
import pytest

from twin.cooling.domain import cooling_tick, design_conditions, split_power, steady_temperatures, what_if
from twin.cooling.domain.tick import GPU_SHARE_OF_IT
from twin.cooling.site import build_cooling_site
from twin.core.facility import load_facility_spec


@pytest.fixture(scope="module")
def hall():
    return build_cooling_site(load_facility_spec("gb200-nvl72-hall"))


def test_ticks_settle_to_the_steady_state_and_fill_missing_power(hall):
    net, g = hall.network, hall.gpus
    n = len(g.gpu_rack)
    board = np.full(n, 1000.0)
    board[::9] = np.nan
    it = np.full(net.n_racks, 100e3)
    cond = design_conditions(net, dry_bulb_c=20.0, wet_bulb_c=14.0)
    tk = cooling_tick(net, g, hall.gpu, None, cond, it, 1.0, board * 0.2, np.full(n, 0.3))
    for _ in range(60):
        tk = cooling_tick(net, g, hall.gpu, tk.thermal, cond, it, 5.0, board, np.full(n, 0.3))
    filled = GPU_SHARE_OF_IT * 100e3 / 72
    assert (~tk.gpu_power_measured[::9]).all() and tk.gpu_power_measured.sum() == n - len(board[::9])
    power = np.where(np.isnan(board), filled, board)
    core, hbm = split_power(power, np.full(n, 0.3), g.hbm_peak_TBps)
    want, _ = steady_temperatures(hall.gpu, core, hbm, tk.state.rack_coolant_c[g.gpu_rack])
    np.testing.assert_allclose(tk.gpu_temp_c, want, atol=0.05)
    assert not tk.alerts and tk.forecast.gpus_affected.size == 0
    assert tk.rack_max_gpu_c[0] == pytest.approx(want[:72].max())


def test_a_rack_without_its_loop_alerts_under_present_conditions(hall):
    net, g = hall.network, hall.gpus
    n = len(g.gpu_rack)
    it = np.full(net.n_racks, 100e3)
    cond = design_conditions(net, dry_bulb_c=20.0, wet_bulb_c=14.0)
    tk = cooling_tick(net, g, hall.gpu, None, cond, it, 1.0, np.full(n, 1000.0))
    lost = what_if(net, cond, cdus_down=["cdu-b-1", "cdu-b-2"])
    tk = cooling_tick(net, g, hall.gpu, tk.thermal, lost, it, 1.0, np.full(n, 1000.0))
    assert np.isfinite(tk.gpu_temp_c).all()
    throttle = {a.entity_id for a in tk.alerts if a.kind == "throttle_predicted"}
    assert throttle == {f"b-{i:04d}" for i in range(8)}
    assert any(a.kind == "capacity_exceeded" and a.entity_id == "loop-b" for a in tk.alerts)
