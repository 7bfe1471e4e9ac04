"""The simulated site's training jobs as scheduler and framework events on jobs.events.v1 (for the job twin).

Every training block of the workload (contiguous nodes sharing a job index, ``domain.workload``) is one job,
id ``sim-<site>-<NNNN>``: SUBMITTED and STARTED (its nodes and GPUs) on the first tick, CHECKPOINTED each time
its checkpoint phase begins, and PROGRESS every ``progress_every_s`` with the step count and the step time the
workload runs (its iteration period; tokens/s = tokens per step / period). Only events, no physics: the requested
faults (``domain.faults``) say how a job's steps go: a straggler stretches its step time from its start, a fallen
GPU (XID 79) stops its progress until the NCCL watchdog fails it, an uncorrectable ECC error (XID 48 / 94) fails
it a few seconds later (FAILED, cause GPU XID, the XID and GPU in ``reason``); a failed job reports nothing more.

Spec (a Llama-3-shaped model sized to the job, in the job spec's own terms): up to 4 nodes an 8B model (TP 1,
DP = GPUs); 8 nodes and more a 70B model (TP 8 inside the node, PP 2, DP the rest); sequence length 8192, BF16,
the node's GPU model. The global batch is the one a job at ``TARGET_MFU`` of the GPUs' dense BF16 peak (facility
spec) would finish in the workload's iteration period (6 x parameters FLOPs per token), so the simulated jobs'
step times are ones a real job of that shape could run.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from twin.facility_sim.domain.faults import Faults
from twin.jobs.v1 import jobs_pb2 as pb

LLAMA_8B = dict(layers=32, hidden=4096, ffn_hidden=14336, heads=32, kv_heads=8, vocab=128256, seq_len_tokens=8192,
                gated_ffn=True)
PARAMS = {"8b": 8.03e9, "70b": 70.6e9}
TARGET_MFU = 0.4
LLAMA_70B = dict(layers=80, hidden=8192, ffn_hidden=28672, heads=64, kv_heads=8, vocab=128256, seq_len_tokens=8192,
                 gated_ffn=True)


class JobFeed:
    def __init__(self, layout, workloads, *, progress_every_s: float = 10.0, faults: Faults | None = None) -> None:
        self.layout = layout
        self.w = workloads
        self.faults = faults or Faults()
        self.failed: set[str] = set()
        self.progress_every_s = progress_every_s
        self.jobs: list[tuple[str, np.ndarray]] = []   # (job id, node indices)
        for j in np.unique(workloads.job[workloads.job >= 0]):
            nodes = np.flatnonzero(workloads.job == j)
            self.jobs.append((f"sim-{layout.site_id}-{int(j):04d}", nodes))
        self.started = False
        self.next_progress_s = 0.0
        self.checkpoints = {job_id: None for job_id, _ in self.jobs}
        self._specs: dict[int, pb.JobSpec] = {}

    def spec(self, nodes: np.ndarray) -> pb.JobSpec:
        n0 = int(nodes[0])
        if n0 not in self._specs:
            self._specs[n0] = self._spec(nodes)
        return self._specs[n0]

    def _spec(self, nodes: np.ndarray) -> pb.JobSpec:
        a = self.layout.arrays
        n_gpus = int(a.node_gpus[nodes].sum())
        big = len(nodes) >= 8 and n_gpus % 16 == 0
        tp, pp = (8, 2) if big else (1, 1)
        dp = n_gpus // (tp * pp)
        gpu_model = self.layout.gpu_model_names[int(nodes[0])]
        peak = self.layout.spec.gpu_models[gpu_model].dense_bf16_tflops * 1e12
        tokens = float(self.w.iteration_s[int(nodes[0])]) * n_gpus * peak * TARGET_MFU / (6.0 * PARAMS["70b" if big else "8b"])
        per_rank = max(1, round(tokens / (8192 * dp)))
        return pb.JobSpec(model=pb.ModelShape(**(LLAMA_70B if big else LLAMA_8B)),
                          parallel=pb.Parallelism(tp=tp, pp=pp, dp=dp, cp=1, data_parallel=pb.DATA_PARALLEL_ZERO1,
                                                  sequence_parallel=tp > 1),
                          micro_batch_sequences=1, global_batch_sequences=dp * per_rank,
                          precision=pb.PRECISION_BF16, recompute=pb.RECOMPUTE_SELECTIVE,
                          gpu_model=gpu_model, n_gpus=n_gpus, owner="facility-sim")

    def events(self, t_s: float, at: datetime) -> list[tuple[str, pb.JobEvent]]:
        """The events of simulation time ``t_s`` (wall time ``at``), in order."""
        out: list[tuple[str, pb.JobEvent]] = []
        w = self.w
        if not self.started:
            self.started = True
            for job_id, nodes in self.jobs:
                spec = self.spec(nodes)
                placement = pb.Placement(node_ids=[self.layout.node_ids[int(n)] for n in nodes], n_nodes=len(nodes),
                                         n_gpus=spec.n_gpus)
                out.append((job_id, _event(job_id, pb.JOB_EVENT_KIND_SUBMITTED, at - timedelta(seconds=2), spec=spec)))
                out.append((job_id, _event(job_id, pb.JOB_EVENT_KIND_STARTED, at - timedelta(seconds=1), spec=spec,
                                           placement=placement)))
        faults = self.faults
        for job_id, nodes in self.jobs:
            n0 = int(nodes[0])
            if faults:  # a requested sick GPU may fail or hang this job
                job = int(w.job[n0])
                fail_s = faults.failed_s(job)
                if job_id not in self.failed and fail_s is not None and t_s >= fail_s:
                    self.failed.add(job_id)
                    out.append((job_id, self._failed(job_id, nodes, at)))
                if job_id in self.failed or faults.hung(job, t_s):
                    continue
            count = math.floor((t_s + w.checkpoint_offset_s[n0]) / w.checkpoint_every_s[n0])
            if self.checkpoints[job_id] is not None and count > self.checkpoints[job_id]:
                out.append((job_id, _event(job_id, pb.JOB_EVENT_KIND_CHECKPOINTED, at)))
            self.checkpoints[job_id] = count
        if t_s >= self.next_progress_s:
            self.next_progress_s = t_s + self.progress_every_s
            for job_id, nodes in self.jobs:
                n0 = int(nodes[0])
                if faults and (job_id in self.failed or faults.hung(int(w.job[n0]), t_s)):
                    continue  # a failed job reports nothing, a hung job's framework logs no step
                period = faults.period_s(w, n0, t_s)
                steps = (faults.iterations(w, n0, t_s) if faults else
                         (t_s + w.phase_offset_s[n0]) // period)
                spec = self.spec(nodes)
                tokens = spec.global_batch_sequences * spec.model.seq_len_tokens
                out.append((job_id, _event(job_id, pb.JOB_EVENT_KIND_PROGRESS, at + timedelta(microseconds=1),
                                           step=int(math.floor(steps)),
                                           measured_step_time_s=period, measured_tokens_per_s=tokens / period)))
        return out

    def _failed(self, job_id: str, nodes: np.ndarray, at: datetime) -> pb.JobEvent:
        sick = self.faults.sick
        assert sick is not None
        gpu = f"{self.layout.node_ids[sick.node]}/gpu{int(self.layout.arrays.gpu_local_index[sick.gpu])}"
        how = "NCCL watchdog timeout after the GPU fell off the bus" if sick.xid == 79 else "CUDA error"
        spec = self.spec(nodes)
        placement = pb.Placement(node_ids=[self.layout.node_ids[int(n)] for n in nodes], n_nodes=len(nodes),
                                 n_gpus=spec.n_gpus)
        return _event(job_id, pb.JOB_EVENT_KIND_FAILED, at, failure_cause=pb.FAILURE_CAUSE_GPU_XID,
                      reason=f"XID {sick.xid} on {gpu} ({how})", placement=placement)


def _event(job_id: str, kind: int, at: datetime, **fields) -> pb.JobEvent:
    msg = pb.JobEvent(job_id=job_id, kind=kind, source="facility-sim", **fields)
    msg.event_time.FromDatetime(at)
    return msg
