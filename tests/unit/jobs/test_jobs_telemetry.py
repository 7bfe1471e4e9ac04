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
from twin.jobs.domain.gpu_meter import AVERAGE_S, MAX_GAP_S, STRAGGLER_MARGIN, GpuMeter, stragglers
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


def _feed(m: GpuMeter, g: np.ndarray, t0: float, t1: float, power, act, every: float = 5.0, util=None) -> float:
    """Samples every `every` s from t0 up to t1 (power/act: arrays or functions of time; util: GPU utilization %,
    None: not reported); returns the last time."""
    t = t0
    while t <= t1:
        p = power(t) if callable(power) else power
        a = act(t) if callable(act) else act
        m.update(t, g, p, a, np.zeros(len(g)), np.full(len(g), np.nan), util)
        last, t = t, t + every
    return last


def test_a_host_bound_straggler_shows_in_gpu_utilization_long_before_power():
    """A node whose host stalls makes a 1.5x slower job: its GPUs run kernels 1/1.5 of the time, its peers ~all
    the time (their wait is NCCL's spin in the collective), while power and SM activity differ little (95 %, 85 %
    of the peers': the simulator's host straggler at 1.5x). Without utilization that is no straggler; with it, one."""
    g = np.arange(32)
    node = g // 8
    power, act = np.full(32, 650.0), np.full(32, 0.8)
    power[16:24], act[16:24] = 650.0 * 0.95, 0.8 * 0.85
    util = np.full(32, 100.0)
    util[16:24] = 100.0 / 1.5
    blind = GpuMeter.of(32)
    assert stragglers(blind, g, node, _feed(blind, g, 0.0, 3 * AVERAGE_S, power, act)) is None
    m = GpuMeter.of(32)
    s = stragglers(m, g, node, _feed(m, g, 0.0, 3 * AVERAGE_S, power, act, util=util))
    assert s is not None and s.node == 2 and s.kind == "idle" and s.util_ratio == pytest.approx(2 / 3, abs=0.01)
    util[16:24] = 100.0 * (1 - STRAGGLER_MARGIN / 2)               # a little less kernel time: within the margin
    assert stragglers(m, g, node, _feed(m, g, 3 * AVERAGE_S, 9 * AVERAGE_S, power, act, util=util)) is None
    util[16:24] = 100.0                                             # utilization stops: the averages restart
    half = GpuMeter.of(32)
    t = _feed(half, g, 0.0, 3 * AVERAGE_S, power, act, util=np.where(node == 2, 60.0, 100.0))
    t = _feed(half, g, t + 5, t + 30, power, act)                   # a feed without utilization for 30 s
    assert np.isnan(half.util_avg).all() and stragglers(half, g, node, t) is None


def test_a_power_capped_node_at_full_utilization_is_still_a_clock_straggler():
    g = np.arange(32)
    node = g // 8
    power, act, util = np.full(32, 650.0), np.full(32, 0.8), np.full(32, 100.0)
    power[8:16], act[8:16] = 650.0 * 0.57, 0.8 * 1.37                # the simulator's power-limited 1.5x straggler
    m = GpuMeter.of(32)
    s = stragglers(m, g, node, _feed(m, g, 0.0, 3 * AVERAGE_S, power, act, util=util))
    assert s is not None and s.node == 1 and s.kind == "clock" and s.util_ratio == pytest.approx(1.0)


def test_straggler_is_the_node_lagging_in_both_power_and_activity():
    m = GpuMeter.of(32)
    g = np.arange(32)
    node = g // 8
    power = np.full(32, 650.0)
    act = np.full(32, 0.8)
    t = _feed(m, g, 0.0, AVERAGE_S + 10, power, act)
    assert stragglers(m, g, node, t) is None
    power[16:24], act[16:24] = 650.0 * (1 - STRAGGLER_MARGIN) * 0.8, 0.8 * (1 - STRAGGLER_MARGIN) * 0.8
    assert stragglers(m, g, node, _feed(m, g, t + 5, t + 10, power, act)) is None  # one low sample: not yet
    t = _feed(m, g, t + 15, t + 6 * AVERAGE_S, power, act)                          # it persists
    s = stragglers(m, g, node, t)
    assert s is not None and s.node == 2 and s.power_ratio == pytest.approx(0.64, abs=0.01) and s.activity_ratio < 0.8
    assert s.kind == "idle"
    act[16:24] = 0.8 * (1 - STRAGGLER_MARGIN / 2)                  # low power, activity a little low: neither kind
    t = _feed(m, g, t + 5, t + 6 * AVERAGE_S, power, act)
    assert stragglers(m, g, node, t) is None
    act[16:24] = 0.8 * 1.3                                         # low power, busy longer: a lower clock (capped)
    t = _feed(m, g, t + 5, t + 6 * AVERAGE_S, power, act)
    s = stragglers(m, g, node, t)
    assert s is not None and s.node == 2 and s.kind == "clock" and s.activity_ratio > 1.0
    power[16:24], act[16:24] = 650.0, 0.8 * 1.3                    # busy longer at full power: not slower, no flag
    t = _feed(m, g, t + 5, t + 6 * AVERAGE_S, power, act)
    assert stragglers(m, g, node, t) is None
    power[16:24], act[16:24] = 650.0 * (1 - STRAGGLER_MARGIN) * 0.8, 0.8 * 1.3
    assert stragglers(m, g[:8], node[:8], t) is None               # one node: nothing to compare with
    assert stragglers(m, g, node, t + 3600.0) is None              # stale samples do not count
    fresh = GpuMeter.of(32)                                        # too little history behind the averages
    fresh.update(1.0, g, np.where(node == 2, 100.0, 650.0), np.where(node == 2, 0.1, 0.8), np.zeros(32),
                 np.full(32, np.nan))
    assert stragglers(fresh, g, node, 1.0) is None


def test_nodes_read_at_different_phases_of_a_step_are_not_stragglers():
    """A healthy job swings between compute (700 W, 90 % SM active) and communication (250 W, 10 %) every 10 s step.
    Each node is read at its own instants (racks are read at different times; the job twin draws each rack's next
    read 2.5-7.5 s after the last, see TelemetryHandler), so at many instants one node's latest sample is a
    communication phase while its peers' are compute. The latest samples would name a straggler again and again;
    the time averages never do."""
    rng = np.random.default_rng(7)
    m = GpuMeter.of(32)
    node = np.arange(32) // 8
    reads = []
    for k in range(4):
        t = rng.uniform(0.0, 5.0)
        while t <= 8 * AVERAGE_S:
            reads.append((t, k))
            t += rng.uniform(2.5, 7.5)
    naive_flags = averaged_flags = checks = 0
    for t, k in sorted(reads):
        c = (t % 10.0) < 5.0  # compute in the first half of each step
        g = np.flatnonzero(node == k)
        m.update(t, g, np.full(8, 700.0 if c else 250.0), np.full(8, 0.9 if c else 0.1), np.zeros(8),
                 np.full(8, np.nan))
        if t > 2 * AVERAGE_S:
            checks += 1
            latest = np.array([m.power_w[node == n].mean() for n in range(4)])
            naive_flags += bool((latest < (1 - STRAGGLER_MARGIN) * np.median(latest)).any())
            averaged_flags += stragglers(m, np.arange(32), node, t) is not None
    assert checks > 300 and naive_flags > checks // 10              # the latest samples: false stragglers
    assert averaged_flags == 0                                       # the averages: none
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
    state = codec.view_to_proto(twin.view("k"), clock.t + 2, tariff_usd_per_kwh=0.1, carbon_kg_per_kwh=0.5)
    want = (live.measured_gpu_j + live.measured_platform_j) * pue
    assert state.measured_energy_j == pytest.approx(want) and state.measured_gpu_energy_j == live.measured_gpu_j
    assert state.measured_cost_usd == pytest.approx(want / 3.6e6 * 0.1)
    assert state.measured_co2_kg == pytest.approx(want / 3.6e6 * 0.5)
    assert codec.view_to_proto(twin.view("j"), clock.t, tariff_usd_per_kwh=0.1,
                               carbon_kg_per_kwh=0.5).measured_energy_j == 0.0


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

    def run_for(seconds: float, power, act) -> list[str]:
        """Telemetry every 5 s for `seconds`, then one refresh; the jobs published by it."""
        t0 = clock.t
        while clock.t < t0 + seconds:
            clock.t += 5.0
            twin.apply_telemetry(clock.t, m, power, act, np.zeros(n), nan)
        return _published(eng, clock, 0.0)

    twin.apply_telemetry(clock.t, m, p, a, np.zeros(n), nan)
    assert "m" not in _published(eng, clock)                       # one sample is not a straggler yet
    assert "m" in run_for(AVERAGE_S + 10, p, a)                    # the lag persisted over the averaging time
    flag = next(f for f in twin.jobs["m"].flags if f.kind == "straggler")
    assert flag.entity_id == twin.site.node_ids[int(node_of[-1])]
    pred = twin.jobs["m"].prediction.step_time_s
    twin.apply(JobEvent("m", EventKind.PROGRESS, clock.t + 0.5, step=1, step_time_s=1.5 * pred))
    twin.progress("m")
    slow = next(f for f in twin.jobs["m"].flags if f.kind == "slower_than_predicted")
    assert f"straggler on {flag.entity_id}" in slow.detail
    assert _published(eng, clock, 0.0) == ["m"]                    # the slower flag: at once
    # recovered: the flag clears once the node's averages are back within the margin (about one AVERAGE_S)
    healthy_p, healthy_a = np.full(n, 650.0), np.full(n, 0.8)
    run_for(10.0, healthy_p, healthy_a)
    assert "straggler" in {f.kind for f in twin.jobs["m"].flags}   # the averages still remember the lag
    assert "m" in run_for(2 * AVERAGE_S, healthy_p, healthy_a)     # cleared: a state change, published
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
    t, gpu, power, sm, xid, dbe, *_ = codec.gpu_samples(msg, twin.site)
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
        return SimpleNamespace(key=rack, message=msg, headers=[])

    h = TelemetryHandler(eng, interval_s=5.0, seed=1)
    t0 = int(clock.t)
    read = []
    for k in range(400):
        before = h.gpus_used
        asyncio.run(h([batch("su1-0004", t0 + k), batch("su1-0007", t0 + k)]))  # su1-0007: no running job
        read.append(h.gpus_used > before)
    at = np.flatnonzero(read)
    gaps = np.diff(at[1:])
    assert at[0] == 0 and 0 <= at[1] - at[0] <= 5                  # the first read: the next within one interval
    assert gaps.min() >= 2 and gaps.max() <= 8                      # then 0.5-1.5 x 5 s (whole seconds here)
    assert 4.5 <= gaps.mean() <= 5.5 and len(set(gaps.tolist())) >= 4  # mean 5 s, not one fixed period
    assert h.batches_skipped == 400 + 400 - sum(read)
    every = TelemetryHandler(eng, interval_s=0.0)
    asyncio.run(every([batch("su1-0004", t0 + 20), batch("su1-0004", t0 + 21)]))
    assert every.gpus_used == 2 * 32                               # interval 0: every batch (k's 32 GPUs)
