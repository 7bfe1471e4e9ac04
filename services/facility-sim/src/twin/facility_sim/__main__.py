"""facility-sim CLI.

    python -m twin.facility_sim --facility dgx-h100-su --rate-hz 1 --racks 2 --duration 30 \
        --bad-fraction 0.05 --bad-log bad.jsonl --good-log good.jsonl --metrics-port 9400

Every option has an environment variable (the flag wins): see `--help`. SIGINT/SIGTERM stop after
the current tick, flush the producer and print final stats as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Mapping

from twin.core.runner import run_service
from twin.core.settings import describe, load_config
from twin.facility_sim.app import SERVICE, SimConfig, build_sim


def parse_args(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> SimConfig:
    """Settings from the environment, then CLI flags over them."""
    env_config = load_config(SimConfig, SERVICE, environ)
    d = dataclasses.asdict(env_config)
    p = argparse.ArgumentParser(prog="python -m twin.facility_sim", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="settings (environment variables; flags win):\n"
                                       + describe(SimConfig, SERVICE, environ))
    p.add_argument("--facility", default=d["facility"], help="preset name or YAML path (TWIN_FACILITY)")
    p.add_argument("--bootstrap", default=d["kafka_bootstrap"], help="Kafka bootstrap (TWIN_KAFKA_BOOTSTRAP)")
    p.add_argument("--rate-hz", type=float, default=d["rate_hz"])
    p.add_argument("--racks", type=int, default=d["racks"] or 0, help="simulate only the first N racks (0: all)")
    p.add_argument("--duration", type=float, default=d["duration_s"] or 0.0, help="seconds to run (0: until stopped)")
    p.add_argument("--bad-fraction", type=float, default=d["bad_fraction"])
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--metrics-port", type=int, default=-1 if d["metrics_port"] is None else d["metrics_port"],
                   help="DCGM-style /metrics port (-1: disabled, 0: ephemeral)")
    p.add_argument("--metrics-host", default=d["metrics_host"], help="/metrics bind address")
    p.add_argument("--metrics-racks", type=int, default=d["metrics_racks"], help="racks whose GPUs /metrics serves")
    p.add_argument("--bad-log", default=d["bad_log"], help="JSONL of injected faults")
    p.add_argument("--good-log", default=d["good_log"], help="JSONL of good records")
    p.add_argument("--dry-run", action="store_true", default=d["dry_run"], help="no Kafka: simulate and encode only")
    p.add_argument("--no-create-topics", action="store_true", default=not d["create_topics"],
                   help="do not create missing topics")
    p.add_argument("--no-jobs", action="store_true", default=not d["jobs"],
                   help="do not publish the training jobs' events on jobs.events.v1")
    p.add_argument("--jobs-progress-s", type=float, default=d["jobs_progress_s"],
                   help="seconds between a job's progress events")
    p.add_argument("--no-equipment", action="store_true", default=not d["equipment"],
                   help="do not publish cooling equipment readings (CDUs, CRAHs, plant)")
    p.add_argument("--equipment-every", type=int, default=d["equipment_every"],
                   help="ticks between two equipment batches (1: every tick)")
    p.add_argument("--straggler-node", default=d["straggler_node"], help="node id or 'auto': a straggler node")
    p.add_argument("--straggler-factor", type=float, default=d["straggler_factor"],
                   help="its job's step time x this (> 1)")
    p.add_argument("--straggler-cause", choices=("host", "power"), default=d["straggler_cause"],
                   help="host: its GPUs wait for a slow host; power: its GPUs run at a lowered clock")
    p.add_argument("--sick-gpu", default=d["sick_gpu"], help="'<node id>/gpu<k>' or 'auto': a GPU reporting an XID")
    p.add_argument("--sick-gpu-xid", type=int, choices=(92, 48, 94, 79), default=d["sick_gpu_xid"],
                   help="92: high SBE rate (runs on); 48/94: uncorrectable ECC (job fails); 79: off the bus (hangs)")
    p.add_argument("--faults-at", type=float, default=d["faults_at_s"],
                   help="seconds after start when the straggler / sick GPU begin")
    a = p.parse_args(argv)
    return dataclasses.replace(
        env_config, facility=a.facility, kafka_bootstrap=a.bootstrap, rate_hz=a.rate_hz, racks=a.racks,
        duration_s=a.duration, bad_fraction=a.bad_fraction, seed=a.seed, metrics_port=a.metrics_port,
        metrics_host=a.metrics_host, metrics_racks=a.metrics_racks, bad_log=a.bad_log, good_log=a.good_log,
        dry_run=a.dry_run, create_topics=not a.no_create_topics, jobs=not a.no_jobs, jobs_progress_s=a.jobs_progress_s,
        equipment=not a.no_equipment, equipment_every=a.equipment_every, straggler_node=a.straggler_node or None,
        straggler_factor=a.straggler_factor, straggler_cause=a.straggler_cause, sick_gpu=a.sick_gpu or None,
        sick_gpu_xid=a.sick_gpu_xid, faults_at_s=a.faults_at)


async def amain(config: SimConfig, stop: asyncio.Event | None = None) -> dict:
    sim = await build_sim(config)
    a = sim.layout.arrays
    port = f", /metrics on {config.metrics_host}:{config.metrics_port}" if config.metrics_port is not None else ""
    print(f"facility-sim: {config.facility} ({sim.layout.site_id}) {a.n_racks} racks, {a.n_nodes} nodes, "
          f"{a.n_gpus} GPUs at {config.rate_hz} Hz → {'(dry run)' if config.dry_run else config.kafka_bootstrap}"
          f"{port}", file=sys.stderr, flush=True)
    stats = await sim.run(stop)
    return {"service": SERVICE, "racks": a.n_racks, "gpus": a.n_gpus, **stats.as_dict()}


async def _run_and_report(config: SimConfig, stop: asyncio.Event) -> None:
    print(json.dumps(await amain(config, stop)), flush=True)


def main(argv: list[str] | None = None) -> int:
    run_service(SERVICE, SimConfig, _run_and_report, __doc__, argv, parse=parse_args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
