"""twin.core.scenarios' choices and documents without a running twin: which CDUs fail, which jobs cross a leaf
group, the landing candidates and job, the OpenADR event (read back by the power twin's own parser), the plan
summary, targets from the environment, the report as JSON, twinctl's parser; an unreachable broker is reported."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.core.facility import build_inventory, load_facility_spec
from twin.core.scenarios import (
    SCENARIOS,
    Report,
    Step,
    Targets,
    choose_cdus,
    crossing_jobs,
    landing_candidates,
    landing_spec,
    openadr_event,
    plan_summary,
    run_scenario,
)
from twin.jobs.v1 import jobs_pb2 as jpb
from twin.power.v1 import power_pb2 as ppb


def _loop(loop_id: str, cdus: list[str]) -> cpb.CoolingState:
    return cpb.CoolingState(entity_id=loop_id, scope=cpb.COOLING_SCOPE_LOOP, loop=cpb.LoopDetail(
        redundancy=cpb.REDUNDANCY_N_PLUS_1, cdu_ids=cdus, heat_w=900e3, capacity_if_one_fails_w=1.4e6))


def _outcome(racks: list[str], not_carrying: list[str]) -> cpb.WhatIfOutcome:
    return cpb.WhatIfOutcome(racks=[cpb.RackThrottle(rack_id=r, time_to_throttle_s=60.0) for r in racks],
                             loops_not_carrying=not_carrying)


def _choose(answers: dict[tuple[str, ...], cpb.WhatIfOutcome], baseline: set[str] = frozenset()):
    asked: list[tuple[str, ...]] = []

    async def whatif(cdus):
        asked.append(tuple(cdus))
        return answers.get(tuple(cdus), cpb.WhatIfOutcome())

    loops = [_loop("loop-b", ["cdu-b-1", "cdu-b-2"]), _loop("loop-a", ["cdu-a-1", "cdu-a-2"])]
    return asyncio.run(choose_cdus(loops, set(baseline), whatif)), asked


ROW_A = [f"a-{i:04d}" for i in range(8)]


def test_an_n_plus_1_loop_carries_one_loss_so_both_cdus_of_the_first_loop_fail():
    # one CDU down: the loop carries, but a hot rack throttles anyway -- not a CDU the loop cannot carry
    (cdus, _, racks, why), asked = _choose({("cdu-a-1",): _outcome(["a-0003"], []),
                                            ("cdu-a-1", "cdu-a-2"): _outcome(ROW_A, ["loop-a"])})
    assert cdus == ["cdu-a-1", "cdu-a-2"] and racks == ROW_A
    assert "every CDU of loop-a" in why and "N+1" in why
    assert asked[:4] == [("cdu-a-1",), ("cdu-a-2",), ("cdu-b-1",), ("cdu-b-2",)]  # loops in id order


def test_a_single_cdu_whose_loop_cannot_carry_it_is_enough():
    (cdus, _, racks, why), _ = _choose({("cdu-a-2",): _outcome(["a-0001", "a-0002"], ["loop-a"])})
    assert cdus == ["cdu-a-2"] and racks == ["a-0001", "a-0002"] and "cannot carry" in why


def test_racks_already_throttling_are_not_what_the_failure_causes():
    (cdus, _, racks, _), _ = _choose({("cdu-a-1", "cdu-a-2"): _outcome(ROW_A, ["loop-a"])}, baseline={"a-0004"})
    assert cdus == ["cdu-a-1", "cdu-a-2"] and racks == [r for r in ROW_A if r != "a-0004"]
    (cdus, _, racks, why), _ = _choose({("cdu-a-1", "cdu-a-2"): _outcome(["a-0004"], ["loop-a"])},
                                       baseline={"a-0004"})
    assert cdus == [] and racks == [] and "no CDU loss" in why


def _job(job_id: str, nodes: list[str]) -> jpb.JobState:
    return jpb.JobState(job_id=job_id, placement=jpb.Placement(node_ids=nodes))


def test_jobs_crossing_a_leaf_group_span_it_and_another():
    inv = build_inventory(load_facility_spec("gb200-nvl72-hall"))  # 18 nodes per leaf group = one rack

    def group(n: str) -> int:
        return int(inv.node_leaf_group[inv.node_index[n]])

    jobs = [_job("inside", ["a-0001-n00", "a-0001-n17"]), _job("across", ["a-0001-n17", "a-0002-n00"]),
            _job("elsewhere", ["b-0000-n00", "b-0001-n00"])]
    assert crossing_jobs(jobs, group, 1) == ["across"]
    assert crossing_jobs(jobs, group, 2) == ["across"]
    assert crossing_jobs(jobs, group, 8) == ["elsewhere"]
    assert crossing_jobs(jobs, group, 5) == []


def test_landing_candidates_count_only_free_gpus_and_the_job_is_whole_units():
    inv = build_inventory(load_facility_spec("gb200-nvl72-hall"))
    held = {f"a-0000-n{i:02d}" for i in range(18)} | {"b-0007-n00"}
    cands = {c: (racks, free) for c, racks, free in landing_candidates(inv, held)}
    assert set(cands) == {"row-a", "row-b", "mixed-rows"}
    assert cands["row-a"] == (ROW_A, 7 * 72) and cands["row-b"][1] == 8 * 72 - 4
    assert cands["mixed-rows"] == (ROW_A[:4] + [f"b-{i:04d}" for i in range(4)], 7 * 72)
    spec = landing_spec(496, 4, "B200-GB200")
    p = spec.parallel
    assert (p.tp, p.pp, p.dp) == (4, 4, 31) and spec.n_gpus == 496 == p.tp * p.pp * p.dp
    assert landing_spec(4096, 8, "H100-SXM").parallel.tp == 8


def test_the_openadr_event_is_one_the_power_twin_accepts():
    from twin.power.adapters.openadr import parse_event

    start = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    doc = openadr_event("twin-scenario-grid-curtailment-1", 1234.5678, start, 1800)
    event = parse_event(json.loads(json.dumps(doc)))
    assert event.event_id == "twin-scenario-grid-curtailment-1"
    (interval,) = event.intervals
    assert interval.import_limit_kw == pytest.approx(1234.568)
    assert interval.duration_s == 1800


def test_plan_summary_reports_the_import_after_the_deadline():
    plan = ppb.CurtailmentPlan(plan_id="p", event_id="e", limit_w=1e6, deadline_offset_s=600, duration_s=1800,
                               baseline_site_power_w=1.25e6, cap_w=[500.0, 700.0], paused_job_ids=["j1"],
                               timeline_offset_s=[0, 300, 600, 900], timeline_site_import_w=[1.25e6, 1.2e6, 1.1e6, 1.0e6],
                               meets_limit=False, shortfall_w=1e5, throughput_cost=0.12,
                               sources=[ppb.SourceDispatch(kind=ppb.SOURCE_KIND_BATTERY, source_id="bess-1",
                                                           power_w=2e5, start_offset_s=600)])
    s = plan_summary(plan)
    assert s["max_import_after_deadline_w"] == 1.1e6 and s["meets_at_offset_s"] is None
    assert (s["capped_gpus"], s["cap_w_min"], s["cap_w_max"]) == (2, 500.0, 700.0)
    assert s["sources"] == [{"kind": "SOURCE_KIND_BATTERY", "id": "bess-1", "power_w": 2e5, "start_offset_s": 600}]
    assert s["paused_job_ids"] == ["j1"] and json.dumps(s)


def test_targets_default_to_the_stack_and_follow_env_then_flags():
    t = Targets.from_env({})
    assert (t.bootstrap, t.power, t.power_http, t.cooling, t.jobs, t.fabric) == (
        "127.0.0.1:9092", "127.0.0.1:50054", "http://127.0.0.1:8082", "127.0.0.1:50055", "127.0.0.1:50056",
        "127.0.0.1:50053")
    env = {"TWIN_KAFKA_BOOTSTRAP": "k:1", "TWINCTL_JOBS_TARGET": "j:2", "TWIN_STACK_TOKEN": "stack",
           "TWIN_FACILITY": "gb200-nvl72-hall"}
    t = Targets.from_env(env, jobs="flag:3", token=None)
    assert (t.bootstrap, t.jobs, t.token, t.facility) == ("k:1", "flag:3", "stack", "gb200-nvl72-hall")
    assert Targets.from_env({**env, "TWINCTL_TOKEN": "ctl"}).token == "ctl"


def test_report_is_json_and_ok_only_when_every_step_is():
    r = Report("x", "2026-11-29T00:00:00Z", [Step("a", "t", 0.1, True, "fine", {"v": float("nan")}),
                                               Step("b", "t", 0.2, False, "timed out")])
    d = json.loads(json.dumps(r.to_dict()))
    assert d["ok"] is False and [s["name"] for s in d["steps"]] == ["a", "b"]
    assert not Report("y", "t").ok and set(SCENARIOS) == {"cdu-failure", "grid-curtailment", "spine-failure",
                                                          "job-landing"}


def test_an_unknown_scenario_and_an_unreachable_broker():
    from twin.core.embedded.kafka import free_port

    with pytest.raises(KeyError):
        asyncio.run(run_scenario("nope", Targets()))
    t = Targets(bootstrap=f"127.0.0.1:{free_port()}", step_timeout_s=5.0)
    report = asyncio.run(run_scenario("grid-curtailment", t))
    assert not report.ok and report.steps[-1].name == "connect" and t.bootstrap in report.steps[-1].summary


def test_twinctl_parses_the_scenario_commands():
    from twinctl.__main__ import build_parser

    a = build_parser().parse_args(["scenario", "run", "cdu-failure", "--json", "--keep", "--step-timeout", "30",
                                   "--cooling", "h:1"])
    assert (a.service, a.cmd, a.name, a.json, a.keep, a.step_timeout, a.cooling) == (
        "scenario", "run", "cdu-failure", True, True, 30.0, "h:1")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["scenario", "run", "no-such"])


def test_a_single_row_is_offered_whole_and_in_halves():
    inv = build_inventory(load_facility_spec("dgx-h100-su"))
    cands = {c: (len(racks), free) for c, racks, free in landing_candidates(inv, {"su1-0000-n00"})}
    row = inv.racks[0].row_id
    assert cands == {f"row-{row}": (8, 248), f"row-{row}-first-half": (4, 120), f"row-{row}-second-half": (4, 128)}
