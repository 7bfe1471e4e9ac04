"""Accuracy report of the cooling twin against measured and published reference data (issue 10).

    python -m twin.cooling.validate [--json]                              all checks on shared/validation/
    python -m twin.cooling.validate thermal CSV [--fit-until-s T] [--json]  GPU temperature: fit, predict
    python -m twin.cooling.validate heat [--json]                         heat balance checks

``thermal``: the rows with ``t_s <= T`` calibrate the GPU thermal model online (the same
``calibrate_step`` the live twin runs, starting from the spec defaults of the ``--preset``'s GPU and
rack cooling, default dgx-h100-su); the rest is predicted from the inputs alone (board power and
memory activity ``util_mem_pct``; the inlet is held at the preset's supply air, as the trace's host
cooling is unknown). The GPU temperature is compared; ``--json``: ``{rows_fitted, rows_predicted,
rmse_c, worst_abs_error_c}``. T defaults to 2/3 of the trace. The text report also prints the HBM
error and, for comparison, a single resistance + single time constant fed total board power, fitted
on the same rows. No constant is fitted to any row of the predicted part.

``heat``: 100 kW into water at 150 L/min (ΔT against the OCP figure of 9.56 K, which takes 1 kg/L
and 4.184 kJ/(kg·K); the twin uses water's tabulated properties at 20 °C, within 0.5 %), and
liquid + air heat = IT power at every rack of every preset at random loads (to 0.1 %).
``--json`` with no subcommand: ``{thermal, heat}``. Data: ``twin.core.validation_data.validation_dir()``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from twin.cooling.domain.coolant import delta_t_k, heat_w
from twin.cooling.domain.network import design_conditions, evaluate
from twin.cooling.domain.thermal import (
    calibrate_step,
    calibrated,
    default_thermal,
    split_power,
    start_calibration,
    step,
    temperatures,
)
from twin.cooling.site import build_cooling_site, coolant_of
from twin.core.facility import load_facility_spec, preset_names
from twin.core.validation_data import validation_dir

THERMAL_CSV = "gpu_thermal_public.csv"
DEFAULT_PRESET = "dgx-h100-su"
#: OCP sizing example (DESIGN §8): 100 kW into water at 150 L/min -> ΔT ≈ 9.56 K
HEAT_KW, HEAT_LPM, HEAT_EXPECTED_K, HEAT_TOL = 100.0, 150.0, 9.56, 0.005
#: the temperature water properties are read at for the sizing check (a cool facility loop)
HEAT_WATER_C = 20.0
BALANCE_TOL = 0.001


def load_trace(path: str | Path) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))

    def col(name: str) -> np.ndarray:
        out = []
        for r in rows:
            v = (r.get(name) or "").strip()
            try:
                out.append(float(v))
            except ValueError:
                out.append(np.nan)
        return np.array(out)

    return {k: col(k) for k in ("t_s", "power_w", "util_mem_pct", "gpu_temp_c", "mem_temp_c")}


def _hold(x: np.ndarray) -> np.ndarray:
    """Fill missing values with the last known one (the first known one before it)."""
    x = x.copy()
    ok = np.isfinite(x)
    if not ok.any():
        return np.zeros_like(x)
    idx = np.where(ok, np.arange(len(x)), 0)
    np.maximum.accumulate(idx, out=idx)
    x = x[idx]
    first = np.flatnonzero(ok)[0]
    x[:first] = x[first]
    return x


def _single_resistance(t: np.ndarray, p: np.ndarray, y: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Baseline: T = T0 + R · lag(P_board, τ), R, T0 and τ least squares on the fitted rows."""
    best = None
    for tau in np.geomspace(2.0, 60.0, 30):
        z = np.empty_like(p)
        z[0] = p[0]
        for i in range(1, len(p)):
            a = np.exp(-(t[i] - t[i - 1]) / tau)
            z[i] = a * z[i - 1] + (1 - a) * p[i]
        x = np.c_[np.ones_like(z), z]
        m = fit & np.isfinite(y)
        coef, *_ = np.linalg.lstsq(x[m], y[m], rcond=None)
        err = float(np.mean((x[m] @ coef - y[m]) ** 2))
        if best is None or err < best[0]:
            best = (err, x @ coef)
    assert best is not None
    return best[1]


def thermal_report(
    trace: dict[str, np.ndarray], fit_until_s: float | None = None, preset: str = DEFAULT_PRESET
) -> dict:
    site = build_cooling_site(load_facility_spec(preset))
    t = trace["t_s"]
    keep = np.isfinite(t)
    tr = {k: v[keep] for k, v in trace.items()}
    t = tr["t_s"]
    if len(t) < 3:
        raise ValueError("thermal trace needs at least 3 timed rows")
    order = np.argsort(t, kind="stable")
    tr = {k: v[order] for k, v in tr.items()}
    t = tr["t_s"]
    T = float(t[0] + (t[-1] - t[0]) * 2.0 / 3.0) if fit_until_s is None else float(fit_until_s)
    power = _hold(tr["power_w"])
    act = _hold(tr["util_mem_pct"]) / 100.0
    core, hbm = split_power(power, act, site.gpus.hbm_peak_TBps[0])
    inlet = (
        float(site.network.crah_supply_c[0])
        if len(site.network.crah_supply_c)
        else site.network.facility_supply_c
    )
    prior = site.gpu.take(np.array([0]))
    prior = default_thermal(
        prior.r_total_k_per_w,
        prior.r_fast_k_per_w / prior.r_total_k_per_w,
        prior.tau_fast_s,
        prior.tau_slow_s,
    )
    one = np.ones(1)
    cal = start_calibration(prior, core[:1], hbm[:1], inlet * one)
    fit = t <= T
    y, yh = tr["gpu_temp_c"], tr["mem_temp_c"]
    last_fit = int(np.flatnonzero(fit)[-1]) if fit.any() else 0
    for i in range(1, last_fit + 1):
        cal = calibrate_step(
            cal, t[i] - t[i - 1], core[i : i + 1], hbm[i : i + 1], inlet * one, y[i : i + 1], yh[i : i + 1]
        )
    params, state = calibrated(cal)
    pred, pred_h = np.full(len(t), np.nan), np.full(len(t), np.nan)
    for i in range(last_fit + 1, len(t)):
        state = step(params, state, t[i] - t[i - 1], core[i : i + 1], hbm[i : i + 1], inlet * one)
        g, h = temperatures(params, state)
        pred[i], pred_h[i] = g[0], h[0]
    scored = ~fit & np.isfinite(y) & np.isfinite(pred)
    err = pred[scored] - y[scored]
    err_h = (pred_h - yh)[~fit & np.isfinite(yh) & np.isfinite(pred_h)]
    base = _single_resistance(t, power, y, fit)
    err_b = (base - y)[scored]

    def rmse(e: np.ndarray) -> float:
        return float(np.sqrt(np.mean(e**2))) if e.size else float("nan")

    return {
        "rows_fitted": int(np.isfinite(y[fit]).sum()),
        "rows_predicted": int(scored.sum()),
        "rmse_c": rmse(err),
        "worst_abs_error_c": float(np.max(np.abs(err))) if err.size else float("nan"),
        "fit_until_s": T,
        "hbm_rmse_c": rmse(err_h),
        "baseline_single_r_rmse_c": rmse(err_b),
        "baseline_single_r_worst_abs_error_c": float(np.max(np.abs(err_b))) if err_b.size else float("nan"),
        "params": {
            "r_slow_k_per_w": float(params.r_slow_k_per_w[0]),
            "r_fast_k_per_w": float(params.r_fast_k_per_w[0]),
            "tau_slow_s": float(params.tau_slow_s[0]),
            "tau_fast_s": float(params.tau_fast_s[0]),
            "offset_c": float(params.offset_c[0]),
            "inlet_c": inlet,
        },
    }


def heat_report(seed: int = 0) -> dict:
    water = coolant_of("water")
    dt = float(delta_t_k(water, HEAT_KW * 1000.0, HEAT_LPM, HEAT_WATER_C))
    dev = abs(dt - HEAT_EXPECTED_K) / HEAT_EXPECTED_K
    rng = np.random.default_rng(seed)
    worst, loop_worst, plant_worst, racks, presets = 0.0, 0.0, 0.0, 0, []
    for name in preset_names():
        spec = load_facility_spec(name)
        site = build_cooling_site(spec)
        net = site.network
        it = rng.uniform(0.0, 1.0, net.n_racks) * net.rack_air_limit_w.max() * 3.0
        st = evaluate(net, it, design_conditions(net))
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.where(
                it > 0, np.abs(st.rack_liquid_w + st.rack_air_w - it) / np.where(it > 0, it, 1.0), 0.0
            )
        worst = max(worst, float(e.max()))
        # every loop: Σ rack liquid heat = Σ CDU heat = ṁ c_p ΔT of the loop; heat to the plant = IT + work
        q_loop = heat_w(net.secondary_coolant, st.loop_flow_lpm, st.loop_supply_c, st.loop_return_c)
        if q_loop.size:
            loop_worst = max(
                loop_worst, float(np.max(np.abs(q_loop - st.loop_heat_w) / np.maximum(st.loop_heat_w, 1.0)))
            )
            loop_worst = max(
                loop_worst,
                abs(st.cdu_heat_w.sum() - st.rack_liquid_w.sum()) / max(st.rack_liquid_w.sum(), 1.0),
            )
        work = st.cooling_power_w - st.plant_power_w
        plant_worst = max(
            plant_worst,
            abs(st.plant_load_w - st.it_power_w - work) / st.plant_load_w,
            abs(st.plant_unit_heat_w.sum() - st.plant_load_w) / st.plant_load_w,
        )
        racks += net.n_racks
        presets.append(name)
    return {
        "delta_t_k": dt,
        "expected_delta_t_k": HEAT_EXPECTED_K,
        "delta_t_rel_error": dev,
        "delta_t_ok": dev <= HEAT_TOL,
        "racks_checked": racks,
        "presets": presets,
        "balance_worst_rel_error": worst,
        "loop_balance_worst_rel_error": loop_worst,
        "plant_balance_worst_rel_error": plant_worst,
        "balance_ok": max(worst, loop_worst, plant_worst) <= BALANCE_TOL,
    }


SUMMARY_KEYS = {
    "thermal": ("rows_fitted", "rows_predicted", "rmse_c", "worst_abs_error_c"),
    "heat": (
        "delta_t_k",
        "delta_t_rel_error",
        "delta_t_ok",
        "racks_checked",
        "balance_worst_rel_error",
        "loop_balance_worst_rel_error",
        "plant_balance_worst_rel_error",
        "balance_ok",
    ),
}


def summary(kind: str, rep: dict) -> dict:
    return {k: rep[k] for k in SUMMARY_KEYS[kind]}


def format_thermal(rep: dict) -> str:
    p = rep["params"]
    return "\n".join(
        [
            f"thermal: fitted on {rep['rows_fitted']} rows (t <= {rep['fit_until_s']:.1f} s), "
            f"predicted {rep['rows_predicted']}",
            f"  calibrated: R_slow {p['r_slow_k_per_w']:.4f} K/W (tau {p['tau_slow_s']:.1f} s), R_fast "
            f"{p['r_fast_k_per_w']:.4f} K/W (tau {p['tau_fast_s']:.2f} s), offset {p['offset_c']:+.2f} K on "
            f"{p['inlet_c']:.1f} °C inlet",
            f"  GPU: RMSE {rep['rmse_c']:.2f} °C, worst |err| {rep['worst_abs_error_c']:.2f} °C "
            "(target RMSE <= 2.5 °C)",
            f"  HBM: RMSE {rep['hbm_rmse_c']:.2f} °C",
            f"  baseline single R fed board power: RMSE {rep['baseline_single_r_rmse_c']:.2f} °C, worst "
            f"{rep['baseline_single_r_worst_abs_error_c']:.2f} °C",
        ]
    )


def format_heat(rep: dict) -> str:
    ok = "OK" if rep["delta_t_ok"] else "FAIL"
    balance = "OK" if rep["balance_ok"] else "FAIL"
    return "\n".join(
        [
            f"heat: {HEAT_KW:.0f} kW into water at {HEAT_LPM:.0f} L/min -> ΔT {rep['delta_t_k']:.3f} K "
            f"(reference {rep['expected_delta_t_k']} K, {rep['delta_t_rel_error'] * 100:.2f} %) {ok}",
            f"  liquid + air = IT: worst {rep['balance_worst_rel_error'] * 100:.2e} % over "
            f"{rep['racks_checked']} racks ({', '.join(rep['presets'])})",
            "  CDU loops: rack liquid heat = CDU heat = ṁ c_p ΔT, worst "
            f"{rep['loop_balance_worst_rel_error'] * 100:.2e} %; plant: rejected = IT + pump and fan work, "
            f"worst {rep['plant_balance_worst_rel_error'] * 100:.2e} % {balance}",
        ]
    )


USAGE = (
    "usage: python -m twin.cooling.validate [thermal CSV [--fit-until-s T] [--preset NAME] | heat] [--json]"
)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    opts: dict[str, str] = {}
    rest: list[str] = []
    it = iter(args)
    for a in it:
        if a in ("--fit-until-s", "--preset"):
            v = next(it, None)
            if v is None:
                print(USAGE, file=sys.stderr)
                return 2
            opts[a] = v
        elif a.startswith("-"):
            print(USAGE, file=sys.stderr)
            return 2
        else:
            rest.append(a)
    try:
        fit_until = float(opts["--fit-until-s"]) if "--fit-until-s" in opts else None
    except ValueError:
        print("--fit-until-s needs a number of seconds", file=sys.stderr)
        return 2
    preset = opts.get("--preset", DEFAULT_PRESET)
    try:
        if not rest:
            reps = {
                "thermal": thermal_report(load_trace(validation_dir() / THERMAL_CSV), fit_until, preset),
                "heat": heat_report(),
            }
            if as_json:
                print(json.dumps({k: summary(k, v) for k, v in reps.items()}))
            else:
                print(format_thermal(reps["thermal"]) + "\n\n" + format_heat(reps["heat"]))
            return 0 if reps["heat"]["delta_t_ok"] and reps["heat"]["balance_ok"] else 1
        cmd = rest[0]
        if cmd == "heat" and len(rest) == 1:
            rep, kind, fmt = heat_report(), "heat", format_heat
        elif cmd == "thermal" and len(rest) == 2:
            path = Path(rest[1])
            if not path.is_file():
                print(f"CSV not found: {path}", file=sys.stderr)
                return 2
            rep, kind, fmt = thermal_report(load_trace(path), fit_until, preset), "thermal", format_thermal
        else:
            print(USAGE, file=sys.stderr)
            return 2
    except (FileNotFoundError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(summary(kind, rep)) if as_json else fmt(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
