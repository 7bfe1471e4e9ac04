"""When a job's state is published again: what it shows changing publishes at once (status, placement,
prediction, flags), a change that is only progress (measured step time, tokens/s, running error) at most
every ``progress_publish_s`` and then with the latest values, a job's first measurement at once, and a
running job at least every ``republish_s``."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from test_jobs_dirty import JOBS, SITE, SPEC, T0, setup  # same directory (rootdir-relative import)

from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.live import JobTwin, TwinSettings


def _progress(twin: JobTwin, job_id: str, t: float, step_time_s: float, step: int) -> None:
    twin.apply(JobEvent(job_id, EventKind.PROGRESS, t, step=step, step_time_s=step_time_s))
    twin.progress(job_id)


def _published(eng, clock, dt: float = 1.0) -> list[str]:
    """The jobs whose state the refresh at clock + dt publishes."""
    n0 = eng.stats.states_published
    clock.t += dt
    out: list[str] = []
    orig = eng._emit

    async def capture(states, recs):
        out.extend(s.job_id for s in states)
        await orig(states, recs)

    eng._emit = capture
    asyncio.run(eng.refresh())
    eng._emit = orig
    assert eng.stats.states_published - n0 == len(out)
    return sorted(out)


def test_progress_alone_is_coalesced_and_published_with_the_latest_values():
    twin, eng, clock, _ = setup()
    assert twin.settings.progress_publish_s == 5.0
    assert _published(eng, clock) == []
    # the first measurement publishes at once
    pred = twin.jobs["j"].prediction.step_time_s
    _progress(twin, "j", clock.t + 0.5, pred, 10)
    assert _published(eng, clock) == ["j"]
    # then progress every second: nothing until 5 s after the last publish, then once, with the latest value
    seen = []
    for k in range(1, 12):
        _progress(twin, "j", clock.t + 0.5, pred * (1.0 + 0.001 * k), 10 + k)
        seen.append(_published(eng, clock))
    pub = [i for i, p in enumerate(seen) if p == ["j"]]
    assert pub == [4, 9], seen                      # at +5 s and +10 s after the first publish
    # published with the latest value at the time (k = 10), not the one of the first coalesced report
    assert twin.jobs["j"].published_progress[0] == pred * (1.0 + 0.001 * 10)
    assert twin.book.jobs["j"].measured_step_time_s == pred * (1.0 + 0.001 * 11)  # pending: the next window
    # with no further report the pending value goes out when its window ends (not at the 30 s republish)
    assert _published(eng, clock) == []
    assert _published(eng, clock, 3.0) == ["j"]
    assert twin.jobs["j"].published_progress[0] == pred * (1.0 + 0.001 * 11)


def test_a_flag_or_status_change_publishes_at_once():
    twin, eng, clock, _ = setup()
    pred = twin.jobs["k"].prediction.step_time_s
    _progress(twin, "k", clock.t + 0.5, pred, 1)
    assert _published(eng, clock) == ["k"]
    assert not any(f.kind == "slower_than_predicted" for f in twin.jobs["k"].flags)
    # 3x the prediction: the slower-than-predicted flag appears -> published within the same second
    _progress(twin, "k", clock.t + 0.5, 3.0 * pred, 2)
    assert _published(eng, clock) == ["k"]
    assert any(f.kind == "slower_than_predicted" for f in twin.jobs["k"].flags)
    twin.apply(JobEvent("k", EventKind.FINISHED, clock.t + 0.5))
    assert _published(eng, clock) == ["k"]


def test_a_zero_coalescing_window_publishes_every_progress():
    twin = JobTwin(SITE, TwinSettings(progress_publish_s=0.0))
    assert replace(TwinSettings(), progress_publish_s=0.0) == twin.settings
    for job_id, nodes in JOBS.items():
        twin.apply(JobEvent(job_id, EventKind.SUBMITTED, T0, spec=SPEC))
        twin.apply(JobEvent(job_id, EventKind.STARTED, T0 + 1, nodes=nodes, n_gpus=SPEC.n_gpus))
    _, eng, clock, _ = setup()
    eng.twin = twin
    for k in range(4):
        _progress(twin, "m", clock.t + 0.5, 1.0 + 0.01 * k, k + 1)  # (flagged slower: the slowdown moves too)
        assert "m" in _published(eng, clock)


def test_a_cooling_clear_unflags_the_job_at_once_and_an_older_clear_does_not():
    from twin.cooling.v1 import cooling_pb2 as cpb
    from twin.jobs.adapters.codec import thermal_alert
    from twin.jobs.live import ThermalClear

    twin, eng, clock, _ = setup()
    now = clock.t
    raise_msg = cpb.CoolingAlert(alert_id="a1", entity_id="su1-0004", kind=cpb.ALERT_KIND_THROTTLE_PREDICTED,
                                 time_to_throttle_s=0.0)
    raise_msg.alert_time.FromSeconds(int(now))
    twin.add_thermal(thermal_alert(raise_msg, now))
    assert _published(eng, clock) == ["k"]
    assert [f.kind for f in twin.jobs["k"].flags] == ["thermal_throttle"]
    # a clear older than the alert (out of order) changes nothing
    twin.add_thermal(ThermalClear("su1-0004", now - 10))
    assert _published(eng, clock) == [] and twin.jobs["k"].flags
    clear = cpb.CoolingAlert(alert_id="c1", entity_id="su1-0004", kind=cpb.ALERT_KIND_THROTTLE_PREDICTED,
                             cleared=True)
    clear.alert_time.FromSeconds(int(clock.t))
    decoded = thermal_alert(clear, clock.t)
    assert decoded == ThermalClear("su1-0004", float(int(clock.t)))
    twin.add_thermal(decoded)
    assert _published(eng, clock) == ["k"]                     # the state change: the flag is gone, within 1 s
    assert not twin.jobs["k"].flags and "su1-0004" not in twin.thermal


def test_the_slower_flag_clears_when_the_measurement_comes_back():
    twin, eng, clock, _ = setup()
    pred = twin.jobs["m"].prediction.step_time_s
    twin.apply(JobEvent("m", EventKind.PROGRESS, clock.t + 0.5, step=1, step_time_s=2.0 * pred))
    twin.progress("m")
    assert _published(eng, clock) == ["m"]
    assert [f.kind for f in twin.jobs["m"].flags] == ["slower_than_predicted"]
    # the running mean of measured / predicted stays high, but the flag follows the latest report
    twin.apply(JobEvent("m", EventKind.PROGRESS, clock.t + 0.5, step=2, step_time_s=pred))
    twin.progress("m")
    assert _published(eng, clock) == ["m"]                     # published at once, not after the 5 s window
    assert not twin.jobs["m"].flags


def test_cap_and_link_flags_clear_with_their_cause_as_published_state_changes():
    from twin.jobs.live import CapPlan, LinkHealth

    twin, eng, clock, _ = setup()
    m_gpus = sorted(twin._place["m"][3])
    twin.add_plan(CapPlan("p1", "ev1", clock.t, clock.t + 5, {g: 300.0 for g in m_gpus}))
    assert _published(eng, clock) == ["m"]
    assert "power_cap" in {f.kind for f in twin.jobs["m"].flags}
    assert _published(eng, clock, 5.0) == ["m"]                # the plan ended: flag gone, published at once
    assert "power_cap" not in {f.kind for f in twin.jobs["m"].flags}
    twin.set_links({"leaf-r0-g2/spine0": LinkHealth(0.5)})
    assert "m" in _published(eng, clock)
    assert "degraded_link" in {f.kind for f in twin.jobs["m"].flags}
    twin.set_links({})                                          # repaired (fabric.state.v1 lists it healthy)
    assert "m" in _published(eng, clock)
    assert "degraded_link" not in {f.kind for f in twin.jobs["m"].flags}
