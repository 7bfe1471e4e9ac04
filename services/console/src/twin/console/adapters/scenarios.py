"""The console's scenario buttons (demo mode only): run one `twin.core.scenarios` scenario at a time in the
background and put its steps, as they conclude, into the `LiveState` (so every browser sees them on its
event stream, with the rest of the picture).

    runner = ScenarioRunner(state, Targets(...))
    runner.start("cdu-failure")             # -> the run's public dict; Busy while another one runs
    runner.start("cdu-failure", action="restore")   # undo it (repair the CDUs, cancel the grid event, ...)

A button run keeps its effect (`restore=False`, like `twinctl scenario run --keep`) so the page shows
what changed; the restore button undoes it. The scenario logic is the kit's (twin.core.scenarios), the
same `twinctl scenario` runs; the console only starts it and relays what it reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twin.console.domain.live import LiveState
from twin.core.scenarios import SCENARIOS, Report, Step, Targets, run_scenario

log = logging.getLogger("twin.console.scenarios")

ACTIONS = ("run", "restore")
RunScenario = Callable[..., Awaitable[Report]]


class Busy(Exception):
    """Another scenario run is in progress (its public dict is `current`)."""

    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__(f"scenario {current.get('name')} ({current.get('action')}) is still running")
        self.current = current


def step_dict(step: Step) -> dict[str, Any]:
    """What the page shows of a step: no `data` (it can be large; `twinctl scenario run --json` has it)."""
    return {"name": step.name, "at": step.at, "elapsed_s": step.elapsed_s, "ok": step.ok, "summary": step.summary}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class ScenarioRunner:
    state: LiveState
    targets: Targets
    run_scenario: RunScenario = run_scenario
    task: asyncio.Task | None = None
    runs: int = 0
    last_report: dict[str, Any] | None = None     # the full report (with step data) of the last finished run
    _current: dict[str, Any] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    @staticmethod
    def catalogue() -> list[dict[str, str]]:
        return [{"name": n, "description": s.description} for n, s in SCENARIOS.items()]

    @staticmethod
    def catalogue_names() -> list[str]:
        return list(SCENARIOS)

    def start(self, name: str, *, action: str = "run") -> dict[str, Any]:
        """Start `name` in the background; KeyError for an unknown name or action, Busy while one runs."""
        if name not in SCENARIOS:
            raise KeyError(f"unknown scenario {name!r} (one of {', '.join(SCENARIOS)})")
        if action not in ACTIONS:
            raise KeyError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
        if self.busy:
            raise Busy(dict(self._current))
        self.runs += 1
        run_id = uuid.uuid4().hex[:12]
        self._current = {"id": run_id, "name": name, "action": action, "status": "running",
                         "started_at": _now_iso()}
        self.state.set_scenario(self._current)
        self.task = asyncio.create_task(self._go(run_id, name, action), name=f"scenario:{name}:{action}")
        return dict(self._current)

    async def _go(self, run_id: str, name: str, action: str) -> None:
        t0 = time.monotonic()

        def on_step(step: Step) -> None:
            self.state.scenario_step(run_id, step_dict(step))

        try:
            report = await self.run_scenario(name, self.targets, on_step=on_step, restore=action == "restore",
                                             only_restore=action == "restore")
        except asyncio.CancelledError:
            self.state.finish_scenario(run_id, status="cancelled", finished_at=_now_iso())
            raise
        except Exception as exc:  # noqa: BLE001 - a scenario that crashes is reported on the page, never kills the console
            log.exception("scenario %s (%s) crashed", name, action)
            self.state.finish_scenario(run_id, status="failed", finished_at=_now_iso(),
                                       error=f"{exc.__class__.__name__}: {exc}")
            self._current.update(status="failed")
            return
        self.last_report = report.to_dict()
        status = "ok" if report.ok else "failed"
        self._current.update(status=status)
        self.state.finish_scenario(run_id, status=status, finished_at=_now_iso(),
                                   duration_s=round(time.monotonic() - t0, 3))
        log.info("scenario %s (%s) %s in %.1f s", name, action, status, time.monotonic() - t0)

    async def stop(self) -> None:
        if self.busy and self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
