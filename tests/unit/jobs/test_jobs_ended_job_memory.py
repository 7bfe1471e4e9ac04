"""An ended job keeps its record and accounts, and nothing it was predicted with: a twin running for months sees
every job end, and each kept prediction, communication answer and detail text would stay for as long as it runs."""

from __future__ import annotations

import asyncio
import gc

from test_jobs_dirty import setup  # same directory (rootdir-relative import)

from twin.core.facility.spec import FacilitySpec
from twin.jobs.adapters import codec
from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.domain.step import StepPrediction
from twin.jobs.live import CommAnswer


def _reachable(root: object) -> list[object]:
    """Every object reachable from root through containers and instances (not through classes, modules, the site)."""
    seen, out, todo = set(), [], [root]
    while todo:
        o = todo.pop()
        if id(o) in seen or isinstance(o, (type, FacilitySpec)) or type(o).__name__ == "module":
            continue
        seen.add(id(o))
        out.append(o)
        todo.extend(gc.get_referents(o))
    return out


def test_an_ended_job_keeps_its_accounts_but_nothing_it_was_predicted_with() -> None:
    twin, eng, clock, _ = setup()
    live = twin.jobs["j"]
    assert live.prediction is not None and live.comm is not None
    assert live.sig_of is live.prediction   # the refresh that published the prediction read its step time
    for _ in range(3):   # it runs a while: energy accrues
        clock.t += 5.0
        asyncio.run(eng.refresh())
    energy = live.energy_j
    assert energy > 0
    clock.t += 1.0
    twin.apply(JobEvent("j", EventKind.FINISHED, clock.t))
    asyncio.run(eng.refresh())
    published = eng.stats.states_published
    kept = [type(o).__name__ for o in _reachable(live) if isinstance(o, (StepPrediction, CommAnswer))]
    assert kept == []
    assert live.comm_detail == "" and live.inputs is None and live.flags == ()
    # what its state shows stays: the record, its energy, and it is not published again for the forgetting
    view = twin.view("j")
    assert view is not None and view.rec.status == "finished"
    state = codec.view_to_proto(view, clock.t, tariff_usd_per_kwh=0.1, carbon_kg_per_kwh=0.4)
    assert state.energy_j == live.energy_j >= energy and state.comm_source == 0
    clock.t += 1.0
    asyncio.run(eng.refresh())
    assert eng.stats.states_published == published
    # the running jobs keep theirs
    assert twin.jobs["k"].prediction is not None and twin.jobs["k"].comm is not None
