"""Pure job-twin domain (numpy + frozen dataclasses, no I/O): job specs, FLOPs, the step-time model,
communication groups, power per phase, goodput, and scheduler events."""

from .book import EventRejected, Facility, JobBook, JobRecord, JobStatus, apply_event
from .comm import CollectiveCall, CommGroup, CommTimer, LinkModel, group_for, link_model_timer
from .events import EventKind, FailureCause, JobEvent
from .flops import forward_flops_per_token, model_flops_per_step, model_flops_per_token
from .hardware import GPUS, GpuSpec, clock_fraction_at_cap, gpu_spec
from .spec import JobSpec, JobSpecError, ModelShape, Overlap, Parallelism, TrainingSetup
from .step import Conditions, PowerPhase, StepPrediction, checkpoint_phase, predict_step

__all__ = [
    "EventKind", "EventRejected", "Facility", "FailureCause", "JobBook", "JobEvent", "JobRecord", "JobStatus",
    "apply_event", "GPUS", "CollectiveCall", "CommGroup", "CommTimer", "Conditions", "GpuSpec", "JobSpec", "JobSpecError",
    "LinkModel", "ModelShape", "Overlap", "Parallelism", "PowerPhase", "StepPrediction", "TrainingSetup",
    "checkpoint_phase", "clock_fraction_at_cap", "forward_flops_per_token", "gpu_spec", "group_for",
    "link_model_timer", "model_flops_per_step", "model_flops_per_token", "predict_step",
]
