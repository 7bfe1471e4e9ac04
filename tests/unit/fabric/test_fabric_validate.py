"""Integrity of the accuracy report (not its accuracy)."""

from __future__ import annotations

import csv
import json

import pytest

from twin.fabric import validate

HOLDOUT = validate.Path(__file__).resolve().parents[3] / "services/fabric/validation/collectives_holdout.csv"


def test_summary_over_reference_csv_accounts_for_every_row(capsys):
    path = validate.default_csv_path()
    if not path.exists():
        pytest.skip(f"reference CSV not present at {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        n_rows = sum(1 for _ in csv.DictReader(fh))
    assert validate.main([str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("rows", "skipped", "median_abs_pct_error", "p90_abs_pct_error", "worst_ratio", "by_collective",
                "by_size_band"):
        assert key in report
    assert report["rows"] == n_rows - report["skipped"]
    assert len(report["skipped_rows"]) == report["skipped"]
    assert sum(v["n"] for v in report["by_collective"].values()) == report["rows"]
    assert sum(v["n"] for v in report["by_size_band"].values()) == report["rows"]


def test_error_stats_pure():
    st = validate.error_stats([110.0, 90.0, 200.0], [100.0, 100.0, 100.0])
    assert st["n"] == 3
    assert st["median_abs_pct_error"] == pytest.approx(10.0)
    assert st["worst_ratio"] == pytest.approx(2.0)


def test_unmappable_rows_are_reported_not_dropped():
    rows = [{"collective": "all_reduce", "n_gpus": "8", "n_nodes": "1", "system": "MI300X node", "fabric": "Infinity Fabric",
             "size_bytes": "1024", "time_us": "20", "note": ""},
            {"collective": "all_reduce", "n_gpus": "8", "n_nodes": "1", "system": "DGX H100", "fabric": "NVLink4",
             "size_bytes": "1024", "time_us": "20", "note": ""}]
    report = validate.summarize(rows)
    assert report["rows"] == 1 and report["skipped"] == 1
    assert "no topology rule" in report["skipped_rows"][0]["reason"]


def test_keyword_rules():
    assert validate.map_preset("DGX H100 (8xH100 SXM)", "NVLink4/NVSwitch (NVLS default)") == "dgx-h100"
    assert validate.map_preset("2x AWS p5.48xlarge", "EFAv2") == "aws-p5-efa"
    assert validate.map_preset("OCI GB200 NVL72", "MNNVL") == "gb200-nvl72"
    assert validate.map_preset("2x OCI BM.GPU.B4.8 (8xA100-40GB)", "NVLink3 + RoCEv2") == "oci-a100-roce"
    assert validate.map_preset("2 nodes x 1 A100-80GB", "IB HDR") == "a100-ib-hdr"
    assert validate.map_preset("8xB200 node", "NVLink5/NVSwitch") == "hgx-b200"


def _row(note: str) -> dict[str, str]:
    return {"collective": "all_reduce", "n_gpus": "8", "n_nodes": "1", "system": "8xH200 node",
            "fabric": "NVLink4/NVSwitch", "size_bytes": "1048576", "time_us": "45", "note": note}


def test_torch_per_call_harness_is_added_and_reported():
    assert validate.harness_overhead_us("torch all_reduce_bench.py; time derived") == validate.TORCH_PER_CALL_OVERHEAD_US
    assert validate.harness_overhead_us("nccl-tests out-of-place") == 0.0
    assert validate.harness_overhead_us("torch bench, 10 queued calls per trial") == 0.0
    torch_row = validate.summarize([_row("torch all_reduce_bench.py")])["results"][0]
    nccl_row = validate.summarize([_row("nccl-tests")])["results"][0]
    core = validate.summarize([_row("torch all_reduce_bench.py")], core_only=True)["results"][0]
    assert torch_row["harness_us"] == validate.TORCH_PER_CALL_OVERHEAD_US and nccl_row["harness_us"] == 0.0
    assert torch_row["predicted_us"] == pytest.approx(nccl_row["predicted_us"] + validate.TORCH_PER_CALL_OVERHEAD_US)
    assert core["predicted_us"] == pytest.approx(nccl_row["predicted_us"]) and core["harness_us"] == 0.0


def test_holdout_csv_maps_every_row(capsys):
    """The held-out measurements (never used to set a constant) all map to a preset."""
    assert validate.main([str(HOLDOUT), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["skipped"] == 0 and report["rows"] >= 20
