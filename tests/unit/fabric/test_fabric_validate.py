"""Integrity of the accuracy report (not its accuracy)."""

from __future__ import annotations

import csv
import json

import pytest

from twin.fabric import validate


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
