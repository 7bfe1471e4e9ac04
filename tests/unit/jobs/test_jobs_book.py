"""The job book: lifecycle from events, bad input rejected with a reason, replays idempotent."""

from __future__ import annotations

import pytest

from twin.core.validation_data import feed_bytes
from twin.jobs.adapters.slurm import parse_sacct, parse_slurm_json, sort_events
from twin.jobs.domain.book import EventRejected, Facility, JobBook, JobStatus, apply_event
from twin.jobs.domain.events import EventKind, FailureCause, JobEvent
from twin.jobs.domain.spec import JobSpec, ModelShape, Parallelism, TrainingSetup

FAC = Facility({f"n{i}": 8 for i in range(4)})
SPEC = JobSpec(ModelShape(layers=4, hidden=512, ffn_hidden=2048, heads=8, kv_heads=8, vocab=1000, seq_len=256),
               Parallelism(tp=8, dp=2), TrainingSetup(micro_batch=1, global_batch=8))


def ev(job: str, kind: EventKind, t: float, **kw) -> JobEvent:
    return JobEvent(job_id=job, kind=kind, time_s=t, **kw)


def run(events, facility=FAC) -> JobBook:
    book = JobBook()
    for e in events:
        book = apply_event(book, e, facility)
    return book


def test_lifecycle_and_node_release() -> None:
    book = run([ev("a", EventKind.SUBMITTED, 1, spec=SPEC),
                ev("a", EventKind.STARTED, 2, nodes=("n0", "n1"), n_gpus=16),
                ev("a", EventKind.PROGRESS, 3, step=10, step_time_s=1.5, tokens_per_s=2e5),
                ev("a", EventKind.CHECKPOINTED, 4)])
    rec = book.jobs["a"]
    assert rec.status == JobStatus.RUNNING and rec.measured_step_time_s == 1.5 and rec.checkpoints == 1
    assert book.holders["n0"] == {"a": 8}
    book = apply_event(book, ev("a", EventKind.FAILED, 5, cause=FailureCause.GPU_XID), FAC)
    assert book.jobs["a"].status == JobStatus.FAILED and book.jobs["a"].failure_cause == FailureCause.GPU_XID
    assert dict(book.holders) == {}


@pytest.mark.parametrize("events, reason", [
    ([ev("x", EventKind.STARTED, 1, nodes=("n0",), n_gpus=8)], "unknown job"),
    ([ev("a", EventKind.SUBMITTED, 1), ev("a", EventKind.STARTED, 2, nodes=("n9",), n_gpus=8)], "unknown node"),
    ([ev("a", EventKind.SUBMITTED, 1), ev("a", EventKind.STARTED, 2, nodes=("n0",), n_gpus=16)], "holding 8"),
    ([ev("a", EventKind.SUBMITTED, 1), ev("a", EventKind.STARTED, 2, nodes=("n0",), n_gpus=8),
      ev("b", EventKind.SUBMITTED, 1), ev("b", EventKind.STARTED, 3, nodes=("n0",), n_gpus=4)], "taken"),
    ([ev("a", EventKind.SUBMITTED, 1, spec=SPEC), ev("a", EventKind.STARTED, 2, nodes=("n0",), n_gpus=8)],
     "spec needs 16"),
    ([ev("a", EventKind.SUBMITTED, 1), ev("a", EventKind.PROGRESS, 2, step_time_s=1.0)], "pending"),
    ([ev("a", EventKind.SUBMITTED, 1), ev("a", EventKind.STARTED, 2, nodes=("n0",), n_gpus=8),
      ev("a", EventKind.FINISHED, 3), ev("a", EventKind.PROGRESS, 4, step_time_s=1.0)], "already finished"),
])
def test_bad_events_are_rejected_with_a_reason(events, reason) -> None:
    with pytest.raises(EventRejected, match=reason):
        run(events)


def test_replays_are_idempotent_and_gpus_are_shared_by_count() -> None:
    events = [ev("a", EventKind.SUBMITTED, 1), ev("a", EventKind.STARTED, 2, nodes=("n0",), n_gpus=4),
              ev("b", EventKind.SUBMITTED, 1), ev("b", EventKind.STARTED, 2, nodes=("n0",), n_gpus=4)]
    book = run(events)
    assert run(events + events).jobs == book.jobs  # at-least-once delivery: the same book
    assert book.holders["n0"] == {"a": 4, "b": 4}


def test_requeue_after_preemption_counts_a_restart() -> None:
    book = run([ev("a", EventKind.SUBMITTED, 1), ev("a", EventKind.STARTED, 2, nodes=("n0",), n_gpus=8),
                ev("a", EventKind.PREEMPTED, 3), ev("a", EventKind.STARTED, 4, nodes=("n1",), n_gpus=8)])
    assert book.jobs["a"].restarts == 1 and book.jobs["a"].nodes == ("n1",) and "n0" not in book.holders


def test_sacct_and_json_replays_produce_the_expected_lifecycles() -> None:
    res = parse_sacct(feed_bytes("slurm/sacct-parsable2-xdmod-phillips-excerpt.psv"))
    book = run(sort_events(res.events), Facility())
    statuses = [j.status for j in book.jobs.values()]
    assert len(book.jobs) == 326 and statuses.count(JobStatus.FAILED) == 301  # 300 FAILED + 1 TIMEOUT
    assert statuses.count(JobStatus.FINISHED) == 24 and statuses.count(JobStatus.CANCELLED) == 1
    assert dict(book.holders) == {}  # everything ended: every GPU released
    running = parse_slurm_json(feed_bytes("slurm/slurmdb-job-gpus-multinode-25.11-v0.0.44.json"))
    book = run(running.events, Facility({"gpu1": 4, "gpu2": 4}))
    assert book.jobs["5679"].status == JobStatus.RUNNING and book.holders["gpu2"] == {"5679": 4}
