"""GPU thermal model: where the power goes, online calibration (noise, gaps, outliers, irregular
samples, from the spec defaults), closed-form time-to-throttle against stepping, and the validation
command on the measured H100 trace."""

from __future__ import annotations

import json

import numpy as np
import pytest

from twin.cooling import validate
from twin.cooling.domain import (
    CoolantPath,
    GpuThermal,
    calibrate_step,
    calibrated,
    default_thermal,
    pooled_prior,
    split_power,
    start_calibration,
    steady_state,
    steady_temperatures,
    step,
    temperatures,
    temperatures_at,
    time_to_throttle,
)
from twin.core.validation_data import validation_dir

PRIOR = default_thermal(np.array([0.044]), np.array([0.5]), np.array([0.25]), np.array([13.5]))


def truth() -> GpuThermal:
    return GpuThermal(
        r_slow_k_per_w=np.array([0.017]),
        r_fast_k_per_w=np.array([0.031]),
        tau_slow_s=np.array([13.5]),
        tau_fast_s=np.array([0.25]),
        offset_c=np.array([8.0]),
        hbm_offset_c=np.array([9.0]),
        hbm_slow_k_per_w=np.array([0.02]),
        hbm_core_k_per_w=np.array([0.006]),
        hbm_self_k_per_w=np.array([0.03]),
    )


def synthetic(seed: int = 1, n: int = 1500):
    """Idle, matmul, HBM copy, idle, matmul at irregular ~0.2 s samples, through the true model."""
    rng = np.random.default_rng(seed)
    dt = rng.uniform(0.15, 0.3, n)
    t = np.cumsum(dt)
    board = np.select([t < 20, t < 80, t < 120, t < 160], [118.0, 698.0, 373.0, 118.0], 698.0)
    act = np.select([t < 20, t < 80, t < 120, t < 160], [0.0, 0.33, 1.0, 0.0], 0.33)
    core, hbm = split_power(board, act, 3.35)
    p = truth()
    s = steady_state(core[:1], hbm[:1], np.array([22.0]))
    gpu, mem = np.empty(n), np.empty(n)
    for i in range(n):
        s = step(p, s, dt[i], core[i : i + 1], hbm[i : i + 1], np.array([22.0]))
        g, h = temperatures(p, s)
        gpu[i], mem[i] = g[0], h[0]
    return t, dt, core, hbm, gpu, mem


def test_power_split_follows_memory_activity():
    core, hbm = split_power(np.array([373.0, 698.0, 118.0, 50.0]), np.array([1.0, 0.33, 0.0, 1.0]), 3.35)
    np.testing.assert_allclose(core + hbm, [373.0, 698.0, 118.0, 50.0])
    assert hbm[0] == pytest.approx(62.4 * 3.35) and hbm[2] == 0 and core[3] == 0  # never more than the board
    # at one board power, a memory-bound load reads cooler on the die than a dense one
    c2, h2 = split_power(np.array([400.0, 400.0]), np.array([0.0, 1.0]), 3.35)
    die, _ = steady_temperatures(PRIOR.take(np.array([0, 0])), c2, h2, np.array([25.0, 25.0]))
    assert die[1] < die[0] - 3.0


def test_calibration_recovers_the_model_through_noise_gaps_and_outliers():
    t, dt, core, hbm, gpu, mem = synthetic()
    rng = np.random.default_rng(5)
    meas = np.round(gpu + rng.normal(0, 0.3, len(t)))  # whole °C like NVML
    meas_h = np.round(mem + rng.normal(0, 0.3, len(t)))
    meas[rng.random(len(t)) < 0.15] = np.nan  # missing samples
    spikes = rng.random(len(t)) < 0.01
    meas[spikes] += 40.0  # a glitching sensor
    core, hbm = core.copy(), hbm.copy()
    gone = rng.random(len(t)) < 0.02
    core[gone] = hbm[gone] = np.nan  # power samples lost too
    one = np.array([22.0])
    cal = start_calibration(PRIOR, core[:1], hbm[:1], one)
    for i in range(1, len(t)):
        cal = calibrate_step(
            cal, dt[i], core[i : i + 1], hbm[i : i + 1], one, meas[i : i + 1], meas_h[i : i + 1]
        )
    p, _ = calibrated(cal)
    assert cal.samples[0] == (np.isfinite(meas[1:]) & ~gone[1:]).sum()
    assert np.isfinite(cal.theta).all() and np.isfinite(cal.z_slow).all()
    assert p.r_slow_k_per_w[0] == pytest.approx(0.017, rel=0.2)
    assert p.r_fast_k_per_w[0] == pytest.approx(0.031, rel=0.1)
    assert p.tau_slow_s[0] == pytest.approx(13.5, rel=0.35)
    assert p.offset_c[0] == pytest.approx(8.0, abs=1.0)


def test_calibrated_model_predicts_what_it_has_not_seen():
    t, dt, core, hbm, gpu, mem = synthetic(seed=2)
    one = np.array([22.0])
    fit = t <= 100.0  # idle, matmul, part of the copy
    cal = start_calibration(PRIOR, core[:1], hbm[:1], one)
    last = int(np.flatnonzero(fit)[-1])
    for i in range(1, last + 1):
        cal = calibrate_step(
            cal,
            dt[i],
            core[i : i + 1],
            hbm[i : i + 1],
            one,
            np.round(gpu[i : i + 1]),
            np.round(mem[i : i + 1]),
        )
    p, s = calibrated(cal)
    err = []
    for i in range(last + 1, len(t)):
        s = step(p, s, dt[i], core[i : i + 1], hbm[i : i + 1], one)
        err.append(temperatures(p, s)[0][0] - gpu[i])
    assert np.sqrt(np.mean(np.square(err))) < 1.0


def test_closed_form_time_to_throttle_matches_stepping():
    p = truth().take(np.array([0, 0, 0]))
    core, hbm = np.array([650.0, 650.0, 650.0]), np.array([40.0, 40.0, 40.0])
    s = steady_state(core, hbm, np.array([30.0, 30.0, 30.0]))
    # coolant: a step to 55 °C at the loop's pace; a ramp (no flow); unchanged
    path = CoolantPath(
        now_c=np.array([30.0, 30.0, 30.0]),
        final_c=np.array([55.0, 30.0, 30.0]),
        tau_s=np.array([60.0, 60.0, 60.0]),
        ramp_k_per_s=np.array([0.0, 0.2, 0.0]),
    )
    slow, hbm_max = np.array([87.0, 87.0, 87.0]), np.array([95.0, 95.0, 95.0])
    ttt, which = time_to_throttle(p, s, core, hbm, path, slow, hbm_max)
    assert np.isfinite(ttt[:2]).all() and ttt[2] == np.inf and list(which) == [1, 1, 0]
    # step the RC model with the same coolant path at 0.05 s
    dt, st, tt = 0.05, s, 0.0
    hit = np.full(3, np.inf)
    while tt < 2000.0 and not np.isfinite(hit[:2]).all():
        tt += dt
        cool = path.final_c + (path.now_c - path.final_c) * np.exp(-tt / path.tau_s) + path.ramp_k_per_s * tt
        st = step(p, st, dt, core, hbm, cool)
        g, _ = temperatures(p, st)
        hit = np.where(np.isinf(hit) & (g >= slow), tt, hit)
    np.testing.assert_allclose(ttt[:2], hit[:2], rtol=0.01, atol=0.2)
    g, _ = temperatures_at(p, s, core, hbm, path, np.array([0.0]))
    np.testing.assert_allclose(g[:, 0], temperatures(p, s)[0])


def test_thermal_validation_on_the_measured_h100_trace(capsys):
    path = validation_dir() / "gpu_thermal_public.csv"
    assert validate.main(["thermal", str(path), "--fit-until-s", "50", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"rows_fitted", "rows_predicted", "rmse_c", "worst_abs_error_c"}
    assert out["rows_fitted"] > 200 and out["rows_predicted"] > 100
    assert out["rmse_c"] <= 2.5


def test_heat_validation_and_the_whole_report(capsys):
    assert validate.main(["heat", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["delta_t_ok"] and out["balance_ok"] and abs(out["delta_t_k"] - 9.56) < 0.05
    assert validate.main(["--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"thermal", "heat"}
    assert validate.main(["thermal"]) == 2 and validate.main(["bogus"]) == 2


def test_pooled_prior_is_the_median_of_each_model_and_cooling_group():
    p = default_thermal(
        np.array([0.04, 0.05, 0.06, 0.03, 0.03]),
        np.array([0.5] * 5),
        np.array([0.25] * 5),
        np.array([10.0, 12.0, 14.0, 20.0, 20.0]),
    )
    pooled = pooled_prior(
        p, np.array([0, 0, 0, 1, 1]), calibrated_mask=np.array([True, True, True, True, False])
    )
    np.testing.assert_allclose(pooled.r_total_k_per_w, [0.05, 0.05, 0.05, 0.03, 0.03])
    np.testing.assert_allclose(pooled.tau_slow_s, [12.0, 12.0, 12.0, 20.0, 20.0])


def test_thermal_validation_holds_with_gaps_in_the_trace(tmp_path, capsys):
    import csv

    rows = list(csv.DictReader((validation_dir() / "gpu_thermal_public.csv").open()))
    rng = np.random.default_rng(11)
    for r in rows:
        if rng.random() < 0.1:
            r["gpu_temp_c"] = ""
        if rng.random() < 0.03:
            r["power_w"] = ""
    path = tmp_path / "gappy.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert validate.main(["thermal", str(path), "--fit-until-s", "50", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rmse_c"] <= 2.5 and out["rows_fitted"] < 250
