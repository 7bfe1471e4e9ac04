"""Accuracy report of the collective model against measured nccl-tests results.

    python -m twin.fabric.validate [CSV] [--json] [--core-only]

Default CSV: ``$TWIN_VALIDATION_DIR/collectives_public.csv``, else ``../shared/validation/
collectives_public.csv`` beside the repository root.

Topology: built from what the row states (``twin.fabric.domain.systems.place_row``): the GPU model, a named
system or cloud shape from the catalogue, NIC count x speed and fabric kind. A row that cannot be placed (GPU
unknown, GPU contradicting the named shape, a multi-node row whose network is not stated) is listed under
``skipped`` with the reason and counted, never mapped to different hardware. Assumptions the placement had to
make are printed with the row.

Notes honoured: "NCCL_NVLS_ENABLE=0" / "NVLS disabled" removes the NVLS algorithms; "IB disabled" requires the
ranks to sit in one NVLink domain; ``NCCL_ALGO=...`` / ``NCCL_PROTO=...`` stated in the row restrict the model's
candidates as they restrict NCCL's (``forced_algorithms`` / ``forced_protocols``); the NCCL_BUFFSIZE a row ran
with (a stated ``NCCL_BUFFSIZE=N``, or on EFA a stated aws-ofi-nccl older than 1.16.0, which leaves NCCL's default)
becomes the network's ``nccl_buffsize_bytes`` (``stated_buffsize``). The ``nccl`` column, when it holds a version
(e.g. 2.27.3), is passed to the model (version-dependent algorithm availability and constants). Placement: n_gpus / n_nodes GPUs on each of
n_nodes consecutive nodes.

Measurement harness (rules read the row's ``note``, never its index):

* ``torch`` (a PyTorch benchmark timing calls one at a time through torch.distributed): each time includes
  PyTorch's per-call host overhead, which the collective model does not contain: ``TORCH_PER_CALL_OVERHEAD_US``
  is added to the prediction and reported per row as ``harness_us``. ``--core-only`` turns this off.
* ``-g N`` with N > 1 (nccl-tests driving N GPUs from one process): every launch is serialized through one
  host thread, an overhead no sourced figure lets us model, so these rows are *excluded* from the statistics;
  they are listed (with their predictions) under ``excluded`` in the text and the JSON.
* A row measured more than ``GLITCH_FACTOR`` times slower than the next larger message of the same sweep (same
  collective, GPUs, nodes, system, fabric, NCCL, note and source) is a disturbed measurement, excluded and listed
  the same way: the larger message does all of the smaller one's work and more, and NCCL picks per size by its
  own cost model, so a smaller size costs more only through a transient (nccl-tests prints one averaged run per
  size; e.g. an 8 MiB all-reduce at 889 us between 4 MiB at 181 us and 16 MiB at 511 us).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from twin.core.validation_data import validation_dir
from twin.fabric.domain import COLLECTIVES, estimate, placement_from_gpu_ids
from twin.fabric.domain.collectives import NCCL_BUFFSIZE_BYTES, collective_codes
from twin.fabric.domain.systems import gpu_of, place_row

CSV_NAME = "collectives_public.csv"
SIZE_BANDS = (("<64KiB", 0, 64 * 1024), ("64KiB-16MiB", 64 * 1024, 16 * 1024**2), (">=16MiB", 16 * 1024**2, float("inf")))


#: PyTorch's host overhead per torch.distributed collective call: 20-30 us (stas00/ml-engineering,
#: network/benchmarks/all_reduce_bench.py, which now hides it by queueing calls; timing one call on
#: an idle GPU includes it). The lower bound is used.
TORCH_PER_CALL_OVERHEAD_US = 20.0


def harness_overhead_us(note: str) -> float:
    """Host time the row's measurement harness adds to every timed call (0 for nccl-tests)."""
    text = note.lower()
    return TORCH_PER_CALL_OVERHEAD_US if re.search(r"\btorch\b", text) and "queued" not in text else 0.0


def harness_exclusion(note: str) -> str | None:
    """Why a row's harness keeps it out of the statistics (None = counted): nccl-tests ``-g N`` (N > 1), one
    process driving N GPUs, serializes every launch through one host thread."""
    m = re.search(r"(?<![\w-])-g\s*(\d+)", note)
    if m and int(m.group(1)) > 1:
        return (f"single-process launch (nccl-tests -g {m.group(1)}): host launch overhead of one thread driving "
                f"{m.group(1)} GPUs is in the measured time and has no sourced model")
    return None


#: A row this many times slower than the next larger size of its own sweep is a disturbed measurement. Steps from
#: NCCL's algorithm/protocol switches stay well under it (the sweeps here: at most ~1.3x, e.g. LL -> LL128).
GLITCH_FACTOR = 1.5
_SWEEP_COLUMNS = ("collective", "n_gpus", "n_nodes", "system", "fabric", "nccl", "note", "source")


def sweep_glitches(rows: Sequence[dict[str, str]]) -> dict[int, str]:
    """Row index -> why it is excluded as a disturbed measurement (see the module docstring). Pure."""
    sweeps: dict[tuple, list[tuple[float, float, int]]] = {}
    for i, row in enumerate(rows):
        try:
            size, time_us = float(row.get("size_bytes", "")), float(row.get("time_us", ""))
        except ValueError:
            continue
        if size > 0 and time_us > 0:
            sweeps.setdefault(tuple(row.get(c, "") for c in _SWEEP_COLUMNS), []).append((size, time_us, i))
    out = {}
    for points in sweeps.values():
        points.sort()
        for (size, time_us, i), (next_size, next_time, _) in zip(points, points[1:], strict=False):
            if next_size > size and time_us > GLITCH_FACTOR * next_time:
                out[i] = (f"disturbed measurement: {time_us:g} us, more than {GLITCH_FACTOR:g}x the same sweep's "
                          f"{next_size:.0f}-byte message ({next_time:g} us)")
    return out


#: NCCL_ALGO names (NCCL src/graph/tuning.cc ncclAlgoStr, matched case-insensitively by parseList) -> the model's
#: algorithms. CollNet and PAT have no model here: a list naming only those leaves nothing and is not applied.
_NCCL_ALGO_NAMES = {"ring": "ring", "tree": "tree", "nvls": "nvls", "nvlstree": "nvls_tree"}
#: NCCL_PROTO names (ncclProtoStr) -> the model's protocols.
_NCCL_PROTO_NAMES = {"ll": "LL", "ll128": "LL128", "simple": "Simple"}


def _env_list(note: str, var: str, names: dict[str, str], collective: str) -> tuple[str, ...] | None:
    """The model names a row's ``VAR=list`` allows, or None when the row sets no such variable.

    NCCL's syntax (docs "Environment Variables", NCCL_ALGO / NCCL_PROTO; tuning.cc parseList): a comma-separated
    list, a leading ``^`` excludes the listed names instead, and from 2.24 ``func:list;func:list`` gives one list
    per collective (a function not named keeps every choice)."""
    m = re.search(rf"\b{var}=([^\s\"']+)", note, flags=re.IGNORECASE)
    if not m:
        return None
    value = m.group(1).strip().rstrip(".,;)").lower()
    if ":" in value:  # per-function form
        func = collective.replace("_", "")
        chosen = [part.split(":", 1)[1] for part in value.split(";") if ":" in part
                  and part.split(":", 1)[0].replace("_", "") == func]
        if not chosen:
            return None
        value = chosen[0]
    exclude = value.startswith("^")
    listed = {n.strip() for n in value.lstrip("^").split(",") if n.strip()}
    known = {names[n] for n in listed if n in names}
    allowed = tuple(v for v in names.values() if (v not in known) == exclude)
    return allowed or None


def forced_algorithms(note: str, collective: str) -> tuple[str, ...] | None:
    """Algorithms a row's stated NCCL_ALGO leaves to NCCL (None = not set). Point-to-point collectives (alltoall,
    send/recv) do not go through NCCL's algorithm selection, so ``pairwise`` always stays."""
    allowed = _env_list(note, "NCCL_ALGO", _NCCL_ALGO_NAMES, collective)
    return None if allowed is None else allowed + ("pairwise",)


def forced_protocols(note: str, collective: str) -> tuple[str, ...] | None:
    """Protocols a row's stated NCCL_PROTO leaves to NCCL (None = not set)."""
    return _env_list(note, "NCCL_PROTO", _NCCL_PROTO_NAMES, collective)


#: aws-ofi-nccl sets NCCL_BUFFSIZE on EFA platforms from v1.16.0 (``collectives.NCCL_BUFFSIZE_BY_TRANSPORT``); a row
#: that states an earlier plugin ran with NCCL's default
_PLUGIN_SETS_BUFFSIZE = (1, 16, 0)


def stated_buffsize(note: str, transport: str | None) -> float | None:
    """NCCL_BUFFSIZE a row ran with, from what its note states (None = not stated: the transport's default). An
    ``NCCL_BUFFSIZE=N`` setting is taken as is; on EFA, ``aws-ofi-nccl X.Y.Z`` before 1.16.0 means NCCL's own
    default (4 MiB), since only later plugins set 8 MiB."""
    m = re.search(r"\bNCCL_BUFFSIZE=(\d+)\b", note)
    if m and int(m.group(1)) > 0:
        return float(m.group(1))
    m = re.search(r"\baws-ofi-nccl v?(\d+)\.(\d+)\.(\d+)", note, flags=re.IGNORECASE)
    if transport == "efa" and m and tuple(map(int, m.groups())) < _PLUGIN_SETS_BUFFSIZE:
        return NCCL_BUFFSIZE_BYTES
    return None


def parse_nccl_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from the ``nccl`` column ("2.27.3", "v2.19.3-1"); None if it holds no version."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def default_csv_path() -> Path:
    return validation_dir() / CSV_NAME


def load_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


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
    placed, reason = place_row(row.get("system", ""), row.get("fabric", ""), n_gpus, n_nodes)
    if placed is None:
        return None, reason
    topo = placed.topology
    note = row.get("note", "")
    so = topo.scale_out
    buffsize = stated_buffsize(note, so.kind) if so is not None else None
    if buffsize is not None:
        topo = replace(topo, scale_out=replace(so, nccl_buffsize_bytes=buffsize))
    ppn = n_gpus // n_nodes
    ids = (np.arange(n_nodes)[:, None] * topo.gpus_per_node + np.arange(ppn)).reshape(-1)
    placement = placement_from_gpu_ids(topo, ids)
    text = " ".join(row.get(k, "") for k in ("fabric", "note", "system")).lower()
    algorithms = forced_algorithms(note, COLLECTIVES[code])
    if "nvls_enable=0" in text or "nvls disabled" in text:
        algorithms = tuple(a for a in (algorithms or ("ring", "tree", "pairwise")) if a not in ("nvls", "nvls_tree"))
    gpu = gpu_of(f"{row.get('system', '')} {row.get('fabric', '')}") or "?"
    return {"system": placed.system, "family": gpu.upper(), "topology": topo, "placement": placement,
            "collective": code, "size_bytes": size, "measured_us": measured_us, "algorithms": algorithms,
            "protocols": forced_protocols(note, COLLECTIVES[code]),
            "nccl_version": parse_nccl_version(row.get("nccl", "")),
            "assumptions": list(placed.assumptions), "harness_us": harness_overhead_us(note),
            "excluded": harness_exclusion(note)}, None


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


def _predict(case: dict, core_only: bool) -> tuple[dict, float]:
    kw = {"algorithms": case["algorithms"], "protocols": case["protocols"]}
    if case["nccl_version"] is not None:
        kw["nccl_version"] = case["nccl_version"]
    est = estimate(case["topology"], case["collective"], case["size_bytes"], case["placement"], **kw)
    harness_us = 0.0 if core_only else case["harness_us"]
    return {"time_s": float(est.time_s), "algorithm": str(est.algorithm_names()),
            "protocol": str(est.protocol_names()), "busbw": float(est.busbw_GBps)}, harness_us


def summarize(rows: Iterable[dict[str, str]], *, core_only: bool = False) -> dict:
    """Predict every placeable row and return the report (one JSON-able dict). Pure apart from the model.
    ``core_only`` leaves out the measurement-harness overhead (see module docstring)."""
    rows = list(rows)
    glitches = sweep_glitches(rows)
    results, skipped, excluded = [], [], []
    for i, row in enumerate(rows):
        case, reason = row_case(row)
        if case is None:
            skipped.append({"row": i, "collective": row.get("collective"), "system": row.get("system"), "reason": reason})
            continue
        est, harness_us = _predict(case, core_only)
        predicted_us = est["time_s"] * 1e6 + harness_us
        n_nodes = int(row["n_nodes"])
        rec = {
            "row": i, "collective": COLLECTIVES[case["collective"]], "system": case["system"],
            "family": case["family"], "n_gpus": int(case["placement"].n_ranks), "n_nodes": n_nodes,
            "nodes_band": "1 node" if n_nodes == 1 else ("2-3 nodes" if n_nodes < 4 else ">=4 nodes"),
            "size_bytes": case["size_bytes"], "size_band": size_band(case["size_bytes"]),
            "measured_us": case["measured_us"], "predicted_us": predicted_us, "harness_us": harness_us,
            "ratio": predicted_us / case["measured_us"], "algorithm": est["algorithm"], "protocol": est["protocol"],
            "predicted_busbw_GBps": est["busbw"], "measured_busbw_GBps": float(row.get("busbw_GBps") or 0.0),
            "nccl": ".".join(map(str, case["nccl_version"])) if case["nccl_version"] else None,
            "family_band": f"{case['family']} {'1 node' if n_nodes == 1 else 'multi-node'} {size_band(case['size_bytes'])}",
            "assumptions": case["assumptions"],
        }
        if case["excluded"] or i in glitches:
            rec["reason"] = case["excluded"] or glitches[i]
            excluded.append(rec)
        else:
            results.append(rec)
    pred = [r["predicted_us"] for r in results]
    meas = [r["measured_us"] for r in results]
    overall = error_stats(pred, meas)

    def grouped(key: str) -> dict:
        out = {}
        for value in sorted({r[key] for r in results}):
            sel = [r for r in results if r[key] == value]
            out[value] = error_stats([r["predicted_us"] for r in sel], [r["measured_us"] for r in sel])
        return out

    multi = [r for r in results if r["n_nodes"] > 1]
    return {"rows": len(results), "skipped": len(skipped), "skipped_rows": skipped,
            "excluded": len(excluded), "excluded_rows": excluded, "core_only": core_only,
            "median_abs_pct_error": overall["median_abs_pct_error"], "p90_abs_pct_error": overall["p90_abs_pct_error"],
            "worst_ratio": overall["worst_ratio"],
            "multi_node": error_stats([r["predicted_us"] for r in multi], [r["measured_us"] for r in multi]),
            "by_collective": grouped("collective"), "by_size_band": grouped("size_band"),
            "by_nodes": grouped("nodes_band"), "by_family": grouped("family"), "by_system": grouped("system"),
            "by_family_nodes_size": grouped("family_band"),
            "results": results}


def _line(r: dict) -> str:
    return (f"{r['collective']:<14}{r['system']:<19}{r['n_gpus']:>5}{r['n_nodes']:>6}{int(r['size_bytes']):>14}"
            f"{r['measured_us']:>13.2f}{r['predicted_us']:>14.2f}{r['ratio']:>7.2f}  {r['algorithm']}/{r['protocol']}"
            + (f" +{r['harness_us']:.0f} us harness" if r["harness_us"] else "")
            + ("".join(f" [assumed: {a}]" for a in r["assumptions"])))


def format_report(report: dict) -> str:
    lines = [f"{'collective':<14}{'system':<19}{'n':>5}{'nodes':>6}{'size':>14}{'measured_us':>13}{'predicted_us':>14}"
             f"{'ratio':>7}  algorithm/protocol"]
    lines += [_line(r) for r in report["results"]]
    for r in report["excluded_rows"]:
        lines.append(f"EXCLUDED row {r['row']}: {_line(r)}  -- {r['reason']}")
    for s in report["skipped_rows"]:
        lines.append(f"SKIPPED row {s['row']} ({s['collective']}, {s['system']}): {s['reason']}")
    lines.append("")
    lines.append(f"rows {report['rows']}  skipped {report['skipped']}  excluded {report['excluded']}  "
                 f"median |err| {report['median_abs_pct_error']:.1f} %  "
                 f"p90 |err| {report['p90_abs_pct_error']:.1f} %  worst ratio {report['worst_ratio']:.2f}x")
    mn = report["multi_node"]
    if mn["n"]:
        lines.append(f"multi-node rows {mn['n']}  median |err| {mn['median_abs_pct_error']:.1f} %  "
                     f"p90 |err| {mn['p90_abs_pct_error']:.1f} %  worst ratio {mn['worst_ratio']:.2f}x")
    for title, key in (("by collective", "by_collective"), ("by size band", "by_size_band"), ("by nodes", "by_nodes"),
                       ("by GPU family", "by_family"), ("by system", "by_system"),
                       ("by GPU family / nodes / size band", "by_family_nodes_size")):
        lines.append(title + ":")
        for name, st in report[key].items():
            lines.append(f"  {name:<34} n={st['n']:<3} median {st['median_abs_pct_error']:6.1f} %  "
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
