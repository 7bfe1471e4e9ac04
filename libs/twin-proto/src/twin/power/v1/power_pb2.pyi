import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PowerScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POWER_SCOPE_UNSPECIFIED: _ClassVar[PowerScope]
    POWER_SCOPE_RACK: _ClassVar[PowerScope]
    POWER_SCOPE_PDU: _ClassVar[PowerScope]
    POWER_SCOPE_UPS_GROUP: _ClassVar[PowerScope]
    POWER_SCOPE_UPS: _ClassVar[PowerScope]
    POWER_SCOPE_TRANSFORMER: _ClassVar[PowerScope]
    POWER_SCOPE_FEED: _ClassVar[PowerScope]
    POWER_SCOPE_SITE: _ClassVar[PowerScope]

class ValueSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALUE_SOURCE_UNSPECIFIED: _ClassVar[ValueSource]
    VALUE_SOURCE_MEASURED: _ClassVar[ValueSource]
    VALUE_SOURCE_MODELLED: _ClassVar[ValueSource]
    VALUE_SOURCE_MIXED: _ClassVar[ValueSource]

class AlertKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_KIND_UNSPECIFIED: _ClassVar[AlertKind]
    ALERT_KIND_OVER_THRESHOLD: _ClassVar[AlertKind]
    ALERT_KIND_REDUNDANCY_LOST: _ClassVar[AlertKind]
    ALERT_KIND_RAMP_TOO_FAST: _ClassVar[AlertKind]
    ALERT_KIND_SUSPECT_SENSOR: _ClassVar[AlertKind]
    ALERT_KIND_UNPOWERED: _ClassVar[AlertKind]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]

class SourceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_KIND_UNSPECIFIED: _ClassVar[SourceKind]
    SOURCE_KIND_BATTERY: _ClassVar[SourceKind]
    SOURCE_KIND_GENSET: _ClassVar[SourceKind]

class GridEventOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRID_EVENT_ORIGIN_UNSPECIFIED: _ClassVar[GridEventOrigin]
    GRID_EVENT_ORIGIN_OPENADR3: _ClassVar[GridEventOrigin]
    GRID_EVENT_ORIGIN_OPERATOR: _ClassVar[GridEventOrigin]
POWER_SCOPE_UNSPECIFIED: PowerScope
POWER_SCOPE_RACK: PowerScope
POWER_SCOPE_PDU: PowerScope
POWER_SCOPE_UPS_GROUP: PowerScope
POWER_SCOPE_UPS: PowerScope
POWER_SCOPE_TRANSFORMER: PowerScope
POWER_SCOPE_FEED: PowerScope
POWER_SCOPE_SITE: PowerScope
VALUE_SOURCE_UNSPECIFIED: ValueSource
VALUE_SOURCE_MEASURED: ValueSource
VALUE_SOURCE_MODELLED: ValueSource
VALUE_SOURCE_MIXED: ValueSource
ALERT_KIND_UNSPECIFIED: AlertKind
ALERT_KIND_OVER_THRESHOLD: AlertKind
ALERT_KIND_REDUNDANCY_LOST: AlertKind
ALERT_KIND_RAMP_TOO_FAST: AlertKind
ALERT_KIND_SUSPECT_SENSOR: AlertKind
ALERT_KIND_UNPOWERED: AlertKind
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_CRITICAL: Severity
SOURCE_KIND_UNSPECIFIED: SourceKind
SOURCE_KIND_BATTERY: SourceKind
SOURCE_KIND_GENSET: SourceKind
GRID_EVENT_ORIGIN_UNSPECIFIED: GridEventOrigin
GRID_EVENT_ORIGIN_OPENADR3: GridEventOrigin
GRID_EVENT_ORIGIN_OPERATOR: GridEventOrigin

class RackPowerDetail(_message.Message):
    __slots__ = ("gpu_power_w", "node_dc_power_w", "node_loss_w", "rack_loss_w", "modelled_input_power_w", "measured_gpus", "modelled_gpus", "mean_sm_clock_mhz", "power_capped_gpus")
    GPU_POWER_W_FIELD_NUMBER: _ClassVar[int]
    NODE_DC_POWER_W_FIELD_NUMBER: _ClassVar[int]
    NODE_LOSS_W_FIELD_NUMBER: _ClassVar[int]
    RACK_LOSS_W_FIELD_NUMBER: _ClassVar[int]
    MODELLED_INPUT_POWER_W_FIELD_NUMBER: _ClassVar[int]
    MEASURED_GPUS_FIELD_NUMBER: _ClassVar[int]
    MODELLED_GPUS_FIELD_NUMBER: _ClassVar[int]
    MEAN_SM_CLOCK_MHZ_FIELD_NUMBER: _ClassVar[int]
    POWER_CAPPED_GPUS_FIELD_NUMBER: _ClassVar[int]
    gpu_power_w: float
    node_dc_power_w: float
    node_loss_w: float
    rack_loss_w: float
    modelled_input_power_w: float
    measured_gpus: int
    modelled_gpus: int
    mean_sm_clock_mhz: float
    power_capped_gpus: int
    def __init__(self, gpu_power_w: _Optional[float] = ..., node_dc_power_w: _Optional[float] = ..., node_loss_w: _Optional[float] = ..., rack_loss_w: _Optional[float] = ..., modelled_input_power_w: _Optional[float] = ..., measured_gpus: _Optional[int] = ..., modelled_gpus: _Optional[int] = ..., mean_sm_clock_mhz: _Optional[float] = ..., power_capped_gpus: _Optional[int] = ...) -> None: ...

class SitePowerDetail(_message.Message):
    __slots__ = ("it_power_w", "facility_power_w", "cooling_power_w", "pue", "feeds_power_w", "on_site_power_w", "chain_loss_w", "ramp_w_per_s", "cooling_source", "minute_ramp_w")
    IT_POWER_W_FIELD_NUMBER: _ClassVar[int]
    FACILITY_POWER_W_FIELD_NUMBER: _ClassVar[int]
    COOLING_POWER_W_FIELD_NUMBER: _ClassVar[int]
    PUE_FIELD_NUMBER: _ClassVar[int]
    FEEDS_POWER_W_FIELD_NUMBER: _ClassVar[int]
    ON_SITE_POWER_W_FIELD_NUMBER: _ClassVar[int]
    CHAIN_LOSS_W_FIELD_NUMBER: _ClassVar[int]
    RAMP_W_PER_S_FIELD_NUMBER: _ClassVar[int]
    COOLING_SOURCE_FIELD_NUMBER: _ClassVar[int]
    MINUTE_RAMP_W_FIELD_NUMBER: _ClassVar[int]
    it_power_w: float
    facility_power_w: float
    cooling_power_w: float
    pue: float
    feeds_power_w: float
    on_site_power_w: float
    chain_loss_w: float
    ramp_w_per_s: float
    cooling_source: ValueSource
    minute_ramp_w: float
    def __init__(self, it_power_w: _Optional[float] = ..., facility_power_w: _Optional[float] = ..., cooling_power_w: _Optional[float] = ..., pue: _Optional[float] = ..., feeds_power_w: _Optional[float] = ..., on_site_power_w: _Optional[float] = ..., chain_loss_w: _Optional[float] = ..., ramp_w_per_s: _Optional[float] = ..., cooling_source: _Optional[_Union[ValueSource, str]] = ..., minute_ramp_w: _Optional[float] = ...) -> None: ...

class PowerState(_message.Message):
    __slots__ = ("site_id", "entity_id", "scope", "state_time", "input_power_w", "output_power_w", "loss_w", "rating_w", "headroom_w", "utilization", "load_if_partner_fails_w", "powered", "source", "rack", "site")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    STATE_TIME_FIELD_NUMBER: _ClassVar[int]
    INPUT_POWER_W_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_POWER_W_FIELD_NUMBER: _ClassVar[int]
    LOSS_W_FIELD_NUMBER: _ClassVar[int]
    RATING_W_FIELD_NUMBER: _ClassVar[int]
    HEADROOM_W_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    LOAD_IF_PARTNER_FAILS_W_FIELD_NUMBER: _ClassVar[int]
    POWERED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RACK_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    entity_id: str
    scope: PowerScope
    state_time: _timestamp_pb2.Timestamp
    input_power_w: float
    output_power_w: float
    loss_w: float
    rating_w: float
    headroom_w: float
    utilization: float
    load_if_partner_fails_w: float
    powered: bool
    source: ValueSource
    rack: RackPowerDetail
    site: SitePowerDetail
    def __init__(self, site_id: _Optional[str] = ..., entity_id: _Optional[str] = ..., scope: _Optional[_Union[PowerScope, str]] = ..., state_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., input_power_w: _Optional[float] = ..., output_power_w: _Optional[float] = ..., loss_w: _Optional[float] = ..., rating_w: _Optional[float] = ..., headroom_w: _Optional[float] = ..., utilization: _Optional[float] = ..., load_if_partner_fails_w: _Optional[float] = ..., powered: _Optional[bool] = ..., source: _Optional[_Union[ValueSource, str]] = ..., rack: _Optional[_Union[RackPowerDetail, _Mapping]] = ..., site: _Optional[_Union[SitePowerDetail, _Mapping]] = ...) -> None: ...

class PowerAlert(_message.Message):
    __slots__ = ("alert_id", "site_id", "entity_id", "scope", "kind", "severity", "alert_time", "value", "threshold", "message", "cleared")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    ALERT_TIME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    site_id: str
    entity_id: str
    scope: PowerScope
    kind: AlertKind
    severity: Severity
    alert_time: _timestamp_pb2.Timestamp
    value: float
    threshold: float
    message: str
    cleared: bool
    def __init__(self, alert_id: _Optional[str] = ..., site_id: _Optional[str] = ..., entity_id: _Optional[str] = ..., scope: _Optional[_Union[PowerScope, str]] = ..., kind: _Optional[_Union[AlertKind, str]] = ..., severity: _Optional[_Union[Severity, str]] = ..., alert_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ..., threshold: _Optional[float] = ..., message: _Optional[str] = ..., cleared: _Optional[bool] = ...) -> None: ...

class SourceDispatch(_message.Message):
    __slots__ = ("source_id", "kind", "power_w", "start_offset_s")
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    START_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    source_id: str
    kind: SourceKind
    power_w: float
    start_offset_s: float
    def __init__(self, source_id: _Optional[str] = ..., kind: _Optional[_Union[SourceKind, str]] = ..., power_w: _Optional[float] = ..., start_offset_s: _Optional[float] = ...) -> None: ...

class CurtailmentPlan(_message.Message):
    __slots__ = ("plan_id", "site_id", "event_id", "created_time", "limit_w", "deadline_offset_s", "duration_s", "baseline_site_power_w", "capped_gpu_ids", "cap_w", "sources", "paused_job_ids", "lost_work_gpu_s", "throughput_cost", "timeline_offset_s", "timeline_site_import_w", "meets_limit", "meets_at_offset_s", "shortfall_w", "steps")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_W_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    BASELINE_SITE_POWER_W_FIELD_NUMBER: _ClassVar[int]
    CAPPED_GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    CAP_W_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    PAUSED_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    LOST_WORK_GPU_S_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_COST_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_SITE_IMPORT_W_FIELD_NUMBER: _ClassVar[int]
    MEETS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MEETS_AT_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_W_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    site_id: str
    event_id: str
    created_time: _timestamp_pb2.Timestamp
    limit_w: float
    deadline_offset_s: float
    duration_s: float
    baseline_site_power_w: float
    capped_gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    cap_w: _containers.RepeatedScalarFieldContainer[float]
    sources: _containers.RepeatedCompositeFieldContainer[SourceDispatch]
    paused_job_ids: _containers.RepeatedScalarFieldContainer[str]
    lost_work_gpu_s: float
    throughput_cost: float
    timeline_offset_s: _containers.RepeatedScalarFieldContainer[float]
    timeline_site_import_w: _containers.RepeatedScalarFieldContainer[float]
    meets_limit: bool
    meets_at_offset_s: float
    shortfall_w: float
    steps: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, plan_id: _Optional[str] = ..., site_id: _Optional[str] = ..., event_id: _Optional[str] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit_w: _Optional[float] = ..., deadline_offset_s: _Optional[float] = ..., duration_s: _Optional[float] = ..., baseline_site_power_w: _Optional[float] = ..., capped_gpu_ids: _Optional[_Iterable[int]] = ..., cap_w: _Optional[_Iterable[float]] = ..., sources: _Optional[_Iterable[_Union[SourceDispatch, _Mapping]]] = ..., paused_job_ids: _Optional[_Iterable[str]] = ..., lost_work_gpu_s: _Optional[float] = ..., throughput_cost: _Optional[float] = ..., timeline_offset_s: _Optional[_Iterable[float]] = ..., timeline_site_import_w: _Optional[_Iterable[float]] = ..., meets_limit: _Optional[bool] = ..., meets_at_offset_s: _Optional[float] = ..., shortfall_w: _Optional[float] = ..., steps: _Optional[_Iterable[str]] = ...) -> None: ...

class GridInterval(_message.Message):
    __slots__ = ("interval_id", "start_time", "duration_s", "import_limit_kw", "simple_level")
    INTERVAL_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    IMPORT_LIMIT_KW_FIELD_NUMBER: _ClassVar[int]
    SIMPLE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    interval_id: int
    start_time: _timestamp_pb2.Timestamp
    duration_s: float
    import_limit_kw: float
    simple_level: int
    def __init__(self, interval_id: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_s: _Optional[float] = ..., import_limit_kw: _Optional[float] = ..., simple_level: _Optional[int] = ...) -> None: ...

class GridEvent(_message.Message):
    __slots__ = ("event_id", "program_id", "event_name", "origin", "created_time", "modified_time", "intervals", "cancelled")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_TIME_FIELD_NUMBER: _ClassVar[int]
    INTERVALS_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    program_id: str
    event_name: str
    origin: GridEventOrigin
    created_time: _timestamp_pb2.Timestamp
    modified_time: _timestamp_pb2.Timestamp
    intervals: _containers.RepeatedCompositeFieldContainer[GridInterval]
    cancelled: bool
    def __init__(self, event_id: _Optional[str] = ..., program_id: _Optional[str] = ..., event_name: _Optional[str] = ..., origin: _Optional[_Union[GridEventOrigin, str]] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., modified_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., intervals: _Optional[_Iterable[_Union[GridInterval, _Mapping]]] = ..., cancelled: _Optional[bool] = ...) -> None: ...

class GetSiteStateRequest(_message.Message):
    __slots__ = ("include_components",)
    INCLUDE_COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    include_components: bool
    def __init__(self, include_components: _Optional[bool] = ...) -> None: ...

class GetSiteStateResponse(_message.Message):
    __slots__ = ("site", "components")
    SITE_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    site: PowerState
    components: _containers.RepeatedCompositeFieldContainer[PowerState]
    def __init__(self, site: _Optional[_Union[PowerState, _Mapping]] = ..., components: _Optional[_Iterable[_Union[PowerState, _Mapping]]] = ...) -> None: ...

class GetRackStateRequest(_message.Message):
    __slots__ = ("rack_id",)
    RACK_ID_FIELD_NUMBER: _ClassVar[int]
    rack_id: str
    def __init__(self, rack_id: _Optional[str] = ...) -> None: ...

class GetRackStateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: PowerState
    def __init__(self, state: _Optional[_Union[PowerState, _Mapping]] = ...) -> None: ...

class GetComponentStateRequest(_message.Message):
    __slots__ = ("component_id",)
    COMPONENT_ID_FIELD_NUMBER: _ClassVar[int]
    component_id: str
    def __init__(self, component_id: _Optional[str] = ...) -> None: ...

class GetComponentStateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: PowerState
    def __init__(self, state: _Optional[_Union[PowerState, _Mapping]] = ...) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ("entity_id", "start_time", "end_time", "max_points")
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    entity_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    max_points: int
    def __init__(self, entity_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_points: _Optional[int] = ...) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("states",)
    STATES_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedCompositeFieldContainer[PowerState]
    def __init__(self, states: _Optional[_Iterable[_Union[PowerState, _Mapping]]] = ...) -> None: ...

class PlanCurtailmentRequest(_message.Message):
    __slots__ = ("limit_kw", "deadline_s", "duration_s")
    LIMIT_KW_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_S_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    limit_kw: float
    deadline_s: float
    duration_s: float
    def __init__(self, limit_kw: _Optional[float] = ..., deadline_s: _Optional[float] = ..., duration_s: _Optional[float] = ...) -> None: ...

class PlanCurtailmentResponse(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: CurtailmentPlan
    def __init__(self, plan: _Optional[_Union[CurtailmentPlan, _Mapping]] = ...) -> None: ...

class GpuIds(_message.Message):
    __slots__ = ("gpu_ids",)
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, gpu_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class RackIds(_message.Message):
    __slots__ = ("rack_ids",)
    RACK_IDS_FIELD_NUMBER: _ClassVar[int]
    rack_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rack_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class WhatIfPowerCapRequest(_message.Message):
    __slots__ = ("gpus", "racks", "job_id", "cap_w")
    GPUS_FIELD_NUMBER: _ClassVar[int]
    RACKS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CAP_W_FIELD_NUMBER: _ClassVar[int]
    gpus: GpuIds
    racks: RackIds
    job_id: str
    cap_w: float
    def __init__(self, gpus: _Optional[_Union[GpuIds, _Mapping]] = ..., racks: _Optional[_Union[RackIds, _Mapping]] = ..., job_id: _Optional[str] = ..., cap_w: _Optional[float] = ...) -> None: ...

class WhatIfPowerCapResponse(_message.Message):
    __slots__ = ("gpus", "gpu_power_saved_w", "site_power_saved_w", "mean_sm_clock_before_mhz", "mean_sm_clock_after_mhz", "throughput_cost")
    GPUS_FIELD_NUMBER: _ClassVar[int]
    GPU_POWER_SAVED_W_FIELD_NUMBER: _ClassVar[int]
    SITE_POWER_SAVED_W_FIELD_NUMBER: _ClassVar[int]
    MEAN_SM_CLOCK_BEFORE_MHZ_FIELD_NUMBER: _ClassVar[int]
    MEAN_SM_CLOCK_AFTER_MHZ_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_COST_FIELD_NUMBER: _ClassVar[int]
    gpus: int
    gpu_power_saved_w: float
    site_power_saved_w: float
    mean_sm_clock_before_mhz: float
    mean_sm_clock_after_mhz: float
    throughput_cost: float
    def __init__(self, gpus: _Optional[int] = ..., gpu_power_saved_w: _Optional[float] = ..., site_power_saved_w: _Optional[float] = ..., mean_sm_clock_before_mhz: _Optional[float] = ..., mean_sm_clock_after_mhz: _Optional[float] = ..., throughput_cost: _Optional[float] = ...) -> None: ...

class LoadShift(_message.Message):
    __slots__ = ("component_id", "scope", "before_w", "after_w", "rating_w")
    COMPONENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    BEFORE_W_FIELD_NUMBER: _ClassVar[int]
    AFTER_W_FIELD_NUMBER: _ClassVar[int]
    RATING_W_FIELD_NUMBER: _ClassVar[int]
    component_id: str
    scope: PowerScope
    before_w: float
    after_w: float
    rating_w: float
    def __init__(self, component_id: _Optional[str] = ..., scope: _Optional[_Union[PowerScope, str]] = ..., before_w: _Optional[float] = ..., after_w: _Optional[float] = ..., rating_w: _Optional[float] = ...) -> None: ...

class WhatIfComponentFailureRequest(_message.Message):
    __slots__ = ("component_ids",)
    COMPONENT_IDS_FIELD_NUMBER: _ClassVar[int]
    component_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, component_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class WhatIfComponentFailureResponse(_message.Message):
    __slots__ = ("moved", "over_rating_ids", "unpowered_rack_ids", "site_power_before_w", "site_power_after_w")
    MOVED_FIELD_NUMBER: _ClassVar[int]
    OVER_RATING_IDS_FIELD_NUMBER: _ClassVar[int]
    UNPOWERED_RACK_IDS_FIELD_NUMBER: _ClassVar[int]
    SITE_POWER_BEFORE_W_FIELD_NUMBER: _ClassVar[int]
    SITE_POWER_AFTER_W_FIELD_NUMBER: _ClassVar[int]
    moved: _containers.RepeatedCompositeFieldContainer[LoadShift]
    over_rating_ids: _containers.RepeatedScalarFieldContainer[str]
    unpowered_rack_ids: _containers.RepeatedScalarFieldContainer[str]
    site_power_before_w: float
    site_power_after_w: float
    def __init__(self, moved: _Optional[_Iterable[_Union[LoadShift, _Mapping]]] = ..., over_rating_ids: _Optional[_Iterable[str]] = ..., unpowered_rack_ids: _Optional[_Iterable[str]] = ..., site_power_before_w: _Optional[float] = ..., site_power_after_w: _Optional[float] = ...) -> None: ...
