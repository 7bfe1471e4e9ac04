"""Benchmark of the power twin: `python -m bench power` -> bench/results/power.json.

On the 100,000-GPU preset (`site-100k`, arrays in memory, one thread):
- one site tick (GPU model + node/rack + chain + aggregation) and where its time goes, against a
  same-run baseline: the floor of touching every GPU once (a*b+c over the GPUs and one bincount of
  GPU watts into racks);
- curtailment plans without on-site sources: caps only (limit 85 % of the site) and deep (limit 45 %:
  caps at the minimum are not enough, jobs are checkpointed and paused); and one with the preset's
  batteries and gensets (limit 60 %); with their site-evaluation counts;
- the live stages: stage 1 (RackStage.apply) on consumer-sized batches of rack telemetry, as GPU rows
  per second, and stage 2 (SiteStage.apply, the whole chain + alerts) per batch; compared with the GPU
  rows per second the ingest benchmark reached (bench/results/ingest.json) when that file exists.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services" / "power" / "src"))

from twin.core.facility import load_facility_spec  # noqa: E402
from twin.power.domain import evaluate, gpu_power, rack_power, site_power_function, site_tick  # noqa: E402
from twin.power.domain.planner import GpuLoad, Jobs, Sources, plan_curtailment  # noqa: E402
from twin.power.live import RackReading, RackStage, RackUpdate, SiteStage  # noqa: E402
from twin.power.site import build_site_model  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "power.json"
PRESET = "site-100k"
TARGETS = {"tick_ms": 50.0, "plan_s": 1.0}
BATCH_RACKS = 500          # the consumer's max_records (POWER_MAX_RECORDS default)


def _times(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _counted(site_w):
    calls = [0]

    def wrapped(*a, **kw):
        calls[0] += 1
        return site_w(*a, **kw)

    return wrapped, calls


def main() -> dict:
    t0 = time.perf_counter()
    m = build_site_model(load_facility_spec(PRESET))
    build_s = time.perf_counter() - t0
    inv, net, layout = m.inventory, m.network, m.layout
    n = inv.n_gpus
    rng = np.random.default_rng(0)
    tensor = rng.uniform(0.3, 1.0, n)
    sm = np.minimum(tensor + 0.1, 1.0)
    dram = rng.uniform(0.1, 0.7, n)
    measured = np.where(rng.random(n) < 0.5, rng.uniform(300, 700, n), np.nan)
    kw = {"tensor_active": tensor, "sm_active": sm, "dram_active": dram}

    # -- one tick and its parts -------------------------------------------------------------------
    def tick():
        return site_tick(m.gpu, layout, net, measured_gpu_w=measured, **kw)

    state = tick()
    tick_s = _times(tick, 15)
    gpu_s = _times(lambda: gpu_power(m.gpu, **kw), 15)
    rack_s = _times(lambda: rack_power(layout, state.gpu_w), 15)
    chain_s = _times(lambda: evaluate(net, state.rack_w), 15)
    a, b, c = (rng.random(n) for _ in range(3))
    gpu_rack = inv.node_rack[inv.gpu_node]
    base_s = _times(lambda: np.bincount(gpu_rack, weights=a * b + c, minlength=net.n_racks), 15)

    # -- curtailment plans ------------------------------------------------------------------------
    n_jobs = 100
    job = np.arange(n) * n_jobs // n                       # 100 jobs of 1,000 GPUs
    jobs = Jobs(job_ids=tuple(f"job-{j}" for j in range(n_jobs)), priority=rng.integers(0, 3, n_jobs).astype(float),
                seconds_since_checkpoint=rng.uniform(0, 3600, n_jobs), checkpoint_s=rng.uniform(30, 300, n_jobs))
    load = GpuLoad(params=m.gpu, power_limit_w=np.asarray(m.gpu.default_limit_w, dtype=float), job=job,
                   gpu_node=inv.gpu_node, **kw)
    base_site_w = site_power_function(layout, net)(gpu_power(m.gpu, **kw).power_w)
    no_sources = Sources(battery_ids=(), battery_power_w=np.zeros(0), battery_energy_j=np.zeros(0), genset_ids=(),
                         genset_power_w=np.zeros(0), genset_start_delay_s=np.zeros(0), genset_ramp_w_per_s=np.zeros(0))
    plans = {}
    # GPU caps and pauses alone (the site's batteries and gensets would cover a 15 % cut by themselves)
    for name, share, sources in (("caps", 0.85, no_sources), ("pauses", 0.45, no_sources),
                                 ("with_sources", 0.60, m.sources)):
        site_w, calls = _counted(site_power_function(layout, net))
        started = time.perf_counter()
        p = plan_curtailment(limit_w=share * base_site_w, deadline_s=600.0, duration_s=1800.0, load=load, jobs=jobs,
                             sources=sources, site_power=site_w)
        plans[name] = {"plan_s": time.perf_counter() - started, "site_evaluations": calls[0],
                       "limit_share": share, "meets_limit": p.meets_limit, "paused_jobs": len(p.paused_jobs),
                       "capped_gpus": int((~np.isnan(p.gpu_cap_w)).sum()), "throughput_cost": p.throughput_cost}

    # -- live stages ------------------------------------------------------------------------------
    racks = RackStage(m)
    first = racks.rack_first_gpu
    per = racks.rack_n_gpus
    readings = []
    for r in range(net.n_racks):
        g = np.arange(first[r], first[r] + per[r])
        readings.append(RackReading(site_id=net.site_id, rack=r, time_s=1.0, gpu=g, power_w=measured[g],
                                    tensor_active=tensor[g], sm_active=sm[g], dram_active=dram[g],
                                    pdu_w=np.nan if r % 2 else 40_000.0))
    batches = [readings[i:i + BATCH_RACKS] for i in range(0, len(readings), BATCH_RACKS)]
    stage1 = []
    results = []
    for batch in batches:
        started = time.perf_counter()
        results += racks.apply(batch)
        stage1.append(time.perf_counter() - started)
    gpu_rows = sum(len(r.gpu) for r in readings)
    site = SiteStage(m)
    stage2 = []
    for i in range(0, len(results), BATCH_RACKS):
        ups = [RackUpdate(r.rack, r.time_s + k, r.input_w, r.source)
               for k, r in enumerate(results[i:i + BATCH_RACKS])]
        started = time.perf_counter()
        site.apply(ups)
        stage2.append(time.perf_counter() - started)
    stage1_rows_per_s = gpu_rows / sum(stage1)
    ingest_file = ROOT / "bench" / "results" / "ingest.json"
    ingest_rows = json.loads(ingest_file.read_text()).get("gpu_rows_per_s") if ingest_file.exists() else None

    best = min(tick_s)
    result = {
        "preset": PRESET, "gpus": n, "racks": net.n_racks, "chain_components": net.n_comp,
        "build_site_model_s": build_s,
        "tick_ms": best * 1e3, "tick_median_ms": statistics.median(tick_s) * 1e3,
        "tick_parts_ms": {"gpu_model": min(gpu_s) * 1e3, "node_and_rack": min(rack_s) * 1e3,
                          "chain": min(chain_s) * 1e3},
        "baseline_touch_every_gpu_ms": min(base_s) * 1e3,
        "ratio_tick_to_baseline": best / min(base_s),
        "plan_s": plans["caps"]["plan_s"], "plan_with_pauses_s": plans["pauses"]["plan_s"], "plans": plans,
        "stage1_batch_racks": BATCH_RACKS, "stage1_batch_ms": statistics.median(stage1) * 1e3,
        "stage1_gpu_rows_per_s": stage1_rows_per_s,
        "stage2_batch_ms": statistics.median(stage2) * 1e3,
        "ingest_gpu_rows_per_s": ingest_rows,
        "keeps_up_with_ingest": None if ingest_rows is None else bool(stage1_rows_per_s >= ingest_rows),
        "targets": TARGETS,
        "meets_targets": bool(best * 1e3 <= TARGETS["tick_ms"] and plans["caps"]["plan_s"] <= TARGETS["plan_s"]),
        "load_average_1m": os.getloadavg()[0], "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "threads": 1, "numpy": np.__version__,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    p = result["tick_parts_ms"]
    print(f"power: site-100k tick {result['tick_ms']:.1f} ms best, {result['tick_median_ms']:.1f} ms median "
          f"(GPU model {p['gpu_model']:.1f}, racks {p['node_and_rack']:.1f}, chain {p['chain']:.1f}) vs touching every "
          f"GPU once {result['baseline_touch_every_gpu_ms']:.2f} ms (x{result['ratio_tick_to_baseline']:.0f}); "
          f"plan {result['plan_s']:.2f} s caps ({plans['caps']['site_evaluations']} evaluations), "
          f"{result['plan_with_pauses_s']:.2f} s with pauses ({plans['pauses']['site_evaluations']}), "
          f"{plans['with_sources']['plan_s']:.2f} s with sources ({plans['with_sources']['site_evaluations']}); "
          f"stage 1 {stage1_rows_per_s:,.0f} GPU rows/s ({result['stage1_batch_ms']:.0f} ms per {BATCH_RACKS} racks), "
          f"stage 2 {result['stage2_batch_ms']:.1f} ms per batch"
          + (f"; ingest reached {ingest_rows:,.0f} GPU rows/s" if ingest_rows else "")
          + f" (targets: tick <= {TARGETS['tick_ms']:.0f} ms, plan <= {TARGETS['plan_s']:.0f} s; "
          f"load average {result['load_average_1m']:.1f})")
    return result


if __name__ == "__main__":
    main()
