"""The console's scenario runner and the live picture's scenario part (pure parts; the HTTP routes and a
real scenario run are in tests/integration/test_console.py and tests/e2e/test_console_browser.py)."""

from __future__ import annotations

import asyncio

import pytest

from twin.console.adapters.scenarios import Busy, ScenarioRunner, step_dict
from twin.console.domain.live import LiveState
from twin.core.scenarios import Report, Step, Targets


def test_scenario_changes_go_out_once_and_only_for_the_current_run() -> None:
    s = LiveState()
    assert s.take_changes() is None and s.snapshot()["scenario"] is None
    s.set_scenario({"id": "r1", "name": "cdu-failure", "action": "run", "status": "running"})
    first = s.take_changes()
    assert first["scenario"]["status"] == "running" and first["scenario"]["steps"] == []
    assert s.take_changes() is None   # sent once
    assert s.scenario_step("r1", {"name": "choose"}) and not s.scenario_step("old", {"name": "x"})
    assert s.take_changes()["scenario"]["steps"] == [{"name": "choose"}]
    assert s.finish_scenario("r1", status="ok") and not s.finish_scenario("old", status="failed")
    change = s.take_changes()
    assert change["scenario"]["status"] == "ok" and change["sections"] == {} and change["events"] == []
    assert s.snapshot()["scenario"]["steps"] == [{"name": "choose"}]


def fake_run(gate: asyncio.Event, *, fail: Exception | None = None):
    calls = []

    async def run(name, targets, *, on_step=None, restore=True, only_restore=False):
        calls.append((name, restore, only_restore))
        report = Report(name, "2026-11-29T10:00:00.000Z")
        step = Step("choose", "2026-11-29T10:00:01.250Z", 1.25, True, "picked cdu-a-1", {"big": list(range(1000))})
        report.steps.append(step)
        on_step(step)
        await gate.wait()
        if fail:
            raise fail
        return report

    return run, calls


async def test_one_run_at_a_time_steps_relayed_and_restore_is_only_restore() -> None:
    gate = asyncio.Event()
    run, calls = fake_run(gate)
    state = LiveState()
    runner = ScenarioRunner(state, Targets(), run_scenario=run)
    started = runner.start("cdu-failure")
    await asyncio.sleep(0)
    with pytest.raises(Busy) as busy:
        runner.start("grid-curtailment")
    assert busy.value.current["id"] == started["id"]
    assert state.scenario["steps"] == [{"name": "choose", "at": "2026-11-29T10:00:01.250Z", "elapsed_s": 1.25,
                                        "ok": True, "summary": "picked cdu-a-1"}]   # no step data on the page
    gate.set()
    await runner.task
    assert state.scenario["status"] == "ok" and runner.last_report["steps"][0]["data"]["big"][-1] == 999
    runner.start("cdu-failure", action="restore")
    await runner.task
    assert calls == [("cdu-failure", False, False), ("cdu-failure", True, True)]
    with pytest.raises(KeyError, match="unknown scenario"):
        runner.start("meteor-strike")
    with pytest.raises(KeyError, match="unknown action"):
        runner.start("cdu-failure", action="explode")
    assert runner.runs == 2


async def test_a_crashing_scenario_is_reported_and_a_stop_cancels_the_run() -> None:
    gate = asyncio.Event()
    gate.set()
    run, _ = fake_run(gate, fail=RuntimeError("boom"))
    state = LiveState()
    runner = ScenarioRunner(state, Targets(), run_scenario=run)
    runner.start("job-landing")
    await runner.task   # the runner catches it: the console keeps running
    assert state.scenario["status"] == "failed" and state.scenario["error"] == "RuntimeError: boom"
    assert not runner.busy

    hold = asyncio.Event()
    run, _ = fake_run(hold)
    runner = ScenarioRunner(state, Targets(), run_scenario=run)
    runner.start("job-landing")
    await asyncio.sleep(0.01)
    await runner.stop()
    assert state.scenario["status"] == "cancelled" and not runner.busy


def test_step_dict_keeps_what_the_page_shows() -> None:
    assert step_dict(Step("inject", "t", 0.5, False, "refused", {"x": 1})) == {
        "name": "inject", "at": "t", "elapsed_s": 0.5, "ok": False, "summary": "refused"}
