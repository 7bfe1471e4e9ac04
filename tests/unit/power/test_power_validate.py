"""The validation command: chain rows within 0.1 %, GPU rows within 5 %, PSU points within 0.5,
and --json summaries with exactly the keys issue 9 names."""

from __future__ import annotations

import csv
import json

import pytest

from twin.core.validation_data import validation_dir
from twin.power import validate


def run_json(capsys, *args) -> dict:
    assert validate.main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_chain_reproduces_raps_frontier_within_0_1_percent(capsys):
    out = run_json(capsys, "chain", str(validation_dir() / "power_chain_public.csv"))
    assert set(out) == {"rows", "worst_abs_pct_error"}
    assert out["rows"] == 12 and out["worst_abs_pct_error"] < 0.1


def test_gpu_power_rows_within_5_percent(capsys):
    out = run_json(capsys, "gpu-power", str(validation_dir() / "gpu_power_public.csv"))
    assert set(out) == {"rows", "skipped", "median_abs_pct_error", "worst_abs_pct_error", "clock_worst_abs_pct_error"}
    assert out["rows"] == 3 and out["skipped"] == 0 and out["worst_abs_pct_error"] < 5.0


def test_psu_titanium_points_within_half_a_point(capsys):
    out = run_json(capsys, "psu")
    assert set(out) == {"points", "worst_abs_error_points"}
    assert [p["load_pct"] for p in out["points"]] == [10, 20, 50, 100]
    assert out["worst_abs_error_points"] < 0.5


def test_no_subcommand_runs_everything(capsys):
    out = run_json(capsys)
    assert set(out) == {"chain", "gpu_power", "psu"}
    assert validate.main([]) == 0
    text = capsys.readouterr().out
    assert "chain: rows 12" in text and "gpu-power: rows 3" in text and "psu: worst" in text


def test_unknown_rows_are_skipped_with_a_reason(tmp_path, capsys):
    path = tmp_path / "gpu.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["gpu_model", "power_limit_w", "tensor_tflops", "hbm_TBps", "util_gpu_pct", "measured_power_w",
                    "measured_sm_clock_mhz"])
        w.writerow(["MI300X", "750", "0", "", "0", "140", "2100"])
        w.writerow(["H100-SXM-80GB", "", "0", "", "0", "", "1980"])
        w.writerow(["H100-PCIe-80GB", "350", "0", "", "0", "60", "1755"])
        w.writerow(["H100-SXM-80GB", "400", "500", "", "99", "400", "1100"])
        w.writerow(["NVIDIA H100 80GB HBM3", "", "0", "", "0", "118", "1980"])
    rep = validate.gpu_power_report(validate.load_rows(path))
    assert rep["rows"] == 2 and rep["skipped"] == 3
    reasons = [s["reason"] for s in rep["skipped_rows"]]
    assert "MI300X" in reasons[0] and "measured_power_w" in reasons[1] and "PCIe" in reasons[2]
    capped, plain = rep["results"]
    assert capped["predicted_power_w"] == pytest.approx(400.0) and capped["power_capped"]  # held at 400 W
    assert plain["spec_model"] == "H100-SXM" and plain["power_limit_w"] == 700.0   # family match, default limit


@pytest.mark.parametrize("args", [["chain"], ["gpu-power"], ["bogus"], ["psu", "x"], ["--bad"]])
def test_bad_usage_exits_2(args, capsys):
    assert validate.main(args) == 2
