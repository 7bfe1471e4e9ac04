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
    assert report["rows"] == n_rows - report["skipped"] - report["excluded"]
    assert len(report["excluded_rows"]) == report["excluded"]
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
    assert "no known GPU model" in report["skipped_rows"][0]["reason"]


def _mrow(system: str, fabric: str, n_gpus: int = 32, n_nodes: int = 4, note: str = "") -> dict[str, str]:
    return {"collective": "all_reduce", "n_gpus": str(n_gpus), "n_nodes": str(n_nodes), "system": system,
            "fabric": fabric, "size_bytes": "1048576", "time_us": "100", "note": note}


def test_rows_are_placed_from_stated_facts_never_other_hardware():
    report = validate.summarize([
        _mrow("2x AWS p4de.24xlarge (8xA100-80GB)", "EFA 4x100G", 16, 2),
        _mrow("64x H20-3e", "400Gx8 RoCE", 512, 64),
        _mrow("8x H800 node", "NVLink4/NVSwitch", 8, 1),
        _mrow("4x GB300 NVL72 trays", "NVLink5", 16, 4),
        _mrow("AWS p5.48xlarge (8xA100)", "EFAv2", 16, 2),
        _mrow("4x HGX H100", "NVLink4", 32, 4),
    ])
    by_row = {r["row"]: r for r in report["results"]}
    assert by_row[0]["system"] == "aws-p4d" and by_row[1]["system"] == "hgx-h20"
    assert by_row[2]["system"] == "hgx-h800" and by_row[3]["system"] == "gb300-nvl72"
    reasons = {s["row"]: s["reason"] for s in report["skipped_rows"]}
    assert "GPU 'a100'" in reasons[4]  # the GPU contradicts the named shape: not placed on a p5
    assert "not stated" in reasons[5]  # multi-node, network unknown
    assert report["skipped"] == 2


def test_placement_uses_the_shapes_published_network():
    from twin.fabric.domain.systems import place_row

    p4d, _ = place_row("2x AWS p4de.24xlarge (8xA100-80GB)", "EFA", 16, 2)
    so = p4d.topology.scale_out
    assert so.kind == "efa" and so.nic_bw_Gbps == 100.0 and so.nics_per_gpu == 0.5 and not so.ll_over_net
    p5, _ = place_row("AWS p5.48xlarge", "EFAv2 32x100G", 16, 2)
    assert p5.topology.scale_out.nics_per_gpu == 4.0 and p5.topology.scale_out.ll_over_net
    h20, _ = place_row("H20-3e", "400Gx8 RoCE", 16, 2)
    assert h20.topology.scale_out.kind == "roce" and h20.topology.scale_out.nic_bw_Gbps == 400.0
    _, reason = place_row("AWS p5.48xlarge", "EFA 4x100G", 16, 2)
    assert "4x100G" in reason  # stated NICs contradict the shape's: not placed
    h800, _ = place_row("8x H800", "NVLink", 8, 1)
    h100, _ = place_row("8x H100", "NVLink", 8, 1)
    assert h800.topology.scale_up.nvlink_bw_GBps_per_gpu < 0.5 * h100.topology.scale_up.nvlink_bw_GBps_per_gpu


def test_single_process_multi_gpu_rows_are_excluded_and_listed(capsys):
    rows = [_mrow("8xA100 node", "NVLink3/NVSwitch", 8, 1, note="nccl-tests -g 8 -n 50: ONE process"),
            _mrow("8xA100 node", "NVLink3/NVSwitch", 8, 1, note="nccl-tests -g 1")]
    report = validate.summarize(rows)
    assert report["rows"] == 1 and report["excluded"] == 1
    assert report["excluded_rows"][0]["row"] == 0 and "-g 8" in report["excluded_rows"][0]["reason"]
    assert "EXCLUDED row 0" in validate.format_report(report)


def test_nccl_version_parsed_from_column():
    assert validate.parse_nccl_version("2.27.3") == (2, 27, 3)
    assert validate.parse_nccl_version("v2.19.3-1") == (2, 19, 3)
    assert validate.parse_nccl_version("n/a (NeMo container)") is None


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
    """The held-out measurements (never used to set a constant) can all be placed."""
    assert validate.main([str(HOLDOUT), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["skipped"] == 0 and report["rows"] + report["excluded"] >= 20


def test_known_shape_with_unmodelled_transport_is_skipped_not_approximated():
    from twin.fabric.domain.systems import place_row

    placed, reason = place_row("2x GCP a3-megagpu-8g (8xH100)", "GPUDirect-TCPXO", 16, 2)
    assert placed is None and "no model" in reason
    single, _ = place_row("GCP a3-megagpu-8g (8xH100)", "NVLink4", 8, 1)
    assert single.system == "gcp-a3-mega"  # inside one node the NVLink side is known


def test_stated_nccl_algo_and_proto_restrict_the_candidates():
    assert validate.forced_algorithms("NCCL_ALGO=Ring NCCL_MIN_CTAS=24", "all_reduce") == ("ring", "pairwise")
    excl = validate.forced_algorithms("NCCL_ALGO=^NVLS,NVLSTree", "all_reduce")
    assert set(excl) == {"ring", "tree", "pairwise"}
    per_func = "NCCL_ALGO=allreduce:tree;allgather:ring"
    assert validate.forced_algorithms(per_func, "all_reduce") == ("tree", "pairwise")
    assert validate.forced_algorithms(per_func, "all_gather") == ("ring", "pairwise")
    assert validate.forced_algorithms(per_func, "reduce_scatter") is None  # not named: NCCL keeps every choice
    assert validate.forced_algorithms("NCCL_ALGO=PAT", "all_gather") is None  # no model for PAT: not applied
    assert validate.forced_algorithms("default NCCL settings", "all_reduce") is None
    assert validate.forced_protocols("NCCL_PROTO=Simple", "all_reduce") == ("Simple",)
    assert set(validate.forced_protocols("NCCL_PROTO=^LL128", "all_reduce")) == {"LL", "Simple"}

    def row(note: str, size: str) -> dict[str, str]:
        return {"collective": "all_reduce", "n_gpus": "16", "n_nodes": "2", "system": "2x HGX H100",
                "fabric": "InfiniBand 8x400G", "size_bytes": size, "time_us": "100", "note": note}

    free = validate.summarize([row("", "8"), row("", str(2**33))])["results"]
    ring = validate.summarize([row("NCCL_ALGO=Ring", "8"), row("NCCL_ALGO=Ring NCCL_PROTO=Simple", str(2**33))])["results"]
    assert {r["algorithm"] for r in free} != {"ring"}  # the restriction matters on these rows
    assert [r["algorithm"] for r in ring] == ["ring", "ring"] and ring[1]["protocol"] == "Simple"
    assert ring[0]["predicted_us"] > free[0]["predicted_us"]  # a forced choice is never faster than the free one


def test_oci_shapes_are_placed_with_their_published_networks():
    from twin.fabric.domain.systems import place_row

    gb300, _ = place_row("32x OCI BM.GPU.GB300.4 (4xGB300 each)", "MNNVL + RoCE 8x400G per host", 128, 32)
    assert gb300.system == "oci-gb300" and gb300.topology.host_cpu == "arm"
    so = gb300.topology.scale_out
    assert so.kind == "roce" and so.nic_bw_Gbps == 400.0 and so.nics_per_gpu == 2.0
    b300, _ = place_row("2x OCI BM.GPU.B300.8 (8xB300 each)", "RoCE 16x400G", 16, 2)
    assert b300.system == "oci-bm-gpu-b300" and b300.topology.host_cpu == "intel"
    assert b300.topology.scale_out.nics_per_gpu == 2.0
    v34, _ = place_row("32x OCI BM.GPU.GB200-v3.4 (4xGB200 each)", "MNNVL + OCI RDMA (NICs not stated)", 128, 32)
    assert v34.system == "oci-gb200-v3" and v34.topology.scale_out.nics_per_gpu == 2.0
    gb200, _ = place_row("OCI BM.GPU.GB200.4", "RoCE", 128, 32)
    assert gb200.system == "oci-gb200" and gb200.topology.scale_out.nics_per_gpu == 1.0
    _, reason = place_row("OCI BM.GPU.GB300.4", "RoCE 4x400G", 128, 32)
    assert "4x400G" in reason  # stated NICs contradict the shape's: not placed


def test_a_size_slower_than_its_sweeps_larger_message_is_excluded_as_disturbed():
    base = {"collective": "all_reduce", "n_gpus": "16", "n_nodes": "2",
            "system": "2x Dell XE9680 HGX H100 (8xH100 each)",
            "fabric": "NVLink4 + InfiniBand NDR 8x400G ConnectX-7 (3.2 Tb/s/node)",
            "nccl": "2.26.2", "note": "-g 1", "source": "s"}
    sweep = [dict(base, size_bytes=str(s), time_us=str(t))
             for s, t in ((128, 25.7), (256, 94.4), (512, 32.4), (1024, 29.8), (2048, 28.2))]
    other = dict(base, source="another run", size_bytes="256", time_us="40")  # not the same sweep: compared to nothing
    assert list(validate.sweep_glitches(sweep + [other])) == [1]
    # a step from NCCL changing algorithm (1 MiB a little slower than 2 MiB) stays counted
    steps = [dict(base, size_bytes=str(s), time_us=str(t)) for s, t in ((1 << 20, 127.0), (2 << 20, 125.8))]
    assert validate.sweep_glitches(steps) == {}
    report = validate.summarize(sweep)
    assert report["skipped"] == 0 and report["excluded"] == 1 and report["rows"] == 4
    assert "disturbed measurement" in report["excluded_rows"][0]["reason"]
