"""Check the MoE dispatch/combine model (twin.fabric.domain.moe) against DeepEP's published numbers.

    python -m twin.fabric.validate_moe [CSV] [--json]      (make validate-moe)

Rows (services/fabric/validation/moe_deepep.csv) are DeepEP V1's tables (docs/legacy.md of
github.com/deepseek-ai/DeepEP): H800 nodes, 8 GPUs on NVLink, one CX7 400 Gb/s InfiniBand NIC per GPU (the
catalogue's `deepseek-h800` system). No model constant was taken from them. DeepEP reports bandwidth as bytes its
test counted / time, so the predicted bandwidth uses the same count (column `counted`):
  nvlink_ranks   tokens x ranks holding their experts x bytes per token (intranode normal kernels)
  rdma_domains   tokens x nodes holding their experts (own node included) x bytes per token (internode normal)
  logical        tokens x top-k x bytes per token (low-latency kernels; `latency_us` rows compare time directly)
The error is predicted / published - 1 of the row's metric (for bandwidth rows that is the inverse time ratio).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from twin.fabric.domain.moe import bytes_per_token, moe_times
from twin.fabric.domain.systems import SYSTEMS, build_topology

DEFAULT_CSV = Path(__file__).resolve().parents[3] / "validation" / "moe_deepep.csv"


def evaluate(path: Path = DEFAULT_CSV) -> dict:
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    systems = {s.key: s for s in SYSTEMS}
    out = []
    for r in rows:
        spec = systems[r["system"]]
        ep = int(r["ep_ranks"])
        topo = build_topology(spec, max(1, -(-ep // spec.gpus_per_node)), spec.network)
        t, h, k = int(r["tokens_per_rank"]), int(r["hidden_size"]), int(r["top_k"])
        est = moe_times(topo, r["kernel"], t, h, k, int(r["num_experts"]), ep, dispatch=r["dispatch_precision"],
                        combine=r["combine_precision"], max_nodes_per_token=int(r["max_nodes_per_token"]))
        phase = r["phase"]
        time_s = float(getattr(est, f"{phase}_s"))
        bpt = float(bytes_per_token(h, r[f"{phase}_precision"]))
        counted = {"nvlink_ranks": t * float(est.ranks_per_token) * bpt,
                   "rdma_domains": t * float(est.domains_per_token) * bpt,
                   "logical": t * k * bpt}[r["counted"]]
        pred = counted / time_s / 1e9 if r["metric"] == "bandwidth_GBps" else time_s * 1e6
        pub = float(r["value"])
        out.append({"kernel": r["kernel"], "ep_ranks": ep, "phase": phase, "metric": r["metric"],
                    "published": pub, "predicted": round(pred, 3), "error": round(pred / pub - 1.0, 4),
                    "source": r["source"]})
    summary = {}
    for kernel in sorted({o["kernel"] for o in out}) + ["all"]:
        err = np.abs([o["error"] for o in out if kernel in ("all", o["kernel"])])
        summary[kernel] = {"rows": int(err.size), "median_abs_error": round(float(np.median(err)), 4),
                           "p90_abs_error": round(float(np.percentile(err, 90)), 4),
                           "worst_ratio": round(float(np.max([max(1 + e, 1 / (1 + e)) for e in
                                                              [o["error"] for o in out if kernel in ("all", o["kernel"])]])), 3)}
    return {"csv": str(path), "rows": out, "summary": summary}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    paths = [a for a in args if a != "--json"]
    report = evaluate(Path(paths[0]) if paths else DEFAULT_CSV)
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"MoE dispatch/combine vs DeepEP's published numbers ({report['csv']})")
    print(f"{'kernel':20s} {'EP':>4s} {'phase':9s} {'metric':15s} {'published':>10s} {'predicted':>10s} {'error':>8s}")
    for o in report["rows"]:
        print(f"{o['kernel']:20s} {o['ep_ranks']:4d} {o['phase']:9s} {o['metric']:15s} {o['published']:10.1f} "
              f"{o['predicted']:10.1f} {o['error']:+8.1%}")
    for kernel, s in report["summary"].items():
        print(f"{kernel:20s} rows {s['rows']:3d}  median |error| {s['median_abs_error']:.1%}  "
              f"p90 {s['p90_abs_error']:.1%}  worst {s['worst_ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
