"""facility-sim's requested hardware faults: a straggler node (host-bound or power-limited) and a sick GPU by XID,
played consistently by the physics (phases, clocks, power, error counters) and the job feed (step times, FAILED)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from twin.core.facility import load_facility_spec
from twin.facility_sim.adapters.jobs import JobFeed
from twin.facility_sim.app import SimConfig, requested_faults
from twin.facility_sim.domain.faults import FAIL_DETECT_S, NCCL_TIMEOUT_S, Faults
from twin.facility_sim.domain.model import FacilityModel
from twin.facility_sim.domain.workload import PH_COMM, PH_DENSE, PH_IDLE
from twin.facility_sim.layout import build_layout
from twin.jobs.adapters import codec
from twin.jobs.domain.book import JobStatus
from twin.jobs.live import JobTwin
from twin.jobs.site import build_site_map
from twin.jobs.v1 import jobs_pb2 as pb

SEED = 1
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _sim(**settings):
    layout = build_layout(load_facility_spec("dgx-h100-su"), seed=SEED)
    model = FacilityModel(layout.arrays, seed=SEED)
    faults = requested_faults(SimConfig(**settings), layout, model)
    model.set_faults(faults)
    return layout, model, faults


def _run(model, seconds: int, skip: int = 0):
    """Per node: mean GPU power, SM activity and SM clock in the compute phase over ticks [skip, seconds) at 1 Hz;
    and the last tick."""
    a = model.site
    state = model.initial_state()
    p = np.zeros(a.n_nodes)
    sm = np.zeros(a.n_nodes)
    clk = np.zeros(a.n_nodes)
    n_dense = np.zeros(a.n_nodes)
    n = 0
    tick = None
    for t in range(seconds):
        state, tick = model.step(state, float(t), 1.0)
        if t >= skip:
            cnt = np.bincount(a.gpu_node, minlength=a.n_nodes)
            p += np.bincount(a.gpu_node, weights=tick.power_w, minlength=a.n_nodes) / cnt
            sm += np.bincount(a.gpu_node, weights=tick.sm_active, minlength=a.n_nodes) / cnt
            dense = tick.phase == PH_DENSE
            clk += np.where(dense, np.bincount(a.gpu_node, weights=tick.sm_clock_mhz, minlength=a.n_nodes) / cnt, 0.0)
            n_dense += dense
            n += 1
    return p / n, sm / n, clk / np.maximum(n_dense, 1), tick


def _progress(feed: JobFeed, job_id: str, t_s: float):
    return [m for k, m in feed.events(t_s, T0 + timedelta(seconds=t_s))
            if k == job_id and m.kind == pb.JOB_EVENT_KIND_PROGRESS]


def test_a_host_bound_straggler_idles_its_gpus_and_stretches_its_job_step() -> None:
    layout, model, faults = _sim(straggler_node="auto", straggler_factor=3.5, faults_at_s=20.0)
    s = faults.straggler
    w = model.workloads
    nodes = np.flatnonzero(w.job == s.job)
    assert len(nodes) >= 2 and s.node in nodes and model.site.gpu_cap_w[model.site.gpu_node == s.node].min() \
        == model.site.gpu_max_w[0], "auto picks an uncapped node of a multi-node job"
    power, sm, _, _ = _run(model, 600, skip=20)
    peers = [n for n in nodes if n != s.node]
    # its GPUs wait for the host (idle) while its peers wait for it inside the collective (NCCL kernels busy)
    assert power[s.node] < 0.85 * np.median(power[peers]) and sm[s.node] < 0.6 * np.median(sm[peers])
    healthy = FacilityModel(layout.arrays, seed=SEED)
    h_power, _, _, _ = _run(healthy, 600, skip=20)
    assert np.median(power[peers]) < np.median(h_power[peers]), "the peers wait: less of their time computing"
    # the job's measured step time is the healthy period x the factor from the fault's start; steps continue
    feed = JobFeed(layout, w, progress_every_s=10.0, faults=faults)
    job_id = next(j for j, ns in feed.jobs if s.node in ns)
    period = float(w.iteration_s[s.node])
    feed.events(0.0, T0)
    before = _progress(feed, job_id, 10.0)[0]
    assert before.measured_step_time_s == pytest.approx(period)
    after = _progress(feed, job_id, 20.0 + 100 * period)[0]
    assert after.measured_step_time_s == pytest.approx(3.5 * period)
    healthy_steps = (20.0 + 100 * period + w.phase_offset_s[s.node]) / period
    assert after.step == int(np.floor(healthy_steps - 100 + 100 / 3.5))
    other = next(j for j, ns in feed.jobs if s.node not in ns)
    assert _progress(feed, other, 30.0 + 100 * period)[0].measured_step_time_s == pytest.approx(
        float(w.iteration_s[int(dict(feed.jobs)[other][0])])), "other jobs are untouched"


def test_a_power_limited_straggler_runs_at_the_clock_its_slowdown_implies() -> None:
    _, model, faults = _sim(straggler_node="auto", straggler_factor=1.5, straggler_cause="power")
    s = faults.straggler
    w = model.workloads
    peers = [n for n in np.flatnonzero(w.job == s.job) if n != s.node]
    power, sm, clock, _ = _run(model, 400)
    cf = float(w.comm_fraction[s.node])
    want = (1.0 - cf) / (1.5 - cf) * model.site.gpu_max_sm_clock_mhz[0]
    assert clock[s.node] == pytest.approx(want, rel=0.06), "the compute phase stretches by f_max / f"
    # lower power, but busy longer than its peers (they wait for it): SM activity above theirs
    assert power[s.node] < 0.7 * np.median(power[peers]) and sm[s.node] > 1.2 * np.median(sm[peers])


def test_xid_92_raises_correctable_errors_and_the_job_runs_on() -> None:
    layout, model, faults = _sim(sick_gpu="su1-0001-n03/gpu5", sick_gpu_xid=92, faults_at_s=5.0)
    g = faults.sick.gpu
    assert layout.node_ids[int(model.site.gpu_node[g])] == "su1-0001-n03" and model.site.gpu_local_index[g] == 5
    _, _, _, tick = _run(model, 60)
    assert int(tick.xid_errors[g]) == 92 and int(tick.ecc_sbe_total[g]) >= 50 and int(tick.ecc_dbe_total[g]) == 0
    assert not np.any(np.delete(tick.xid_errors, g) == 92)
    feed = JobFeed(layout, model.workloads, faults=faults)
    feed.events(0.0, T0)
    job_id = next(j for j, ns in feed.jobs if faults.sick.node in ns)
    assert _progress(feed, job_id, 100.0) and not feed.failed


@pytest.mark.parametrize("xid", [48, 94])
def test_an_uncorrectable_ecc_error_fails_the_job(xid: int) -> None:
    layout, model, faults = _sim(sick_gpu="auto", sick_gpu_xid=xid, faults_at_s=30.0)
    sick = faults.sick
    _, _, _, tick = _run(model, 60)
    assert int(tick.xid_errors[sick.gpu]) == xid and int(tick.ecc_dbe_total[sick.gpu]) == 1
    feed = JobFeed(layout, model.workloads, faults=faults)
    job_id = next(j for j, ns in feed.jobs if sick.node in ns)
    feed.events(0.0, T0)
    assert not [m for t in range(1, 35) for _, m in feed.events(float(t), T0) if m.kind == pb.JOB_EVENT_KIND_FAILED]
    failed = [(k, m) for k, m in feed.events(30.0 + FAIL_DETECT_S, T0 + timedelta(seconds=30.0 + FAIL_DETECT_S))
              if m.kind == pb.JOB_EVENT_KIND_FAILED]
    assert [k for k, _ in failed] == [job_id]
    msg = failed[0][1]
    gpu_name = f"{layout.node_ids[sick.node]}/gpu{int(model.site.gpu_local_index[sick.gpu])}"
    assert msg.failure_cause == pb.FAILURE_CAUSE_GPU_XID and f"XID {xid}" in msg.reason and gpu_name in msg.reason
    assert not [m for _, m in feed.events(100.0, T0) if m.job_id == job_id], "a failed job reports nothing more"
    # the job twin's book takes the FAILED event (cause, placement repeated)
    twin = JobTwin(build_site_map(load_facility_spec("dgx-h100-su")))
    for _, m in JobFeed(layout, model.workloads, faults=faults).events(0.0, T0):
        twin.apply(*codec.job_event(m))
    twin.apply(*codec.job_event(msg))
    assert twin.book.jobs[job_id].status == JobStatus.FAILED
    phase = model.faults.phases(model.workloads, np.zeros(model.site.n_nodes, np.int8) + 1, 40.0)
    assert (phase[model.workloads.job == sick.job] == PH_IDLE).all(), "its nodes are idle after the failure"


def test_a_gpu_off_the_bus_hangs_the_job_until_the_nccl_timeout() -> None:
    layout, model, faults = _sim(sick_gpu="auto", sick_gpu_xid=79, faults_at_s=10.0)
    sick = faults.sick
    w = model.workloads
    state = model.initial_state()
    for t in range(30):
        state, tick = model.step(state, float(t), 1.0)
    job_nodes = w.job == sick.job
    assert (tick.phase[job_nodes & (tick.phase != 4)] == PH_COMM).all(), "every rank blocked in a collective"
    assert tick.sm_active[sick.gpu] == 0.0 and int(tick.xid_errors[sick.gpu]) == 79
    feed = JobFeed(layout, w, progress_every_s=10.0, faults=faults)
    job_id = next(j for j, ns in feed.jobs if sick.node in ns)
    feed.events(0.0, T0)
    assert not _progress(feed, job_id, 20.0), "a hung job logs no step"
    kinds = [m.kind for k, m in feed.events(10.0 + NCCL_TIMEOUT_S, T0) if k == job_id]
    assert kinds == [pb.JOB_EVENT_KIND_FAILED]


def test_faults_start_at_their_time_and_nothing_changes_before() -> None:
    layout, model, _ = _sim(straggler_node="auto", straggler_factor=2.0, sick_gpu="auto", sick_gpu_xid=94,
                            faults_at_s=50.0)
    plain = FacilityModel(layout.arrays, seed=SEED)
    s1, s2 = model.initial_state(), plain.initial_state()
    for t in range(50):
        s1, a = model.step(s1, float(t), 1.0)
        s2, b = plain.step(s2, float(t), 1.0)
        assert np.array_equal(a.power_w, b.power_w) and np.array_equal(a.xid_errors, b.xid_errors)
    s1, a = model.step(s1, 50.0, 1.0)
    s2, b = plain.step(s2, 50.0, 1.0)
    assert not np.array_equal(a.xid_errors, b.xid_errors)
    assert not Faults() and plain.faults == Faults()


@pytest.mark.parametrize(("settings", "match"), [
    ({"straggler_node": "su1-0099-n00"}, "straggler_node: 'su1-0099-n00' is not a simulated node"),
    ({"sick_gpu": "su1-0000-n00"}, "sick_gpu: 'su1-0000-n00' is not"),
    ({"sick_gpu": "su1-0000-n00/gpu8"}, "has 8 GPUs, no gpu8"),
])
def test_a_request_the_site_cannot_play_is_refused_naming_the_setting(settings, match) -> None:
    with pytest.raises(ValueError, match=match):
        _sim(**settings)


def test_a_straggler_needs_peers() -> None:
    layout = build_layout(load_facility_spec("dgx-h100-su"), seed=SEED)
    model = FacilityModel(layout.arrays, seed=SEED)
    w = model.workloads
    single = next(n for n in range(len(w.job)) if w.job[n] >= 0 and (w.job == w.job[n]).sum() == 1)
    with pytest.raises(ValueError, match="no training job on two nodes"):
        requested_faults(SimConfig(straggler_node=layout.node_ids[single]), layout, model)
    with pytest.raises(ValueError, match="straggler_factor must be > 1"):
        SimConfig(straggler_node="auto", straggler_factor=1.0)
    with pytest.raises(ValueError, match="sick_gpu_xid"):
        SimConfig(sick_gpu="auto", sick_gpu_xid=13)
