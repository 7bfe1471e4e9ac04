"""The job book: every job's lifecycle from its events, with the bad-input rules of issue 11 (pure).

``apply_event(book, event, facility)`` returns the new book (the input is not changed) or raises
``EventRejected`` with a reason -- the live service sends those events to the dead-letter topic:

* an event other than SUBMITTED for a job the book does not know;
* a placement (STARTED / RESIZED) on nodes the facility does not have, with more GPUs than its nodes carry,
  on GPUs other running jobs hold (a job's GPUs are split evenly over its nodes; CPU-only jobs hold none), or
  whose GPU count differs from the job spec's world size;
* PROGRESS for a job that is not running, or without a positive step time / throughput (``JobEvent`` checks);
* an event after the job ended (other than a duplicate of its final event).

Replays are idempotent: an event no newer than the job's last applied event of the same kind is ignored
(the book is returned unchanged), so at-least-once delivery and sacct re-exports do no harm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from .events import EventKind, FailureCause, JobEvent
from .spec import JobSpec


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PREEMPTED = "preempted"
    FAILED = "failed"
    FINISHED = "finished"
    CANCELLED = "cancelled"


ENDED = frozenset({JobStatus.FAILED, JobStatus.FINISHED, JobStatus.CANCELLED})
_TERMINAL = {EventKind.FAILED: JobStatus.FAILED, EventKind.FINISHED: JobStatus.FINISHED,
             EventKind.CANCELLED: JobStatus.CANCELLED}


class EventRejected(ValueError):
    """An event the book cannot apply; ``reason`` says why (it goes to the DLQ with the event)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Facility:
    """What placements are checked against: node -> GPUs on it (None = accept any node, no capacity check)."""

    gpus_per_node: Mapping[str, int] | None = None

    def check(self, nodes: tuple[str, ...], n_gpus: int, used: Mapping[str, Mapping[str, int]],
              job_id: str) -> None:
        if self.gpus_per_node is None:
            return
        unknown = [n for n in nodes if n not in self.gpus_per_node]
        if unknown:
            raise EventRejected(f"placement on unknown node(s): {', '.join(unknown[:5])}")
        capacity = sum(self.gpus_per_node[n] for n in nodes)
        if n_gpus > capacity:
            raise EventRejected(f"{n_gpus} GPUs requested on nodes holding {capacity}")
        per_node = _split(n_gpus, nodes)
        for node, want in per_node.items():
            others = {j: g for j, g in used.get(node, {}).items() if j != job_id}
            if want and want + sum(others.values()) > self.gpus_per_node[node]:
                raise EventRejected(f"GPUs on node {node} are taken by running job(s) "
                                    f"{', '.join(sorted(others)[:5])}")


def _split(n_gpus: int, nodes: tuple[str, ...]) -> dict[str, int]:
    """A job's GPUs spread evenly over its nodes (the remainder on the first nodes)."""
    if not nodes:
        return {}
    q, r = divmod(n_gpus, len(nodes))
    return {n: q + (1 if i < r else 0) for i, n in enumerate(nodes)}


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    status: JobStatus
    submitted_s: float
    spec: JobSpec | None = None
    nodes: tuple[str, ...] = ()
    n_gpus: int = 0
    started_s: float = 0.0
    ended_s: float = 0.0
    last_event_s: float = 0.0
    last_kind: EventKind = EventKind.SUBMITTED
    failure_cause: FailureCause | None = None
    restarts: int = 0
    checkpoints: int = 0
    last_checkpoint_s: float = 0.0
    step: int = 0
    measured_step_time_s: float = 0.0
    measured_tokens_per_s: float = 0.0
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobBook:
    jobs: Mapping[str, JobRecord] = field(default_factory=lambda: MappingProxyType({}))
    #: node -> {running job: GPUs it holds there}
    holders: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: MappingProxyType({}))

    def running(self) -> list[JobRecord]:
        return [j for j in self.jobs.values() if j.status == JobStatus.RUNNING]


def _with(book: JobBook, rec: JobRecord, holders: dict[str, dict[str, int]] | None = None) -> JobBook:
    jobs = dict(book.jobs)
    jobs[rec.job_id] = rec
    return JobBook(MappingProxyType(jobs), MappingProxyType(holders if holders is not None else dict(book.holders)))


def _release(book: JobBook, rec: JobRecord) -> dict[str, dict[str, int]]:
    out = {}
    for node, jobs in book.holders.items():
        rest = {j: g for j, g in jobs.items() if j != rec.job_id}
        if rest:
            out[node] = rest
    return out


def apply_event(book: JobBook, ev: JobEvent, facility: Facility | None = None) -> JobBook:
    """The book after ``ev`` (see module docstring); raises ``EventRejected``."""
    fac = facility or Facility()
    rec = book.jobs.get(ev.job_id)
    if ev.kind == EventKind.SUBMITTED:
        if rec is not None:
            return book  # duplicate / replayed submission
        return _with(book, JobRecord(ev.job_id, JobStatus.PENDING, ev.time_s, spec=ev.spec, last_event_s=ev.time_s,
                                     attributes=dict(ev.attributes)))
    if rec is None:
        raise EventRejected(f"{ev.kind.value} event for unknown job {ev.job_id!r}")
    if rec.status in ENDED:
        if ev.kind == rec.last_kind and ev.time_s <= rec.last_event_s:
            return book  # replay of the final event
        raise EventRejected(f"{ev.kind.value} event for job {ev.job_id!r} that already {rec.status.value}")
    if ev.time_s < rec.last_event_s or (ev.time_s == rec.last_event_s and ev.kind == rec.last_kind):
        return book  # older than what the book holds: a replay
    spec = ev.spec or rec.spec

    if ev.kind in (EventKind.STARTED, EventKind.RESIZED):
        n_gpus = ev.n_gpus or (spec.n_gpus if spec is not None else 0)
        fac.check(ev.nodes, n_gpus, book.holders, ev.job_id)
        if spec is not None and n_gpus and spec.n_gpus != n_gpus:
            raise EventRejected(f"job spec needs {spec.n_gpus} GPUs but the placement has {n_gpus}")
        holders = _release(book, rec)
        for node, g in _split(n_gpus, ev.nodes).items():
            holders.setdefault(node, {})[ev.job_id] = g
        restarts = rec.restarts + (1 if ev.kind == EventKind.STARTED and rec.started_s else 0)
        new = replace(rec, status=JobStatus.RUNNING, spec=spec, nodes=ev.nodes, n_gpus=n_gpus,
                      started_s=rec.started_s or ev.time_s, last_event_s=ev.time_s, last_kind=ev.kind,
                      restarts=restarts)
        return _with(book, new, holders)
    if ev.kind == EventKind.PROGRESS:
        if rec.status != JobStatus.RUNNING:
            raise EventRejected(f"progress for job {ev.job_id!r} that is {rec.status.value}")
        new = replace(rec, step=max(rec.step, ev.step), last_event_s=ev.time_s, last_kind=ev.kind,
                      measured_step_time_s=ev.step_time_s or rec.measured_step_time_s,
                      measured_tokens_per_s=ev.tokens_per_s or rec.measured_tokens_per_s)
        return _with(book, new)
    if ev.kind == EventKind.CHECKPOINTED:
        if rec.status != JobStatus.RUNNING:
            raise EventRejected(f"checkpoint for job {ev.job_id!r} that is {rec.status.value}")
        return _with(book, replace(rec, checkpoints=rec.checkpoints + 1, last_checkpoint_s=ev.time_s,
                                   last_event_s=ev.time_s, last_kind=ev.kind))
    if ev.kind == EventKind.PREEMPTED:
        new = replace(rec, status=JobStatus.PREEMPTED, last_event_s=ev.time_s, last_kind=ev.kind)
        return _with(book, new, _release(book, rec))
    status = _TERMINAL[ev.kind]
    new = replace(rec, status=status, ended_s=ev.time_s, last_event_s=ev.time_s, last_kind=ev.kind,
                  failure_cause=ev.cause, spec=spec)
    return _with(book, new, _release(book, rec))
