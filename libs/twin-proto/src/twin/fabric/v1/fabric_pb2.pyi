import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Collective(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLLECTIVE_UNSPECIFIED: _ClassVar[Collective]
    COLLECTIVE_ALL_REDUCE: _ClassVar[Collective]
    COLLECTIVE_ALL_GATHER: _ClassVar[Collective]
    COLLECTIVE_REDUCE_SCATTER: _ClassVar[Collective]
    COLLECTIVE_BROADCAST: _ClassVar[Collective]
    COLLECTIVE_REDUCE: _ClassVar[Collective]
    COLLECTIVE_ALLTOALL: _ClassVar[Collective]
    COLLECTIVE_SEND_RECV: _ClassVar[Collective]

class PackingPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PACKING_POLICY_UNSPECIFIED: _ClassVar[PackingPolicy]
    PACKING_POLICY_PACK: _ClassVar[PackingPolicy]
    PACKING_POLICY_SPREAD: _ClassVar[PackingPolicy]

class LinkEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINK_EVENT_KIND_UNSPECIFIED: _ClassVar[LinkEventKind]
    LINK_EVENT_KIND_DOWN: _ClassVar[LinkEventKind]
    LINK_EVENT_KIND_UP: _ClassVar[LinkEventKind]
    LINK_EVENT_KIND_FLAPPING: _ClassVar[LinkEventKind]
    LINK_EVENT_KIND_DEGRADED: _ClassVar[LinkEventKind]

class MoeKernel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MOE_KERNEL_UNSPECIFIED: _ClassVar[MoeKernel]
    MOE_KERNEL_NCCL_ALLTOALL: _ClassVar[MoeKernel]
    MOE_KERNEL_DEEPEP_NORMAL: _ClassVar[MoeKernel]
    MOE_KERNEL_DEEPEP_LOW_LATENCY: _ClassVar[MoeKernel]

class MoePrecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MOE_PRECISION_UNSPECIFIED: _ClassVar[MoePrecision]
    MOE_PRECISION_FP8: _ClassVar[MoePrecision]
    MOE_PRECISION_BF16: _ClassVar[MoePrecision]
COLLECTIVE_UNSPECIFIED: Collective
COLLECTIVE_ALL_REDUCE: Collective
COLLECTIVE_ALL_GATHER: Collective
COLLECTIVE_REDUCE_SCATTER: Collective
COLLECTIVE_BROADCAST: Collective
COLLECTIVE_REDUCE: Collective
COLLECTIVE_ALLTOALL: Collective
COLLECTIVE_SEND_RECV: Collective
PACKING_POLICY_UNSPECIFIED: PackingPolicy
PACKING_POLICY_PACK: PackingPolicy
PACKING_POLICY_SPREAD: PackingPolicy
LINK_EVENT_KIND_UNSPECIFIED: LinkEventKind
LINK_EVENT_KIND_DOWN: LinkEventKind
LINK_EVENT_KIND_UP: LinkEventKind
LINK_EVENT_KIND_FLAPPING: LinkEventKind
LINK_EVENT_KIND_DEGRADED: LinkEventKind
MOE_KERNEL_UNSPECIFIED: MoeKernel
MOE_KERNEL_NCCL_ALLTOALL: MoeKernel
MOE_KERNEL_DEEPEP_NORMAL: MoeKernel
MOE_KERNEL_DEEPEP_LOW_LATENCY: MoeKernel
MOE_PRECISION_UNSPECIFIED: MoePrecision
MOE_PRECISION_FP8: MoePrecision
MOE_PRECISION_BF16: MoePrecision

class LinkEvent(_message.Message):
    __slots__ = ("link_id", "kind", "capacity_fraction", "event_time", "reason")
    LINK_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FRACTION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    link_id: str
    kind: LinkEventKind
    capacity_fraction: float
    event_time: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, link_id: _Optional[str] = ..., kind: _Optional[_Union[LinkEventKind, str]] = ..., capacity_fraction: _Optional[float] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class LinkHealth(_message.Message):
    __slots__ = ("link_id", "capacity_fraction", "utilization", "flapping", "changed_time")
    LINK_ID_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FRACTION_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    FLAPPING_FIELD_NUMBER: _ClassVar[int]
    CHANGED_TIME_FIELD_NUMBER: _ClassVar[int]
    link_id: str
    capacity_fraction: float
    utilization: float
    flapping: bool
    changed_time: _timestamp_pb2.Timestamp
    def __init__(self, link_id: _Optional[str] = ..., capacity_fraction: _Optional[float] = ..., utilization: _Optional[float] = ..., flapping: _Optional[bool] = ..., changed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FabricState(_message.Message):
    __slots__ = ("site_id", "state_time", "links", "links_down", "links_degraded", "links_flapping", "truncated")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    LINKS_DOWN_FIELD_NUMBER: _ClassVar[int]
    LINKS_DEGRADED_FIELD_NUMBER: _ClassVar[int]
    LINKS_FLAPPING_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    state_time: _timestamp_pb2.Timestamp
    links: _containers.RepeatedCompositeFieldContainer[LinkHealth]
    links_down: int
    links_degraded: int
    links_flapping: int
    truncated: bool
    def __init__(self, site_id: _Optional[str] = ..., state_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., links: _Optional[_Iterable[_Union[LinkHealth, _Mapping]]] = ..., links_down: _Optional[int] = ..., links_degraded: _Optional[int] = ..., links_flapping: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("ranks", "gpus", "job_id")
    RANKS_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ranks: RankCount
    gpus: GpuList
    job_id: str
    def __init__(self, ranks: _Optional[_Union[RankCount, _Mapping]] = ..., gpus: _Optional[_Union[GpuList, _Mapping]] = ..., job_id: _Optional[str] = ...) -> None: ...

class RankCount(_message.Message):
    __slots__ = ("n_ranks", "policy")
    N_RANKS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    n_ranks: int
    policy: PackingPolicy
    def __init__(self, n_ranks: _Optional[int] = ..., policy: _Optional[_Union[PackingPolicy, str]] = ...) -> None: ...

class GpuList(_message.Message):
    __slots__ = ("gpu_ids",)
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, gpu_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class CollectiveEstimate(_message.Message):
    __slots__ = ("collective", "size_bytes", "time_s", "algorithm", "protocol", "algbw_gbps", "busbw_gbps", "latency_s", "bandwidth_s")
    COLLECTIVE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TIME_S_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    ALGBW_GBPS_FIELD_NUMBER: _ClassVar[int]
    BUSBW_GBPS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_S_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_S_FIELD_NUMBER: _ClassVar[int]
    collective: Collective
    size_bytes: int
    time_s: float
    algorithm: str
    protocol: str
    algbw_gbps: float
    busbw_gbps: float
    latency_s: float
    bandwidth_s: float
    def __init__(self, collective: _Optional[_Union[Collective, str]] = ..., size_bytes: _Optional[int] = ..., time_s: _Optional[float] = ..., algorithm: _Optional[str] = ..., protocol: _Optional[str] = ..., algbw_gbps: _Optional[float] = ..., busbw_gbps: _Optional[float] = ..., latency_s: _Optional[float] = ..., bandwidth_s: _Optional[float] = ...) -> None: ...

class EstimateCollectiveRequest(_message.Message):
    __slots__ = ("collective", "size_bytes", "placement", "nccl_version")
    COLLECTIVE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    NCCL_VERSION_FIELD_NUMBER: _ClassVar[int]
    collective: Collective
    size_bytes: int
    placement: Placement
    nccl_version: str
    def __init__(self, collective: _Optional[_Union[Collective, str]] = ..., size_bytes: _Optional[int] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., nccl_version: _Optional[str] = ...) -> None: ...

class EstimateCollectiveResponse(_message.Message):
    __slots__ = ("estimate", "n_ranks", "n_nodes")
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    N_RANKS_FIELD_NUMBER: _ClassVar[int]
    N_NODES_FIELD_NUMBER: _ClassVar[int]
    estimate: CollectiveEstimate
    n_ranks: int
    n_nodes: int
    def __init__(self, estimate: _Optional[_Union[CollectiveEstimate, _Mapping]] = ..., n_ranks: _Optional[int] = ..., n_nodes: _Optional[int] = ...) -> None: ...

class EstimateBatchRequest(_message.Message):
    __slots__ = ("collectives", "size_bytes", "placement", "nccl_version", "assumed_links")
    COLLECTIVES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    NCCL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ASSUMED_LINKS_FIELD_NUMBER: _ClassVar[int]
    collectives: _containers.RepeatedScalarFieldContainer[Collective]
    size_bytes: _containers.RepeatedScalarFieldContainer[int]
    placement: Placement
    nccl_version: str
    assumed_links: _containers.RepeatedCompositeFieldContainer[LinkHealth]
    def __init__(self, collectives: _Optional[_Iterable[_Union[Collective, str]]] = ..., size_bytes: _Optional[_Iterable[int]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., nccl_version: _Optional[str] = ..., assumed_links: _Optional[_Iterable[_Union[LinkHealth, _Mapping]]] = ...) -> None: ...

class EstimateBatchResponse(_message.Message):
    __slots__ = ("estimates", "n_ranks", "n_nodes", "assumed_links_applied")
    ESTIMATES_FIELD_NUMBER: _ClassVar[int]
    N_RANKS_FIELD_NUMBER: _ClassVar[int]
    N_NODES_FIELD_NUMBER: _ClassVar[int]
    ASSUMED_LINKS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    estimates: _containers.RepeatedCompositeFieldContainer[CollectiveEstimate]
    n_ranks: int
    n_nodes: int
    assumed_links_applied: int
    def __init__(self, estimates: _Optional[_Iterable[_Union[CollectiveEstimate, _Mapping]]] = ..., n_ranks: _Optional[int] = ..., n_nodes: _Optional[int] = ..., assumed_links_applied: _Optional[int] = ...) -> None: ...

class PlacementQuestion(_message.Message):
    __slots__ = ("placement", "collectives", "size_bytes")
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    COLLECTIVES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    placement: Placement
    collectives: _containers.RepeatedScalarFieldContainer[Collective]
    size_bytes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, placement: _Optional[_Union[Placement, _Mapping]] = ..., collectives: _Optional[_Iterable[_Union[Collective, str]]] = ..., size_bytes: _Optional[_Iterable[int]] = ...) -> None: ...

class EstimatePlacementsRequest(_message.Message):
    __slots__ = ("entries", "nccl_version", "assumed_links")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NCCL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ASSUMED_LINKS_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[PlacementQuestion]
    nccl_version: str
    assumed_links: _containers.RepeatedCompositeFieldContainer[LinkHealth]
    def __init__(self, entries: _Optional[_Iterable[_Union[PlacementQuestion, _Mapping]]] = ..., nccl_version: _Optional[str] = ..., assumed_links: _Optional[_Iterable[_Union[LinkHealth, _Mapping]]] = ...) -> None: ...

class PlacementAnswer(_message.Message):
    __slots__ = ("estimates", "n_ranks", "n_nodes")
    ESTIMATES_FIELD_NUMBER: _ClassVar[int]
    N_RANKS_FIELD_NUMBER: _ClassVar[int]
    N_NODES_FIELD_NUMBER: _ClassVar[int]
    estimates: _containers.RepeatedCompositeFieldContainer[CollectiveEstimate]
    n_ranks: int
    n_nodes: int
    def __init__(self, estimates: _Optional[_Iterable[_Union[CollectiveEstimate, _Mapping]]] = ..., n_ranks: _Optional[int] = ..., n_nodes: _Optional[int] = ...) -> None: ...

class EstimatePlacementsResponse(_message.Message):
    __slots__ = ("entries", "assumed_links_applied")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    ASSUMED_LINKS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[PlacementAnswer]
    assumed_links_applied: int
    def __init__(self, entries: _Optional[_Iterable[_Union[PlacementAnswer, _Mapping]]] = ..., assumed_links_applied: _Optional[int] = ...) -> None: ...

class SweepSizesRequest(_message.Message):
    __slots__ = ("collective", "min_bytes", "max_bytes", "steps_per_doubling", "placement", "nccl_version")
    COLLECTIVE_FIELD_NUMBER: _ClassVar[int]
    MIN_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    STEPS_PER_DOUBLING_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    NCCL_VERSION_FIELD_NUMBER: _ClassVar[int]
    collective: Collective
    min_bytes: int
    max_bytes: int
    steps_per_doubling: int
    placement: Placement
    nccl_version: str
    def __init__(self, collective: _Optional[_Union[Collective, str]] = ..., min_bytes: _Optional[int] = ..., max_bytes: _Optional[int] = ..., steps_per_doubling: _Optional[int] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., nccl_version: _Optional[str] = ...) -> None: ...

class SweepSizesResponse(_message.Message):
    __slots__ = ("estimates", "n_ranks", "n_nodes")
    ESTIMATES_FIELD_NUMBER: _ClassVar[int]
    N_RANKS_FIELD_NUMBER: _ClassVar[int]
    N_NODES_FIELD_NUMBER: _ClassVar[int]
    estimates: _containers.RepeatedCompositeFieldContainer[CollectiveEstimate]
    n_ranks: int
    n_nodes: int
    def __init__(self, estimates: _Optional[_Iterable[_Union[CollectiveEstimate, _Mapping]]] = ..., n_ranks: _Optional[int] = ..., n_nodes: _Optional[int] = ...) -> None: ...

class ModelSpec(_message.Message):
    __slots__ = ("parameters", "layers", "hidden_size", "sequence_length", "micro_batch_size", "bytes_per_value", "moe_layers", "micro_batches_per_step", "grad_bytes", "moe_top_k")
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MICRO_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_VALUE_FIELD_NUMBER: _ClassVar[int]
    MOE_LAYERS_FIELD_NUMBER: _ClassVar[int]
    MICRO_BATCHES_PER_STEP_FIELD_NUMBER: _ClassVar[int]
    GRAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    MOE_TOP_K_FIELD_NUMBER: _ClassVar[int]
    parameters: float
    layers: int
    hidden_size: int
    sequence_length: int
    micro_batch_size: int
    bytes_per_value: int
    moe_layers: int
    micro_batches_per_step: int
    grad_bytes: int
    moe_top_k: int
    def __init__(self, parameters: _Optional[float] = ..., layers: _Optional[int] = ..., hidden_size: _Optional[int] = ..., sequence_length: _Optional[int] = ..., micro_batch_size: _Optional[int] = ..., bytes_per_value: _Optional[int] = ..., moe_layers: _Optional[int] = ..., micro_batches_per_step: _Optional[int] = ..., grad_bytes: _Optional[int] = ..., moe_top_k: _Optional[int] = ...) -> None: ...

class Parallelism(_message.Message):
    __slots__ = ("data_parallel", "tensor_parallel", "pipeline_parallel", "expert_parallel", "sequence_parallel", "distributed_optimizer")
    DATA_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    TENSOR_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    EXPERT_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTED_OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    data_parallel: int
    tensor_parallel: int
    pipeline_parallel: int
    expert_parallel: int
    sequence_parallel: bool
    distributed_optimizer: bool
    def __init__(self, data_parallel: _Optional[int] = ..., tensor_parallel: _Optional[int] = ..., pipeline_parallel: _Optional[int] = ..., expert_parallel: _Optional[int] = ..., sequence_parallel: _Optional[bool] = ..., distributed_optimizer: _Optional[bool] = ...) -> None: ...

class EstimateTrainingStepRequest(_message.Message):
    __slots__ = ("model", "parallelism", "placement")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    model: ModelSpec
    parallelism: Parallelism
    placement: Placement
    def __init__(self, model: _Optional[_Union[ModelSpec, _Mapping]] = ..., parallelism: _Optional[_Union[Parallelism, _Mapping]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ...) -> None: ...

class CommBreakdown(_message.Message):
    __slots__ = ("kind", "collective", "time_s", "bytes_per_step", "calls", "size_bytes", "time_per_call_s", "group_ranks", "algorithm", "protocol")
    KIND_FIELD_NUMBER: _ClassVar[int]
    COLLECTIVE_FIELD_NUMBER: _ClassVar[int]
    TIME_S_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_STEP_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TIME_PER_CALL_S_FIELD_NUMBER: _ClassVar[int]
    GROUP_RANKS_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    collective: Collective
    time_s: float
    bytes_per_step: int
    calls: int
    size_bytes: int
    time_per_call_s: float
    group_ranks: int
    algorithm: str
    protocol: str
    def __init__(self, kind: _Optional[str] = ..., collective: _Optional[_Union[Collective, str]] = ..., time_s: _Optional[float] = ..., bytes_per_step: _Optional[int] = ..., calls: _Optional[int] = ..., size_bytes: _Optional[int] = ..., time_per_call_s: _Optional[float] = ..., group_ranks: _Optional[int] = ..., algorithm: _Optional[str] = ..., protocol: _Optional[str] = ...) -> None: ...

class EstimateTrainingStepResponse(_message.Message):
    __slots__ = ("comm_time_s", "breakdown", "n_ranks", "n_nodes")
    COMM_TIME_S_FIELD_NUMBER: _ClassVar[int]
    BREAKDOWN_FIELD_NUMBER: _ClassVar[int]
    N_RANKS_FIELD_NUMBER: _ClassVar[int]
    N_NODES_FIELD_NUMBER: _ClassVar[int]
    comm_time_s: float
    breakdown: _containers.RepeatedCompositeFieldContainer[CommBreakdown]
    n_ranks: int
    n_nodes: int
    def __init__(self, comm_time_s: _Optional[float] = ..., breakdown: _Optional[_Iterable[_Union[CommBreakdown, _Mapping]]] = ..., n_ranks: _Optional[int] = ..., n_nodes: _Optional[int] = ...) -> None: ...

class MoeCase(_message.Message):
    __slots__ = ("kernel", "tokens_per_rank", "hidden_size", "top_k", "num_experts", "dispatch_precision", "combine_precision", "max_nodes_per_token")
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_RANK_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    NUM_EXPERTS_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_PRECISION_FIELD_NUMBER: _ClassVar[int]
    COMBINE_PRECISION_FIELD_NUMBER: _ClassVar[int]
    MAX_NODES_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    kernel: MoeKernel
    tokens_per_rank: int
    hidden_size: int
    top_k: int
    num_experts: int
    dispatch_precision: MoePrecision
    combine_precision: MoePrecision
    max_nodes_per_token: int
    def __init__(self, kernel: _Optional[_Union[MoeKernel, str]] = ..., tokens_per_rank: _Optional[int] = ..., hidden_size: _Optional[int] = ..., top_k: _Optional[int] = ..., num_experts: _Optional[int] = ..., dispatch_precision: _Optional[_Union[MoePrecision, str]] = ..., combine_precision: _Optional[_Union[MoePrecision, str]] = ..., max_nodes_per_token: _Optional[int] = ...) -> None: ...

class MoeEstimate(_message.Message):
    __slots__ = ("dispatch_time_s", "combine_time_s", "dispatch_nvlink_bytes", "dispatch_network_bytes", "combine_nvlink_bytes", "combine_network_bytes", "domains_per_token", "ranks_per_token")
    DISPATCH_TIME_S_FIELD_NUMBER: _ClassVar[int]
    COMBINE_TIME_S_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_NVLINK_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_NETWORK_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMBINE_NVLINK_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMBINE_NETWORK_BYTES_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RANKS_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dispatch_time_s: float
    combine_time_s: float
    dispatch_nvlink_bytes: int
    dispatch_network_bytes: int
    combine_nvlink_bytes: int
    combine_network_bytes: int
    domains_per_token: float
    ranks_per_token: float
    def __init__(self, dispatch_time_s: _Optional[float] = ..., combine_time_s: _Optional[float] = ..., dispatch_nvlink_bytes: _Optional[int] = ..., dispatch_network_bytes: _Optional[int] = ..., combine_nvlink_bytes: _Optional[int] = ..., combine_network_bytes: _Optional[int] = ..., domains_per_token: _Optional[float] = ..., ranks_per_token: _Optional[float] = ...) -> None: ...

class EstimateMoeRequest(_message.Message):
    __slots__ = ("cases", "placement", "assumed_links")
    CASES_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    ASSUMED_LINKS_FIELD_NUMBER: _ClassVar[int]
    cases: _containers.RepeatedCompositeFieldContainer[MoeCase]
    placement: Placement
    assumed_links: _containers.RepeatedCompositeFieldContainer[LinkHealth]
    def __init__(self, cases: _Optional[_Iterable[_Union[MoeCase, _Mapping]]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., assumed_links: _Optional[_Iterable[_Union[LinkHealth, _Mapping]]] = ...) -> None: ...

class EstimateMoeResponse(_message.Message):
    __slots__ = ("estimates", "ep_ranks", "n_nodes", "n_domains", "assumed_links_applied")
    ESTIMATES_FIELD_NUMBER: _ClassVar[int]
    EP_RANKS_FIELD_NUMBER: _ClassVar[int]
    N_NODES_FIELD_NUMBER: _ClassVar[int]
    N_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    ASSUMED_LINKS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    estimates: _containers.RepeatedCompositeFieldContainer[MoeEstimate]
    ep_ranks: int
    n_nodes: int
    n_domains: int
    assumed_links_applied: int
    def __init__(self, estimates: _Optional[_Iterable[_Union[MoeEstimate, _Mapping]]] = ..., ep_ranks: _Optional[int] = ..., n_nodes: _Optional[int] = ..., n_domains: _Optional[int] = ..., assumed_links_applied: _Optional[int] = ...) -> None: ...

class GetFabricStateRequest(_message.Message):
    __slots__ = ("include_healthy",)
    INCLUDE_HEALTHY_FIELD_NUMBER: _ClassVar[int]
    include_healthy: bool
    def __init__(self, include_healthy: _Optional[bool] = ...) -> None: ...

class GetFabricStateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: FabricState
    def __init__(self, state: _Optional[_Union[FabricState, _Mapping]] = ...) -> None: ...
