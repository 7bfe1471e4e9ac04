import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from twin.telemetry.v1 import telemetry_pb2 as _telemetry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CoolingScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COOLING_SCOPE_UNSPECIFIED: _ClassVar[CoolingScope]
    COOLING_SCOPE_RACK: _ClassVar[CoolingScope]
    COOLING_SCOPE_CDU: _ClassVar[CoolingScope]
    COOLING_SCOPE_LOOP: _ClassVar[CoolingScope]
    COOLING_SCOPE_CRAH: _ClassVar[CoolingScope]
    COOLING_SCOPE_AIR_GROUP: _ClassVar[CoolingScope]
    COOLING_SCOPE_PLANT: _ClassVar[CoolingScope]

class ValueSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALUE_SOURCE_UNSPECIFIED: _ClassVar[ValueSource]
    VALUE_SOURCE_MEASURED: _ClassVar[ValueSource]
    VALUE_SOURCE_MODELLED: _ClassVar[ValueSource]
    VALUE_SOURCE_MIXED: _ClassVar[ValueSource]

class ConditionSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONDITION_SOURCE_UNSPECIFIED: _ClassVar[ConditionSource]
    CONDITION_SOURCE_SPEC: _ClassVar[ConditionSource]
    CONDITION_SOURCE_EVENT: _ClassVar[ConditionSource]
    CONDITION_SOURCE_MEASURED: _ClassVar[ConditionSource]

class Redundancy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REDUNDANCY_UNSPECIFIED: _ClassVar[Redundancy]
    REDUNDANCY_N: _ClassVar[Redundancy]
    REDUNDANCY_N_PLUS_1: _ClassVar[Redundancy]

class AlertKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_KIND_UNSPECIFIED: _ClassVar[AlertKind]
    ALERT_KIND_THROTTLE_PREDICTED: _ClassVar[AlertKind]
    ALERT_KIND_CAPACITY_EXCEEDED: _ClassVar[AlertKind]
    ALERT_KIND_REDUNDANCY_AT_RISK: _ClassVar[AlertKind]
    ALERT_KIND_AIR_LIMIT: _ClassVar[AlertKind]
    ALERT_KIND_SUSPECT_SENSOR: _ClassVar[AlertKind]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]

class CoolingEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COOLING_EVENT_KIND_UNSPECIFIED: _ClassVar[CoolingEventKind]
    COOLING_EVENT_KIND_PUMP_FAILURE: _ClassVar[CoolingEventKind]
    COOLING_EVENT_KIND_PUMP_REPAIR: _ClassVar[CoolingEventKind]
    COOLING_EVENT_KIND_CDU_FAILURE: _ClassVar[CoolingEventKind]
    COOLING_EVENT_KIND_CDU_REPAIR: _ClassVar[CoolingEventKind]
    COOLING_EVENT_KIND_CRAH_FAILURE: _ClassVar[CoolingEventKind]
    COOLING_EVENT_KIND_CRAH_REPAIR: _ClassVar[CoolingEventKind]
    COOLING_EVENT_KIND_PLANT_UNIT_FAILURE: _ClassVar[CoolingEventKind]
    COOLING_EVENT_KIND_PLANT_UNIT_REPAIR: _ClassVar[CoolingEventKind]
    COOLING_EVENT_KIND_SETPOINT_CHANGE: _ClassVar[CoolingEventKind]
    COOLING_EVENT_KIND_AMBIENT_CHANGE: _ClassVar[CoolingEventKind]
COOLING_SCOPE_UNSPECIFIED: CoolingScope
COOLING_SCOPE_RACK: CoolingScope
COOLING_SCOPE_CDU: CoolingScope
COOLING_SCOPE_LOOP: CoolingScope
COOLING_SCOPE_CRAH: CoolingScope
COOLING_SCOPE_AIR_GROUP: CoolingScope
COOLING_SCOPE_PLANT: CoolingScope
VALUE_SOURCE_UNSPECIFIED: ValueSource
VALUE_SOURCE_MEASURED: ValueSource
VALUE_SOURCE_MODELLED: ValueSource
VALUE_SOURCE_MIXED: ValueSource
CONDITION_SOURCE_UNSPECIFIED: ConditionSource
CONDITION_SOURCE_SPEC: ConditionSource
CONDITION_SOURCE_EVENT: ConditionSource
CONDITION_SOURCE_MEASURED: ConditionSource
REDUNDANCY_UNSPECIFIED: Redundancy
REDUNDANCY_N: Redundancy
REDUNDANCY_N_PLUS_1: Redundancy
ALERT_KIND_UNSPECIFIED: AlertKind
ALERT_KIND_THROTTLE_PREDICTED: AlertKind
ALERT_KIND_CAPACITY_EXCEEDED: AlertKind
ALERT_KIND_REDUNDANCY_AT_RISK: AlertKind
ALERT_KIND_AIR_LIMIT: AlertKind
ALERT_KIND_SUSPECT_SENSOR: AlertKind
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_CRITICAL: Severity
COOLING_EVENT_KIND_UNSPECIFIED: CoolingEventKind
COOLING_EVENT_KIND_PUMP_FAILURE: CoolingEventKind
COOLING_EVENT_KIND_PUMP_REPAIR: CoolingEventKind
COOLING_EVENT_KIND_CDU_FAILURE: CoolingEventKind
COOLING_EVENT_KIND_CDU_REPAIR: CoolingEventKind
COOLING_EVENT_KIND_CRAH_FAILURE: CoolingEventKind
COOLING_EVENT_KIND_CRAH_REPAIR: CoolingEventKind
COOLING_EVENT_KIND_PLANT_UNIT_FAILURE: CoolingEventKind
COOLING_EVENT_KIND_PLANT_UNIT_REPAIR: CoolingEventKind
COOLING_EVENT_KIND_SETPOINT_CHANGE: CoolingEventKind
COOLING_EVENT_KIND_AMBIENT_CHANGE: CoolingEventKind

class RackCoolingDetail(_message.Message):
    __slots__ = ("it_power_w", "liquid_heat_w", "air_heat_w", "coolant_flow_lpm", "supply_temp_c", "return_temp_c", "coolant_temp_c", "inlet_air_temp_c", "air_limit_w", "air_over_limit", "loop_id", "air_group_id", "max_gpu_temp_c", "max_hbm_temp_c", "time_to_throttle_s", "gpus_at_risk")
    IT_POWER_W_FIELD_NUMBER: _ClassVar[int]
    LIQUID_HEAT_W_FIELD_NUMBER: _ClassVar[int]
    AIR_HEAT_W_FIELD_NUMBER: _ClassVar[int]
    COOLANT_FLOW_LPM_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    RETURN_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    COOLANT_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    INLET_AIR_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    AIR_LIMIT_W_FIELD_NUMBER: _ClassVar[int]
    AIR_OVER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    LOOP_ID_FIELD_NUMBER: _ClassVar[int]
    AIR_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_GPU_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    MAX_HBM_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_THROTTLE_S_FIELD_NUMBER: _ClassVar[int]
    GPUS_AT_RISK_FIELD_NUMBER: _ClassVar[int]
    it_power_w: float
    liquid_heat_w: float
    air_heat_w: float
    coolant_flow_lpm: float
    supply_temp_c: float
    return_temp_c: float
    coolant_temp_c: float
    inlet_air_temp_c: float
    air_limit_w: float
    air_over_limit: bool
    loop_id: str
    air_group_id: str
    max_gpu_temp_c: float
    max_hbm_temp_c: float
    time_to_throttle_s: float
    gpus_at_risk: int
    def __init__(self, it_power_w: _Optional[float] = ..., liquid_heat_w: _Optional[float] = ..., air_heat_w: _Optional[float] = ..., coolant_flow_lpm: _Optional[float] = ..., supply_temp_c: _Optional[float] = ..., return_temp_c: _Optional[float] = ..., coolant_temp_c: _Optional[float] = ..., inlet_air_temp_c: _Optional[float] = ..., air_limit_w: _Optional[float] = ..., air_over_limit: _Optional[bool] = ..., loop_id: _Optional[str] = ..., air_group_id: _Optional[str] = ..., max_gpu_temp_c: _Optional[float] = ..., max_hbm_temp_c: _Optional[float] = ..., time_to_throttle_s: _Optional[float] = ..., gpus_at_risk: _Optional[int] = ...) -> None: ...

class CduDetail(_message.Message):
    __slots__ = ("loop_id", "up", "heat_removed_w", "load_fraction", "flow_lpm", "pump_speed_fraction", "pump_power_w", "supply_temp_c", "return_temp_c", "differential_pressure_kpa")
    LOOP_ID_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    HEAT_REMOVED_W_FIELD_NUMBER: _ClassVar[int]
    LOAD_FRACTION_FIELD_NUMBER: _ClassVar[int]
    FLOW_LPM_FIELD_NUMBER: _ClassVar[int]
    PUMP_SPEED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    PUMP_POWER_W_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    RETURN_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    DIFFERENTIAL_PRESSURE_KPA_FIELD_NUMBER: _ClassVar[int]
    loop_id: str
    up: bool
    heat_removed_w: float
    load_fraction: float
    flow_lpm: float
    pump_speed_fraction: float
    pump_power_w: float
    supply_temp_c: float
    return_temp_c: float
    differential_pressure_kpa: float
    def __init__(self, loop_id: _Optional[str] = ..., up: _Optional[bool] = ..., heat_removed_w: _Optional[float] = ..., load_fraction: _Optional[float] = ..., flow_lpm: _Optional[float] = ..., pump_speed_fraction: _Optional[float] = ..., pump_power_w: _Optional[float] = ..., supply_temp_c: _Optional[float] = ..., return_temp_c: _Optional[float] = ..., differential_pressure_kpa: _Optional[float] = ...) -> None: ...

class LoopDetail(_message.Message):
    __slots__ = ("redundancy", "cdu_ids", "heat_w", "capacity_w", "capacity_if_one_fails_w", "flow_lpm", "flow_demand_lpm", "supply_temp_c", "return_temp_c", "carries", "survives_one_more", "supply_temp_source", "flow_source")
    REDUNDANCY_FIELD_NUMBER: _ClassVar[int]
    CDU_IDS_FIELD_NUMBER: _ClassVar[int]
    HEAT_W_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_W_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_IF_ONE_FAILS_W_FIELD_NUMBER: _ClassVar[int]
    FLOW_LPM_FIELD_NUMBER: _ClassVar[int]
    FLOW_DEMAND_LPM_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    RETURN_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    CARRIES_FIELD_NUMBER: _ClassVar[int]
    SURVIVES_ONE_MORE_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_TEMP_SOURCE_FIELD_NUMBER: _ClassVar[int]
    FLOW_SOURCE_FIELD_NUMBER: _ClassVar[int]
    redundancy: Redundancy
    cdu_ids: _containers.RepeatedScalarFieldContainer[str]
    heat_w: float
    capacity_w: float
    capacity_if_one_fails_w: float
    flow_lpm: float
    flow_demand_lpm: float
    supply_temp_c: float
    return_temp_c: float
    carries: bool
    survives_one_more: bool
    supply_temp_source: ValueSource
    flow_source: ValueSource
    def __init__(self, redundancy: _Optional[_Union[Redundancy, str]] = ..., cdu_ids: _Optional[_Iterable[str]] = ..., heat_w: _Optional[float] = ..., capacity_w: _Optional[float] = ..., capacity_if_one_fails_w: _Optional[float] = ..., flow_lpm: _Optional[float] = ..., flow_demand_lpm: _Optional[float] = ..., supply_temp_c: _Optional[float] = ..., return_temp_c: _Optional[float] = ..., carries: _Optional[bool] = ..., survives_one_more: _Optional[bool] = ..., supply_temp_source: _Optional[_Union[ValueSource, str]] = ..., flow_source: _Optional[_Union[ValueSource, str]] = ...) -> None: ...

class CrahDetail(_message.Message):
    __slots__ = ("air_group_id", "up", "heat_removed_w", "load_fraction", "fan_power_w", "supply_air_temp_c", "return_air_temp_c")
    AIR_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    HEAT_REMOVED_W_FIELD_NUMBER: _ClassVar[int]
    LOAD_FRACTION_FIELD_NUMBER: _ClassVar[int]
    FAN_POWER_W_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_AIR_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    RETURN_AIR_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    air_group_id: str
    up: bool
    heat_removed_w: float
    load_fraction: float
    fan_power_w: float
    supply_air_temp_c: float
    return_air_temp_c: float
    def __init__(self, air_group_id: _Optional[str] = ..., up: _Optional[bool] = ..., heat_removed_w: _Optional[float] = ..., load_fraction: _Optional[float] = ..., fan_power_w: _Optional[float] = ..., supply_air_temp_c: _Optional[float] = ..., return_air_temp_c: _Optional[float] = ...) -> None: ...

class AirGroupDetail(_message.Message):
    __slots__ = ("redundancy", "crah_ids", "heat_w", "capacity_w", "capacity_if_one_fails_w", "inlet_rise_k", "carries", "survives_one_more")
    REDUNDANCY_FIELD_NUMBER: _ClassVar[int]
    CRAH_IDS_FIELD_NUMBER: _ClassVar[int]
    HEAT_W_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_W_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_IF_ONE_FAILS_W_FIELD_NUMBER: _ClassVar[int]
    INLET_RISE_K_FIELD_NUMBER: _ClassVar[int]
    CARRIES_FIELD_NUMBER: _ClassVar[int]
    SURVIVES_ONE_MORE_FIELD_NUMBER: _ClassVar[int]
    redundancy: Redundancy
    crah_ids: _containers.RepeatedScalarFieldContainer[str]
    heat_w: float
    capacity_w: float
    capacity_if_one_fails_w: float
    inlet_rise_k: float
    carries: bool
    survives_one_more: bool
    def __init__(self, redundancy: _Optional[_Union[Redundancy, str]] = ..., crah_ids: _Optional[_Iterable[str]] = ..., heat_w: _Optional[float] = ..., capacity_w: _Optional[float] = ..., capacity_if_one_fails_w: _Optional[float] = ..., inlet_rise_k: _Optional[float] = ..., carries: _Optional[bool] = ..., survives_one_more: _Optional[bool] = ...) -> None: ...

class PlantDetail(_message.Message):
    __slots__ = ("heat_load_w", "capacity_w", "plant_power_w", "fan_power_w", "compressor_power_w", "facility_pump_power_w", "cooling_power_w", "it_power_w", "pue_cooling", "facility_supply_temp_c", "facility_supply_setpoint_c", "dry_bulb_temp_c", "wet_bulb_temp_c", "dry_bulb_source", "wet_bulb_source", "facility_supply_setpoint_source", "fan_power_source", "compressor_power_source")
    HEAT_LOAD_W_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_W_FIELD_NUMBER: _ClassVar[int]
    PLANT_POWER_W_FIELD_NUMBER: _ClassVar[int]
    FAN_POWER_W_FIELD_NUMBER: _ClassVar[int]
    COMPRESSOR_POWER_W_FIELD_NUMBER: _ClassVar[int]
    FACILITY_PUMP_POWER_W_FIELD_NUMBER: _ClassVar[int]
    COOLING_POWER_W_FIELD_NUMBER: _ClassVar[int]
    IT_POWER_W_FIELD_NUMBER: _ClassVar[int]
    PUE_COOLING_FIELD_NUMBER: _ClassVar[int]
    FACILITY_SUPPLY_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    FACILITY_SUPPLY_SETPOINT_C_FIELD_NUMBER: _ClassVar[int]
    DRY_BULB_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    WET_BULB_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    DRY_BULB_SOURCE_FIELD_NUMBER: _ClassVar[int]
    WET_BULB_SOURCE_FIELD_NUMBER: _ClassVar[int]
    FACILITY_SUPPLY_SETPOINT_SOURCE_FIELD_NUMBER: _ClassVar[int]
    FAN_POWER_SOURCE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSOR_POWER_SOURCE_FIELD_NUMBER: _ClassVar[int]
    heat_load_w: float
    capacity_w: float
    plant_power_w: float
    fan_power_w: float
    compressor_power_w: float
    facility_pump_power_w: float
    cooling_power_w: float
    it_power_w: float
    pue_cooling: float
    facility_supply_temp_c: float
    facility_supply_setpoint_c: float
    dry_bulb_temp_c: float
    wet_bulb_temp_c: float
    dry_bulb_source: ConditionSource
    wet_bulb_source: ConditionSource
    facility_supply_setpoint_source: ConditionSource
    fan_power_source: ValueSource
    compressor_power_source: ValueSource
    def __init__(self, heat_load_w: _Optional[float] = ..., capacity_w: _Optional[float] = ..., plant_power_w: _Optional[float] = ..., fan_power_w: _Optional[float] = ..., compressor_power_w: _Optional[float] = ..., facility_pump_power_w: _Optional[float] = ..., cooling_power_w: _Optional[float] = ..., it_power_w: _Optional[float] = ..., pue_cooling: _Optional[float] = ..., facility_supply_temp_c: _Optional[float] = ..., facility_supply_setpoint_c: _Optional[float] = ..., dry_bulb_temp_c: _Optional[float] = ..., wet_bulb_temp_c: _Optional[float] = ..., dry_bulb_source: _Optional[_Union[ConditionSource, str]] = ..., wet_bulb_source: _Optional[_Union[ConditionSource, str]] = ..., facility_supply_setpoint_source: _Optional[_Union[ConditionSource, str]] = ..., fan_power_source: _Optional[_Union[ValueSource, str]] = ..., compressor_power_source: _Optional[_Union[ValueSource, str]] = ...) -> None: ...

class CoolingState(_message.Message):
    __slots__ = ("site_id", "entity_id", "scope", "state_time", "source", "rack", "cdu", "loop", "crah", "air_group", "plant")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    STATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RACK_FIELD_NUMBER: _ClassVar[int]
    CDU_FIELD_NUMBER: _ClassVar[int]
    LOOP_FIELD_NUMBER: _ClassVar[int]
    CRAH_FIELD_NUMBER: _ClassVar[int]
    AIR_GROUP_FIELD_NUMBER: _ClassVar[int]
    PLANT_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    entity_id: str
    scope: CoolingScope
    state_time: _timestamp_pb2.Timestamp
    source: ValueSource
    rack: RackCoolingDetail
    cdu: CduDetail
    loop: LoopDetail
    crah: CrahDetail
    air_group: AirGroupDetail
    plant: PlantDetail
    def __init__(self, site_id: _Optional[str] = ..., entity_id: _Optional[str] = ..., scope: _Optional[_Union[CoolingScope, str]] = ..., state_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[_Union[ValueSource, str]] = ..., rack: _Optional[_Union[RackCoolingDetail, _Mapping]] = ..., cdu: _Optional[_Union[CduDetail, _Mapping]] = ..., loop: _Optional[_Union[LoopDetail, _Mapping]] = ..., crah: _Optional[_Union[CrahDetail, _Mapping]] = ..., air_group: _Optional[_Union[AirGroupDetail, _Mapping]] = ..., plant: _Optional[_Union[PlantDetail, _Mapping]] = ...) -> None: ...

class CoolingAlert(_message.Message):
    __slots__ = ("alert_id", "site_id", "entity_id", "scope", "kind", "severity", "alert_time", "time_to_throttle_s", "gpu_ids", "suspect_sensor_id", "measured_value", "model_value", "value", "threshold", "message", "cleared")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    ALERT_TIME_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_THROTTLE_S_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_SENSOR_ID_FIELD_NUMBER: _ClassVar[int]
    MEASURED_VALUE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    site_id: str
    entity_id: str
    scope: CoolingScope
    kind: AlertKind
    severity: Severity
    alert_time: _timestamp_pb2.Timestamp
    time_to_throttle_s: float
    gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    suspect_sensor_id: str
    measured_value: float
    model_value: float
    value: float
    threshold: float
    message: str
    cleared: bool
    def __init__(self, alert_id: _Optional[str] = ..., site_id: _Optional[str] = ..., entity_id: _Optional[str] = ..., scope: _Optional[_Union[CoolingScope, str]] = ..., kind: _Optional[_Union[AlertKind, str]] = ..., severity: _Optional[_Union[Severity, str]] = ..., alert_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., time_to_throttle_s: _Optional[float] = ..., gpu_ids: _Optional[_Iterable[int]] = ..., suspect_sensor_id: _Optional[str] = ..., measured_value: _Optional[float] = ..., model_value: _Optional[float] = ..., value: _Optional[float] = ..., threshold: _Optional[float] = ..., message: _Optional[str] = ..., cleared: _Optional[bool] = ...) -> None: ...

class CoolingEvent(_message.Message):
    __slots__ = ("event_id", "site_id", "entity_id", "kind", "event_time", "flow_fraction", "facility_supply_temp_c", "supply_air_temp_c", "dry_bulb_temp_c", "wet_bulb_temp_c", "note")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    FLOW_FRACTION_FIELD_NUMBER: _ClassVar[int]
    FACILITY_SUPPLY_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_AIR_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    DRY_BULB_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    WET_BULB_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    site_id: str
    entity_id: str
    kind: CoolingEventKind
    event_time: _timestamp_pb2.Timestamp
    flow_fraction: float
    facility_supply_temp_c: float
    supply_air_temp_c: float
    dry_bulb_temp_c: float
    wet_bulb_temp_c: float
    note: str
    def __init__(self, event_id: _Optional[str] = ..., site_id: _Optional[str] = ..., entity_id: _Optional[str] = ..., kind: _Optional[_Union[CoolingEventKind, str]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., flow_fraction: _Optional[float] = ..., facility_supply_temp_c: _Optional[float] = ..., supply_air_temp_c: _Optional[float] = ..., dry_bulb_temp_c: _Optional[float] = ..., wet_bulb_temp_c: _Optional[float] = ..., note: _Optional[str] = ...) -> None: ...

class CoolingStageInput(_message.Message):
    __slots__ = ("site_id", "heat", "gpus", "equipment", "event")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    HEAT_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    EQUIPMENT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    heat: RackHeat
    gpus: RackGpus
    equipment: _telemetry_pb2.TelemetrySamples
    event: CoolingEvent
    def __init__(self, site_id: _Optional[str] = ..., heat: _Optional[_Union[RackHeat, _Mapping]] = ..., gpus: _Optional[_Union[RackGpus, _Mapping]] = ..., equipment: _Optional[_Union[_telemetry_pb2.TelemetrySamples, _Mapping]] = ..., event: _Optional[_Union[CoolingEvent, _Mapping]] = ...) -> None: ...

class RackHeat(_message.Message):
    __slots__ = ("rack_id", "state_time", "it_power_w")
    RACK_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_TIME_FIELD_NUMBER: _ClassVar[int]
    IT_POWER_W_FIELD_NUMBER: _ClassVar[int]
    rack_id: str
    state_time: _timestamp_pb2.Timestamp
    it_power_w: float
    def __init__(self, rack_id: _Optional[str] = ..., state_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., it_power_w: _Optional[float] = ...) -> None: ...

class GpuThermalParams(_message.Message):
    __slots__ = ("r_slow_k_per_w", "r_fast_k_per_w", "tau_slow_s", "tau_fast_s", "offset_c", "hbm_offset_c", "hbm_slow_k_per_w", "hbm_core_k_per_w", "hbm_self_k_per_w")
    R_SLOW_K_PER_W_FIELD_NUMBER: _ClassVar[int]
    R_FAST_K_PER_W_FIELD_NUMBER: _ClassVar[int]
    TAU_SLOW_S_FIELD_NUMBER: _ClassVar[int]
    TAU_FAST_S_FIELD_NUMBER: _ClassVar[int]
    OFFSET_C_FIELD_NUMBER: _ClassVar[int]
    HBM_OFFSET_C_FIELD_NUMBER: _ClassVar[int]
    HBM_SLOW_K_PER_W_FIELD_NUMBER: _ClassVar[int]
    HBM_CORE_K_PER_W_FIELD_NUMBER: _ClassVar[int]
    HBM_SELF_K_PER_W_FIELD_NUMBER: _ClassVar[int]
    r_slow_k_per_w: _containers.RepeatedScalarFieldContainer[float]
    r_fast_k_per_w: _containers.RepeatedScalarFieldContainer[float]
    tau_slow_s: _containers.RepeatedScalarFieldContainer[float]
    tau_fast_s: _containers.RepeatedScalarFieldContainer[float]
    offset_c: _containers.RepeatedScalarFieldContainer[float]
    hbm_offset_c: _containers.RepeatedScalarFieldContainer[float]
    hbm_slow_k_per_w: _containers.RepeatedScalarFieldContainer[float]
    hbm_core_k_per_w: _containers.RepeatedScalarFieldContainer[float]
    hbm_self_k_per_w: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, r_slow_k_per_w: _Optional[_Iterable[float]] = ..., r_fast_k_per_w: _Optional[_Iterable[float]] = ..., tau_slow_s: _Optional[_Iterable[float]] = ..., tau_fast_s: _Optional[_Iterable[float]] = ..., offset_c: _Optional[_Iterable[float]] = ..., hbm_offset_c: _Optional[_Iterable[float]] = ..., hbm_slow_k_per_w: _Optional[_Iterable[float]] = ..., hbm_core_k_per_w: _Optional[_Iterable[float]] = ..., hbm_self_k_per_w: _Optional[_Iterable[float]] = ...) -> None: ...

class RackGpus(_message.Message):
    __slots__ = ("rack_id", "sample_time", "gpu_ids", "power_w", "dram_active", "coolant_flow_lpm", "coolant_supply_temp_c", "coolant_return_temp_c", "calibrated_gpu_ids", "calibrated")
    RACK_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_TIME_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    DRAM_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    COOLANT_FLOW_LPM_FIELD_NUMBER: _ClassVar[int]
    COOLANT_SUPPLY_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    COOLANT_RETURN_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_FIELD_NUMBER: _ClassVar[int]
    rack_id: str
    sample_time: _timestamp_pb2.Timestamp
    gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    power_w: _containers.RepeatedScalarFieldContainer[float]
    dram_active: _containers.RepeatedScalarFieldContainer[float]
    coolant_flow_lpm: float
    coolant_supply_temp_c: float
    coolant_return_temp_c: float
    calibrated_gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    calibrated: GpuThermalParams
    def __init__(self, rack_id: _Optional[str] = ..., sample_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., gpu_ids: _Optional[_Iterable[int]] = ..., power_w: _Optional[_Iterable[float]] = ..., dram_active: _Optional[_Iterable[float]] = ..., coolant_flow_lpm: _Optional[float] = ..., coolant_supply_temp_c: _Optional[float] = ..., coolant_return_temp_c: _Optional[float] = ..., calibrated_gpu_ids: _Optional[_Iterable[int]] = ..., calibrated: _Optional[_Union[GpuThermalParams, _Mapping]] = ...) -> None: ...

class GetStateRequest(_message.Message):
    __slots__ = ("scope", "entity_ids")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_IDS_FIELD_NUMBER: _ClassVar[int]
    scope: CoolingScope
    entity_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, scope: _Optional[_Union[CoolingScope, str]] = ..., entity_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetStateResponse(_message.Message):
    __slots__ = ("state_time", "states")
    STATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    state_time: _timestamp_pb2.Timestamp
    states: _containers.RepeatedCompositeFieldContainer[CoolingState]
    def __init__(self, state_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., states: _Optional[_Iterable[_Union[CoolingState, _Mapping]]] = ...) -> None: ...

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
    states: _containers.RepeatedCompositeFieldContainer[CoolingState]
    def __init__(self, states: _Optional[_Iterable[_Union[CoolingState, _Mapping]]] = ...) -> None: ...

class PumpFlow(_message.Message):
    __slots__ = ("cdu_id", "flow_fraction")
    CDU_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_FRACTION_FIELD_NUMBER: _ClassVar[int]
    cdu_id: str
    flow_fraction: float
    def __init__(self, cdu_id: _Optional[str] = ..., flow_fraction: _Optional[float] = ...) -> None: ...

class RackFlow(_message.Message):
    __slots__ = ("rack_id", "flow_fraction")
    RACK_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_FRACTION_FIELD_NUMBER: _ClassVar[int]
    rack_id: str
    flow_fraction: float
    def __init__(self, rack_id: _Optional[str] = ..., flow_fraction: _Optional[float] = ...) -> None: ...

class WhatIfFailureRequest(_message.Message):
    __slots__ = ("cdu_ids", "crah_ids", "plant_unit_ids", "pumps", "rack_flows", "horizon_s")
    CDU_IDS_FIELD_NUMBER: _ClassVar[int]
    CRAH_IDS_FIELD_NUMBER: _ClassVar[int]
    PLANT_UNIT_IDS_FIELD_NUMBER: _ClassVar[int]
    PUMPS_FIELD_NUMBER: _ClassVar[int]
    RACK_FLOWS_FIELD_NUMBER: _ClassVar[int]
    HORIZON_S_FIELD_NUMBER: _ClassVar[int]
    cdu_ids: _containers.RepeatedScalarFieldContainer[str]
    crah_ids: _containers.RepeatedScalarFieldContainer[str]
    plant_unit_ids: _containers.RepeatedScalarFieldContainer[str]
    pumps: _containers.RepeatedCompositeFieldContainer[PumpFlow]
    rack_flows: _containers.RepeatedCompositeFieldContainer[RackFlow]
    horizon_s: float
    def __init__(self, cdu_ids: _Optional[_Iterable[str]] = ..., crah_ids: _Optional[_Iterable[str]] = ..., plant_unit_ids: _Optional[_Iterable[str]] = ..., pumps: _Optional[_Iterable[_Union[PumpFlow, _Mapping]]] = ..., rack_flows: _Optional[_Iterable[_Union[RackFlow, _Mapping]]] = ..., horizon_s: _Optional[float] = ...) -> None: ...

class WhatIfSetpointRequest(_message.Message):
    __slots__ = ("facility_supply_temp_c", "supply_air_temp_c", "dry_bulb_temp_c", "wet_bulb_temp_c", "horizon_s")
    FACILITY_SUPPLY_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_AIR_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    DRY_BULB_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    WET_BULB_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    HORIZON_S_FIELD_NUMBER: _ClassVar[int]
    facility_supply_temp_c: float
    supply_air_temp_c: float
    dry_bulb_temp_c: float
    wet_bulb_temp_c: float
    horizon_s: float
    def __init__(self, facility_supply_temp_c: _Optional[float] = ..., supply_air_temp_c: _Optional[float] = ..., dry_bulb_temp_c: _Optional[float] = ..., wet_bulb_temp_c: _Optional[float] = ..., horizon_s: _Optional[float] = ...) -> None: ...

class RackThrottle(_message.Message):
    __slots__ = ("rack_id", "time_to_throttle_s", "gpu_ids", "coolant_temp_before_c", "coolant_temp_after_c")
    RACK_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_THROTTLE_S_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    COOLANT_TEMP_BEFORE_C_FIELD_NUMBER: _ClassVar[int]
    COOLANT_TEMP_AFTER_C_FIELD_NUMBER: _ClassVar[int]
    rack_id: str
    time_to_throttle_s: float
    gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    coolant_temp_before_c: float
    coolant_temp_after_c: float
    def __init__(self, rack_id: _Optional[str] = ..., time_to_throttle_s: _Optional[float] = ..., gpu_ids: _Optional[_Iterable[int]] = ..., coolant_temp_before_c: _Optional[float] = ..., coolant_temp_after_c: _Optional[float] = ...) -> None: ...

class WhatIfOutcome(_message.Message):
    __slots__ = ("racks", "gpus_affected", "loops_not_carrying", "air_groups_not_carrying", "redundancy_carries", "plant_power_before_w", "plant_power_after_w", "cooling_power_before_w", "cooling_power_after_w", "pue_cooling_before", "pue_cooling_after", "facility_supply_temp_after_c", "horizon_s")
    RACKS_FIELD_NUMBER: _ClassVar[int]
    GPUS_AFFECTED_FIELD_NUMBER: _ClassVar[int]
    LOOPS_NOT_CARRYING_FIELD_NUMBER: _ClassVar[int]
    AIR_GROUPS_NOT_CARRYING_FIELD_NUMBER: _ClassVar[int]
    REDUNDANCY_CARRIES_FIELD_NUMBER: _ClassVar[int]
    PLANT_POWER_BEFORE_W_FIELD_NUMBER: _ClassVar[int]
    PLANT_POWER_AFTER_W_FIELD_NUMBER: _ClassVar[int]
    COOLING_POWER_BEFORE_W_FIELD_NUMBER: _ClassVar[int]
    COOLING_POWER_AFTER_W_FIELD_NUMBER: _ClassVar[int]
    PUE_COOLING_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PUE_COOLING_AFTER_FIELD_NUMBER: _ClassVar[int]
    FACILITY_SUPPLY_TEMP_AFTER_C_FIELD_NUMBER: _ClassVar[int]
    HORIZON_S_FIELD_NUMBER: _ClassVar[int]
    racks: _containers.RepeatedCompositeFieldContainer[RackThrottle]
    gpus_affected: int
    loops_not_carrying: _containers.RepeatedScalarFieldContainer[str]
    air_groups_not_carrying: _containers.RepeatedScalarFieldContainer[str]
    redundancy_carries: bool
    plant_power_before_w: float
    plant_power_after_w: float
    cooling_power_before_w: float
    cooling_power_after_w: float
    pue_cooling_before: float
    pue_cooling_after: float
    facility_supply_temp_after_c: float
    horizon_s: float
    def __init__(self, racks: _Optional[_Iterable[_Union[RackThrottle, _Mapping]]] = ..., gpus_affected: _Optional[int] = ..., loops_not_carrying: _Optional[_Iterable[str]] = ..., air_groups_not_carrying: _Optional[_Iterable[str]] = ..., redundancy_carries: _Optional[bool] = ..., plant_power_before_w: _Optional[float] = ..., plant_power_after_w: _Optional[float] = ..., cooling_power_before_w: _Optional[float] = ..., cooling_power_after_w: _Optional[float] = ..., pue_cooling_before: _Optional[float] = ..., pue_cooling_after: _Optional[float] = ..., facility_supply_temp_after_c: _Optional[float] = ..., horizon_s: _Optional[float] = ...) -> None: ...

class WhatIfFailureResponse(_message.Message):
    __slots__ = ("outcome",)
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    outcome: WhatIfOutcome
    def __init__(self, outcome: _Optional[_Union[WhatIfOutcome, _Mapping]] = ...) -> None: ...

class WhatIfSetpointResponse(_message.Message):
    __slots__ = ("outcome",)
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    outcome: WhatIfOutcome
    def __init__(self, outcome: _Optional[_Union[WhatIfOutcome, _Mapping]] = ...) -> None: ...
