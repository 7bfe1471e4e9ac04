"""Domain form of one rack telemetry batch: parallel numpy arrays, exactly as received.

Arrays keep the lengths they arrived with (validation checks them); nothing here is trusted yet.
Units are in the names: watts, °C, MHz, percent, ratios 0..1, bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from itertools import accumulate

import numpy as np

# The frozen dataclasses' __init__ sets each field through object.__setattr__ (a call per field, for tens of
# thousands of objects a tick); their `direct` classmethods give the same instance (the same __dict__) from
# one dict update, for the decoder's construction of values it has just made.
_new = object.__new__


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
    """The GPUs of one node (the per-node form feed adapters build; `GpuColumns.from_nodes` joins them)."""

    node_id: str
    gpu_index: np.ndarray           # uint32
    values: dict[str, np.ndarray]   # GPU_FIELDS -> array (float64 or uint64), lengths as received


@dataclass(frozen=True, eq=False)
class GpuColumns:
    """The GPU samples of one batch as flat columns: the nodes' rows one after another, as received.

    Flat so that decode, validation and row building touch each field once per batch, not once per
    node. Node j's gpu_index entries are rows node_offsets[j]:node_offsets[j + 1]. The values are one
    array per wire type, field-major: the GPU_FLOAT_FIELDS one after another in `floats`, the
    GPU_COUNT_FIELDS in `counts`, each field the nodes' values in node order (as the wire packs them).
    Aligned (every field of every node has one value per gpu_index entry; `value_offsets` is None):
    field m is rows m * n:(m + 1) * n, and `float_block()` / `count_block()` view them as (fields, rows).
    When any field of any node arrived with another length (validation rejects that), `value_offsets`
    holds each field's per-node offsets within its own part; the parts follow each other.
    """

    node_ids: tuple[str, ...]
    node_offsets: np.ndarray         # intp, len(node_ids) + 1, starts at 0
    gpu_index: np.ndarray            # uint32, one per row
    floats: np.ndarray               # float64, GPU_FLOAT_FIELDS one after another
    counts: np.ndarray               # uint64, GPU_COUNT_FIELDS one after another
    value_offsets: dict[str, np.ndarray] | None = None   # per field, like node_offsets; None: aligned

    @classmethod
    def direct(cls, node_ids, node_offsets, gpu_index, floats, counts, value_offsets=None) -> GpuColumns:
        """cls(...) without the per-field object.__setattr__ (see _new)."""
        self = _new(cls)
        self.__dict__.update(node_ids=node_ids, node_offsets=node_offsets, gpu_index=gpu_index, floats=floats,
                             counts=counts, value_offsets=value_offsets)
        return self

    @classmethod
    def empty(cls) -> GpuColumns:
        return cls((), np.zeros(1, np.intp), np.empty(0, np.uint32), np.empty(0, np.float64), np.empty(0, np.uint64))

    @classmethod
    def from_nodes(cls, nodes: Sequence[NodeGpus]) -> GpuColumns:
        """The flat form of per-node samples (values cast to float64 / uint64 like the wire types)."""
        if not nodes:
            return cls.empty()
        rows = [len(n.gpu_index) for n in nodes]
        offsets: dict[str, np.ndarray] = {}
        aligned = True
        for f in GPU_FIELDS:
            lengths = [len(n.values[f]) for n in nodes]
            aligned &= lengths == rows
            offsets[f] = np.fromiter(accumulate(lengths, initial=0), np.intp, len(nodes) + 1)
        floats = np.concatenate([n.values[f] for f in GPU_FLOAT_FIELDS for n in nodes], dtype=np.float64,
                                casting="unsafe")
        counts = np.concatenate([n.values[f] for f in GPU_COUNT_FIELDS for n in nodes], dtype=np.uint64,
                                casting="unsafe")
        return cls(tuple(n.node_id for n in nodes), np.fromiter(accumulate(rows, initial=0), np.intp, len(rows) + 1),
                   np.concatenate([n.gpu_index for n in nodes], dtype=np.uint32, casting="unsafe"), floats, counts,
                   None if aligned else offsets)

    def float_block(self) -> np.ndarray:
        """(len(GPU_FLOAT_FIELDS), rows) view of the float fields; aligned columns only."""
        return self._block(self.floats, len(GPU_FLOAT_FIELDS))

    def count_block(self) -> np.ndarray:
        """(len(GPU_COUNT_FIELDS), rows) view of the counters; aligned columns only."""
        return self._block(self.counts, len(GPU_COUNT_FIELDS))

    def _block(self, flat: np.ndarray, fields: int) -> np.ndarray:
        rows = len(self.gpu_index)
        if self.value_offsets is not None or len(flat) != fields * rows:
            raise ValueError("the GPU columns are not aligned with gpu_index")
        return flat.reshape(fields, rows)

    @cached_property
    def values(self) -> dict[str, np.ndarray]:
        """GPU_FIELDS -> that field's values (views), nodes in order, lengths as received."""
        out: dict[str, np.ndarray] = {}
        for fields, flat in ((GPU_FLOAT_FIELDS, self.floats), (GPU_COUNT_FIELDS, self.counts)):
            at = 0
            for f in fields:
                n = len(self.gpu_index) if self.value_offsets is None else int(self.value_offsets[f][-1])
                out[f] = flat[at:at + n]
                at += n
        return out

    @cached_property
    def nodes(self) -> tuple[NodeGpus, ...]:
        """Per-node views of the columns (for the code paths that word problems node by node)."""
        o = self.node_offsets.tolist()
        vo = {f: o if self.value_offsets is None else self.value_offsets[f].tolist() for f in self.values}
        return tuple(NodeGpus(node_id, self.gpu_index[o[j]:o[j + 1]],
                              {f: v[vo[f][j]:vo[f][j + 1]] for f, v in self.values.items()})
                     for j, node_id in enumerate(self.node_ids))


def node_rows(columns: Sequence[GpuColumns]) -> np.ndarray:
    """GPU rows of every node of `columns`, in order (one numpy pass for the whole list)."""
    if not columns:
        return np.empty(0, np.intp)
    offsets = [c.node_offsets for c in columns]
    rows = np.diff(np.concatenate(offsets))
    # drop the steps between one batch's last offset and the next batch's first (0)
    seams = np.cumsum(np.fromiter(map(len, offsets[:-1]), np.intp, len(offsets) - 1)) - 1
    return np.delete(rows, seams)


@dataclass(frozen=True, eq=False)
class RackEnv:
    pdu_input_power_w: np.ndarray   # per phase
    inlet_air_temp_c: float
    outlet_air_temp_c: float
    coolant_supply_temp_c: float
    coolant_return_temp_c: float
    coolant_flow_lpm: float

    @classmethod
    def direct(cls, pdu_input_power_w, inlet_air_temp_c, outlet_air_temp_c, coolant_supply_temp_c,
               coolant_return_temp_c, coolant_flow_lpm) -> RackEnv:
        """cls(...) without the per-field object.__setattr__ (see _new)."""
        self = _new(cls)
        self.__dict__.update(pdu_input_power_w=pdu_input_power_w, inlet_air_temp_c=inlet_air_temp_c,
                             outlet_air_temp_c=outlet_air_temp_c, coolant_supply_temp_c=coolant_supply_temp_c,
                             coolant_return_temp_c=coolant_return_temp_c, coolant_flow_lpm=coolant_flow_lpm)
        return self


@dataclass(frozen=True, eq=False)
class Links:
    port_id: tuple[str, ...]
    counters: dict[str, np.ndarray]  # LINK_COUNT_FIELDS -> uint64
    link_state: np.ndarray           # int (LinkState enum values)

    @classmethod
    def direct(cls, port_id, counters, link_state) -> Links:
        """cls(...) without the per-field object.__setattr__ (see _new)."""
        self = _new(cls)
        self.__dict__.update(port_id=port_id, counters=counters, link_state=link_state)
        return self


@dataclass(frozen=True, eq=False)
class RackBatch:
    site_id: str
    rack_id: str
    sample_time: datetime | None     # None when the source did not set it
    sequence: int
    source: str
    gpus: GpuColumns
    rack: RackEnv | None             # None when the batch carries no rack-level samples
    links: Links

    @classmethod
    def direct(cls, site_id, rack_id, sample_time, sequence, source, gpus, rack, links) -> RackBatch:
        """cls(...) without the per-field object.__setattr__ (see _new), its `key` made already (the handler
        asks every batch for it; cached_property's first access takes a lock)."""
        self = _new(cls)
        self.__dict__.update(site_id=site_id, rack_id=rack_id, sample_time=sample_time, sequence=sequence,
                             source=source, gpus=gpus, rack=rack, links=links,
                             key=BatchKey.direct(rack_id, sample_time, sequence))
        return self

    @property
    def nodes(self) -> tuple[NodeGpus, ...]:
        return self.gpus.nodes

    @cached_property   # the handler and the repository ask for it several times per batch
    def key(self) -> BatchKey:
        return BatchKey(self.rack_id, self.sample_time, self.sequence)


@dataclass(frozen=True)
class BatchKey:
    """Natural key of a batch: one rack, one tick. Two records with the same key are duplicates."""

    rack_id: str
    sample_time: datetime | None
    sequence: int

    @classmethod
    def direct(cls, rack_id, sample_time, sequence) -> BatchKey:
        """cls(...) without the per-field object.__setattr__ (see _new)."""
        self = _new(cls)
        self.__dict__.update(rack_id=rack_id, sample_time=sample_time, sequence=sequence)
        return self
