"""facility-sim CLI.

    python -m twin.facility_sim --facility dgx-h100-su --rate-hz 1 --racks 2 --duration 30 \
        --bad-fraction 0.05 --bad-log bad.jsonl --good-log good.jsonl --metrics-port 9400

Every option has an environment variable (the flag wins): FACILITY_SIM_RATE_HZ, FACILITY_SIM_RACKS,
FACILITY_SIM_DURATION_S, FACILITY_SIM_BAD_FRACTION, FACILITY_SIM_SEED, FACILITY_SIM_METRICS_PORT,
FACILITY_SIM_METRICS_RACKS, FACILITY_SIM_BAD_LOG, FACILITY_SIM_GOOD_LOG; shared: TWIN_KAFKA_BOOTSTRAP,
TWIN_FACILITY. SIGINT/SIGTERM stop after the current tick, flush the producer and print final stats
as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from twin.core.settings import Settings
from twin.facility_sim.app import DEFAULT_METRICS_PORT, SERVICE, SimConfig, build_sim


def parse_args(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> SimConfig:
    s = Settings.from_env(SERVICE, environ)
    racks_env = s.get_int("RACKS", 0)
    duration_env = s.get_float("DURATION_S", 0.0)
    p = argparse.ArgumentParser(prog="python -m twin.facility_sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--facility", default=s.facility, help="preset name or YAML path (TWIN_FACILITY)")
    p.add_argument("--bootstrap", default=s.kafka_bootstrap, help="Kafka bootstrap (TWIN_KAFKA_BOOTSTRAP)")
    p.add_argument("--rate-hz", type=float, default=s.get_float("RATE_HZ", 1.0))
    p.add_argument("--racks", type=int, default=racks_env, help="simulate only the first N racks (0: all)")
    p.add_argument("--duration", type=float, default=duration_env, help="seconds to run (0: until stopped)")
    p.add_argument("--bad-fraction", type=float, default=s.get_float("BAD_FRACTION", 0.0))
    p.add_argument("--seed", type=int, default=s.get_int("SEED", 0))
    p.add_argument("--metrics-port", type=int, default=s.get_int("METRICS_PORT", DEFAULT_METRICS_PORT),
                   help="DCGM-style /metrics port (-1: disabled, 0: ephemeral)")
    p.add_argument("--metrics-racks", type=int, default=s.get_int("METRICS_RACKS", 1),
                   help="racks whose GPUs /metrics serves")
    p.add_argument("--bad-log", default=s.get("BAD_LOG", "") or None, help="JSONL of injected faults")
    p.add_argument("--good-log", default=s.get("GOOD_LOG", "") or None, help="JSONL of good records")
    p.add_argument("--dry-run", action="store_true", help="no Kafka: simulate and encode only")
    p.add_argument("--no-create-topics", action="store_true", help="do not create missing topics")
    a = p.parse_args(argv)
    return SimConfig(
        facility=a.facility, kafka_bootstrap=a.bootstrap, rate_hz=a.rate_hz, racks=a.racks or None,
        duration_s=a.duration or None, bad_fraction=a.bad_fraction, seed=a.seed,
        metrics_port=None if a.metrics_port < 0 else a.metrics_port, metrics_racks=a.metrics_racks,
        bad_log=a.bad_log, good_log=a.good_log, dry_run=a.dry_run, create_topics=not a.no_create_topics,
    )


async def amain(config: SimConfig) -> dict:
    sim = await build_sim(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    a = sim.layout.arrays
    port = f", /metrics on :{config.metrics_port}" if config.metrics_port is not None else ""
    print(f"facility-sim: {config.facility} ({sim.layout.site_id}) {a.n_racks} racks, {a.n_nodes} nodes, "
          f"{a.n_gpus} GPUs at {config.rate_hz} Hz → {'(dry run)' if config.dry_run else config.kafka_bootstrap}"
          f"{port}", file=sys.stderr, flush=True)
    stats = await sim.run(stop)
    return {"service": SERVICE, "racks": a.n_racks, "gpus": a.n_gpus, **stats.as_dict()}


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    print(json.dumps(asyncio.run(amain(config))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
