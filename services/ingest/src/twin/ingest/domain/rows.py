"""Accepted batches → column arrays for the three telemetry tables (one entry per stored row).

Only called on batches that passed validation, so every array length is consistent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from operator import attrgetter, is_, itemgetter

import numpy as np

from twin.ingest.domain.model import (
    GPU_COUNT_FIELDS,
    GPU_FLOAT_FIELDS,
    LINK_COUNT_FIELDS,
    RackBatch,
    node_rows,
)

GPU_COLUMNS: tuple[str, ...] = ("time", "rack_id", "node_id", "gpu_index") + GPU_FLOAT_FIELDS + GPU_COUNT_FIELDS
RACK_COLUMNS: tuple[str, ...] = (
    "time", "rack_id", "pdu_l1_power_w", "pdu_l2_power_w", "pdu_l3_power_w", "inlet_air_temp_c",
    "outlet_air_temp_c", "coolant_supply_temp_c", "coolant_return_temp_c", "coolant_flow_lpm",
    "pdu_input_power_w",
)
# telemetry_link_sample (migration 007): the port's names are in telemetry_port_entity, rows carry its key.
LINK_SAMPLE_COLUMNS: tuple[str, ...] = ("time", "port_key") + LINK_COUNT_FIELDS + ("link_state",)


# Per-batch attributes read in C (map over a poll's batches: a Python step per batch costs more than the numpy
# work on its few values).
_RACK_ID = attrgetter("rack_id")
_SAMPLE_TIME = attrgetter("sample_time")
_RACK = attrgetter("rack")
_PDU = attrgetter("pdu_input_power_w")
_RACK_SCALARS = attrgetter(*RACK_COLUMNS[5:-1])
_PORT_IDS = attrgetter("links.port_id")
_LINKS = attrgetter("links")
_COUNTERS = attrgetter("counters")
_LINK_STATE = attrgetter("link_state")
_GPUS = attrgetter("gpus")
_NODE_IDS = attrgetter("node_ids")
_GPU_INDEX = attrgetter("gpu_index")

# telemetry_gpu_node (migration 009): one row per node per tick, every metric a per-GPU array.
GPU_NODE_COLUMNS: tuple[str, ...] = ("time", "node_key", "gpus") + GPU_FLOAT_FIELDS + GPU_COUNT_FIELDS
ABSENT_COUNT = -1   # counter element of a GPU slot the node did not report (counters are validated >= 0)
# telemetry_link_rack (migration 011): one row per rack per tick, element j = the j-th port of its port set.
LINK_RACK_COLUMNS: tuple[str, ...] = ("time", "set_key") + LINK_COUNT_FIELDS + ("link_state",)


@dataclass(frozen=True, eq=False)
class TableColumns:
    """name -> 1-D array, all the same length; `time` is datetime64[us] (UTC); the id columns of the GPU
    and rack rows (rack_id, node_id) are UTF-8 bytes (numpy "S"), which binary COPY takes as they are
    (twin.core.db.copy: a str column is encoded value by value, ~6 ms per 50k rows and column)."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def _time64(batch: RackBatch) -> np.datetime64:
    assert batch.sample_time is not None
    return np.datetime64(batch.sample_time.replace(tzinfo=None), "us")


def _utf8(ids: list[str]) -> np.ndarray:
    """Text ids as a numpy bytes ("S") array: encoded once per id, before np.repeat makes them rows."""
    try:
        return np.array(ids, dtype="S")     # ASCII ids (the usual case): numpy encodes them
    except UnicodeEncodeError:
        return np.array([i.encode() for i in ids], dtype="S")


def _times64(batches: Sequence[RackBatch]) -> np.ndarray:
    """_time64 of every batch; a poll's batches share a few sample times (the decoder hands out one datetime
    per time), each distinct object converted once; the per-batch steps run in C (map, dict, fromiter)."""
    times = list(map(_SAMPLE_TIME, batches))
    if times and all(map(is_, times, repeat(times[0]))):   # one tick's batches (the usual poll)
        return np.full(len(times), _time64_us(times[0]), dtype=np.int64).view("datetime64[us]")
    objects = dict(zip(map(id, times), times, strict=True))   # by identity: equal instants in other zones differ
    at = {key: _time64_us(t) for key, t in objects.items()}
    return np.fromiter(map(at.__getitem__, map(id, times)), np.int64, len(times)).view("datetime64[us]")


def _time64_us(t: datetime | None) -> int:
    assert t is not None
    return int(np.datetime64(t.replace(tzinfo=None), "us").astype(np.int64))


def gpu_columns(batches: Sequence[RackBatch]) -> TableColumns:
    # One entry per batch for time and rack and one per node for node_id, expanded with np.repeat;
    # each field is one concatenation of the batches' flat columns.
    gpus = [b.gpus for b in batches]
    rows = np.array([len(g.gpu_index) for g in gpus], dtype=np.intp)
    cols: dict[str, np.ndarray] = {
        "time": np.repeat(_times64(batches), rows),
        "rack_id": np.repeat(_utf8([b.rack_id for b in batches]), rows),
        "node_id": np.repeat(_utf8([n for g in gpus for n in g.node_ids]), node_rows(gpus)),
        "gpu_index": _cat([g.gpu_index for g in gpus], np.int16),
    }
    floats = _cat_blocks([g.float_block() for g in gpus], len(GPU_FLOAT_FIELDS), np.float64)
    counts = _cat_blocks([g.count_block() for g in gpus], len(GPU_COUNT_FIELDS), np.int64)
    cols.update(zip(GPU_FLOAT_FIELDS, floats, strict=True))
    cols.update(zip(GPU_COUNT_FIELDS, counts, strict=True))
    return TableColumns(cols)


@dataclass(frozen=True, eq=False)
class ArrayRows:
    """Rows of a table of per-entity arrays (telemetry_gpu_node, telemetry_link_rack), one group per array
    width: `groups[width]` maps the table's columns to arrays (the array columns 2-D: (rows, width));
    `readings` = the entity readings held (reported GPUs, ports)."""

    groups: dict[int, dict[str, np.ndarray]]
    readings: int


def gpu_node_columns(batches: Sequence[RackBatch], node_keys: Sequence[np.ndarray]) -> ArrayRows:
    """One row per node that reported GPUs: `node_keys[i]` holds the telemetry_node_entity key of each node of
    `batches[i]` (same order as its node_ids), as resolved by the repository.

    Element k of a node's arrays is its gpu_index k; the width is the node's highest gpu_index + 1. A slot the
    node did not report (a gap in gpu_index) holds NaN floats and ABSENT_COUNT counters; ±inf floats (never
    past validation) are stored as NaN, which the reader view turns into NULL as the old table stored them.
    """
    if len(batches) != len(node_keys):
        raise ValueError(f"{len(node_keys)} node key arrays for {len(batches)} batches")
    gpus = list(map(_GPUS, batches))
    nodes_per_batch = np.fromiter(map(len, map(_NODE_IDS, gpus)), np.intp, len(gpus))
    wrong = np.flatnonzero(np.fromiter(map(len, node_keys), np.intp, len(node_keys)) != nodes_per_batch)
    if len(wrong):
        b, k = batches[int(wrong[0])], node_keys[int(wrong[0])]
        raise ValueError(f"rack {b.rack_id}: {len(k)} node keys for {len(b.gpus.node_ids)} nodes")
    per_node = node_rows(gpus)                        # GPU rows of every node, in order
    n_rows = int(per_node.sum())
    if n_rows == 0:
        return ArrayRows({}, 0)
    keys = _cat(list(node_keys), np.int32)
    node_time = np.repeat(_times64(batches), nodes_per_batch)
    idx = _cat(list(map(_GPU_INDEX, gpus)), np.intp)
    floats = _cat_blocks([g.float_block() for g in gpus], len(GPU_FLOAT_FIELDS), np.float64)
    counts = _cat_int64([g.count_block() for g in gpus], axis=1)
    reporting = per_node > 0
    starts = (np.cumsum(per_node) - per_node)[reporting]
    width = np.zeros(len(per_node), dtype=np.intp)
    width[reporting] = np.maximum.reduceat(idx, starts) + 1
    row_node = np.repeat(np.arange(len(per_node)), per_node)
    groups: dict[int, dict[str, np.ndarray]] = {}
    for w in np.unique(width[reporting]).tolist():
        nodes = np.flatnonzero(width == w)
        rank = np.full(len(per_node), -1, dtype=np.intp)
        rank[nodes] = np.arange(len(nodes))
        rows = rank[row_node] >= 0
        every = len(nodes) == len(per_node)
        slot = idx if every else idx[rows]
        shape = (len(nodes), w)
        if len(slot) == len(nodes) * w and np.array_equal(slot.reshape(shape), np.broadcast_to(np.arange(w), shape)):
            # every node reported gpu_index 0..w-1 in order (the usual case): the columns are the arrays
            f = (floats if every else floats[:, rows]).reshape(-1, *shape)
            c = (counts if every else counts[:, rows]).reshape(-1, *shape)
        else:
            at = rank[row_node[rows]]
            f = np.full((len(GPU_FLOAT_FIELDS), *shape), np.nan)
            c = np.full((len(GPU_COUNT_FIELDS), *shape), ABSENT_COUNT, dtype=np.int64)
            f[:, at, slot] = floats[:, rows]
            c[:, at, slot] = counts[:, rows]
        inf = np.isinf(f)
        if inf.any():
            f = np.where(inf, np.nan, f)
        cols: dict[str, np.ndarray] = {"time": node_time[nodes], "node_key": keys[nodes],
                                       "gpus": np.full(len(nodes), w, dtype=np.int16)}
        cols.update(zip(GPU_FLOAT_FIELDS, f, strict=True))
        cols.update(zip(GPU_COUNT_FIELDS, c, strict=True))
        groups[w] = cols
    return ArrayRows(groups, n_rows)


def link_rack_columns(batches: Sequence[RackBatch], set_keys: Sequence[np.ndarray]) -> ArrayRows:
    """One telemetry_link_rack row per batch with ports: `set_keys[i]` holds the telemetry_port_set key of
    `batches[i]`'s port list (one key; empty for a batch without ports), as resolved by the repository.
    Element j of the arrays is the batch's j-th port, as the set lists them."""
    if len(batches) != len(set_keys):
        raise ValueError(f"{len(set_keys)} port set keys for {len(batches)} batches")
    width = np.fromiter(map(len, map(_PORT_IDS, batches)), np.intp, len(batches))
    kept = np.flatnonzero(width)
    if len(kept) < len(batches):
        batches, set_keys, width = [batches[i] for i in kept], [set_keys[i] for i in kept], width[kept]
    if not batches:
        return ArrayRows({}, 0)
    per_batch = np.fromiter(map(len, set_keys), np.intp, len(set_keys))
    if (per_batch != 1).any():
        b, k = batches[int(np.flatnonzero(per_batch != 1)[0])], set_keys[int(np.flatnonzero(per_batch != 1)[0])]
        raise ValueError(f"rack {b.rack_id}: {len(k)} port set keys for one port list")
    links = list(map(_LINKS, batches))
    starts = np.cumsum(width) - width
    times = _times64(batches)
    keys = _cat(list(set_keys), np.int32)
    counters = list(map(_COUNTERS, links))
    flat = {f: _cat_int64(list(map(itemgetter(f), counters))) for f in LINK_COUNT_FIELDS}
    flat["link_state"] = _cat(list(map(_LINK_STATE, links)), np.int16)
    groups: dict[int, dict[str, np.ndarray]] = {}
    for w in np.unique(width).tolist():
        sel = np.flatnonzero(width == w)
        cols: dict[str, np.ndarray] = {"time": times[sel], "set_key": keys[sel]}
        if len(sel) == len(batches):
            cols.update((f, v.reshape(len(sel), w)) for f, v in flat.items())
        else:
            at = starts[sel][:, None] + np.arange(w)
            cols.update((f, v[at]) for f, v in flat.items())
        groups[w] = cols
    return ArrayRows(groups, int(width.sum()))


def rack_columns(batches: Sequence[RackBatch]) -> TableColumns:
    envs = list(map(_RACK, batches))
    rows = list(batches)
    if None in envs:
        rows = [b for b, e in zip(batches, envs, strict=True) if e is not None]
        envs = [e for e in envs if e is not None]
    n = len(rows)
    # PDU values: up to three phases per rack; one value = the rack's total input, phase split unknown
    # (telemetry.proto); several = phases, their sum the total (NaN when a phase was not measured: no
    # partial totals). Done for all racks at once: each value's rack and position.
    parts = list(map(_PDU, envs))
    lengths = np.fromiter(map(len, parts), np.intp, n)
    flat = _cat(parts, np.float64)
    rack_of = np.repeat(np.arange(n), lengths)
    position = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    phases = (position < 3) & (np.minimum(lengths, 3)[rack_of] >= 2)
    pdu = np.full((n, 3), np.nan)
    pdu[rack_of[phases], position[phases]] = flat[phases]
    total = np.full(n, np.nan)
    several = np.minimum(lengths, 3) >= 2
    total[several] = np.where(np.arange(3) < lengths[several, None], pdu[several], 0.0).sum(axis=1)
    single = lengths == 1
    total[single] = flat[(np.cumsum(lengths) - lengths)[single]]
    scalars = np.array(list(map(_RACK_SCALARS, envs)), dtype=np.float64).reshape(n, len(RACK_COLUMNS[5:-1]))
    cols: dict[str, np.ndarray] = {
        "time": _times64(rows),
        "rack_id": _utf8(list(map(_RACK_ID, rows))),
        "pdu_l1_power_w": pdu[:, 0], "pdu_l2_power_w": pdu[:, 1], "pdu_l3_power_w": pdu[:, 2],
    }
    for i, f in enumerate(RACK_COLUMNS[5:-1]):
        cols[f] = scalars[:, i]
    cols["pdu_input_power_w"] = total
    return TableColumns(cols)


def link_columns(batches: Sequence[RackBatch]) -> TableColumns:
    times, racks, ports, states = [], [], [], []
    counters: dict[str, list[np.ndarray]] = {f: [] for f in LINK_COUNT_FIELDS}
    for b in batches:
        n = len(b.links.port_id)
        if not n:
            continue
        times.append(np.full(n, _time64(b)))
        racks.append(np.full(n, b.rack_id, dtype=object))
        ports.append(np.array(b.links.port_id, dtype=object))
        states.append(b.links.link_state)
        for f in counters:
            counters[f].append(b.links.counters[f])
    cols: dict[str, np.ndarray] = {
        "time": _cat(times, "datetime64[us]"),
        "rack_id": _cat(racks, object),
        "port_id": _cat(ports, object),
    }
    for f in LINK_COUNT_FIELDS:
        cols[f] = _cat(counters[f], np.int64)
    cols["link_state"] = _cat(states, np.int16)
    return TableColumns(cols)


def link_sample_columns(batches: Sequence[RackBatch], port_keys: Sequence[np.ndarray]) -> TableColumns:
    """Rows of telemetry_link_sample: `port_keys[i]` holds the entity key of each port of `batches[i]`
    (same order as its port_id), as resolved by the repository."""
    kept, keys = [], []
    for b, k in zip(batches, port_keys, strict=True):
        n = len(b.links.port_id)
        if not n:
            continue
        if len(k) != n:
            raise ValueError(f"rack {b.rack_id}: {len(k)} port keys for {n} ports")
        kept.append(b)
        keys.append(k)
    links = [b.links for b in kept]
    cols: dict[str, np.ndarray] = {
        "time": np.repeat(_times64(kept), np.array([len(k) for k in keys], dtype=np.intp)),
        "port_key": _cat(keys, np.int32),
    }
    for f in LINK_COUNT_FIELDS:
        cols[f] = _cat([lk.counters[f] for lk in links], np.int64)
    cols["link_state"] = _cat([lk.link_state for lk in links], np.int16)
    return TableColumns(cols)


def _cat_blocks(blocks: list[np.ndarray], fields: int, dtype) -> np.ndarray:
    """(fields, rows) blocks side by side: one (fields, all rows) array, each field a contiguous row."""
    if not blocks:
        return np.empty((fields, 0), dtype=dtype)
    return np.concatenate(blocks, axis=1, dtype=dtype, casting="unsafe")


def _cat_int64(parts: list[np.ndarray], axis: int = 0) -> np.ndarray:
    """Non-empty `parts` joined as int64 with the values of a casting="unsafe" cast (counters: uint64 on the wire,
    validated to fit): uint64 or int64 parts are joined as they are and a uint64 result viewed as int64 (the same
    bits, no cast per part); parts of other or mixed types are cast part by part."""
    out = np.concatenate(parts, axis=axis)
    if out.dtype == np.int64:
        return out
    if out.dtype == np.uint64:
        return out.view(np.int64)
    return np.concatenate(parts, axis=axis, dtype=np.int64, casting="unsafe")


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts, dtype=dtype, casting="unsafe") if parts else np.empty(0, dtype=dtype)
