"""`python -m twin.jobs.validate`: report shape, like-with-like metrics, skipped rows with reasons."""

from __future__ import annotations

import csv
import json

import pytest

from twin.jobs import validate

COLUMNS = ["model", "params_b", "layers", "hidden", "ffn_hidden", "heads", "kv_heads", "seq_len", "vocab",
           "moe_experts", "moe_topk", "precision", "gpu", "n_gpus", "tp", "pp", "dp", "cp", "ep", "vp",
           "micro_batch", "global_batch", "tokens_per_s_per_gpu", "tflops_per_gpu", "mfu_pct", "step_time_s",
           "framework", "note", "source"]


def _row(**kw: str) -> dict[str, str]:
    row = dict.fromkeys(COLUMNS, "")
    row.update(model="Llama 3 8B", layers="32", hidden="4096", ffn_hidden="14336", heads="32", kv_heads="8",
               seq_len="8192", vocab="128256", precision="bf16", gpu="H100-SXM", n_gpus="8", tp="1", pp="1",
               dp="8", cp="1", micro_batch="1", global_batch="64", tokens_per_s_per_gpu="9000",
               framework="NeMo 24.07", note="DGX-H100")
    row.update(kw)
    return row


def test_report_json_shape_and_skips(tmp_path, capsys) -> None:
    rows = [_row(), _row(gpu="TPU-v5"), _row(tp="", pp="", dp=""), _row(tokens_per_s_per_gpu="")]
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    assert validate.main([str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("rows", "skipped", "median_abs_pct_error", "p90_abs_pct_error", "worst_ratio"):
        assert key in out
    assert out["rows"] == 1 and out["skipped"] == 3
    reasons = " ".join(s["reason"] for s in out["skipped_rows"])
    assert "unknown GPU" in reasons and "parallel layout" in reasons and "no measured metric" in reasons
    assert out["results"][0]["metric"] == "tokens_per_s_per_gpu"


def test_metric_preference_and_conventions() -> None:
    case, _ = validate.row_job(_row(tokens_per_s_per_gpu="", tflops_per_gpu="400"))
    assert case["metric"] == "tflops_per_gpu" and case["convention"] == "megatron"
    case, _ = validate.row_job(_row(framework="Megatron-LM (Apr 2021)", tokens_per_s_per_gpu="",
                                    tflops_per_gpu="140", gpu="A100-80GB"))
    assert case["convention"] == "megatron2021" and case["job"].training.recompute == "full"
    case, _ = validate.row_job(_row(tokens_per_s_per_gpu="", mfu_pct="40"))
    assert case["metric"] == "mfu_pct"


def test_model_parallel_size_rule_fills_the_nvlink_domain_first() -> None:
    note = "model-parallel size (tp x pp) = 64; Selene"
    case, _ = validate.row_job(_row(gpu="A100-80GB", n_gpus="1536", tp="", pp="", dp="24", global_batch="2304",
                                    heads="", note=note, framework="Megatron-LM (Apr 2021)", hidden="12288",
                                    ffn_hidden="", layers="80", kv_heads="", tokens_per_s_per_gpu="",
                                    tflops_per_gpu="148"))
    p = case["job"].parallel
    assert (p.tp, p.pp, p.dp) == (8, 8, 24)
    assert any("tp/pp split" in a for a in case["assumptions"])


def test_shared_training_csv_is_reported(capsys) -> None:
    try:
        path = validate.default_csv_path()
    except FileNotFoundError:
        pytest.skip("shared validation data not present")
    report = validate.summarize(validate.load_rows(path))
    assert report["rows"] + report["skipped"] == len(validate.load_rows(path))
    assert all(s["reason"] for s in report["skipped_rows"])
    assert report["worst_ratio"] >= 1.0 and report["median_abs_pct_error"] >= 0.0
    assert set(report["by_gpu"]) and set(report["by_family"])


def test_a_row_whose_stated_ga_contradicts_its_batches_says_so() -> None:
    """GA (gradient accumulations) = global_batch / (micro_batch x dp); a row stating another GA is flagged, with its
    micro_batch kept as stated, and a consistent one is not."""
    bad, _ = validate.row_job(_row(pp="4", dp="2", micro_batch="4", global_batch="64", note="DGX-H100, GA 2"))
    good, _ = validate.row_job(_row(pp="4", dp="2", micro_batch="4", global_batch="64", note="DGX-H100, GA 8"))
    assert bad["job"].training.micro_batch == 4 and bad["job"].micro_batches == 8
    assert any("GA 2 contradicts" in a and "= 8" in a for a in bad["assumptions"])
    assert not any("contradicts" in a for a in good["assumptions"])
