"""GPU telemetry in the job twin (issue 11 items f, g): measured energy per job from its GPUs' DCGM power (only
GPUs of running jobs are kept), XID / ECC errors and a straggler node flagged and named as the likeliest cause of
a slow job, flags cleared when the cause is gone; the decode of telemetry.samples.v1 and the measured energy,
cost and CO2 in jobs.state.v1."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from test_jobs_dirty import setup  # same directory (rootdir-relative import)

from twin.jobs.adapters import codec
from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.domain.gpu_meter import MAX_GAP_S, STRAGGLER_MARGIN, GpuMeter, stragglers
from twin.telemetry.v1 import telemetry_pb2 as tpb


def _published(eng, clock, dt: float = 1.0) -> list[str]:
    out: list[str] = []
    orig = eng._emit

    async def capture(states, recs):
        out.extend(s.job_id for s in states)
        await orig(states, recs)

    clock.t += dt
    eng._emit = capture
    asyncio.run(eng.refresh())
    eng._emit = orig
    return sorted(out)


def test_meter_integrates_power_between_samples_and_not_across_a_gap():
    m = GpuMeter.of(4)
    g = np.array([0, 1])
    nan2 = np.full(2, np.nan)
    e, dt, _ = m.update(10.0, g, np.array([100.0, 200.0]), nan2, np.zeros(2), nan2)
    assert (e == 0).all() and (dt == 0).all()                     # first sample: nothing to integrate yet
    e, dt, _ = m.update(12.0, g, np.array([300.0, np.nan]), nan2, np.zeros(2), nan2)
    assert e.tolist() == [0.5 * (100 + 300) * 2, 0.0] and dt.tolist() == [2.0, 0.0]
    e, _, _ = m.update(11.0, g, np.array([1e6, 1e6]), nan2, np.zeros(2), nan2)   # older than the latest
    assert (e == 0).all() and m.power_w[0] == 300.0
    e, _, _ = m.update(12.0 + MAX_GAP_S + 1, g, np.array([300.0, 300.0]), nan2, np.zeros(2), nan2)
    assert (e == 0).all()                                          # a lost minute is not guessed


def test_meter_sees_new_xid_codes_and_growing_dbe_counts():
    m = GpuMeter.of(3)
    g = np.arange(3)
    p = np.full(3, 500.0)
    _, _, ch = m.update(1.0, g, p, p * 0, np.array([0, 0, 0]), np.array([0.0, 2.0, np.nan]))
    assert not ch.any()                                            # a DBE count seen first is the baseline
    _, _, ch = m.update(2.0, g, p, p * 0, np.array([79, 0, 0]), np.array([0.0, 3.0, np.nan]))
    assert ch.tolist() == [True, True, False]
    _, _, ch = m.update(3.0, g, p, p * 0, np.array([79, 0, 0]), np.array([0.0, 3.0, np.nan]))
    assert not ch.any()                                            # the same XID code again is not new
    assert m.errors(g, 3.0) == [(0, "XID 79"), (1, "ECC double-bit errors (volatile total 3)")]
    assert m.errors(g, 3.0 + 3600.0) == []


def test_straggler_is_the_node_lagging_in_both_power_and_activity():
    m = GpuMeter.of(32)
    g = np.arange(32)
    node = g // 8
    power = np.full(32, 650.0)
    act = np.full(32, 0.8)
    m.update(1.0, g, power, act, np.zeros(32), np.full(32, np.nan))
    assert stragglers(m, g, node, 1.0) is None
    power[16:24], act[16:24] = 650.0 * (1 - STRAGGLER_MARGIN) * 0.8, 0.8 * (1 - STRAGGLER_MARGIN) * 0.8
    m.update(2.0, g, power, act, np.zeros(32), np.full(32, np.nan))
    s = stragglers(m, g, node, 2.0)
    assert s is not None and s.node == 2 and s.power_ratio == pytest.approx(0.64) and s.activity_ratio < 0.8
    act[16:24] = 0.8                                               # low power alone (e.g. a capped node): no
    m.update(3.0, g, power, act, np.zeros(32), np.full(32, np.nan))
    assert stragglers(m, g, node, 3.0) is None
    assert stragglers(m, g[:8], node[:8], 3.0) is None             # one node: nothing to compare with
    assert stragglers(m, g, node, 3.0 + 3600.0) is None            # stale samples do not count


def _gpus(twin, job_id):
    return np.array(sorted(twin._place[job_id][3]))


def test_measured_energy_counts_only_running_jobs_gpus():
    twin, eng, clock, _ = setup()
    k = _gpus(twin, "k")
    idle = np.setdiff1d(np.arange(twin.site.inventory.n_gpus), np.concatenate([_gpus(twin, j) for j in twin._place]))
    batch = np.concatenate([k, idle[:8]])
    n = len(batch)
    nan = np.full(n, np.nan)
    assert twin.apply_telemetry(clock.t, batch, np.full(n, 600.0), nan, np.zeros(n), nan) == len(k)
    assert twin.apply_telemetry(clock.t + 2, batch, np.full(n, 700.0), nan, np.zeros(n), nan) == len(k)
    live = twin.jobs["k"]
    assert live.measured_gpu_j == pytest.approx(len(k) * 0.5 * (600 + 700) * 2)
    platform = twin.site.platform_w(tuple(int(g) for g in k))
    assert live.measured_platform_j == pytest.approx(platform * 2)
    assert twin.jobs["j"].measured_gpu_j == 0.0
    pue = twin.settings.pue
    state = codec.view_to_proto(twin.view("k"), clock.t + 2, tariff_usd_per_kwh=0.1, carbon_kg_per_kwh=0.5, pue=pue)
    want = (live.measured_gpu_j + live.measured_platform_j) * pue
    assert state.measured_energy_j == pytest.approx(want) and state.measured_gpu_energy_j == live.measured_gpu_j
    assert state.measured_cost_usd == pytest.approx(want / 3.6e6 * 0.1)
    assert state.measured_co2_kg == pytest.approx(want / 3.6e6 * 0.5)
    assert codec.view_to_proto(twin.view("j"), clock.t, tariff_usd_per_kwh=0.1, carbon_kg_per_kwh=0.5,
                               pue=pue).measured_energy_j == 0.0


def test_an_xid_flags_its_job_at_once_and_is_named_as_the_cause_of_a_slow_job():
    twin, eng, clock, _ = setup()
    k = _gpus(twin, "k")
    n = len(k)
    nan, p, a = np.full(n, np.nan), np.full(n, 650.0), np.full(n, 0.8)
    twin.apply_telemetry(clock.t, k, p, a, np.zeros(n), nan)
    assert _published(eng, clock) == []
    xid = np.zeros(n, np.int64)
    xid[3] = 79                                                    # "GPU has fallen off the bus"
    twin.apply_telemetry(clock.t + 0.5, k, p, a, xid, nan)
    assert _published(eng, clock) == ["k"]                         # within the next refresh
    flags = {f.kind: f for f in twin.jobs["k"].flags}
    assert "gpu_errors" in flags and f"GPU {int(k[3])}" in flags["gpu_errors"].detail
    assert "XID 79" in flags["gpu_errors"].detail
    pred = twin.jobs["k"].prediction.step_time_s
    twin.apply(JobEvent("k", EventKind.PROGRESS, clock.t + 0.5, step=1, step_time_s=2.0 * pred))
    twin.progress("k")
    slow = [f for f in twin.jobs["k"].flags if f.kind == "slower_than_predicted"]
    assert slow and "likeliest cause: gpu errors" in slow[0].detail
    # the error ages out (ERROR_RECENT_S): the flag clears at the next check, published at once
    clock.t += 601.0
    twin.apply_telemetry(clock.t, k, p, a, xid, nan)
    _published(eng, clock)
    assert "gpu_errors" not in {f.kind for f in twin.jobs["k"].flags}


def test_a_straggler_node_is_flagged_named_and_cleared_when_it_recovers():
    twin, eng, clock, _ = setup()
    m = _gpus(twin, "m")
    n = len(m)
    nan = np.full(n, np.nan)
    node_of = twin.site.inventory.gpu_node[m]
    lagging = node_of == node_of[-1]
    p = np.where(lagging, 300.0, 650.0)
    a = np.where(lagging, 0.3, 0.8)
    twin.apply_telemetry(clock.t, m, p, a, np.zeros(n), nan)
    assert _published(eng, clock) == ["m"]
    flag = next(f for f in twin.jobs["m"].flags if f.kind == "straggler")
    assert flag.entity_id == twin.site.node_ids[int(node_of[-1])]
    pred = twin.jobs["m"].prediction.step_time_s
    twin.apply(JobEvent("m", EventKind.PROGRESS, clock.t + 0.5, step=1, step_time_s=1.5 * pred))
    twin.progress("m")
    slow = next(f for f in twin.jobs["m"].flags if f.kind == "slower_than_predicted")
    assert f"straggler on {flag.entity_id}" in slow.detail
    assert _published(eng, clock, 0.0) == ["m"]                    # the slower flag: at once
    # recovered: the next check (health_interval_s later) clears it
    twin.apply_telemetry(clock.t + 1, m, np.full(n, 650.0), np.full(n, 0.8), np.zeros(n), nan)
    assert "m" not in _published(eng, clock, 1.0)                  # checked at most every 10 s
    twin.apply_telemetry(clock.t + 10, m, np.full(n, 650.0), np.full(n, 0.8), np.zeros(n), nan)
    assert _published(eng, clock, 10.0) == ["m"]
    assert "straggler" not in {f.kind for f in twin.jobs["m"].flags}


def test_telemetry_samples_decode_for_the_job_twin():
    twin, _, clock, _ = setup()
    msg = tpb.TelemetrySamples()
    b = msg.batch
    b.rack_id = "su1-0004"
    b.sample_time.FromSeconds(int(clock.t))
    node = b.nodes.add(node_id="su1-0004-n01")
    node.gpus.gpu_index.extend([0, 1, 2])
    node.gpus.power_w.extend([600.0, 610.0, 620.0])
    node.gpus.xid_errors.extend([0, 48, 0])
    b.nodes.add(node_id="not-a-node").gpus.gpu_index.append(0)      # skipped, not rejected
    t, gpu, power, sm, xid, dbe = codec.gpu_samples(msg, twin.site)
    first = int(twin.site.inventory.node_first_gpu[twin.site.node_index["su1-0004-n01"]])
    assert t == float(int(clock.t)) and gpu.tolist() == [first, first + 1, first + 2]
    assert power.tolist() == [600.0, 610.0, 620.0] and xid.tolist() == [0, 48, 0]
    assert np.isnan(sm).all() and np.isnan(dbe).all()
    eq = tpb.TelemetrySamples()
    eq.batch.equipment.cdus.add(cdu_id="x")
    eq.batch.sample_time.FromSeconds(1)
    assert codec.gpu_samples(eq, twin.site) is None


def test_the_handler_reads_a_rack_at_most_every_interval_and_skips_racks_without_jobs():
    from types import SimpleNamespace

    from twin.jobs.adapters.stream import TelemetryHandler

    twin, eng, clock, _ = setup()

    def batch(rack: str, t_s: float):
        msg = tpb.TelemetrySamples()
        b = msg.batch
        b.rack_id = rack
        b.sample_time.FromSeconds(int(t_s))
        for node in twin.site.nodes_of_rack(rack):
            g = b.nodes.add(node_id=node).gpus
            g.gpu_index.extend(range(8))
            g.power_w.extend([500.0] * 8)
        return SimpleNamespace(key=rack, message=msg)

    h = TelemetryHandler(eng, interval_s=5.0)
    t0 = int(clock.t)
    read = []
    for k in range(12):
        before = h.gpus_used
        asyncio.run(h([batch("su1-0004", t0 + k), batch("su1-0007", t0 + k)]))  # su1-0007: no running job
        read.append(h.gpus_used > before)
    at = np.flatnonzero(read)
    assert at[0] == 0 and 1 <= at[1] <= 5                           # the first read sets the rack's phase ...
    assert (np.diff(at[1:]) == 5).all() and len(at) >= 3            # ... then once per 5 s of sample time
    assert h.batches_skipped == 12 + 12 - sum(read)
    every = TelemetryHandler(eng, interval_s=0.0)
    asyncio.run(every([batch("su1-0004", t0 + 20), batch("su1-0004", t0 + 21)]))
    assert every.gpus_used == 2 * 32                               # interval 0: every batch (k's 32 GPUs)
