"""The PROGRESS fast path (``codec.progress_report`` + ``JobTwin.apply_progress``, what the events handler runs for
the hottest event) decides exactly as the general path (``codec.job_event`` + ``JobTwin.apply``): the same fields,
the same refusals (the fast path hands what it would not take to the general path), the same book afterwards."""

from __future__ import annotations

import itertools
import math

import pytest
from test_jobs_dirty import JOBS, SPEC, T0, setup  # same directory (rootdir-relative import)

from twin.jobs.adapters import codec
from twin.jobs.adapters.codec import InvalidMessage
from twin.jobs.domain.book import EventRejected
from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.v1 import jobs_pb2 as pb


def _msg(job_id="j", kind=pb.JOB_EVENT_KIND_PROGRESS, seconds=int(T0) + 20, nanos=250_000_000, step=7,
         step_time=1.25, tokens=0.0, cause=0, spec=False, placement=False, time=True) -> pb.JobEvent:
    m = pb.JobEvent(job_id=job_id, kind=kind, step=step, measured_step_time_s=step_time,
                    measured_tokens_per_s=tokens, failure_cause=cause, source="test", cluster="c", user="u")
    if time:
        m.event_time.seconds, m.event_time.nanos = seconds, nanos
    if spec:
        m.spec.CopyFrom(codec.spec_to_proto(SPEC, {}))
    if placement:
        m.placement.node_ids.append("su1-0000-n00")
    return m


MESSAGES = [
    _msg(), _msg(tokens=5e4, step_time=0.0), _msg(step_time=0.0, tokens=0.0), _msg(step_time=math.nan),
    _msg(step_time=math.inf), _msg(step_time=-1.0, tokens=3.0), _msg(job_id=""), _msg(time=False),
    _msg(nanos=-1), _msg(nanos=1_000_000_000), _msg(seconds=-62135596801), _msg(seconds=253402300800),
    _msg(seconds=253402300799, nanos=999_999_999), _msg(cause=pb.FAILURE_CAUSE_NODE), _msg(cause=999),
    _msg(spec=True), _msg(placement=True), _msg(kind=pb.JOB_EVENT_KIND_CHECKPOINTED), _msg(kind=pb.JOB_EVENT_KIND_UNSPECIFIED),
    _msg(kind=77),
]


@pytest.mark.parametrize("msg", MESSAGES)
def test_the_fast_decode_gives_the_general_decodes_fields_or_leaves_the_record_to_it(msg) -> None:
    fast = codec.progress_report(msg)
    try:
        ev, gpus = codec.job_event(msg)
    except InvalidMessage:
        assert fast is None  # refused: the general path says why
        return
    if fast is None:  # not the fast path's kind of event (spec, placement, another kind)
        assert ev.kind != EventKind.PROGRESS or msg.HasField("spec") or msg.HasField("placement")
        return
    assert not gpus
    assert fast == (ev.job_id, ev.time_s, ev.step, ev.step_time_s, ev.tokens_per_s)
    assert type(fast[1]) is float and fast[1] == ev.time_s  # bit for bit


def _outcome(twin, job_id, time_s, step, step_time, tokens, fast: bool):
    try:
        if fast:
            changed = twin.apply_progress(job_id, time_s, step, step_time, tokens)
        else:
            changed = twin.apply(JobEvent(job_id, EventKind.PROGRESS, time_s, step=step, step_time_s=step_time,
                                          tokens_per_s=tokens))
    except EventRejected as exc:
        return ("rejected", str(exc))
    return ("changed" if changed else "replay",)


def test_the_fast_book_change_and_refusals_are_the_general_ones() -> None:
    fast_twin, _, _, _ = setup()
    slow_twin, _, _, _ = setup()
    for twin in (fast_twin, slow_twin):   # a job that ended and one that never started
        twin.apply(JobEvent("k", EventKind.FINISHED, T0 + 5))
        twin.apply(JobEvent("p", EventKind.SUBMITTED, T0 + 2, spec=SPEC))
    reports = [(job, T0 + t, step, st, tok) for job, t, step, (st, tok) in itertools.product(
        ("j", "k", "m", "p", "nope"), (20.0, 20.0, 19.0, 25.0, 5.0), (3, 9, 2), ((1.5, 0.0), (0.0, 4e4)))]
    for job, t, step, st, tok in reports:
        got = _outcome(fast_twin, job, t, step, st, tok, fast=True)
        want = _outcome(slow_twin, job, t, step, st, tok, fast=False)
        assert got == want, (job, t, step)
        assert fast_twin.book.jobs.get(job) == slow_twin.book.jobs.get(job)
    assert fast_twin.book.jobs == slow_twin.book.jobs and set(fast_twin.book.running_ids()) == set(
        slow_twin.book.running_ids())
    assert fast_twin._touched == slow_twin._touched and fast_twin._due_at == slow_twin._due_at
    assert set(JOBS) - {"k"} <= set(fast_twin.book.running_ids())


def test_the_slower_than_predicted_flag_from_the_short_path_is_the_general_forms() -> None:
    """``_measure``'s short path (no flag but this one, no health flag) raises, moves and clears the flag as the
    general form does; with a health flag the general form names it as the cause."""
    from twin.jobs.live import SLOWER, STRAGGLER, Flag

    twin, _, _, _ = setup()
    live = twin.jobs["j"]
    pred = live.prediction.step_time_s
    margin = twin.settings.margin
    for step, ratio in enumerate((1.0, 1.0 + margin * 2, 1.0 + margin * 3, 1.0 + margin / 2, 1.0 + margin * 2), 1):
        assert twin.apply_progress("j", T0 + 20 + step, step, pred * ratio, 0.0, schedule=False)
        (_, got_live, n_before), = twin.progress_many(["j"])
        assert got_live is live and live.error_n == n_before + 1
        r = live.last_ratio
        assert r == pytest.approx(ratio)
        if r > 1.0 + margin:
            assert live.flags == (Flag(SLOWER, "j", r - 1.0, f"measured {r:.2f}x the predicted step time; no cause "
                                                             "the twin can see (a straggler node, software or input "
                                                             "pipeline)"),)
        else:
            assert live.flags == ()
    straggler = Flag(STRAGGLER, "node-x", 0.0, "lags")
    live.health = (straggler,)
    assert twin.apply_progress("j", T0 + 40, 40, pred * (1.0 + margin * 2), 0.0)
    twin.progress("j")
    r = live.last_ratio
    assert live.flags == (straggler, Flag(SLOWER, "node-x", r - 1.0, f"measured {r:.2f}x the predicted step time; "
                                                                    "likeliest cause: straggler on node-x (lags)"))
