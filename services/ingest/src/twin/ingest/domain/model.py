"""Domain form of one rack telemetry batch: parallel numpy arrays, exactly as received.

Arrays keep the lengths they arrived with (validation checks them); nothing here is trusted yet.
Units are in the names: watts, °C, MHz, percent, ratios 0..1, bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

# Per-GPU float fields, in table column order.
GPU_FLOAT_FIELDS: tuple[str, ...] = (
    "power_w", "gpu_temp_c", "mem_temp_c", "sm_clock_mhz", "mem_clock_mhz", "util_gpu_pct", "util_mem_pct",
    "sm_active", "tensor_active", "dram_active",
)
# Per-GPU counters (uint64 on the wire; stored as bigint).
GPU_COUNT_FIELDS: tuple[str, ...] = ("xid_errors", "ecc_sbe_total", "ecc_dbe_total")
GPU_FIELDS: tuple[str, ...] = GPU_FLOAT_FIELDS + GPU_COUNT_FIELDS

LINK_COUNT_FIELDS: tuple[str, ...] = ("tx_bytes", "rx_bytes", "tx_errors", "rx_errors")
RACK_SCALAR_FIELDS: tuple[str, ...] = (
    "inlet_air_temp_c", "outlet_air_temp_c", "coolant_supply_temp_c", "coolant_return_temp_c", "coolant_flow_lpm",
)


@dataclass(frozen=True, eq=False)
class NodeGpus:
    node_id: str
    gpu_index: np.ndarray           # uint32
    values: dict[str, np.ndarray]   # GPU_FIELDS -> array (float64 or uint64), lengths as received


@dataclass(frozen=True, eq=False)
class RackEnv:
    pdu_input_power_w: np.ndarray   # per phase
    inlet_air_temp_c: float
    outlet_air_temp_c: float
    coolant_supply_temp_c: float
    coolant_return_temp_c: float
    coolant_flow_lpm: float


@dataclass(frozen=True, eq=False)
class Links:
    port_id: tuple[str, ...]
    counters: dict[str, np.ndarray]  # LINK_COUNT_FIELDS -> uint64
    link_state: np.ndarray           # int (LinkState enum values)


@dataclass(frozen=True, eq=False)
class RackBatch:
    site_id: str
    rack_id: str
    sample_time: datetime | None     # None when the source did not set it
    sequence: int
    source: str
    nodes: tuple[NodeGpus, ...]
    rack: RackEnv | None             # None when the batch carries no rack-level samples
    links: Links

    @property
    def key(self) -> BatchKey:
        return BatchKey(self.rack_id, self.sample_time, self.sequence)


@dataclass(frozen=True)
class BatchKey:
    """Natural key of a batch: one rack, one tick. Two records with the same key are duplicates."""

    rack_id: str
    sample_time: datetime | None
    sequence: int
