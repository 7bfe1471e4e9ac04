"""Producer side of the 100k-GPU budget (issue 13): `python -m bench sim_producer` -> bench/results/sim_producer.json.

What the simulator playing the site costs, and what its batching costs the broker. For each producer setting
(`FACILITY_SIM_BATCH_BYTES` values, BENCH_SIM_PRODUCER_BATCH_BYTES, default "0,65536,524288"; 0 = one producer
send per record, aiokafka's own 16 KiB batches, the path before issue 13): a fresh Tansu broker (memory storage),
`python -m twin.facility_sim` (site-100k, first BENCH_SIM_PRODUCER_RACKS racks, 1 Hz, no jobs / equipment, as
`bench ingest` runs it) for BENCH_SIM_PRODUCER_LIVE_S seconds, and a plain consumer reading every record as it
arrives (fetch sizes as the kit's consumers: what ingest's fetches cost the broker). CPU seconds per tick of each
process from /proc/<pid>/stat, between WARMUP_S after the simulator started and its last tick. Settings run in
turn, BENCH_SIM_PRODUCER_ROUNDS times (rounds interleave them, so they see the same machine load); a setting's
figures are the median over rounds. Key meanings: bench/README.md ("sim_producer").
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "sim_producer.json"
FACILITY = "site-100k"
GPUS_PER_RACK = 32
RACKS = int(os.environ.get("BENCH_SIM_PRODUCER_RACKS", "1562"))        # 49,984 GPUs: half the site
LIVE_S = float(os.environ.get("BENCH_SIM_PRODUCER_LIVE_S", "20"))
WARMUP_S = 5.0                    # imports, layout, first ticks and the consumer's join left out
ROUNDS = int(os.environ.get("BENCH_SIM_PRODUCER_ROUNDS", "2"))
SETTINGS = tuple(int(x) for x in os.environ.get("BENCH_SIM_PRODUCER_BATCH_BYTES", "0,65536,524288").split(","))
BASELINE = 0                      # ratios are against this setting (one send per record)
_CLK_TCK = os.sysconf("SC_CLK_TCK")

# The consumer: every partition of the topic from the start, no group (nothing to join), the kit's fetch sizes;
# prints how many records it read when it gets SIGTERM.
_CONSUMER = """
import asyncio, signal, sys
from aiokafka import AIOKafkaConsumer, TopicPartition
from twin.core import limits, topics

async def main(bootstrap):
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                         fetch_max_bytes=limits.CONSUMER_FETCH_MAX_BYTES,
                         max_partition_fetch_bytes=limits.CONSUMER_MAX_PARTITION_FETCH_BYTES)
    await c.start()
    t = topics.FACILITY_TELEMETRY
    c.assign([TopicPartition(t.name, p) for p in range(t.partitions)])
    await c.seek_to_beginning()
    n = 0
    print("ready", flush=True)
    while not stop.is_set():
        for recs in (await c.getmany(timeout_ms=200, max_records=5000)).values():
            n += len(recs)
    await c.stop()
    print(n, flush=True)

asyncio.run(main(sys.argv[1]))
"""


def _cpu_s(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _env(bootstrap: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.update(TWIN_KAFKA_BOOTSTRAP=bootstrap, OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", **extra)
    return env


def one_run(batch_bytes: int, racks: int = RACKS) -> dict:
    """One setting on a fresh broker: CPU seconds per tick of facility-sim, Tansu and the consumer."""
    from twin.core import topics
    from twin.core.embedded.kafka import TansuBroker
    from twin.core.topics_admin import ensure_topics

    with TansuBroker() as broker:
        asyncio.run(ensure_topics(broker.bootstrap, [topics.FACILITY_TELEMETRY, topics.JOBS_EVENTS]))
        tansu = broker._proc.pid if broker._proc is not None else None
        assert tansu is not None
        consumer = subprocess.Popen([sys.executable, "-c", _CONSUMER, broker.bootstrap], env=_env(broker.bootstrap),
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        assert consumer.stdout is not None
        consumer.stdout.readline()   # "ready": assigned and at the start
        sim = subprocess.Popen(
            [sys.executable, "-m", "twin.facility_sim", "--facility", FACILITY, "--racks", str(racks), "--rate-hz", "1",
             "--duration", str(LIVE_S), "--metrics-port", "-1", "--no-jobs", "--no-equipment", "--no-create-topics"],
            env=_env(broker.bootstrap, FACILITY_SIM_BATCH_BYTES=str(batch_bytes)),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        pids = {"facility_sim": sim.pid, "tansu": tansu, "consumer": consumer.pid}
        started = time.monotonic()
        first = last = None
        while sim.poll() is None:
            try:
                snap = {k: _cpu_s(p) for k, p in pids.items()}
            except (OSError, ValueError):   # the simulator just exited
                break
            now = time.monotonic()
            if first is None and now - started >= WARMUP_S:
                first = (now, snap)
            elif first is not None:
                last = (now, snap)
            time.sleep(0.2)
        out, _ = sim.communicate(timeout=60)
        stats = json.loads([ln for ln in out.decode().splitlines() if ln.startswith("{")][-1])
        time.sleep(1.0)                     # the consumer reads the last tick
        consumer.send_signal(signal.SIGTERM)
        consumed_out, _ = consumer.communicate(timeout=30)
    if first is None or last is None:
        raise RuntimeError(f"the simulator ran less than {WARMUP_S} s")
    wall = last[0] - first[0]
    ticks = max(int(stats["ticks"]), 1)
    behind = float(stats["behind_s"])
    cores = {k: (last[1][k] - first[1][k]) / wall for k in pids}
    # ticks per second: 1 Hz while the simulator keeps up; when it falls behind its lateness grows to the end,
    # so its ticks took LIVE_S + behind seconds (an estimate, flagged by producer_kept_up)
    ticks_per_s = ticks / (ticks + behind)
    per_tick = {k: v / ticks_per_s for k, v in cores.items()}
    return {
        "batch_bytes": batch_bytes,
        "racks": racks,
        "gpus": racks * GPUS_PER_RACK,
        "ticks": ticks,
        "cores": cores,
        "cpu_s_per_tick": per_tick,
        "sim_plus_broker_cpu_s_per_tick": per_tick["facility_sim"] + per_tick["tansu"],
        "producer_tick_s": {k: float(stats[k]) / ticks for k in ("model_s", "encode_s", "publish_s")},
        "producer_behind_max_s": behind,
        "producer_kept_up": behind < 1.0,
        "records_produced": int(stats["messages"]),
        "records_consumed": int(consumed_out.decode().split()[-1]),
    }


def _median_run(runs: list[dict]) -> dict:
    med = dict(runs[0])
    med["cpu_s_per_tick"] = {k: statistics.median(r["cpu_s_per_tick"][k] for r in runs) for k in runs[0]["cpu_s_per_tick"]}
    med["sim_plus_broker_cpu_s_per_tick"] = statistics.median(r["sim_plus_broker_cpu_s_per_tick"] for r in runs)
    med["producer_tick_s"] = {k: statistics.median(r["producer_tick_s"][k] for r in runs)
                              for k in runs[0]["producer_tick_s"]}
    med["cores"] = {k: statistics.median(r["cores"][k] for r in runs) for k in runs[0]["cores"]}
    med["producer_behind_max_s"] = max(r["producer_behind_max_s"] for r in runs)
    med["producer_kept_up"] = all(r["producer_kept_up"] for r in runs)
    med["all_consumed"] = all(r["records_consumed"] == r["records_produced"] for r in runs)
    med.pop("records_produced")
    med.pop("records_consumed")
    med["rounds"] = runs
    return med


def main() -> dict:
    started = time.monotonic()
    runs: dict[int, list[dict]] = {s: [] for s in SETTINGS}
    for k in range(ROUNDS):
        for s in SETTINGS:
            r = one_run(s)
            runs[s].append(r)
            c = r["cpu_s_per_tick"]
            print(f"  round {k + 1} batch_bytes={s}: facility-sim {c['facility_sim']:.3f}, tansu {c['tansu']:.3f}, "
                  f"consumer {c['consumer']:.3f} CPU s/tick at {r['gpus']:,} GPUs; consumed {r['records_consumed']} of "
                  f"{r['records_produced']}", flush=True)
    settings = [_median_run(runs[s]) for s in SETTINGS]
    base = next((m for m in settings if m["batch_bytes"] == BASELINE), None)
    ratios = {}
    if base is not None:
        for m in settings:
            ratios[str(m["batch_bytes"])] = {
                "facility_sim": m["cpu_s_per_tick"]["facility_sim"] / base["cpu_s_per_tick"]["facility_sim"],
                "tansu": m["cpu_s_per_tick"]["tansu"] / base["cpu_s_per_tick"]["tansu"],
                "consumer": m["cpu_s_per_tick"]["consumer"] / base["cpu_s_per_tick"]["consumer"],
                "sim_plus_broker": m["sim_plus_broker_cpu_s_per_tick"] / base["sim_plus_broker_cpu_s_per_tick"],
            }
    result = {
        "benchmark": "sim_producer",
        "facility": FACILITY,
        "racks": RACKS,
        "gpus": RACKS * GPUS_PER_RACK,
        "rate_hz": 1.0,
        "live_s": LIVE_S,
        "warmup_s": WARMUP_S,
        "rounds": ROUNDS,
        "baseline_batch_bytes": BASELINE,
        "settings": settings,
        "ratio_to_baseline": ratios,
        "bench_s": time.monotonic() - started,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for m in settings:
        c = m["cpu_s_per_tick"]
        print(f"  batch_bytes={m['batch_bytes']}: facility-sim {c['facility_sim']:.3f} + tansu {c['tansu']:.3f} = "
              f"{m['sim_plus_broker_cpu_s_per_tick']:.3f} CPU s/tick (consumer {c['consumer']:.3f}); "
              f"ratios {json.dumps({k: round(v, 2) for k, v in ratios.get(str(m['batch_bytes']), {}).items()})}",
              flush=True)
    return result


if __name__ == "__main__":
    main()
