"""Accepted batches → column arrays for the three telemetry tables (one entry per stored row).

Only called on batches that passed validation, so every array length is consistent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
LINK_COLUMNS: tuple[str, ...] = ("time", "rack_id", "port_id") + LINK_COUNT_FIELDS + ("link_state",)
# telemetry_link_sample (migration 007): the port's names are in telemetry_port_entity, rows carry its key.
LINK_SAMPLE_COLUMNS: tuple[str, ...] = ("time", "port_key") + LINK_COUNT_FIELDS + ("link_state",)


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
    """_time64 of every batch; a poll's batches share a few sample times, each converted once."""
    seen: dict[tuple, np.datetime64] = {}
    out = []
    for b in batches:
        key = (b.sample_time, b.sample_time.tzinfo if b.sample_time is not None else None)
        t = seen.get(key)
        if t is None:
            t = seen[key] = _time64(b)
        out.append(t)
    return np.array(out, dtype="datetime64[us]")


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


def rack_columns(batches: Sequence[RackBatch]) -> TableColumns:
    rows = [b for b in batches if b.rack is not None]
    envs = [b.rack for b in rows]
    n = len(rows)
    # PDU values: up to three phases per rack; one value = the rack's total input, phase split unknown
    # (telemetry.proto); several = phases, their sum the total (NaN when a phase was not measured: no
    # partial totals). Done for all racks at once: each value's rack and position.
    parts = [e.pdu_input_power_w for e in envs]
    lengths = np.array([len(p) for p in parts], dtype=np.intp)
    flat = _cat([np.asarray(p, dtype=np.float64) for p in parts], np.float64)
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
    scalars = np.array([tuple(getattr(e, f) for f in RACK_COLUMNS[5:-1]) for e in envs],
                       dtype=np.float64).reshape(n, len(RACK_COLUMNS[5:-1]))
    cols: dict[str, np.ndarray] = {
        "time": _times64(rows),
        "rack_id": _utf8([b.rack_id for b in rows]),
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


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts, dtype=dtype, casting="unsafe") if parts else np.empty(0, dtype=dtype)
