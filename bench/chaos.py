"""Fault-injection run, longer than the test: `python -m bench chaos` (`make chaos`) -> bench/results/chaos.json.

The same machinery as tests/chaos (tests/chaos/chaos_support.py; its docstring lists the faults and
the checks), with more of everything: a longer simulator run, several SIGKILLs of ingest, fabric and
the power, cooling and jobs twins at random moments, PostgreSQL taken away for 30 s, a burst of 500
bad records, over several seeds. Everything on loopback: its own Tansu broker and its own embedded
PostgreSQL per run.

Result keys: faults_injected, records_lost, records_duplicated, max_recovery_s (the longest time
from a fault ending, i.e. a restart or the database coming back, to the service making progress
again), dlq_missing, fabric_converged, twins_converged, stuck_consumers, problems; "services": per
service (ingest, fabric, power, cooling, jobs) faults (SIGKILLs), restarts, max_recovery_s, and for
ingest and the twins lost / duplicated (tests/chaos/twins_check.py defines them per twin); per-run
details under "runs".

    python -m bench chaos                         # defaults below
    python bench/chaos.py --runs 1 --duration 60  # quicker
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "chaos.json"


def _support():
    sys.path.insert(0, str(ROOT / "tests" / "chaos"))
    import chaos_support

    return chaos_support


def run(runs: int = 2, duration_s: float = 90.0, kills: int = 3, db_outage_s: float = 30.0, burst: int = 500,
        seed: int = 1, rate_hz: float = 2.0, out: Path = RESULT) -> dict:
    cs = _support()
    started = time.monotonic()
    details = []
    for i in range(runs):
        cfg = cs.ChaosConfig(duration_s=duration_s, rate_hz=rate_hz, seed=seed + i, kills_per_service=kills,
                             db_outage_s=db_outage_s, burst=burst, settle_timeout_s=180.0)
        tmp = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
        print(f"chaos run {i + 1}/{runs}: seed {cfg.seed}, {duration_s:g} s, logs in {tmp}", flush=True)
        result, _logs = cs.run_chaos(cfg, tmp)
        one = {"seed": cfg.seed, "log_dir": str(tmp), **result.as_json()}
        print(json.dumps({k: one[k] for k in ("faults_injected", "records_lost", "records_duplicated",
                                              "max_recovery_s", "problems")}), flush=True)
        details.append(one)
    recoveries = [d["max_recovery_s"] for d in details if d["max_recovery_s"] is not None]
    services: dict[str, dict] = {}
    for d in details:
        for name, one in d["services"].items():
            agg = services.setdefault(name, {"faults": 0, "restarts": 0, "max_recovery_s": None})
            agg["faults"] += one.get("faults", 0)
            agg["restarts"] += one.get("restarts", 0)
            if one.get("max_recovery_s") is not None:
                agg["max_recovery_s"] = max(agg["max_recovery_s"] or 0.0, one["max_recovery_s"])
            for key in ("lost", "duplicated", "redelivered", "wrong"):
                if key in one:
                    agg[key] = agg.get(key, 0) + one[key]
            if "converged" in one:
                agg["converged"] = agg.get("converged", True) and one["converged"]
    summary = {
        "benchmark": "chaos",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "config": {"runs": runs, "duration_s": duration_s, "kills_per_service": kills, "db_outage_s": db_outage_s,
                   "burst": burst, "rate_hz": rate_hz, "first_seed": seed},
        "faults_injected": sum(d["faults_injected"] for d in details),
        "records_lost": sum(d["records_lost"] for d in details),
        "records_duplicated": sum(d["records_duplicated"] for d in details),
        "max_recovery_s": max(recoveries) if recoveries else None,
        "good_batches": sum(d["good_batches"] for d in details),
        "bad_records": sum(d["bad_records"] for d in details),
        "dlq_missing": sum(d["dlq_missing"] for d in details),
        "fabric_converged": all(d["fabric_converged"] for d in details),
        "twins_converged": all(one.get("converged", True) for one in services.values()),
        "services": services,
        "stuck_consumers": [d["stuck_consumers"] for d in details if d["stuck_consumers"]],
        "problems": [p for d in details for p in d["problems"]],
        "elapsed_s": round(time.monotonic() - started, 1),
        "runs": details,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}: faults={summary['faults_injected']} lost={summary['records_lost']} "
          f"duplicated={summary['records_duplicated']} max_recovery_s={summary['max_recovery_s']} "
          f"problems={len(summary['problems'])}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--duration", type=float, default=90.0, help="simulator seconds per run")
    p.add_argument("--kills", type=int, default=3, help="SIGKILLs per service per run")
    p.add_argument("--db-outage", type=float, default=30.0, help="seconds PostgreSQL is away")
    p.add_argument("--burst", type=int, default=500, help="bad records in the burst")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate-hz", type=float, default=2.0)
    p.add_argument("--out", default=str(RESULT))
    a = p.parse_args(argv if argv is not None else [])
    return run(a.runs, a.duration, a.kills, a.db_outage, a.burst, a.seed, a.rate_hz, Path(a.out))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    summary = main(sys.argv[1:])
    sys.exit(1 if summary["problems"] else 0)
