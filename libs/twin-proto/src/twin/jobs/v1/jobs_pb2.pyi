import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_EVENT_KIND_UNSPECIFIED: _ClassVar[JobEventKind]
    JOB_EVENT_KIND_SUBMITTED: _ClassVar[JobEventKind]
    JOB_EVENT_KIND_STARTED: _ClassVar[JobEventKind]
    JOB_EVENT_KIND_CHECKPOINTED: _ClassVar[JobEventKind]
    JOB_EVENT_KIND_PREEMPTED: _ClassVar[JobEventKind]
    JOB_EVENT_KIND_FAILED: _ClassVar[JobEventKind]
    JOB_EVENT_KIND_FINISHED: _ClassVar[JobEventKind]
    JOB_EVENT_KIND_CANCELLED: _ClassVar[JobEventKind]
    JOB_EVENT_KIND_RESIZED: _ClassVar[JobEventKind]
    JOB_EVENT_KIND_PROGRESS: _ClassVar[JobEventKind]

class FailureCause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_CAUSE_UNSPECIFIED: _ClassVar[FailureCause]
    FAILURE_CAUSE_GPU_XID: _ClassVar[FailureCause]
    FAILURE_CAUSE_NODE: _ClassVar[FailureCause]
    FAILURE_CAUSE_NETWORK: _ClassVar[FailureCause]
    FAILURE_CAUSE_SOFTWARE: _ClassVar[FailureCause]
    FAILURE_CAUSE_OUT_OF_MEMORY: _ClassVar[FailureCause]
    FAILURE_CAUSE_TIMEOUT: _ClassVar[FailureCause]
    FAILURE_CAUSE_UNKNOWN: _ClassVar[FailureCause]

class Precision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRECISION_UNSPECIFIED: _ClassVar[Precision]
    PRECISION_BF16: _ClassVar[Precision]
    PRECISION_FP8: _ClassVar[Precision]

class MoeDispatcher(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MOE_DISPATCHER_UNSPECIFIED: _ClassVar[MoeDispatcher]
    MOE_DISPATCHER_NCCL_ALLTOALL: _ClassVar[MoeDispatcher]
    MOE_DISPATCHER_DEEPEP_NORMAL: _ClassVar[MoeDispatcher]
    MOE_DISPATCHER_DEEPEP_LOW_LATENCY: _ClassVar[MoeDispatcher]

class Recompute(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECOMPUTE_UNSPECIFIED: _ClassVar[Recompute]
    RECOMPUTE_NONE: _ClassVar[Recompute]
    RECOMPUTE_SELECTIVE: _ClassVar[Recompute]
    RECOMPUTE_OP: _ClassVar[Recompute]
    RECOMPUTE_FULL: _ClassVar[Recompute]

class DataParallel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_PARALLEL_UNSPECIFIED: _ClassVar[DataParallel]
    DATA_PARALLEL_DDP: _ClassVar[DataParallel]
    DATA_PARALLEL_ZERO1: _ClassVar[DataParallel]
    DATA_PARALLEL_FSDP: _ClassVar[DataParallel]

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_PENDING: _ClassVar[JobStatus]
    JOB_STATUS_RUNNING: _ClassVar[JobStatus]
    JOB_STATUS_PREEMPTED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    JOB_STATUS_FINISHED: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]

class RiskKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_KIND_UNSPECIFIED: _ClassVar[RiskKind]
    RISK_KIND_THERMAL_THROTTLE: _ClassVar[RiskKind]
    RISK_KIND_POWER_CAP: _ClassVar[RiskKind]
    RISK_KIND_DEGRADED_LINK: _ClassVar[RiskKind]
    RISK_KIND_GPU_ERRORS: _ClassVar[RiskKind]
    RISK_KIND_STRAGGLER: _ClassVar[RiskKind]
    RISK_KIND_SLOWER_THAN_PREDICTED: _ClassVar[RiskKind]

class CommSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMM_SOURCE_UNSPECIFIED: _ClassVar[CommSource]
    COMM_SOURCE_FABRIC_TWIN: _ClassVar[CommSource]
    COMM_SOURCE_OWN_ESTIMATE: _ClassVar[CommSource]

class EnergyOverheadSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENERGY_OVERHEAD_SOURCE_UNSPECIFIED: _ClassVar[EnergyOverheadSource]
    ENERGY_OVERHEAD_SOURCE_SITE_STATE: _ClassVar[EnergyOverheadSource]
    ENERGY_OVERHEAD_SOURCE_SETTING: _ClassVar[EnergyOverheadSource]

class RecommendationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECOMMENDATION_KIND_UNSPECIFIED: _ClassVar[RecommendationKind]
    RECOMMENDATION_KIND_CHECKPOINT_NOW: _ClassVar[RecommendationKind]
    RECOMMENDATION_KIND_MOVE_JOB: _ClassVar[RecommendationKind]
    RECOMMENDATION_KIND_CHANGE_CHECKPOINT_INTERVAL: _ClassVar[RecommendationKind]
    RECOMMENDATION_KIND_DRAIN_NODE: _ClassVar[RecommendationKind]
    RECOMMENDATION_KIND_CAP_POWER: _ClassVar[RecommendationKind]

class FailureTargetKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_TARGET_KIND_UNSPECIFIED: _ClassVar[FailureTargetKind]
    FAILURE_TARGET_KIND_NODE: _ClassVar[FailureTargetKind]
    FAILURE_TARGET_KIND_LINK: _ClassVar[FailureTargetKind]
    FAILURE_TARGET_KIND_CDU: _ClassVar[FailureTargetKind]
    FAILURE_TARGET_KIND_UPS: _ClassVar[FailureTargetKind]
JOB_EVENT_KIND_UNSPECIFIED: JobEventKind
JOB_EVENT_KIND_SUBMITTED: JobEventKind
JOB_EVENT_KIND_STARTED: JobEventKind
JOB_EVENT_KIND_CHECKPOINTED: JobEventKind
JOB_EVENT_KIND_PREEMPTED: JobEventKind
JOB_EVENT_KIND_FAILED: JobEventKind
JOB_EVENT_KIND_FINISHED: JobEventKind
JOB_EVENT_KIND_CANCELLED: JobEventKind
JOB_EVENT_KIND_RESIZED: JobEventKind
JOB_EVENT_KIND_PROGRESS: JobEventKind
FAILURE_CAUSE_UNSPECIFIED: FailureCause
FAILURE_CAUSE_GPU_XID: FailureCause
FAILURE_CAUSE_NODE: FailureCause
FAILURE_CAUSE_NETWORK: FailureCause
FAILURE_CAUSE_SOFTWARE: FailureCause
FAILURE_CAUSE_OUT_OF_MEMORY: FailureCause
FAILURE_CAUSE_TIMEOUT: FailureCause
FAILURE_CAUSE_UNKNOWN: FailureCause
PRECISION_UNSPECIFIED: Precision
PRECISION_BF16: Precision
PRECISION_FP8: Precision
MOE_DISPATCHER_UNSPECIFIED: MoeDispatcher
MOE_DISPATCHER_NCCL_ALLTOALL: MoeDispatcher
MOE_DISPATCHER_DEEPEP_NORMAL: MoeDispatcher
MOE_DISPATCHER_DEEPEP_LOW_LATENCY: MoeDispatcher
RECOMPUTE_UNSPECIFIED: Recompute
RECOMPUTE_NONE: Recompute
RECOMPUTE_SELECTIVE: Recompute
RECOMPUTE_OP: Recompute
RECOMPUTE_FULL: Recompute
DATA_PARALLEL_UNSPECIFIED: DataParallel
DATA_PARALLEL_DDP: DataParallel
DATA_PARALLEL_ZERO1: DataParallel
DATA_PARALLEL_FSDP: DataParallel
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_PENDING: JobStatus
JOB_STATUS_RUNNING: JobStatus
JOB_STATUS_PREEMPTED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_STATUS_FINISHED: JobStatus
JOB_STATUS_CANCELLED: JobStatus
RISK_KIND_UNSPECIFIED: RiskKind
RISK_KIND_THERMAL_THROTTLE: RiskKind
RISK_KIND_POWER_CAP: RiskKind
RISK_KIND_DEGRADED_LINK: RiskKind
RISK_KIND_GPU_ERRORS: RiskKind
RISK_KIND_STRAGGLER: RiskKind
RISK_KIND_SLOWER_THAN_PREDICTED: RiskKind
COMM_SOURCE_UNSPECIFIED: CommSource
COMM_SOURCE_FABRIC_TWIN: CommSource
COMM_SOURCE_OWN_ESTIMATE: CommSource
ENERGY_OVERHEAD_SOURCE_UNSPECIFIED: EnergyOverheadSource
ENERGY_OVERHEAD_SOURCE_SITE_STATE: EnergyOverheadSource
ENERGY_OVERHEAD_SOURCE_SETTING: EnergyOverheadSource
RECOMMENDATION_KIND_UNSPECIFIED: RecommendationKind
RECOMMENDATION_KIND_CHECKPOINT_NOW: RecommendationKind
RECOMMENDATION_KIND_MOVE_JOB: RecommendationKind
RECOMMENDATION_KIND_CHANGE_CHECKPOINT_INTERVAL: RecommendationKind
RECOMMENDATION_KIND_DRAIN_NODE: RecommendationKind
RECOMMENDATION_KIND_CAP_POWER: RecommendationKind
FAILURE_TARGET_KIND_UNSPECIFIED: FailureTargetKind
FAILURE_TARGET_KIND_NODE: FailureTargetKind
FAILURE_TARGET_KIND_LINK: FailureTargetKind
FAILURE_TARGET_KIND_CDU: FailureTargetKind
FAILURE_TARGET_KIND_UPS: FailureTargetKind

class ModelShape(_message.Message):
    __slots__ = ("layers", "hidden", "ffn_hidden", "heads", "kv_heads", "vocab", "seq_len_tokens", "head_dim", "moe_experts", "moe_topk", "gated_ffn", "sliding_window_tokens", "sliding_window_every")
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    FFN_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    HEADS_FIELD_NUMBER: _ClassVar[int]
    KV_HEADS_FIELD_NUMBER: _ClassVar[int]
    VOCAB_FIELD_NUMBER: _ClassVar[int]
    SEQ_LEN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    HEAD_DIM_FIELD_NUMBER: _ClassVar[int]
    MOE_EXPERTS_FIELD_NUMBER: _ClassVar[int]
    MOE_TOPK_FIELD_NUMBER: _ClassVar[int]
    GATED_FFN_FIELD_NUMBER: _ClassVar[int]
    SLIDING_WINDOW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SLIDING_WINDOW_EVERY_FIELD_NUMBER: _ClassVar[int]
    layers: int
    hidden: int
    ffn_hidden: int
    heads: int
    kv_heads: int
    vocab: int
    seq_len_tokens: int
    head_dim: int
    moe_experts: int
    moe_topk: int
    gated_ffn: bool
    sliding_window_tokens: int
    sliding_window_every: int
    def __init__(self, layers: _Optional[int] = ..., hidden: _Optional[int] = ..., ffn_hidden: _Optional[int] = ..., heads: _Optional[int] = ..., kv_heads: _Optional[int] = ..., vocab: _Optional[int] = ..., seq_len_tokens: _Optional[int] = ..., head_dim: _Optional[int] = ..., moe_experts: _Optional[int] = ..., moe_topk: _Optional[int] = ..., gated_ffn: _Optional[bool] = ..., sliding_window_tokens: _Optional[int] = ..., sliding_window_every: _Optional[int] = ...) -> None: ...

class Parallelism(_message.Message):
    __slots__ = ("tp", "pp", "dp", "cp", "ep", "vp", "sequence_parallel", "data_parallel")
    TP_FIELD_NUMBER: _ClassVar[int]
    PP_FIELD_NUMBER: _ClassVar[int]
    DP_FIELD_NUMBER: _ClassVar[int]
    CP_FIELD_NUMBER: _ClassVar[int]
    EP_FIELD_NUMBER: _ClassVar[int]
    VP_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    DATA_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    tp: int
    pp: int
    dp: int
    cp: int
    ep: int
    vp: int
    sequence_parallel: bool
    data_parallel: DataParallel
    def __init__(self, tp: _Optional[int] = ..., pp: _Optional[int] = ..., dp: _Optional[int] = ..., cp: _Optional[int] = ..., ep: _Optional[int] = ..., vp: _Optional[int] = ..., sequence_parallel: _Optional[bool] = ..., data_parallel: _Optional[_Union[DataParallel, str]] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("model", "parallel", "micro_batch_sequences", "global_batch_sequences", "precision", "recompute", "gpu_model", "n_gpus", "priority", "checkpoint_interval_s", "checkpoint_bytes", "checkpoint_write_s", "restart_s", "owner", "moe_dispatcher")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_FIELD_NUMBER: _ClassVar[int]
    MICRO_BATCH_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_BATCH_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECOMPUTE_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    N_GPUS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_WRITE_S_FIELD_NUMBER: _ClassVar[int]
    RESTART_S_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    MOE_DISPATCHER_FIELD_NUMBER: _ClassVar[int]
    model: ModelShape
    parallel: Parallelism
    micro_batch_sequences: int
    global_batch_sequences: int
    precision: Precision
    recompute: Recompute
    gpu_model: str
    n_gpus: int
    priority: int
    checkpoint_interval_s: float
    checkpoint_bytes: int
    checkpoint_write_s: float
    restart_s: float
    owner: str
    moe_dispatcher: MoeDispatcher
    def __init__(self, model: _Optional[_Union[ModelShape, _Mapping]] = ..., parallel: _Optional[_Union[Parallelism, _Mapping]] = ..., micro_batch_sequences: _Optional[int] = ..., global_batch_sequences: _Optional[int] = ..., precision: _Optional[_Union[Precision, str]] = ..., recompute: _Optional[_Union[Recompute, str]] = ..., gpu_model: _Optional[str] = ..., n_gpus: _Optional[int] = ..., priority: _Optional[int] = ..., checkpoint_interval_s: _Optional[float] = ..., checkpoint_bytes: _Optional[int] = ..., checkpoint_write_s: _Optional[float] = ..., restart_s: _Optional[float] = ..., owner: _Optional[str] = ..., moe_dispatcher: _Optional[_Union[MoeDispatcher, str]] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("node_ids", "gpu_ids", "n_nodes", "n_gpus")
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    N_NODES_FIELD_NUMBER: _ClassVar[int]
    N_GPUS_FIELD_NUMBER: _ClassVar[int]
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    n_nodes: int
    n_gpus: int
    def __init__(self, node_ids: _Optional[_Iterable[str]] = ..., gpu_ids: _Optional[_Iterable[int]] = ..., n_nodes: _Optional[int] = ..., n_gpus: _Optional[int] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "kind", "event_time", "source", "cluster", "user", "account", "partition", "name", "spec", "placement", "failure_cause", "exit_code", "signal", "reason", "step", "measured_step_time_s", "measured_tokens_per_s", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_CAUSE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    MEASURED_STEP_TIME_S_FIELD_NUMBER: _ClassVar[int]
    MEASURED_TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: JobEventKind
    event_time: _timestamp_pb2.Timestamp
    source: str
    cluster: str
    user: str
    account: str
    partition: str
    name: str
    spec: JobSpec
    placement: Placement
    failure_cause: FailureCause
    exit_code: int
    signal: int
    reason: str
    step: int
    measured_step_time_s: float
    measured_tokens_per_s: float
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[_Union[JobEventKind, str]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., cluster: _Optional[str] = ..., user: _Optional[str] = ..., account: _Optional[str] = ..., partition: _Optional[str] = ..., name: _Optional[str] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., failure_cause: _Optional[_Union[FailureCause, str]] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., reason: _Optional[str] = ..., step: _Optional[int] = ..., measured_step_time_s: _Optional[float] = ..., measured_tokens_per_s: _Optional[float] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PowerPhase(_message.Message):
    __slots__ = ("name", "duration_s", "gpu_power_w")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    GPU_POWER_W_FIELD_NUMBER: _ClassVar[int]
    name: str
    duration_s: float
    gpu_power_w: float
    def __init__(self, name: _Optional[str] = ..., duration_s: _Optional[float] = ..., gpu_power_w: _Optional[float] = ...) -> None: ...

class StepBreakdown(_message.Message):
    __slots__ = ("gemm_s", "attention_s", "memory_s", "bubble_s", "optimizer_s", "exposed_tp_s", "exposed_pp_s", "exposed_dp_s", "exposed_cp_s", "exposed_ep_s")
    GEMM_S_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_S_FIELD_NUMBER: _ClassVar[int]
    BUBBLE_S_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_S_FIELD_NUMBER: _ClassVar[int]
    EXPOSED_TP_S_FIELD_NUMBER: _ClassVar[int]
    EXPOSED_PP_S_FIELD_NUMBER: _ClassVar[int]
    EXPOSED_DP_S_FIELD_NUMBER: _ClassVar[int]
    EXPOSED_CP_S_FIELD_NUMBER: _ClassVar[int]
    EXPOSED_EP_S_FIELD_NUMBER: _ClassVar[int]
    gemm_s: float
    attention_s: float
    memory_s: float
    bubble_s: float
    optimizer_s: float
    exposed_tp_s: float
    exposed_pp_s: float
    exposed_dp_s: float
    exposed_cp_s: float
    exposed_ep_s: float
    def __init__(self, gemm_s: _Optional[float] = ..., attention_s: _Optional[float] = ..., memory_s: _Optional[float] = ..., bubble_s: _Optional[float] = ..., optimizer_s: _Optional[float] = ..., exposed_tp_s: _Optional[float] = ..., exposed_pp_s: _Optional[float] = ..., exposed_dp_s: _Optional[float] = ..., exposed_cp_s: _Optional[float] = ..., exposed_ep_s: _Optional[float] = ...) -> None: ...

class RiskFlag(_message.Message):
    __slots__ = ("kind", "entity_id", "slowdown_fraction", "detail")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    SLOWDOWN_FRACTION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    kind: RiskKind
    entity_id: str
    slowdown_fraction: float
    detail: str
    def __init__(self, kind: _Optional[_Union[RiskKind, str]] = ..., entity_id: _Optional[str] = ..., slowdown_fraction: _Optional[float] = ..., detail: _Optional[str] = ...) -> None: ...

class JobState(_message.Message):
    __slots__ = ("job_id", "state_time", "status", "spec", "placement", "predicted_step_time_s", "measured_step_time_s", "step_time_error_ratio", "predicted_tokens_per_s", "measured_tokens_per_s", "mfu", "power_w", "phases", "goodput_fraction", "optimal_checkpoint_interval_s", "failures_per_day", "clock_fraction", "breakdown", "risk_flags", "energy_j", "cost_usd", "co2_kg", "measured_energy_j", "measured_gpu_energy_j", "measured_cost_usd", "measured_co2_kg", "comm_source", "comm_source_detail", "energy_overhead_factor", "energy_overhead_source")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_STEP_TIME_S_FIELD_NUMBER: _ClassVar[int]
    MEASURED_STEP_TIME_S_FIELD_NUMBER: _ClassVar[int]
    STEP_TIME_ERROR_RATIO_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    MEASURED_TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    MFU_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    GOODPUT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    OPTIMAL_CHECKPOINT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    FAILURES_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FRACTION_FIELD_NUMBER: _ClassVar[int]
    BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    RISK_FLAGS_FIELD_NUMBER: _ClassVar[int]
    ENERGY_J_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    CO2_KG_FIELD_NUMBER: _ClassVar[int]
    MEASURED_ENERGY_J_FIELD_NUMBER: _ClassVar[int]
    MEASURED_GPU_ENERGY_J_FIELD_NUMBER: _ClassVar[int]
    MEASURED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    MEASURED_CO2_KG_FIELD_NUMBER: _ClassVar[int]
    COMM_SOURCE_FIELD_NUMBER: _ClassVar[int]
    COMM_SOURCE_DETAIL_FIELD_NUMBER: _ClassVar[int]
    ENERGY_OVERHEAD_FACTOR_FIELD_NUMBER: _ClassVar[int]
    ENERGY_OVERHEAD_SOURCE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state_time: _timestamp_pb2.Timestamp
    status: JobStatus
    spec: JobSpec
    placement: Placement
    predicted_step_time_s: float
    measured_step_time_s: float
    step_time_error_ratio: float
    predicted_tokens_per_s: float
    measured_tokens_per_s: float
    mfu: float
    power_w: float
    phases: _containers.RepeatedCompositeFieldContainer[PowerPhase]
    goodput_fraction: float
    optimal_checkpoint_interval_s: float
    failures_per_day: float
    clock_fraction: float
    breakdown: StepBreakdown
    risk_flags: _containers.RepeatedCompositeFieldContainer[RiskFlag]
    energy_j: float
    cost_usd: float
    co2_kg: float
    measured_energy_j: float
    measured_gpu_energy_j: float
    measured_cost_usd: float
    measured_co2_kg: float
    comm_source: CommSource
    comm_source_detail: str
    energy_overhead_factor: float
    energy_overhead_source: EnergyOverheadSource
    def __init__(self, job_id: _Optional[str] = ..., state_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[JobStatus, str]] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., predicted_step_time_s: _Optional[float] = ..., measured_step_time_s: _Optional[float] = ..., step_time_error_ratio: _Optional[float] = ..., predicted_tokens_per_s: _Optional[float] = ..., measured_tokens_per_s: _Optional[float] = ..., mfu: _Optional[float] = ..., power_w: _Optional[float] = ..., phases: _Optional[_Iterable[_Union[PowerPhase, _Mapping]]] = ..., goodput_fraction: _Optional[float] = ..., optimal_checkpoint_interval_s: _Optional[float] = ..., failures_per_day: _Optional[float] = ..., clock_fraction: _Optional[float] = ..., breakdown: _Optional[_Union[StepBreakdown, _Mapping]] = ..., risk_flags: _Optional[_Iterable[_Union[RiskFlag, _Mapping]]] = ..., energy_j: _Optional[float] = ..., cost_usd: _Optional[float] = ..., co2_kg: _Optional[float] = ..., measured_energy_j: _Optional[float] = ..., measured_gpu_energy_j: _Optional[float] = ..., measured_cost_usd: _Optional[float] = ..., measured_co2_kg: _Optional[float] = ..., comm_source: _Optional[_Union[CommSource, str]] = ..., comm_source_detail: _Optional[str] = ..., energy_overhead_factor: _Optional[float] = ..., energy_overhead_source: _Optional[_Union[EnergyOverheadSource, str]] = ...) -> None: ...

class JobRecommendation(_message.Message):
    __slots__ = ("recommendation_id", "job_id", "recommendation_time", "kind", "entity_id", "message", "deadline_s", "expected_gain_fraction")
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_S_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_GAIN_FRACTION_FIELD_NUMBER: _ClassVar[int]
    recommendation_id: str
    job_id: str
    recommendation_time: _timestamp_pb2.Timestamp
    kind: RecommendationKind
    entity_id: str
    message: str
    deadline_s: float
    expected_gain_fraction: float
    def __init__(self, recommendation_id: _Optional[str] = ..., job_id: _Optional[str] = ..., recommendation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[RecommendationKind, str]] = ..., entity_id: _Optional[str] = ..., message: _Optional[str] = ..., deadline_s: _Optional[float] = ..., expected_gain_fraction: _Optional[float] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: JobState
    def __init__(self, job: _Optional[_Union[JobState, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("status", "page_size", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: JobStatus
    page_size: int
    page_token: str
    def __init__(self, status: _Optional[_Union[JobStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobState]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobState, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PlacementCandidate(_message.Message):
    __slots__ = ("candidate_id", "rack_ids", "node_ids")
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    RACK_IDS_FIELD_NUMBER: _ClassVar[int]
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    candidate_id: str
    rack_ids: _containers.RepeatedScalarFieldContainer[str]
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, candidate_id: _Optional[str] = ..., rack_ids: _Optional[_Iterable[str]] = ..., node_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class WhatIfPlacementRequest(_message.Message):
    __slots__ = ("spec", "candidates")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    spec: JobSpec
    candidates: _containers.RepeatedCompositeFieldContainer[PlacementCandidate]
    def __init__(self, spec: _Optional[_Union[JobSpec, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[PlacementCandidate, _Mapping]]] = ...) -> None: ...

class PlacementOutcome(_message.Message):
    __slots__ = ("candidate_id", "rank", "predicted_step_time_s", "predicted_tokens_per_s", "power_w", "thermal_risk", "network_risk", "detail", "comm_source", "comm_source_detail")
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_STEP_TIME_S_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_TOKENS_PER_S_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    THERMAL_RISK_FIELD_NUMBER: _ClassVar[int]
    NETWORK_RISK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    COMM_SOURCE_FIELD_NUMBER: _ClassVar[int]
    COMM_SOURCE_DETAIL_FIELD_NUMBER: _ClassVar[int]
    candidate_id: str
    rank: int
    predicted_step_time_s: float
    predicted_tokens_per_s: float
    power_w: float
    thermal_risk: float
    network_risk: float
    detail: str
    comm_source: CommSource
    comm_source_detail: str
    def __init__(self, candidate_id: _Optional[str] = ..., rank: _Optional[int] = ..., predicted_step_time_s: _Optional[float] = ..., predicted_tokens_per_s: _Optional[float] = ..., power_w: _Optional[float] = ..., thermal_risk: _Optional[float] = ..., network_risk: _Optional[float] = ..., detail: _Optional[str] = ..., comm_source: _Optional[_Union[CommSource, str]] = ..., comm_source_detail: _Optional[str] = ...) -> None: ...

class WhatIfPlacementResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[PlacementOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[PlacementOutcome, _Mapping]]] = ...) -> None: ...

class WhatIfFailureRequest(_message.Message):
    __slots__ = ("target_kind", "target_id", "duration_s")
    TARGET_KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    target_kind: FailureTargetKind
    target_id: str
    duration_s: float
    def __init__(self, target_kind: _Optional[_Union[FailureTargetKind, str]] = ..., target_id: _Optional[str] = ..., duration_s: _Optional[float] = ...) -> None: ...

class JobImpact(_message.Message):
    __slots__ = ("job_id", "stops", "step_time_before_s", "step_time_after_s", "slowdown_fraction", "goodput_lost_gpu_hours", "comm_source", "comm_source_detail")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STOPS_FIELD_NUMBER: _ClassVar[int]
    STEP_TIME_BEFORE_S_FIELD_NUMBER: _ClassVar[int]
    STEP_TIME_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    SLOWDOWN_FRACTION_FIELD_NUMBER: _ClassVar[int]
    GOODPUT_LOST_GPU_HOURS_FIELD_NUMBER: _ClassVar[int]
    COMM_SOURCE_FIELD_NUMBER: _ClassVar[int]
    COMM_SOURCE_DETAIL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    stops: bool
    step_time_before_s: float
    step_time_after_s: float
    slowdown_fraction: float
    goodput_lost_gpu_hours: float
    comm_source: CommSource
    comm_source_detail: str
    def __init__(self, job_id: _Optional[str] = ..., stops: _Optional[bool] = ..., step_time_before_s: _Optional[float] = ..., step_time_after_s: _Optional[float] = ..., slowdown_fraction: _Optional[float] = ..., goodput_lost_gpu_hours: _Optional[float] = ..., comm_source: _Optional[_Union[CommSource, str]] = ..., comm_source_detail: _Optional[str] = ...) -> None: ...

class WhatIfFailureResponse(_message.Message):
    __slots__ = ("impacts", "goodput_lost_gpu_hours")
    IMPACTS_FIELD_NUMBER: _ClassVar[int]
    GOODPUT_LOST_GPU_HOURS_FIELD_NUMBER: _ClassVar[int]
    impacts: _containers.RepeatedCompositeFieldContainer[JobImpact]
    goodput_lost_gpu_hours: float
    def __init__(self, impacts: _Optional[_Iterable[_Union[JobImpact, _Mapping]]] = ..., goodput_lost_gpu_hours: _Optional[float] = ...) -> None: ...

class WhatIfPowerCapRequest(_message.Message):
    __slots__ = ("job_id", "gpu_power_cap_w")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_POWER_CAP_W_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    gpu_power_cap_w: float
    def __init__(self, job_id: _Optional[str] = ..., gpu_power_cap_w: _Optional[float] = ...) -> None: ...

class WhatIfPowerCapResponse(_message.Message):
    __slots__ = ("step_time_before_s", "step_time_after_s", "power_before_w", "power_after_w", "energy_per_step_before_j", "energy_per_step_after_j", "clock_fraction")
    STEP_TIME_BEFORE_S_FIELD_NUMBER: _ClassVar[int]
    STEP_TIME_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    POWER_BEFORE_W_FIELD_NUMBER: _ClassVar[int]
    POWER_AFTER_W_FIELD_NUMBER: _ClassVar[int]
    ENERGY_PER_STEP_BEFORE_J_FIELD_NUMBER: _ClassVar[int]
    ENERGY_PER_STEP_AFTER_J_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FRACTION_FIELD_NUMBER: _ClassVar[int]
    step_time_before_s: float
    step_time_after_s: float
    power_before_w: float
    power_after_w: float
    energy_per_step_before_j: float
    energy_per_step_after_j: float
    clock_fraction: float
    def __init__(self, step_time_before_s: _Optional[float] = ..., step_time_after_s: _Optional[float] = ..., power_before_w: _Optional[float] = ..., power_after_w: _Optional[float] = ..., energy_per_step_before_j: _Optional[float] = ..., energy_per_step_after_j: _Optional[float] = ..., clock_fraction: _Optional[float] = ...) -> None: ...
