"""Curtailment planner: caps never below the minimum, batteries and gensets within their limits,
the limit met when it can be and the shortfall stated when it cannot."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from twin.core.facility import load_facility_spec
from twin.power.domain import GpuLoad, Jobs, Sources, plan_curtailment, site_power_function
from twin.power.site import build_site_model


@pytest.fixture(scope="module")
def su():
    return build_site_model(load_facility_spec("dgx-h100-su"))


def busy_load(m, n_jobs: int = 4) -> tuple[GpuLoad, Jobs]:
    n = len(m.gpu.max_clock_mhz)
    job = np.arange(n) * n_jobs // n
    load = GpuLoad(params=m.gpu, tensor_active=np.full(n, 0.9), sm_active=np.ones(n), dram_active=np.full(n, 0.1),
                   power_limit_w=np.full(n, 700.0), job=job, gpu_node=m.inventory.gpu_node)
    jobs = Jobs(job_ids=tuple(f"job-{j}" for j in range(n_jobs)), priority=np.arange(n_jobs, dtype=float),
                seconds_since_checkpoint=np.full(n_jobs, 600.0), checkpoint_s=np.full(n_jobs, 30.0))
    return load, jobs


NO_SOURCES = Sources(battery_ids=(), battery_power_w=np.zeros(0), battery_energy_j=np.zeros(0), genset_ids=(),
                     genset_power_w=np.zeros(0), genset_start_delay_s=np.zeros(0), genset_ramp_w_per_s=np.zeros(0))


def plan(m, limit_w, deadline_s=60.0, duration_s=600.0, sources=NO_SOURCES, load=None, jobs=None):
    if load is None:
        load, jobs = busy_load(m)
    return plan_curtailment(limit_w=limit_w, deadline_s=deadline_s, duration_s=duration_s, load=load, jobs=jobs,
                            sources=sources, site_power=site_power_function(m.layout, m.network))


def test_no_action_when_already_below_the_limit(su):
    p = plan(su, 1e6)
    assert p.meets_limit and p.meets_at_s == 0.0 and np.isnan(p.gpu_cap_w).all() and p.throughput_cost == 0


def test_caps_meet_a_feasible_limit_lowest_priority_first_never_below_min(su):
    base = plan(su, 1e9).baseline_site_w
    p = plan(su, base - 20e3)
    assert p.meets_limit and p.shortfall_w == 0
    capped = ~np.isnan(p.gpu_cap_w)
    assert capped.any() and (p.gpu_cap_w[capped] >= su.gpu.min_cap_w[capped]).all()
    load, _ = busy_load(su)
    assert set(load.job[capped]) == {0}                # job-0 (priority 0) alone is enough
    assert not p.paused_jobs and 0 < p.throughput_cost < 0.25
    after = p.site_import_w[p.times_s >= p.deadline_s]
    assert (after <= p.limit_w * (1 + 1e-6)).all()
    assert (p.site_import_w[p.times_s < p.deadline_s - 1.0] == pytest.approx(base))  # nothing changes before


def test_pauses_jobs_when_min_caps_are_not_enough(su):
    base = plan(su, 1e9).baseline_site_w
    p = plan(su, base * 0.45)
    assert p.meets_limit, p.steps
    assert p.paused_jobs and p.paused_jobs[0] == "job-0"         # least useful work first
    assert p.lost_work_gpu_s == 0                                # 30 s checkpoint fits before the 60 s deadline
    capped = ~np.isnan(p.gpu_cap_w)
    assert (p.gpu_cap_w[capped] >= su.gpu.min_cap_w[capped]).all()
    # no time to checkpoint: work since the last checkpoint is lost and reported
    q = plan(su, base * 0.45, deadline_s=10.0)
    assert q.lost_work_gpu_s == pytest.approx(64 * 600.0 * len(q.paused_jobs))


def test_states_the_shortfall_when_the_limit_cannot_be_met(su):
    p = plan(su, 10e3)
    assert not p.meets_limit and p.meets_at_s is None
    floor = p.site_import_w[-1]
    assert p.shortfall_w == pytest.approx(floor - 10e3) and p.shortfall_w > 0
    assert set(p.paused_jobs) == {f"job-{j}" for j in range(4)} and p.throughput_cost == pytest.approx(1.0)
    assert any("short by" in s for s in p.steps)


def test_a_genset_never_contributes_before_its_start_delay(su):
    base = plan(su, 1e9).baseline_site_w
    gens = Sources(battery_ids=(), battery_power_w=np.zeros(0), battery_energy_j=np.zeros(0), genset_ids=("g",),
                   genset_power_w=np.array([100e3]), genset_start_delay_s=np.array([30.0]),
                   genset_ramp_w_per_s=np.array([10e3]))
    p = plan(su, base - 50e3, deadline_s=5.0, sources=gens)
    start = p.genset_start_s[0]
    assert start == 0.0                                   # needs more than the deadline allows: start now
    t = p.times_s
    # before start + delay, import equals what the caps alone give
    early = t < start + 30.0
    late = t >= start + 30.0 + 5.0
    assert p.meets_limit
    assert (p.site_import_w[late] < p.site_import_w[early & (t >= p.deadline_s)].max()).all()
    # with a long deadline the genset alone covers it, no caps
    q = plan(su, base - 50e3, deadline_s=120.0, sources=gens)
    assert np.isnan(q.gpu_cap_w).all() and q.meets_limit and q.throughput_cost == 0
    assert q.genset_start_s[0] == pytest.approx(120.0 - 30.0 - 5.0)
    before = q.times_s < q.genset_start_s[0] + 30.0
    assert np.allclose(q.site_import_w[before], base)


def test_battery_stays_within_power_and_energy(su):
    base = plan(su, 1e9).baseline_site_w
    bat = Sources(battery_ids=("b",), battery_power_w=np.array([40e3]), battery_energy_j=np.array([40e3 * 300.0]),
                  genset_ids=(), genset_power_w=np.zeros(0), genset_start_delay_s=np.zeros(0),
                  genset_ramp_w_per_s=np.zeros(0))
    p = plan(su, base - 30e3, duration_s=600.0, sources=bat)
    # energy for 300 s at 40 kW spread over 600 s: 20 kW available; the caps cover the other 10 kW
    assert p.battery_w[0] == pytest.approx(20e3)
    assert (~np.isnan(p.gpu_cap_w)).any() and p.meets_limit
    p = plan(su, base - 5e3, duration_s=600.0, sources=bat)
    assert p.battery_w[0] == pytest.approx(5e3) and np.isnan(p.gpu_cap_w).all()


@pytest.mark.parametrize(("kw", "match"), [({"limit_w": -1.0}, "limit_w"), ({"limit_w": float("nan")}, "limit_w"),
                                           ({"duration_s": 0.0}, "duration_s"), ({"deadline_s": -5.0}, "deadline_s")])
def test_invalid_requests_name_the_field(su, kw, match):
    args = {"limit_w": 1e5, "deadline_s": 10.0, "duration_s": 60.0} | kw
    load, jobs = busy_load(su)
    with pytest.raises(ValueError, match=match):
        plan_curtailment(load=load, jobs=jobs, sources=NO_SOURCES, site_power=lambda w: float(w.sum()), **args)


def test_idle_gpus_without_jobs_are_capped_first(su):
    load, jobs = busy_load(su)
    job = load.job.copy()
    job[:64] = -1                                          # job-0's GPUs are free (idle, no job)
    load = replace(load, job=job, tensor_active=np.where(job < 0, 0.0, load.tensor_active),
                   sm_active=np.where(job < 0, 0.0, load.sm_active), dram_active=np.where(job < 0, 0.0, load.dram_active))
    base = plan(su, 1e9, load=load, jobs=jobs).baseline_site_w
    p = plan(su, base - 3e3, load=load, jobs=jobs)
    capped = ~np.isnan(p.gpu_cap_w)
    # idle GPUs draw less than any cap (120 W < 200 W minimum): capping them saves nothing, so the
    # lowest-priority busy job (job-1) takes the cut and job-2 / job-3 keep their limits
    assert p.meets_limit and set(job[capped]) == {-1, 1} and p.throughput_cost > 0
