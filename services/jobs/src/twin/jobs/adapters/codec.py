"""Protobuf <-> job-twin domain objects: the one place ``twin.jobs.v1`` messages meet the domain.

Decoding validates: an UNSPECIFIED or unknown enum where a value is required, a missing ``job_id`` or time, an
impossible spec, a FAILED event without a cause, a PROGRESS event without a measurement -- each raises
``InvalidMessage(field, reason)`` (a ``ValueError``) naming the proto field, for the DLQ or INVALID_ARGUMENT.
Encoding never fails for a valid domain object.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from twin.cooling.v1 import cooling_pb2
from twin.fabric.v1 import fabric_pb2
from twin.jobs.domain.book import JobRecord, JobStatus
from twin.jobs.domain.events import EventKind, FailureCause, JobEvent
from twin.jobs.domain.hardware import gpu_spec
from twin.jobs.domain.overhead import pdu_total_w
from twin.jobs.domain.spec import JobSpec, JobSpecError, ModelShape, Parallelism, TrainingSetup
from twin.jobs.domain.step import StepPrediction
from twin.jobs.v1 import jobs_pb2 as pb
from twin.power.v1 import power_pb2
from twin.telemetry.v1 import telemetry_pb2


class InvalidMessage(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_KIND = {
    EventKind.SUBMITTED: pb.JOB_EVENT_KIND_SUBMITTED, EventKind.STARTED: pb.JOB_EVENT_KIND_STARTED,
    EventKind.CHECKPOINTED: pb.JOB_EVENT_KIND_CHECKPOINTED, EventKind.PREEMPTED: pb.JOB_EVENT_KIND_PREEMPTED,
    EventKind.FAILED: pb.JOB_EVENT_KIND_FAILED, EventKind.FINISHED: pb.JOB_EVENT_KIND_FINISHED,
    EventKind.CANCELLED: pb.JOB_EVENT_KIND_CANCELLED, EventKind.RESIZED: pb.JOB_EVENT_KIND_RESIZED,
    EventKind.PROGRESS: pb.JOB_EVENT_KIND_PROGRESS,
}
_KIND_BACK = {v: k for k, v in _KIND.items()}
#: kinds that report how the job's process ended or changed (exit code and signal travel with them)
_STATE_KINDS = frozenset({EventKind.FINISHED, EventKind.FAILED, EventKind.CANCELLED, EventKind.PREEMPTED,
                          EventKind.RESIZED})
_CAUSE = {
    FailureCause.GPU_XID: pb.FAILURE_CAUSE_GPU_XID, FailureCause.NODE: pb.FAILURE_CAUSE_NODE,
    FailureCause.NETWORK: pb.FAILURE_CAUSE_NETWORK, FailureCause.SOFTWARE: pb.FAILURE_CAUSE_SOFTWARE,
    FailureCause.OUT_OF_MEMORY: pb.FAILURE_CAUSE_OUT_OF_MEMORY, FailureCause.TIMEOUT: pb.FAILURE_CAUSE_TIMEOUT,
    FailureCause.UNKNOWN: pb.FAILURE_CAUSE_UNKNOWN,
}
_CAUSE_BACK = {v: k for k, v in _CAUSE.items()}
_PRECISION = {"bf16": pb.PRECISION_BF16, "fp8": pb.PRECISION_FP8}
_PRECISION_BACK = {pb.PRECISION_UNSPECIFIED: "bf16", pb.PRECISION_BF16: "bf16", pb.PRECISION_FP8: "fp8"}
_MOE = {"nccl_alltoall": pb.MOE_DISPATCHER_NCCL_ALLTOALL, "deepep_normal": pb.MOE_DISPATCHER_DEEPEP_NORMAL,
        "deepep_low_latency": pb.MOE_DISPATCHER_DEEPEP_LOW_LATENCY}
_MOE_BACK = {pb.MOE_DISPATCHER_UNSPECIFIED: "nccl_alltoall", **{v: k for k, v in _MOE.items()}}
_RECOMPUTE = {"none": pb.RECOMPUTE_NONE, "selective": pb.RECOMPUTE_SELECTIVE, "op": pb.RECOMPUTE_OP,
              "full": pb.RECOMPUTE_FULL}
_RECOMPUTE_BACK = {pb.RECOMPUTE_UNSPECIFIED: "none"} | {v: k for k, v in _RECOMPUTE.items()}
_DP = {"ddp": pb.DATA_PARALLEL_DDP, "zero1": pb.DATA_PARALLEL_ZERO1, "fsdp": pb.DATA_PARALLEL_FSDP}
_DP_BACK = {pb.DATA_PARALLEL_UNSPECIFIED: "zero1"} | {v: k for k, v in _DP.items()}
_STATUS = {JobStatus.PENDING: pb.JOB_STATUS_PENDING, JobStatus.RUNNING: pb.JOB_STATUS_RUNNING,
           JobStatus.PREEMPTED: pb.JOB_STATUS_PREEMPTED, JobStatus.FAILED: pb.JOB_STATUS_FAILED,
           JobStatus.FINISHED: pb.JOB_STATUS_FINISHED, JobStatus.CANCELLED: pb.JOB_STATUS_CANCELLED}
#: proto GPU model names for the catalogue keys
_GPU_NAME = {"a100-40gb": "A100-40GB", "a100-80gb": "A100-80GB", "h100-sxm": "H100-SXM",
             "h100-sxm-96gb": "H100-SXM-96GB", "h200": "H200", "h800": "H800", "b200": "B200", "gb200": "GB200",
             "gb300": "GB300"}


def _ts(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(round(seconds * 1e9)))
    return ts


def spec_to_proto(spec: JobSpec, attributes: dict[str, str] | None = None) -> pb.JobSpec:
    m, p, t = spec.model, spec.parallel, spec.training
    attrs = attributes or {}
    msg = pb.JobSpec(
        model=pb.ModelShape(layers=m.layers, hidden=m.hidden, ffn_hidden=m.ffn_hidden, heads=m.heads,
                            kv_heads=m.kv_heads, vocab=m.vocab, seq_len_tokens=m.seq_len, head_dim=m.head_dim,
                            moe_experts=m.moe_experts, moe_topk=m.moe_topk, gated_ffn=m.gated_ffn,
                            sliding_window_tokens=m.sliding_window, sliding_window_every=m.sliding_window_every),
        parallel=pb.Parallelism(tp=p.tp, pp=p.pp, dp=p.dp, cp=p.cp, ep=p.ep, vp=p.vp,
                                sequence_parallel=p.sequence_parallel, data_parallel=_DP[p.data_parallel]),
        micro_batch_sequences=t.micro_batch, global_batch_sequences=t.global_batch,
        precision=_PRECISION[t.precision], recompute=_RECOMPUTE[t.recompute], moe_dispatcher=_MOE[t.moe_kernel],
        gpu_model=_GPU_NAME.get(spec.gpu, spec.gpu), n_gpus=spec.n_gpus, owner=attrs.get("owner", ""))
    for key, field in (("priority", "priority"), ("checkpoint_interval_s", "checkpoint_interval_s"),
                       ("checkpoint_bytes", "checkpoint_bytes"), ("checkpoint_s", "checkpoint_write_s"),
                       ("restart_s", "restart_s")):
        if key in attrs:
            try:
                setattr(msg, field, type(getattr(msg, field))(float(attrs[key])))
            except ValueError:
                pass  # attributes are free text on the domain side; unparseable ones stay unset
    return msg


def spec_from_proto(msg: pb.JobSpec, field: str = "spec") -> JobSpec:
    m, p = msg.model, msg.parallel
    try:
        shape = ModelShape(layers=m.layers, hidden=m.hidden, ffn_hidden=m.ffn_hidden, heads=m.heads,
                           kv_heads=m.kv_heads or m.heads, vocab=m.vocab, seq_len=m.seq_len_tokens,
                           head_dim=m.head_dim, moe_experts=m.moe_experts, moe_topk=m.moe_topk,
                           gated_ffn=m.gated_ffn, sliding_window=m.sliding_window_tokens,
                           sliding_window_every=m.sliding_window_every)
        if p.data_parallel not in _DP_BACK:
            raise InvalidMessage(f"{field}.parallel.data_parallel", f"unknown value {p.data_parallel}")
        par = Parallelism(tp=p.tp or 1, pp=p.pp or 1, dp=p.dp or 1, cp=p.cp or 1, ep=p.ep or 1, vp=p.vp or 1,
                          sequence_parallel=p.sequence_parallel, data_parallel=_DP_BACK[p.data_parallel])
        if msg.precision not in _PRECISION_BACK:
            raise InvalidMessage(f"{field}.precision", f"unknown value {msg.precision}")
        if msg.recompute not in _RECOMPUTE_BACK:
            raise InvalidMessage(f"{field}.recompute", f"unknown value {msg.recompute}")
        if msg.moe_dispatcher not in _MOE_BACK:
            raise InvalidMessage(f"{field}.moe_dispatcher", f"unknown value {msg.moe_dispatcher}")
        training = TrainingSetup(micro_batch=msg.micro_batch_sequences or 1, global_batch=msg.global_batch_sequences,
                                 precision=_PRECISION_BACK[msg.precision], recompute=_RECOMPUTE_BACK[msg.recompute],
                                 moe_kernel=_MOE_BACK[msg.moe_dispatcher])
        if not msg.gpu_model:
            raise InvalidMessage(f"{field}.gpu_model", "missing")
        try:
            gpu = gpu_spec(msg.gpu_model).key
        except ValueError as exc:
            raise InvalidMessage(f"{field}.gpu_model", str(exc)) from None
        return JobSpec(shape, par, training, gpu=gpu, n_gpus=msg.n_gpus)
    except InvalidMessage:
        raise
    except JobSpecError as exc:
        raise InvalidMessage(f"{field}.{exc.field}", str(exc)) from None
    except ValueError as exc:
        raise InvalidMessage(field, str(exc)) from None


def event_to_proto(ev: JobEvent) -> pb.JobEvent:
    msg = pb.JobEvent(job_id=ev.job_id, kind=_KIND[ev.kind], event_time=_ts(ev.time_s), source=ev.source,
                      cluster=ev.cluster, user=ev.user, account=ev.account, partition=ev.partition, name=ev.name,
                      exit_code=ev.exit_code or 0, signal=ev.signal or 0, reason=ev.reason, step=ev.step,
                      measured_step_time_s=ev.step_time_s, measured_tokens_per_s=ev.tokens_per_s)
    if ev.spec is not None:
        msg.spec.CopyFrom(spec_to_proto(ev.spec, dict(ev.attributes)))
    if ev.nodes or ev.n_gpus or ev.n_nodes:
        msg.placement.CopyFrom(pb.Placement(node_ids=list(ev.nodes), n_nodes=ev.n_nodes, n_gpus=ev.n_gpus))
    if ev.cause is not None:
        msg.failure_cause = _CAUSE[ev.cause]
    for k, v in ev.attributes.items():
        msg.attributes[k] = v
    return msg


def event_from_proto(msg: pb.JobEvent) -> JobEvent:
    if not msg.job_id:
        raise InvalidMessage("job_id", "empty")
    if msg.kind not in _KIND_BACK:
        name = pb.JobEventKind.Name(msg.kind) if msg.kind in pb.JobEventKind.values() else str(msg.kind)
        raise InvalidMessage("kind", f"{name} is not an event kind")
    if not msg.HasField("event_time"):
        raise InvalidMessage("event_time", "missing")
    try:  # negative nanos or a second outside 0001..9999 (protobuf's Timestamp range) is not a time
        time_s = msg.event_time.ToNanoseconds() / 1e9
    except ValueError as exc:
        raise InvalidMessage("event_time", str(exc)) from None
    kind = _KIND_BACK[msg.kind]
    cause = None
    if msg.failure_cause != pb.FAILURE_CAUSE_UNSPECIFIED:
        if msg.failure_cause not in _CAUSE_BACK:
            raise InvalidMessage("failure_cause", f"unknown value {msg.failure_cause}")
        cause = _CAUSE_BACK[msg.failure_cause]
    if kind == EventKind.FAILED and cause is None:
        raise InvalidMessage("failure_cause", "a FAILED event needs a cause")
    if kind == EventKind.PROGRESS and not msg.HasField("spec") and not msg.HasField("placement"):
        return _progress_event(msg, kind, cause, time_s)
    spec = spec_from_proto(msg.spec) if msg.HasField("spec") else None
    pl = msg.placement
    try:
        return JobEvent(job_id=msg.job_id, kind=kind, time_s=time_s, source=msg.source,
                        cluster=msg.cluster, user=msg.user, account=msg.account, partition=msg.partition,
                        name=msg.name, nodes=tuple(pl.node_ids), n_nodes=pl.n_nodes or len(pl.node_ids),
                        n_gpus=pl.n_gpus, cause=cause,
                        exit_code=msg.exit_code if kind in _STATE_KINDS else None,
                        signal=msg.signal if kind in _STATE_KINDS else None, reason=msg.reason, spec=spec,
                        attributes=dict(msg.attributes), step=msg.step, step_time_s=msg.measured_step_time_s,
                        tokens_per_s=msg.measured_tokens_per_s)
    except ValueError as exc:
        raise InvalidMessage("measured_step_time_s" if kind == EventKind.PROGRESS else "job_event", str(exc)) \
            from None


_PROGRESS = pb.JOB_EVENT_KIND_PROGRESS
#: protobuf's Timestamp range (0001-01-01 .. 9999-12-31), as ``Timestamp.ToNanoseconds`` checks it
_TS_MIN_S, _TS_MAX_S = -62135596800, 253402300799


def progress_report(msg: pb.JobEvent) -> tuple[str, float, int, float, float] | None:
    """(job_id, time_s, step, step_time_s, tokens_per_s) of a PROGRESS event without spec or placement that
    ``event_from_proto`` accepts, with the same values it would give (``JobTwin.apply_progress`` takes them);
    None for any other event, or one it would refuse (the general path then decodes it and says why)."""
    if msg.kind != _PROGRESS or not msg.job_id or msg.HasField("spec") or msg.HasField("placement"):
        return None
    if not msg.HasField("event_time") or (msg.failure_cause and msg.failure_cause not in _CAUSE_BACK):
        return None
    ts = msg.event_time
    seconds, nanos = ts.seconds, ts.nanos
    if not (0 <= nanos <= 999_999_999 and _TS_MIN_S <= seconds <= _TS_MAX_S):
        return None
    step_time, tokens = msg.measured_step_time_s, msg.measured_tokens_per_s
    if not (step_time > 0 or tokens > 0):
        return None
    return msg.job_id, (seconds * 1_000_000_000 + nanos) / 1e9, msg.step, step_time, tokens


#: the fields a PROGRESS event without spec or placement leaves at their defaults (see ``_progress_event``)
_PROGRESS_DEFAULTS = {"nodes": (), "n_nodes": 0, "n_gpus": 0, "exit_code": None, "signal": None, "spec": None}


def _progress_event(msg: pb.JobEvent, kind: EventKind, cause, time_s: float) -> JobEvent:
    """The same JobEvent ``event_from_proto`` builds for a PROGRESS report with no spec or placement, without
    the dataclass constructor (every job may report every second: this is the job twin's hottest decode);
    ``JobEvent.__post_init__``'s one check that applies is made here."""
    step_time, tokens = msg.measured_step_time_s, msg.measured_tokens_per_s
    if not (step_time > 0 or tokens > 0):
        raise InvalidMessage("measured_step_time_s", "a PROGRESS event needs step_time_s or tokens_per_s > 0")
    ev = object.__new__(JobEvent)
    d = ev.__dict__
    d.update(_PROGRESS_DEFAULTS)
    d.update(job_id=msg.job_id, kind=kind, time_s=time_s, source=msg.source,
             cluster=msg.cluster, user=msg.user, account=msg.account, partition=msg.partition, name=msg.name,
             cause=cause, reason=msg.reason, attributes=dict(msg.attributes) if msg.attributes else {},
             step=msg.step, step_time_s=step_time, tokens_per_s=tokens)
    return ev


def state_to_proto(rec: JobRecord, prediction: StepPrediction | None, state_time_s: float, *,
                   goodput_fraction: float = 0.0, optimal_checkpoint_interval_s: float = 0.0,
                   failures_per_day: float = 0.0, step_time_error_ratio: float = 0.0) -> pb.JobState:
    """``jobs.state.v1`` for one job: its record and (for running jobs) the current prediction."""
    msg = pb.JobState(job_id=rec.job_id, state_time=_ts(state_time_s), status=_STATUS[rec.status],
                      measured_step_time_s=rec.measured_step_time_s,
                      measured_tokens_per_s=rec.measured_tokens_per_s, goodput_fraction=goodput_fraction,
                      optimal_checkpoint_interval_s=optimal_checkpoint_interval_s,
                      failures_per_day=failures_per_day, step_time_error_ratio=step_time_error_ratio)
    if rec.spec is not None:
        msg.spec.CopyFrom(spec_to_proto(rec.spec, dict(rec.attributes)))
    msg.placement.CopyFrom(pb.Placement(node_ids=list(rec.nodes), n_nodes=len(rec.nodes), n_gpus=rec.n_gpus))
    if prediction is not None:
        p = prediction
        msg.predicted_step_time_s = p.step_time_s
        msg.predicted_tokens_per_s = p.tokens_per_s
        msg.mfu = p.mfu
        msg.power_w = p.mean_power_w * p.n_gpus
        msg.clock_fraction = p.clock_fraction
        msg.phases.extend(pb.PowerPhase(name=ph.name, duration_s=ph.duration_s, gpu_power_w=ph.power_w)
                          for ph in p.phases)
        e = p.exposed_comm_s
        msg.breakdown.CopyFrom(pb.StepBreakdown(
            gemm_s=p.gemm_s, attention_s=p.attention_s, memory_s=p.memory_s, bubble_s=p.bubble_s,
            optimizer_s=p.optimizer_s, exposed_tp_s=e["tp"], exposed_pp_s=e["pp"], exposed_dp_s=e["dp"],
            exposed_cp_s=e["cp"], exposed_ep_s=e["ep"]))
    return msg


# -- the live service: inputs from the other twins, outputs of the twin -------------------------------------

_RISK = {"unspecified": pb.RISK_KIND_UNSPECIFIED, "thermal_throttle": pb.RISK_KIND_THERMAL_THROTTLE,
         "power_cap": pb.RISK_KIND_POWER_CAP, "degraded_link": pb.RISK_KIND_DEGRADED_LINK,
         "gpu_errors": pb.RISK_KIND_GPU_ERRORS, "straggler": pb.RISK_KIND_STRAGGLER,
         "slower_than_predicted": pb.RISK_KIND_SLOWER_THAN_PREDICTED}
_RECOMMENDATION = {"checkpoint_now": pb.RECOMMENDATION_KIND_CHECKPOINT_NOW, "move_job": pb.RECOMMENDATION_KIND_MOVE_JOB,
                   "change_checkpoint_interval": pb.RECOMMENDATION_KIND_CHANGE_CHECKPOINT_INTERVAL,
                   "drain_node": pb.RECOMMENDATION_KIND_DRAIN_NODE, "cap_power": pb.RECOMMENDATION_KIND_CAP_POWER}
#: ``JobLive.comm_source`` / ``overhead_source`` (``live.py``) -> the proto's provenance enums ("" -> UNSPECIFIED)
_COMM_SOURCE = {"": pb.COMM_SOURCE_UNSPECIFIED, "fabric": pb.COMM_SOURCE_FABRIC_TWIN,
                "local": pb.COMM_SOURCE_OWN_ESTIMATE}
_OVERHEAD_SOURCE = {"": pb.ENERGY_OVERHEAD_SOURCE_UNSPECIFIED, "site": pb.ENERGY_OVERHEAD_SOURCE_SITE_STATE,
                    "setting": pb.ENERGY_OVERHEAD_SOURCE_SETTING}
OVERHEAD_SOURCE_BACK = {v: k for k, v in _OVERHEAD_SOURCE.items()}
_SPEC_ATTRIBUTES = (("priority", "priority"), ("checkpoint_interval_s", "checkpoint_interval_s"),
                    ("checkpoint_bytes", "checkpoint_bytes"), ("checkpoint_write_s", "checkpoint_s"),
                    ("restart_s", "restart_s"))


def seconds(ts: Timestamp) -> float:
    return ts.ToNanoseconds() / 1e9


def job_event(msg: pb.JobEvent) -> tuple[JobEvent, tuple[int, ...]]:
    """A JobEvent and the placement's explicit GPU ids (empty when the scheduler gave only nodes). The spec's
    priority, owner and checkpoint settings join the event's attributes (where the book keeps them)."""
    ev = event_from_proto(msg)
    if msg.HasField("spec"):
        extra = {attr: msg.spec.owner for attr in ("owner",) if msg.spec.owner}
        for field, attr in _SPEC_ATTRIBUTES:
            value = getattr(msg.spec, field)
            if value:
                extra[attr] = str(value)
        if extra:
            ev = replace(ev, attributes={**extra, **ev.attributes})
    return ev, tuple(int(g) for g in msg.placement.gpu_ids)


#: job -> (the objects its state's static part was built from, that part): spec, placement and prediction change
#: rarely, a job's state is published every second (the same message as ``state_to_proto`` builds, faster)
#: The part is kept as a message and serialized: a state merges the bytes (``MergeFromString``), which protobuf's
#: upb runtime does ~4x faster than ``MergeFrom`` of the message (that serializes the message, then parses it).
_STATIC: dict[str, tuple[tuple, pb.JobState, bytes]] = {}


def _static_part(rec: JobRecord, prediction: StepPrediction | None, gpu_ids: tuple[int, ...]) -> pb.JobState:
    return _static_entry(rec, prediction, gpu_ids)[1]


def _static_entry(rec: JobRecord, prediction: StepPrediction | None, gpu_ids: tuple[int, ...]
                  ) -> tuple[tuple, pb.JobState, bytes]:
    hit = _STATIC.get(rec.job_id)
    if hit is not None:
        k = hit[0]  # the same objects (identity, not equality: cheap, and a new one is simply rebuilt)
        if (k[0] is rec.spec and k[1] is rec.attributes and k[2] is rec.nodes and k[3] == rec.n_gpus
                and k[4] is prediction and k[5] is gpu_ids):
            return hit
    key = (rec.spec, rec.attributes, rec.nodes, rec.n_gpus, prediction, gpu_ids)
    msg = state_to_proto(JobRecord(rec.job_id, JobStatus.PENDING, 0.0, spec=rec.spec, nodes=rec.nodes,
                                   n_gpus=rec.n_gpus, attributes=rec.attributes), prediction, 0.0)
    for name in ("job_id", "state_time", "status"):
        msg.ClearField(name)
    msg.placement.gpu_ids.extend(gpu_ids)
    if len(_STATIC) > 50_000:
        _STATIC.clear()
    entry = _STATIC[rec.job_id] = (key, msg, msg.SerializeToString())
    return entry


#: the last instant ``_ts_parts`` converted and its parts, replaced as one tuple (read once: no torn pair)
_TS_LAST: list[tuple[float, tuple[int, int]]] = [(math.nan, (0, 0))]


def _ts_parts(seconds: float) -> tuple[int, int]:
    """(seconds, nanos) of ``_ts(seconds)``; the last instant's kept (every state of a refresh has the same)."""
    last = _TS_LAST[0]
    if last[0] == seconds:
        return last[1]
    ts = _ts(seconds)
    parts = (ts.seconds, ts.nanos)
    _TS_LAST[0] = (seconds, parts)
    return parts


def view_to_proto(view, state_time_s: float, *, tariff_usd_per_kwh: float, carbon_kg_per_kwh: float) -> pb.JobState:
    """``jobs.state.v1`` for a ``twin.jobs.live.JobView``. The provenance fields (communication source, energy
    overhead factor and source) change without a new prediction, so they are set here, never in the cached
    static part."""
    rec, live = view.rec, view.live
    running = rec.status == JobStatus.RUNNING
    msg = pb.JobState(job_id=rec.job_id, status=_STATUS[rec.status],
                      measured_step_time_s=rec.measured_step_time_s,
                      measured_tokens_per_s=rec.measured_tokens_per_s, goodput_fraction=live.goodput,
                      optimal_checkpoint_interval_s=live.optimal_interval_s,
                      failures_per_day=live.failures_per_day, step_time_error_ratio=live.error_ratio)
    ts = msg.state_time  # ``_ts(state_time_s)``: the same seconds and nanos, once per refresh's instant
    ts.seconds, ts.nanos = _ts_parts(state_time_s)
    msg.MergeFromString(_static_entry(rec, live.prediction if running else None, tuple(view.gpu_ids))[2])
    if running:
        if live.flags:
            add = msg.risk_flags.add
            for f in live.flags:
                add(kind=_RISK[f.kind], entity_id=f.entity_id, slowdown_fraction=f.slowdown, detail=f.detail)
        source = live.comm_source
        if source:
            msg.comm_source, msg.comm_source_detail = _COMM_SOURCE[source], live.comm_detail
    if live.overhead_source:
        msg.energy_overhead_factor = live.overhead_factor
        msg.energy_overhead_source = _OVERHEAD_SOURCE[live.overhead_source]
    kwh = live.energy_j / 3.6e6
    msg.energy_j, msg.cost_usd, msg.co2_kg = live.energy_j, kwh * tariff_usd_per_kwh, kwh * carbon_kg_per_kwh
    if live.measured_j:
        e = live.measured_j  # GPUs + platform share, times the site overhead factor in force at each sample
        kwh = e / 3.6e6
        msg.measured_energy_j, msg.measured_gpu_energy_j = e, live.measured_gpu_j
        msg.measured_cost_usd, msg.measured_co2_kg = kwh * tariff_usd_per_kwh, kwh * carbon_kg_per_kwh
    return msg


def recommendation_to_proto(r, time_s: float) -> pb.JobRecommendation:
    return pb.JobRecommendation(recommendation_id=r.recommendation_id, job_id=r.job_id, recommendation_time=_ts(time_s),
                                kind=_RECOMMENDATION[r.kind], entity_id=r.entity_id, message=r.message,
                                deadline_s=r.deadline_s, expected_gain_fraction=r.gain)


def gpu_samples(msg: telemetry_pb2.TelemetrySamples, site) -> tuple | None:
    """telemetry.samples.v1 -> (sample time s, global GPU ids, power W, SM activity, last XID, ECC DBE total) of
    the batch's GPUs (NaN: not reported; XID 0 and DBE NaN where absent), its rack's PDU figures and the GPUs'
    utilization (see ``gpu_samples_many``), or None for what the job twin does not
    read: equipment batches, racks of other sites, nodes it does not know (ingest validated the batch; this twin
    only reads it, so it skips rather than dead-letters)."""
    got = gpu_samples_many([msg], site)
    return next(iter(got), None)


def gpu_samples_many(msgs, site) -> list[tuple]:
    """``gpu_samples`` of many batches at once, one tuple per distinct sample time (a consumer poll of a tick
    is one or two): the per-node fields are gathered as lists and turned into arrays once. Each tuple is
    (time s, GPU ids, power W, SM activity, XID, DBE, bounds, rack PDU W, rack GPUs, GPU utilization %): the GPUs
    of the time's ``b``-th rack batch are ``bounds[b]:bounds[b + 1]``, its rack's PDU input power (phases summed,
    NaN: not measured) and the GPUs the rack has (``domain.overhead.rack_platform_w`` takes these three)."""
    inv = site.inventory
    index, first_gpu, node_gpus = site.node_index, inv.node_first_gpu, inv.node_gpus
    by_time: dict[int, tuple[list, ...]] = {}
    nan = math.nan
    rack_gpus = site.rack_gpus
    for msg in msgs:
        b = msg.batch
        if b.HasField("equipment") or not b.nodes or not b.HasField("sample_time"):
            continue
        cols = by_time.get(b.sample_time.ToNanoseconds())
        if cols is None:
            cols = by_time[b.sample_time.ToNanoseconds()] = ([], [], [], [], [], [0], [], [], [])
        gpu_c, p_c, a_c, x_c, d_c, bounds, pdu_c, rg_c, u_c = cols
        for node in b.nodes:
            n = index.get(node.node_id)
            if n is None:
                continue
            g = node.gpus
            local = g.gpu_index
            k = len(local)
            if not k or max(local) >= node_gpus[n]:
                continue
            base = int(first_gpu[n])
            gpu_c.extend([base + i for i in local])
            for col, values, fill in ((p_c, g.power_w, nan), (a_c, g.sm_active, nan), (x_c, g.xid_errors, 0),
                                      (d_c, g.ecc_dbe_total, nan), (u_c, g.util_gpu_pct, nan)):
                if len(values) == k:
                    col.extend(values)
                else:
                    col.extend([fill] * k)
        if len(gpu_c) > bounds[-1]:
            bounds.append(len(gpu_c))
            pdu_c.append(pdu_total_w(b.rack.pdu_input_power_w) if b.HasField("rack") else nan)
            rg_c.append(rack_gpus(b.rack_id) if b.rack_id else 0)
    out = []
    for t_ns, (gpu_c, p_c, a_c, x_c, d_c, bounds, pdu_c, rg_c, u_c) in sorted(by_time.items()):
        if gpu_c:
            out.append((t_ns / 1e9, np.array(gpu_c, np.int64), np.array(p_c, float), np.array(a_c, float),
                        np.array(x_c, np.int64), np.array(d_c, float), np.array(bounds, np.int64),
                        np.array(pdu_c, float), np.array(rg_c, np.int64), np.array(u_c, float)))
    return out


def record_from_state(msg: pb.JobState) -> tuple[float, float, int]:
    """What a restarted process takes back from a stored state: energy, running error sum and count."""
    return msg.energy_j, msg.step_time_error_ratio, 1 if msg.step_time_error_ratio else 0


def link_health(msg: fabric_pb2.FabricState) -> dict:
    """fabric.state.v1 -> {link id: LinkHealth} of the links it lists."""
    from twin.jobs.live import LinkHealth

    out = {}
    for link in msg.links:
        cap = link.capacity_fraction
        if not link.link_id or not math.isfinite(cap) or not 0.0 <= cap <= 1.0:
            raise InvalidMessage("links.capacity_fraction", f"{link.link_id!r}: {cap} is not in 0..1")
        out[link.link_id] = LinkHealth(cap, link.utilization, link.flapping)
    return out


def site_power(msg: power_pb2.PowerState, site_id: str) -> tuple[float, float, float] | None:
    """power.state.v1 -> (state time s, facility W, IT W) of this site's ``POWER_SCOPE_SITE`` state, None for
    every other state (racks, components, other sites: not this twin's input)."""
    if msg.scope != power_pb2.POWER_SCOPE_SITE or msg.entity_id != site_id or msg.site_id != site_id:
        return None
    if not msg.HasField("state_time"):
        raise InvalidMessage("state_time", "missing")
    return msg.state_time.ToNanoseconds() / 1e9, msg.input_power_w, msg.output_power_w


def cap_plan(msg: power_pb2.CurtailmentPlan):
    """power.plans.v1 -> CapPlan: the caps in force from the plan's deadline for its duration."""
    from twin.jobs.live import CapPlan

    if len(msg.capped_gpu_ids) != len(msg.cap_w):
        raise InvalidMessage("cap_w", f"{len(msg.cap_w)} caps for {len(msg.capped_gpu_ids)} GPUs")
    if not msg.HasField("created_time"):
        raise InvalidMessage("created_time", "missing")
    bad = [c for c in msg.cap_w if not (math.isfinite(c) and c > 0)]
    if bad:
        raise InvalidMessage("cap_w", f"{bad[0]} is not a positive number")
    start = seconds(msg.created_time) + max(msg.deadline_offset_s, 0.0)
    end = start + (msg.duration_s if msg.duration_s > 0 else 7 * 86400.0)
    return CapPlan(msg.plan_id, msg.event_id or msg.plan_id, start, end,
                   dict(zip((int(g) for g in msg.capped_gpu_ids), msg.cap_w, strict=True)),
                   frozenset(msg.paused_job_ids))


def thermal_alert(msg: cooling_pb2.CoolingAlert, received_s: float):
    """cooling.alerts.v1 THROTTLE_PREDICTED -> ThermalAlert, or ThermalClear when it is the clear of one (other
    kinds: None)."""
    from twin.jobs.live import ThermalAlert, ThermalClear

    if msg.kind != cooling_pb2.ALERT_KIND_THROTTLE_PREDICTED:
        return None
    if not msg.entity_id:
        raise InvalidMessage("entity_id", "empty")
    if msg.cleared:
        return ThermalClear(msg.entity_id, seconds(msg.alert_time) if msg.HasField("alert_time") else received_s)
    ttt = msg.time_to_throttle_s if msg.HasField("time_to_throttle_s") else 0.0
    if not math.isfinite(ttt):
        raise InvalidMessage("time_to_throttle_s", "not a number")
    at = seconds(msg.alert_time) if msg.HasField("alert_time") else received_s
    return ThermalAlert(msg.alert_id or msg.entity_id, msg.entity_id, frozenset(int(g) for g in msg.gpu_ids),
                        at + max(ttt, 0.0), received_s, raised_s=at)


#: power.alerts.v1 scopes the job twin reads: a rack, or a component of the chain above racks (the twin maps it to
#: the racks below it); site-wide alerts (ramp) concern no rack, the power twin's plans carry what they mean.
_POWER_SCOPES = {power_pb2.POWER_SCOPE_RACK: "rack", power_pb2.POWER_SCOPE_PDU: "pdu",
                 power_pb2.POWER_SCOPE_UPS_GROUP: "ups_group", power_pb2.POWER_SCOPE_UPS: "ups",
                 power_pb2.POWER_SCOPE_TRANSFORMER: "transformer", power_pb2.POWER_SCOPE_FEED: "feed"}


def rack_alert(msg: power_pb2.PowerAlert, received_s: float):
    """power.alerts.v1 on a rack or a power component (PDU, UPS bus, UPS, transformer, feed) -> RackAlert, or
    RackClear when it is the clear of one (site alerts and suspect sensors: None)."""
    from twin.jobs.live import RackAlert, RackClear

    scope = _POWER_SCOPES.get(msg.scope)
    if scope is None or msg.kind == power_pb2.ALERT_KIND_SUSPECT_SENSOR:
        return None
    if not msg.entity_id:
        raise InvalidMessage("entity_id", "empty")
    kind = power_pb2.AlertKind.Name(msg.kind).removeprefix("ALERT_KIND_").lower() \
        if msg.kind in power_pb2.AlertKind.values() else str(msg.kind)
    at = seconds(msg.alert_time) if msg.HasField("alert_time") else received_s
    if msg.cleared:
        return RackClear(msg.entity_id, kind, at, scope=scope)
    return RackAlert(msg.alert_id or f"{msg.entity_id}/{kind}", msg.entity_id, kind,
                     msg.severity == power_pb2.SEVERITY_CRITICAL, received_s, msg.message, raised_s=at, scope=scope)


def job_impact(i) -> pb.JobImpact:
    """A ``whatif.Impact`` -> JobImpact (communication source "" for targets other than LINK and stopped jobs)."""
    return pb.JobImpact(job_id=i.job_id, stops=i.stops, step_time_before_s=i.before_s, step_time_after_s=i.after_s,
                        slowdown_fraction=i.slowdown, goodput_lost_gpu_hours=i.lost_gpu_h,
                        comm_source=_COMM_SOURCE[i.comm_source], comm_source_detail=i.comm_detail)


def placement_outcome(o) -> pb.PlacementOutcome:
    """A ``whatif.Outcome`` -> PlacementOutcome (communication source "" for a candidate that does not fit)."""
    return pb.PlacementOutcome(candidate_id=o.candidate_id, rank=o.rank, predicted_step_time_s=o.step_time_s,
                               predicted_tokens_per_s=o.tokens_per_s, power_w=o.power_w, thermal_risk=o.thermal_risk,
                               network_risk=o.network_risk, detail=o.detail, comm_source=_COMM_SOURCE[o.comm_source],
                               comm_source_detail=o.comm_detail)
