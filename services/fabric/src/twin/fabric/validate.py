"""Accuracy report of the collective model against measured nccl-tests results.

    python -m twin.fabric.validate [CSV] [--json] [--core-only]

Default CSV: ``$TWIN_VALIDATION_DIR/collectives_public.csv``, else ``../shared/validation/
collectives_public.csv`` beside the repository root. Rows map to topology presets by keyword rules
on the ``system`` + ``fabric`` text (first match wins, case-insensitive):

    "gb200"                       -> gb200-nvl72
    "b200"                        -> hgx-b200
    word "p5" or word "efa..."    -> aws-p5-efa   (regex \bp5\b, \befa)
    "h200"                        -> hgx-h200
    "h100"                        -> dgx-h100
    "a100" and "roce"             -> oci-a100-roce
    "a100" and "hdr"              -> a100-ib-hdr
    "a100"                        -> dgx-a100

Notes honoured: "NCCL_NVLS_ENABLE=0" / "NVLS disabled" removes the NVLS algorithms; "IB disabled"
requires the ranks to sit in one NVLink domain (else the row is skipped with that reason).
Placement: n_gpus / n_nodes GPUs on each of n_nodes consecutive nodes. Rows that cannot be mapped
are reported under ``skipped`` with the reason, never dropped silently.

Measurement harness: a row whose note names a PyTorch benchmark ("torch ...") timed calls through
torch.distributed one at a time, so each time includes PyTorch's per-call host overhead, which the
collective model itself does not contain: ``TORCH_PER_CALL_OVERHEAD_US`` is added to the prediction and
reported per row as ``harness_us``. ``--core-only`` turns this off and compares the bare model.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from twin.core.validation_data import validation_dir
from twin.fabric.domain import COLLECTIVES, PRESETS, estimate, placement_from_gpu_ids
from twin.fabric.domain.collectives import collective_codes

CSV_NAME = "collectives_public.csv"
SIZE_BANDS = (("<64KiB", 0, 64 * 1024), ("64KiB-16MiB", 64 * 1024, 16 * 1024**2), (">=16MiB", 16 * 1024**2, float("inf")))
KEYWORD_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("gb200",), "gb200-nvl72"),
    (("b200",), "hgx-b200"),
    ((r"\bp5\b",), "aws-p5-efa"),
    ((r"\befa",), "aws-p5-efa"),
    (("h200",), "hgx-h200"),
    (("h100",), "dgx-h100"),
    (("a100", "roce"), "oci-a100-roce"),
    (("a100", "hdr"), "a100-ib-hdr"),
    (("a100",), "dgx-a100"),
)


#: PyTorch's host overhead per torch.distributed collective call: 20-30 us (stas00/ml-engineering,
#: network/benchmarks/all_reduce_bench.py, which now hides it by queueing calls; timing one call on
#: an idle GPU includes it). The lower bound is used.
TORCH_PER_CALL_OVERHEAD_US = 20.0


def harness_overhead_us(note: str) -> float:
    """Host time the row's measurement harness adds to every timed call (0 for nccl-tests)."""
    text = note.lower()
    return TORCH_PER_CALL_OVERHEAD_US if re.search(r"\btorch\b", text) and "queued" not in text else 0.0


def default_csv_path() -> Path:
    return validation_dir() / CSV_NAME


def load_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def map_preset(system: str, fabric: str) -> str | None:
    """Topology preset for a row's free text by KEYWORD_RULES (None if no rule matches)."""
    text = f"{system} {fabric}".lower()
    for words, name in KEYWORD_RULES:
        if all(re.search(w, text) for w in words):
            return name
    return None


def row_case(row: dict[str, str]) -> tuple[dict | None, str | None]:
    """(case, None) with topology, placement, collective, size and options, or (None, skip reason)."""
    try:
        n_gpus, n_nodes = int(row["n_gpus"]), int(row["n_nodes"])
        size = float(row["size_bytes"])
        measured_us = float(row["time_us"])
    except (KeyError, ValueError) as exc:
        return None, f"unparseable numbers: {exc}"
    if measured_us <= 0:
        return None, "measured time_us is not positive"
    try:
        code = int(collective_codes(row.get("collective", "")))
    except ValueError as exc:
        return None, str(exc)
    name = map_preset(row.get("system", ""), row.get("fabric", ""))
    if name is None:
        return None, f"no topology rule matches system/fabric {row.get('system')!r} / {row.get('fabric')!r}"
    if n_nodes < 1 or n_gpus < 1 or n_gpus % n_nodes:
        return None, f"n_gpus={n_gpus} is not a multiple of n_nodes={n_nodes}"
    base = PRESETS[name]
    ppn = n_gpus // n_nodes
    if ppn > base.gpus_per_node:
        return None, f"{ppn} GPUs per node exceeds {base.gpus_per_node} on preset {name}"
    topo = base if n_nodes * base.gpus_per_node <= base.n_gpus else base.resized(n_nodes * base.gpus_per_node)
    ids = (np.arange(n_nodes)[:, None] * topo.gpus_per_node + np.arange(ppn)).reshape(-1)
    placement = placement_from_gpu_ids(topo, ids)
    text = " ".join(row.get(k, "") for k in ("fabric", "note", "system")).lower()
    algorithms = None
    if "nvls_enable=0" in text or "nvls disabled" in text:
        algorithms = ("ring", "tree", "pairwise")
    if "ib disabled" in text and int(placement.n_domains) > 1:
        return None, "IB disabled but the ranks span several NVLink domains"
    return {"preset": name, "topology": topo, "placement": placement, "collective": code, "size_bytes": size,
            "measured_us": measured_us, "algorithms": algorithms,
            "harness_us": harness_overhead_us(row.get("note", ""))}, None


def size_band(size_bytes: float) -> str:
    for label, lo, hi in SIZE_BANDS:
        if lo <= size_bytes < hi:
            return label
    return SIZE_BANDS[-1][0]


def error_stats(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float | int]:
    """Median / p90 absolute percentage error and worst ratio (max of p/m and m/p). Pure."""
    p = np.asarray(predicted, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    if p.size == 0:
        return {"n": 0, "median_abs_pct_error": float("nan"), "p90_abs_pct_error": float("nan"), "worst_ratio": float("nan")}
    ape = np.abs(p - m) / m * 100.0
    ratio = np.maximum(p / m, m / p)
    return {"n": int(p.size), "median_abs_pct_error": float(np.median(ape)),
            "p90_abs_pct_error": float(np.percentile(ape, 90)), "worst_ratio": float(ratio.max())}


def summarize(rows: Iterable[dict[str, str]], *, core_only: bool = False) -> dict:
    """Predict every mappable row and return the report (one JSON-able dict). Pure apart from the model.
    ``core_only`` leaves out the measurement-harness overhead (see module docstring)."""
    results, skipped = [], []
    for i, row in enumerate(rows):
        case, reason = row_case(row)
        if case is None:
            skipped.append({"row": i, "collective": row.get("collective"), "system": row.get("system"), "reason": reason})
            continue
        est = estimate(case["topology"], case["collective"], case["size_bytes"], case["placement"],
                       algorithms=case["algorithms"])
        harness_us = 0.0 if core_only else case["harness_us"]
        predicted_us = float(est.time_s) * 1e6 + harness_us
        results.append({
            "row": i, "collective": COLLECTIVES[case["collective"]], "preset": case["preset"],
            "n_gpus": int(case["placement"].n_ranks), "n_nodes": int(row["n_nodes"]),
            "size_bytes": case["size_bytes"], "size_band": size_band(case["size_bytes"]),
            "measured_us": case["measured_us"], "predicted_us": predicted_us, "harness_us": harness_us,
            "ratio": predicted_us / case["measured_us"],
            "algorithm": str(est.algorithm_names()), "protocol": str(est.protocol_names()),
            "predicted_busbw_GBps": float(est.busbw_GBps), "measured_busbw_GBps": float(row.get("busbw_GBps") or 0.0),
        })
    pred = [r["predicted_us"] for r in results]
    meas = [r["measured_us"] for r in results]
    overall = error_stats(pred, meas)

    def grouped(key: str) -> dict:
        out = {}
        for value in sorted({r[key] for r in results}):
            sel = [r for r in results if r[key] == value]
            out[value] = error_stats([r["predicted_us"] for r in sel], [r["measured_us"] for r in sel])
        return out

    return {"rows": len(results), "skipped": len(skipped), "skipped_rows": skipped, "core_only": core_only,
            "median_abs_pct_error": overall["median_abs_pct_error"], "p90_abs_pct_error": overall["p90_abs_pct_error"],
            "worst_ratio": overall["worst_ratio"], "by_collective": grouped("collective"),
            "by_size_band": grouped("size_band"), "by_preset": grouped("preset"), "results": results}


def format_report(report: dict) -> str:
    lines = [f"{'collective':<14}{'preset':<15}{'n':>5}{'nodes':>6}{'size':>14}{'measured_us':>13}{'predicted_us':>14}"
             f"{'ratio':>7}  algorithm/protocol"]
    for r in report["results"]:
        lines.append(f"{r['collective']:<14}{r['preset']:<15}{r['n_gpus']:>5}{r['n_nodes']:>6}{int(r['size_bytes']):>14}"
                     f"{r['measured_us']:>13.2f}{r['predicted_us']:>14.2f}{r['ratio']:>7.2f}  {r['algorithm']}/{r['protocol']}"
                     + (f" +{r['harness_us']:.0f} us harness" if r["harness_us"] else ""))
    for s in report["skipped_rows"]:
        lines.append(f"SKIPPED row {s['row']} ({s['collective']}, {s['system']}): {s['reason']}")
    lines.append("")
    lines.append(f"rows {report['rows']}  skipped {report['skipped']}  median |err| {report['median_abs_pct_error']:.1f} %  "
                 f"p90 |err| {report['p90_abs_pct_error']:.1f} %  worst ratio {report['worst_ratio']:.2f}x")
    for title, key in (("by collective", "by_collective"), ("by size band", "by_size_band"), ("by preset", "by_preset")):
        lines.append(title + ":")
        for name, st in report[key].items():
            lines.append(f"  {name:<16} n={st['n']:<3} median {st['median_abs_pct_error']:6.1f} %  "
                         f"p90 {st['p90_abs_pct_error']:6.1f} %  worst {st['worst_ratio']:.2f}x")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    core_only = "--core-only" in args
    paths = [a for a in args if a not in ("--json", "--core-only")]
    if any(a.startswith("-") for a in paths) or len(paths) > 1:
        print("usage: python -m twin.fabric.validate [CSV] [--json] [--core-only]", file=sys.stderr)
        return 2
    try:
        path = Path(paths[0]) if paths else default_csv_path()
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not path.exists():
        print(f"validation CSV not found: {path} (set TWIN_VALIDATION_DIR or pass a path)", file=sys.stderr)
        return 2
    report = summarize(load_rows(path), core_only=core_only)
    report["csv"] = str(path)
    print(json.dumps(report) if as_json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
