"""Scheduler and framework events of a job (the domain side of ``jobs.events.v1``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .spec import JobSpec


class EventKind(StrEnum):
    SUBMITTED = "submitted"
    STARTED = "started"          # placement known: nodes (and GPUs where accounted)
    CHECKPOINTED = "checkpointed"
    PREEMPTED = "preempted"
    FAILED = "failed"            # with a FailureCause
    FINISHED = "finished"        # completed successfully
    CANCELLED = "cancelled"      # by a user or an administrator
    RESIZED = "resized"
    PROGRESS = "progress"        # measured step time / tokens per second from the training framework


class FailureCause(StrEnum):
    GPU_XID = "gpu_xid"
    NODE = "node"
    NETWORK = "network"
    SOFTWARE = "software"
    OUT_OF_MEMORY = "out_of_memory"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class JobEvent:
    """One thing that happened to a job. ``time_s`` is Unix time (UTC seconds). Placement fields are set on
    STARTED/RESIZED (and repeated on terminal events when the scheduler reports them); ``cause`` and
    ``exit_code``/``signal`` on FAILED; ``step``/``step_time_s``/``tokens_per_s`` on PROGRESS."""

    job_id: str
    kind: EventKind
    time_s: float
    source: str = ""
    cluster: str = ""
    user: str = ""
    account: str = ""
    partition: str = ""
    name: str = ""
    nodes: tuple[str, ...] = ()
    n_nodes: int = 0
    n_gpus: int = 0
    cause: FailureCause | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    spec: JobSpec | None = None
    attributes: dict[str, str] = field(default_factory=dict)  # owner, priority, checkpoint settings ...
    step: int = 0
    step_time_s: float = 0.0
    tokens_per_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.job_id:
            raise ValueError("job_id is empty")
        if self.kind == EventKind.FAILED and self.cause is None:
            raise ValueError("a FAILED event needs a cause")
        if self.n_nodes < 0 or self.n_gpus < 0:
            raise ValueError("n_nodes and n_gpus must be >= 0")
        if self.kind == EventKind.PROGRESS and not (self.step_time_s > 0 or self.tokens_per_s > 0):
            raise ValueError("a PROGRESS event needs step_time_s or tokens_per_s > 0")
