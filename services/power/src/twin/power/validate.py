"""Accuracy report of the power twin against measured and published reference data (issue 9).

    python -m twin.power.validate [--json]                     all checks on shared/validation/
    python -m twin.power.validate chain CSV [--json]           conversion chain vs RAPS Frontier
    python -m twin.power.validate gpu-power CSV [--json]       GPU power and SM clock vs measured phases
    python -m twin.power.validate psu [--json]                 80 PLUS Titanium PSU curve points

``--json`` prints one summary object: chain ``{rows, worst_abs_pct_error}``; gpu-power ``{rows,
skipped, median_abs_pct_error, worst_abs_pct_error, clock_worst_abs_pct_error}``; psu ``{points,
worst_abs_error_points}``; with no subcommand ``{chain, gpu_power, psu}``. Without ``--json`` every
row is printed, then the summary. Data: ``twin.core.validation_data.validation_dir()``.

Chain rows: the ``system`` text selects the facility spec (``frontier`` -> the RAPS Frontier fixture,
twin/power/data/frontier-raps.yaml). The load follows RAPS: ``cpu_util`` of each CPU, and
``gpus_busy_per_node`` GPUs at their max power, the others idle. Node, rack and site power then
come from the twin's own chain (node stages, rack stages, the network).

GPU rows: ``gpu_model`` selects a GPU model of the shipped presets (``match_gpu_model``: the longest
spec name contained in it, else its family such as "H100" when the row names no PCIe / NVL board);
the row's tensor TFLOP/s, HBM TB/s (empty = 0: not measured, e.g. GEMMs), NVML utilization and power
limit (empty = the model's default limit) drive ``gpu_power_for_work``. No constant is fitted to
any row.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from twin.core.facility import load_facility_spec, preset_names
from twin.core.facility.power import TITANIUM_EFFICIENCY, TITANIUM_LOAD_POINTS
from twin.core.validation_data import validation_dir
from twin.power.domain import evaluate, gpu_power_for_work, rack_power
from twin.power.site import build_site_model, gpu_params_for_model, stage_of

DATA = Path(__file__).parent / "data"
CHAIN_CSV = "power_chain_public.csv"
GPU_CSV = "gpu_power_public.csv"
CHAIN_FIXTURES = (("frontier", DATA / "frontier-raps.yaml"),)
LEVELS = ("node_dc", "node_input", "rack_input", "system")
#: the PSU checked by `psu`: the DGX H100 node's PSU stage in the dgx-h100-su preset
PSU_PRESET, PSU_NODE_TYPE, PSU_STAGE = "dgx-h100-su", "dgx-h100", "psu"


def load_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _pct(pred: float, meas: float) -> float:
    return abs(pred - meas) / abs(meas) * 100.0 if meas else float("inf")


def chain_report(rows: list[dict[str, str]]) -> dict:
    models: dict[str, object] = {}
    results, skipped = [], []
    for i, row in enumerate(rows):
        text = row.get("system", "").lower()
        fixture = next((p for key, p in CHAIN_FIXTURES if key in text), None)
        try:
            level = row["level"]
            util = float(row["cpu_util"])
            busy = float(row["gpus_busy_per_node"])
            expected = float(row["expected_w"])
        except (KeyError, ValueError) as exc:
            skipped.append({"row": i, "reason": f"unparseable: {exc}"})
            continue
        if fixture is None or level not in LEVELS:
            skipped.append({"row": i, "reason": f"no fixture for system {row.get('system')!r} or unknown level {level!r}"})
            continue
        if fixture not in models:
            models[fixture] = build_site_model(load_facility_spec(str(fixture)))
        m = models[fixture]
        inv = m.inventory
        gpus_per_node = inv.node_gpus
        local = inv.gpu_local_index
        gpu_w = np.where(local < busy, m.gpu.default_limit_w, _idle_w(m))
        if not float(busy).is_integer() or (busy > gpus_per_node).any():
            skipped.append({"row": i, "reason": "gpus_busy_per_node must be a whole number <= GPUs per node"})
            continue
        racks = rack_power(m.layout, gpu_w, util)
        chain = evaluate(m.network, racks.rack_input_w)
        pred = {"node_dc": racks.node_dc_w[0], "node_input": racks.node_input_w[0],
                "rack_input": racks.rack_input_w[0], "system": chain.site_w}[level]
        results.append({"row": i, "level": level, "load_point": row.get("load_point", ""), "expected_w": expected,
                        "predicted_w": float(pred), "abs_pct_error": _pct(float(pred), expected)})
    worst = max((r["abs_pct_error"] for r in results), default=float("nan"))
    return {"rows": len(results), "worst_abs_pct_error": worst, "results": results, "skipped_rows": skipped}


def _idle_w(m) -> np.ndarray:
    # the spec's idle power (RAPS semantics: an idle GPU draws its idle power)
    spec = m.spec
    names = list(spec.gpu_models)
    idle = np.array([spec.gpu_models[n].idle_w for n in names])
    node_model = np.array([names.index(spec.node_types[spec.rack_types[r.rack_type].node_type].gpu_model)
                           for r in m.inventory.racks for _ in range(r.nodes)])
    return idle[node_model[m.inventory.gpu_node]]


def _gpu_catalogue() -> dict[str, object]:
    cat = {}
    for name in preset_names():
        spec = load_facility_spec(name)
        for g in spec.gpu_models:
            cat.setdefault(g, (spec, g))
    return cat


#: form-factor words that make a row a different board than a preset's SXM / superchip part
OTHER_FORM_FACTORS = ("pcie", "nvl")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def match_gpu_model(row_model: str, catalogue: dict) -> str | None:
    """The preset GPU model a row's gpu_model names: the longest spec name contained in it (ignoring
    case and punctuation), else the spec's family (the name before its first '-', e.g. H100) when the
    row names no other form factor (PCIe, NVL). None: no preset knows the GPU."""
    row = _norm(row_model)
    full = [k for k in catalogue if _norm(k) in row]
    if full:
        return max(full, key=len)
    if any(f in row for f in OTHER_FORM_FACTORS):
        return None
    family = [k for k in catalogue if _norm(k.split("-")[0]) and re.search(rf"\b{re.escape(k.split('-')[0].lower())}\b",
                                                                            row_model.lower())]
    return max(family, key=len) if len(family) == 1 else None


def _num(row: dict[str, str], key: str, default: float | None = None) -> float:
    v = (row.get(key) or "").strip()
    if v == "":
        if default is None:
            raise ValueError(f"{key} is empty")
        return default
    return float(v)


def gpu_power_report(rows: list[dict[str, str]]) -> dict:
    cat = _gpu_catalogue()
    results, skipped = [], []
    for i, row in enumerate(rows):
        model = row.get("gpu_model", "")
        match = match_gpu_model(model, cat)
        if match is None:
            skipped.append({"row": i, "gpu_model": model, "reason": f"no GPU model of the presets matches {model!r}"})
            continue
        spec, g = cat[match]
        try:
            limit = _num(row, "power_limit_w", spec.gpu_models[g].max_w)   # empty: the default limit (TDP)
            tf = _num(row, "tensor_tflops", 0.0)
            bw = _num(row, "hbm_TBps", 0.0)
            util = _num(row, "util_gpu_pct", 0.0) / 100.0
            meas_w = _num(row, "measured_power_w")
            meas_clk = _num(row, "measured_sm_clock_mhz", float("nan"))
        except ValueError as exc:
            skipped.append({"row": i, "gpu_model": model, "reason": str(exc)})
            continue
        params = gpu_params_for_model(spec, g)
        r = gpu_power_for_work(params, tensor_tflops=np.array([tf]), hbm_TBps=np.array([bw]),
                               busy_fraction=np.array([util]), power_limit_w=np.array([limit]))
        pw, clk = float(r.power_w[0]), float(r.sm_clock_mhz[0])
        results.append({"row": i, "gpu_model": model, "spec_model": match, "power_limit_w": limit,
                        "tensor_tflops": tf, "hbm_TBps": bw, "util_gpu_pct": util * 100,
                        "measured_power_w": meas_w, "predicted_power_w": pw, "abs_pct_error": _pct(pw, meas_w),
                        "measured_sm_clock_mhz": meas_clk, "predicted_sm_clock_mhz": clk,
                        "clock_abs_pct_error": _pct(clk, meas_clk) if np.isfinite(meas_clk) else float("nan"),
                        "power_capped": bool(r.power_capped[0])})
    err = np.array([r["abs_pct_error"] for r in results])
    clk = np.array([r["clock_abs_pct_error"] for r in results if np.isfinite(r["clock_abs_pct_error"])])
    return {"rows": len(results), "skipped": len(skipped),
            "median_abs_pct_error": float(np.median(err)) if err.size else float("nan"),
            "worst_abs_pct_error": float(err.max()) if err.size else float("nan"),
            "clock_worst_abs_pct_error": float(clk.max()) if clk.size else float("nan"),
            "results": results, "skipped_rows": skipped}


def psu_report() -> dict:
    spec = load_facility_spec(PSU_PRESET)
    stage = next(s for s in spec.node_types[PSU_NODE_TYPE].conversion if s.name == PSU_STAGE)
    st = stage_of(stage)
    points = []
    for load, target in zip(TITANIUM_LOAD_POINTS, TITANIUM_EFFICIENCY, strict=True):
        eff = float(st.efficiency_at(load)) * 100.0
        points.append({"load_pct": load * 100.0, "efficiency_pct": eff, "target_pct": target * 100.0,
                       "abs_error_points": abs(eff - target * 100.0)})
    return {"points": points, "worst_abs_error_points": max(p["abs_error_points"] for p in points)}


SUMMARY_KEYS = {
    "chain": ("rows", "worst_abs_pct_error"),
    "gpu_power": ("rows", "skipped", "median_abs_pct_error", "worst_abs_pct_error", "clock_worst_abs_pct_error"),
    "psu": ("points", "worst_abs_error_points"),
}


def summary(kind: str, report: dict) -> dict:
    return {k: report[k] for k in SUMMARY_KEYS[kind]}


def format_chain(rep: dict) -> str:
    lines = [f"{'row':>4} {'level':<11}{'load':<6}{'expected_w':>14}{'predicted_w':>14}{'|err| %':>10}"]
    for r in rep["results"]:
        lines.append(f"{r['row']:>4} {r['level']:<11}{r['load_point']:<6}{r['expected_w']:>14.2f}"
                     f"{r['predicted_w']:>14.2f}{r['abs_pct_error']:>10.4f}")
    lines += [f"SKIPPED row {s['row']}: {s['reason']}" for s in rep["skipped_rows"]]
    lines.append(f"chain: rows {rep['rows']}  worst |err| {rep['worst_abs_pct_error']:.4f} %")
    return "\n".join(lines)


def format_gpu(rep: dict) -> str:
    lines = [f"{'row':>4} {'gpu':<16}{'limit_w':>8}{'TFLOPs':>8}{'TB/s':>6}{'util%':>6}{'meas_w':>8}{'pred_w':>8}"
             f"{'|err|%':>7}{'meas_MHz':>9}{'pred_MHz':>9}{'|err|%':>7}"]
    for r in rep["results"]:
        lines.append(f"{r['row']:>4} {r['gpu_model'][:15]:<16}{r['power_limit_w']:>8.0f}{r['tensor_tflops']:>8.1f}"
                     f"{r['hbm_TBps']:>6.2f}{r['util_gpu_pct']:>6.0f}{r['measured_power_w']:>8.1f}"
                     f"{r['predicted_power_w']:>8.1f}{r['abs_pct_error']:>7.2f}{r['measured_sm_clock_mhz']:>9.0f}"
                     f"{r['predicted_sm_clock_mhz']:>9.0f}{r['clock_abs_pct_error']:>7.2f}")
    lines += [f"SKIPPED row {s['row']} ({s['gpu_model']}): {s['reason']}" for s in rep["skipped_rows"]]
    lines.append(f"gpu-power: rows {rep['rows']}  skipped {rep['skipped']}  median |err| "
                 f"{rep['median_abs_pct_error']:.2f} %  worst |err| {rep['worst_abs_pct_error']:.2f} %  "
                 f"clock worst |err| {rep['clock_worst_abs_pct_error']:.2f} %")
    return "\n".join(lines)


def format_psu(rep: dict) -> str:
    lines = [f"{'load %':>7}{'model %':>9}{'target %':>10}{'|err| pts':>11}"]
    for p in rep["points"]:
        lines.append(f"{p['load_pct']:>7.0f}{p['efficiency_pct']:>9.2f}{p['target_pct']:>10.2f}{p['abs_error_points']:>11.3f}")
    lines.append(f"psu: worst |err| {rep['worst_abs_error_points']:.3f} points")
    return "\n".join(lines)


USAGE = "usage: python -m twin.power.validate [chain CSV | gpu-power CSV | psu] [--json]"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    if any(a.startswith("-") for a in args):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        if not args:
            base = validation_dir()
            reps = {"chain": chain_report(load_rows(base / CHAIN_CSV)),
                    "gpu_power": gpu_power_report(load_rows(base / GPU_CSV)), "psu": psu_report()}
            if as_json:
                print(json.dumps({k: summary(k, v) for k, v in reps.items()}))
            else:
                print("\n\n".join((format_chain(reps["chain"]), format_gpu(reps["gpu_power"]), format_psu(reps["psu"]))))
            return 0
        cmd, rest = args[0], args[1:]
        if cmd == "psu" and not rest:
            rep, kind, fmt = psu_report(), "psu", format_psu
        elif cmd in ("chain", "gpu-power") and len(rest) == 1:
            path = Path(rest[0])
            if not path.is_file():
                print(f"CSV not found: {path}", file=sys.stderr)
                return 2
            rows = load_rows(path)
            rep, kind, fmt = ((chain_report(rows), "chain", format_chain) if cmd == "chain"
                              else (gpu_power_report(rows), "gpu_power", format_gpu))
        else:
            print(USAGE, file=sys.stderr)
            return 2
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(summary(kind, rep)) if as_json else fmt(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
