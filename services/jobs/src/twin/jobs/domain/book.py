"""The job book: every job's lifecycle from its events, with the bad-input rules of issue 11 (pure).

``apply_event(book, event, facility)`` returns the new book (the input is not changed) and ``book.apply(event,
facility)`` updates it in place (what the live twin does: O(job) per event); both raise ``EventRejected`` with a
reason -- the live service sends those events to the dead-letter topic:

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
from dataclasses import dataclass, field
from enum import StrEnum

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
_PROGRESS = EventKind.PROGRESS
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


class JobBook:
    """Every job's record (``jobs``, in the order the book first saw them) and the GPUs running jobs hold per node
    (``holders``: node -> {running job: GPUs it holds there}).

    ``apply(ev, facility)`` updates the book in place (one record and the job's own nodes: O(job), not O(book));
    the module's ``apply_event`` is the pure form (a new book, the input unchanged). Read ``jobs`` and
    ``holders`` only: they change through ``apply``."""

    __slots__ = ("jobs", "holders", "_held", "_running")

    def __init__(self, jobs: Mapping[str, JobRecord] | None = None,
                 holders: Mapping[str, Mapping[str, int]] | None = None) -> None:
        self.jobs: dict[str, JobRecord] = dict(jobs or {})
        self.holders: dict[str, dict[str, int]] = {n: dict(h) for n, h in (holders or {}).items() if h}
        self._held: dict[str, list[str]] = {}                # job -> nodes it holds GPUs on
        for node, held in self.holders.items():
            for job in held:
                self._held.setdefault(job, []).append(node)
        self._running: dict[str, None] = {j: None for j, r in self.jobs.items() if r.status == JobStatus.RUNNING}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobBook) and self.jobs == other.jobs and self.holders == other.holders

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"JobBook({len(self.jobs)} jobs, {len(self._running)} running)"

    def running_ids(self) -> list[str]:
        return list(self._running)

    def running(self) -> list[JobRecord]:
        jobs = self.jobs
        return [jobs[j] for j in self._running]

    def copy(self) -> JobBook:
        return JobBook(self.jobs, self.holders)

    def apply(self, ev: JobEvent, facility: Facility | None = None) -> JobRecord | None:
        """Apply ``ev`` in place (see module docstring): the job's new record, or None when the event changes
        nothing (a replay); raises ``EventRejected`` (the book is then unchanged)."""
        change = plan_event(self, ev, facility)
        if change is None:
            return None
        self.commit(change)
        return change[0]

    def commit_record(self, rec: JobRecord) -> None:
        """``commit((rec, None))`` for a running job's new record that keeps its status and holding (what
        ``plan_progress`` returns)."""
        self.jobs[rec.job_id] = rec

    def commit(self, change: tuple[JobRecord, dict[str, int] | None]) -> None:
        """Apply a change ``plan_event`` returned: the new record and, when the job's holding changes, the GPUs
        it holds per node from now on (empty: none)."""
        rec, take = change
        job_id = rec.job_id
        self.jobs[job_id] = rec
        if rec.status == JobStatus.RUNNING:
            self._running[job_id] = None
        else:
            self._running.pop(job_id, None)
        if take is None:
            return
        for node in self._held.pop(job_id, ()):
            held = self.holders.get(node)
            if held is not None:
                held.pop(job_id, None)
                if not held:
                    del self.holders[node]
        if take:
            for node, g in take.items():
                self.holders.setdefault(node, {})[job_id] = g
            self._held[job_id] = list(take)


def _evolve(rec: JobRecord, **changes) -> JobRecord:
    """``dataclasses.replace`` for a record without its ``__init__`` (no checks to rerun: the fields are copied;
    several times faster, one per event)."""
    new = object.__new__(JobRecord)
    d = new.__dict__
    d.update(rec.__dict__)
    d.update(changes)
    return new


def plan_event(book: JobBook, ev: JobEvent, facility: Facility | None = None
               ) -> tuple[JobRecord, dict[str, int] | None] | None:
    """What ``ev`` does to the book, without changing it: None for a replay, else (the job's new record, the GPUs
    it holds per node afterwards or None when its holding is unchanged); raises ``EventRejected``."""
    fac = facility or Facility()
    rec = book.jobs.get(ev.job_id)
    if ev.kind == EventKind.SUBMITTED:
        if rec is not None:
            return None  # duplicate / replayed submission
        return JobRecord(ev.job_id, JobStatus.PENDING, ev.time_s, spec=ev.spec, last_event_s=ev.time_s,
                         attributes=dict(ev.attributes)), None
    if rec is None:
        raise EventRejected(f"{ev.kind.value} event for unknown job {ev.job_id!r}")
    if ev.kind == EventKind.PROGRESS:
        new = plan_progress(rec, ev.time_s, ev.step, ev.step_time_s, ev.tokens_per_s)
        return None if new is None else (new, None)
    if rec.status in ENDED:
        if ev.kind == rec.last_kind and ev.time_s <= rec.last_event_s:
            return None  # replay of the final event
        raise EventRejected(f"{ev.kind.value} event for job {ev.job_id!r} that already {rec.status.value}")
    if ev.time_s < rec.last_event_s or (ev.time_s == rec.last_event_s and ev.kind == rec.last_kind):
        return None  # older than what the book holds: a replay
    spec = ev.spec or rec.spec

    if ev.kind in (EventKind.STARTED, EventKind.RESIZED):
        n_gpus = ev.n_gpus or (spec.n_gpus if spec is not None else 0)
        fac.check(ev.nodes, n_gpus, book.holders, ev.job_id)
        if spec is not None and n_gpus and spec.n_gpus != n_gpus:
            raise EventRejected(f"job spec needs {spec.n_gpus} GPUs but the placement has {n_gpus}")
        restarts = rec.restarts + (1 if ev.kind == EventKind.STARTED and rec.started_s else 0)
        new = _evolve(rec, status=JobStatus.RUNNING, spec=spec, nodes=ev.nodes, n_gpus=n_gpus,
                      started_s=rec.started_s or ev.time_s, last_event_s=ev.time_s, last_kind=ev.kind,
                      restarts=restarts)
        return new, _split(n_gpus, ev.nodes)
    if ev.kind == EventKind.CHECKPOINTED:
        if rec.status != JobStatus.RUNNING:
            raise EventRejected(f"checkpoint for job {ev.job_id!r} that is {rec.status.value}")
        return _evolve(rec, checkpoints=rec.checkpoints + 1, last_checkpoint_s=ev.time_s,
                       last_event_s=ev.time_s, last_kind=ev.kind), None
    if ev.kind == EventKind.PREEMPTED:
        return _evolve(rec, status=JobStatus.PREEMPTED, last_event_s=ev.time_s, last_kind=ev.kind), {}
    status = _TERMINAL[ev.kind]
    new = _evolve(rec, status=status, ended_s=ev.time_s, last_event_s=ev.time_s, last_kind=ev.kind,
                  failure_cause=ev.cause, spec=spec)
    return new, {}


def plan_progress(rec: JobRecord, time_s: float, step: int, step_time_s: float, tokens_per_s: float
                  ) -> JobRecord | None:
    """``plan_event`` for a PROGRESS event of the known job ``rec`` (the hottest event: every job may report every
    second, so the job twin's handler also calls this directly, without building a ``JobEvent``): the job's new
    record, None for a replay; raises ``EventRejected``."""
    if rec.status in ENDED:
        if rec.last_kind == EventKind.PROGRESS and time_s <= rec.last_event_s:
            return None  # replay of the final event
        raise EventRejected(f"progress event for job {rec.job_id!r} that already {rec.status.value}")
    if time_s < rec.last_event_s or (time_s == rec.last_event_s and rec.last_kind == EventKind.PROGRESS):
        return None  # older than what the book holds: a replay
    if rec.status != JobStatus.RUNNING:
        raise EventRejected(f"progress for job {rec.job_id!r} that is {rec.status.value}")
    new = object.__new__(JobRecord)  # ``_evolve`` with the four fields set directly (one per report)
    d = new.__dict__
    d.update(rec.__dict__)
    if step > d["step"]:
        d["step"] = step
    d["last_event_s"] = time_s
    d["last_kind"] = _PROGRESS
    if step_time_s:
        d["measured_step_time_s"] = step_time_s
    if tokens_per_s:
        d["measured_tokens_per_s"] = tokens_per_s
    return new


def apply_event(book: JobBook, ev: JobEvent, facility: Facility | None = None) -> JobBook:
    """The book after ``ev`` (see module docstring): a new book, ``book`` itself when the event changes nothing;
    raises ``EventRejected``. (Copies the book: the live twin uses ``JobBook.apply`` in place.)"""
    change = plan_event(book, ev, facility)
    if change is None:
        return book
    out = book.copy()
    out.commit(change)
    return out
