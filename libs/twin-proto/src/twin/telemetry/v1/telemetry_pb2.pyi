import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LinkState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINK_STATE_UNSPECIFIED: _ClassVar[LinkState]
    LINK_STATE_UP: _ClassVar[LinkState]
    LINK_STATE_DOWN: _ClassVar[LinkState]
    LINK_STATE_DEGRADED: _ClassVar[LinkState]
LINK_STATE_UNSPECIFIED: LinkState
LINK_STATE_UP: LinkState
LINK_STATE_DOWN: LinkState
LINK_STATE_DEGRADED: LinkState

class GpuSamples(_message.Message):
    __slots__ = ("gpu_index", "power_w", "gpu_temp_c", "mem_temp_c", "sm_clock_mhz", "mem_clock_mhz", "util_gpu_pct", "util_mem_pct", "sm_active", "tensor_active", "dram_active", "xid_errors", "ecc_sbe_total", "ecc_dbe_total")
    GPU_INDEX_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    GPU_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    MEM_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    SM_CLOCK_MHZ_FIELD_NUMBER: _ClassVar[int]
    MEM_CLOCK_MHZ_FIELD_NUMBER: _ClassVar[int]
    UTIL_GPU_PCT_FIELD_NUMBER: _ClassVar[int]
    UTIL_MEM_PCT_FIELD_NUMBER: _ClassVar[int]
    SM_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    TENSOR_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    DRAM_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    XID_ERRORS_FIELD_NUMBER: _ClassVar[int]
    ECC_SBE_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ECC_DBE_TOTAL_FIELD_NUMBER: _ClassVar[int]
    gpu_index: _containers.RepeatedScalarFieldContainer[int]
    power_w: _containers.RepeatedScalarFieldContainer[float]
    gpu_temp_c: _containers.RepeatedScalarFieldContainer[float]
    mem_temp_c: _containers.RepeatedScalarFieldContainer[float]
    sm_clock_mhz: _containers.RepeatedScalarFieldContainer[float]
    mem_clock_mhz: _containers.RepeatedScalarFieldContainer[float]
    util_gpu_pct: _containers.RepeatedScalarFieldContainer[float]
    util_mem_pct: _containers.RepeatedScalarFieldContainer[float]
    sm_active: _containers.RepeatedScalarFieldContainer[float]
    tensor_active: _containers.RepeatedScalarFieldContainer[float]
    dram_active: _containers.RepeatedScalarFieldContainer[float]
    xid_errors: _containers.RepeatedScalarFieldContainer[int]
    ecc_sbe_total: _containers.RepeatedScalarFieldContainer[int]
    ecc_dbe_total: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, gpu_index: _Optional[_Iterable[int]] = ..., power_w: _Optional[_Iterable[float]] = ..., gpu_temp_c: _Optional[_Iterable[float]] = ..., mem_temp_c: _Optional[_Iterable[float]] = ..., sm_clock_mhz: _Optional[_Iterable[float]] = ..., mem_clock_mhz: _Optional[_Iterable[float]] = ..., util_gpu_pct: _Optional[_Iterable[float]] = ..., util_mem_pct: _Optional[_Iterable[float]] = ..., sm_active: _Optional[_Iterable[float]] = ..., tensor_active: _Optional[_Iterable[float]] = ..., dram_active: _Optional[_Iterable[float]] = ..., xid_errors: _Optional[_Iterable[int]] = ..., ecc_sbe_total: _Optional[_Iterable[int]] = ..., ecc_dbe_total: _Optional[_Iterable[int]] = ...) -> None: ...

class NodeSamples(_message.Message):
    __slots__ = ("node_id", "gpus")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    gpus: GpuSamples
    def __init__(self, node_id: _Optional[str] = ..., gpus: _Optional[_Union[GpuSamples, _Mapping]] = ...) -> None: ...

class LinkSamples(_message.Message):
    __slots__ = ("port_id", "tx_bytes", "rx_bytes", "tx_errors", "rx_errors", "link_state")
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    TX_BYTES_FIELD_NUMBER: _ClassVar[int]
    RX_BYTES_FIELD_NUMBER: _ClassVar[int]
    TX_ERRORS_FIELD_NUMBER: _ClassVar[int]
    RX_ERRORS_FIELD_NUMBER: _ClassVar[int]
    LINK_STATE_FIELD_NUMBER: _ClassVar[int]
    port_id: _containers.RepeatedScalarFieldContainer[str]
    tx_bytes: _containers.RepeatedScalarFieldContainer[int]
    rx_bytes: _containers.RepeatedScalarFieldContainer[int]
    tx_errors: _containers.RepeatedScalarFieldContainer[int]
    rx_errors: _containers.RepeatedScalarFieldContainer[int]
    link_state: _containers.RepeatedScalarFieldContainer[LinkState]
    def __init__(self, port_id: _Optional[_Iterable[str]] = ..., tx_bytes: _Optional[_Iterable[int]] = ..., rx_bytes: _Optional[_Iterable[int]] = ..., tx_errors: _Optional[_Iterable[int]] = ..., rx_errors: _Optional[_Iterable[int]] = ..., link_state: _Optional[_Iterable[_Union[LinkState, str]]] = ...) -> None: ...

class RackSamples(_message.Message):
    __slots__ = ("pdu_input_power_w", "inlet_air_temp_c", "outlet_air_temp_c", "coolant_supply_temp_c", "coolant_return_temp_c", "coolant_flow_lpm")
    PDU_INPUT_POWER_W_FIELD_NUMBER: _ClassVar[int]
    INLET_AIR_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    OUTLET_AIR_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    COOLANT_SUPPLY_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    COOLANT_RETURN_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    COOLANT_FLOW_LPM_FIELD_NUMBER: _ClassVar[int]
    pdu_input_power_w: _containers.RepeatedScalarFieldContainer[float]
    inlet_air_temp_c: float
    outlet_air_temp_c: float
    coolant_supply_temp_c: float
    coolant_return_temp_c: float
    coolant_flow_lpm: float
    def __init__(self, pdu_input_power_w: _Optional[_Iterable[float]] = ..., inlet_air_temp_c: _Optional[float] = ..., outlet_air_temp_c: _Optional[float] = ..., coolant_supply_temp_c: _Optional[float] = ..., coolant_return_temp_c: _Optional[float] = ..., coolant_flow_lpm: _Optional[float] = ...) -> None: ...

class RackTelemetryBatch(_message.Message):
    __slots__ = ("site_id", "rack_id", "sample_time", "sequence", "nodes", "rack", "links", "source", "equipment")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    RACK_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_TIME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    RACK_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EQUIPMENT_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    rack_id: str
    sample_time: _timestamp_pb2.Timestamp
    sequence: int
    nodes: _containers.RepeatedCompositeFieldContainer[NodeSamples]
    rack: RackSamples
    links: LinkSamples
    source: str
    equipment: EquipmentSamples
    def __init__(self, site_id: _Optional[str] = ..., rack_id: _Optional[str] = ..., sample_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ..., nodes: _Optional[_Iterable[_Union[NodeSamples, _Mapping]]] = ..., rack: _Optional[_Union[RackSamples, _Mapping]] = ..., links: _Optional[_Union[LinkSamples, _Mapping]] = ..., source: _Optional[str] = ..., equipment: _Optional[_Union[EquipmentSamples, _Mapping]] = ...) -> None: ...

class TelemetrySamples(_message.Message):
    __slots__ = ("batch", "ingested_time", "rejected_values")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    INGESTED_TIME_FIELD_NUMBER: _ClassVar[int]
    REJECTED_VALUES_FIELD_NUMBER: _ClassVar[int]
    batch: RackTelemetryBatch
    ingested_time: _timestamp_pb2.Timestamp
    rejected_values: int
    def __init__(self, batch: _Optional[_Union[RackTelemetryBatch, _Mapping]] = ..., ingested_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rejected_values: _Optional[int] = ...) -> None: ...

class CduSample(_message.Message):
    __slots__ = ("cdu_id", "primary_supply_temp_c", "primary_return_temp_c", "primary_flow_lpm", "secondary_supply_temp_c", "secondary_return_temp_c", "secondary_flow_lpm", "differential_pressure_kpa", "pump_speed_pct", "heat_removed_w")
    CDU_ID_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_SUPPLY_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_RETURN_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FLOW_LPM_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_SUPPLY_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_RETURN_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_FLOW_LPM_FIELD_NUMBER: _ClassVar[int]
    DIFFERENTIAL_PRESSURE_KPA_FIELD_NUMBER: _ClassVar[int]
    PUMP_SPEED_PCT_FIELD_NUMBER: _ClassVar[int]
    HEAT_REMOVED_W_FIELD_NUMBER: _ClassVar[int]
    cdu_id: str
    primary_supply_temp_c: float
    primary_return_temp_c: float
    primary_flow_lpm: float
    secondary_supply_temp_c: float
    secondary_return_temp_c: float
    secondary_flow_lpm: float
    differential_pressure_kpa: float
    pump_speed_pct: float
    heat_removed_w: float
    def __init__(self, cdu_id: _Optional[str] = ..., primary_supply_temp_c: _Optional[float] = ..., primary_return_temp_c: _Optional[float] = ..., primary_flow_lpm: _Optional[float] = ..., secondary_supply_temp_c: _Optional[float] = ..., secondary_return_temp_c: _Optional[float] = ..., secondary_flow_lpm: _Optional[float] = ..., differential_pressure_kpa: _Optional[float] = ..., pump_speed_pct: _Optional[float] = ..., heat_removed_w: _Optional[float] = ...) -> None: ...

class CrahSample(_message.Message):
    __slots__ = ("crah_id", "supply_air_temp_c", "return_air_temp_c", "fan_speed_pct")
    CRAH_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_AIR_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    RETURN_AIR_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    FAN_SPEED_PCT_FIELD_NUMBER: _ClassVar[int]
    crah_id: str
    supply_air_temp_c: float
    return_air_temp_c: float
    fan_speed_pct: float
    def __init__(self, crah_id: _Optional[str] = ..., supply_air_temp_c: _Optional[float] = ..., return_air_temp_c: _Optional[float] = ..., fan_speed_pct: _Optional[float] = ...) -> None: ...

class PlantSample(_message.Message):
    __slots__ = ("outdoor_temp_c", "wet_bulb_temp_c", "tower_power_w", "chiller_power_w")
    OUTDOOR_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    WET_BULB_TEMP_C_FIELD_NUMBER: _ClassVar[int]
    TOWER_POWER_W_FIELD_NUMBER: _ClassVar[int]
    CHILLER_POWER_W_FIELD_NUMBER: _ClassVar[int]
    outdoor_temp_c: float
    wet_bulb_temp_c: float
    tower_power_w: float
    chiller_power_w: float
    def __init__(self, outdoor_temp_c: _Optional[float] = ..., wet_bulb_temp_c: _Optional[float] = ..., tower_power_w: _Optional[float] = ..., chiller_power_w: _Optional[float] = ...) -> None: ...

class EquipmentSamples(_message.Message):
    __slots__ = ("cdus", "crahs", "plant")
    CDUS_FIELD_NUMBER: _ClassVar[int]
    CRAHS_FIELD_NUMBER: _ClassVar[int]
    PLANT_FIELD_NUMBER: _ClassVar[int]
    cdus: _containers.RepeatedCompositeFieldContainer[CduSample]
    crahs: _containers.RepeatedCompositeFieldContainer[CrahSample]
    plant: PlantSample
    def __init__(self, cdus: _Optional[_Iterable[_Union[CduSample, _Mapping]]] = ..., crahs: _Optional[_Iterable[_Union[CrahSample, _Mapping]]] = ..., plant: _Optional[_Union[PlantSample, _Mapping]] = ...) -> None: ...
