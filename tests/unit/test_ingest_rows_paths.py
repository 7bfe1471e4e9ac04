"""The row builders' per-poll shortcuts (issue 13): per-batch attributes read in C, each distinct sample time
converted once, counters joined as they are and viewed as int64. Checked field by field against plain per-batch
references on odd inputs: sample times in other zones (an equal instant converts apart, as _time64 does), PDU
values as lists or arrays of 0-4 phases, batches without rack or ports, counters of other or mixed integer
types, as lists, and over 2**63 (the bits of an unsafe cast), key counts that do not fit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from twin.ingest.adapters.codec import no_links
from twin.ingest.domain.model import (
    GPU_COUNT_FIELDS,
    GPU_FLOAT_FIELDS,
    LINK_COUNT_FIELDS,
    GpuColumns,
    Links,
    NodeGpus,
    RackBatch,
    RackEnv,
)
from twin.ingest.domain.rows import _times64, gpu_node_columns, link_rack_columns, rack_columns

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PLUS5 = timezone(timedelta(hours=5))
TIMES = [T0, T0.astimezone(PLUS5), T0 + timedelta(seconds=1), datetime(2026, 1, 5, 12, 0, tzinfo=UTC)]


def ref_time(t: datetime) -> np.datetime64:
    return np.datetime64(t.replace(tzinfo=None), "us")


def batch(rack: str, t: datetime, *, env: RackEnv | None = None, links: Links | None = None,
          gpus: GpuColumns | None = None) -> RackBatch:
    return RackBatch("s", rack, t, 1, "test", gpus or GpuColumns.empty(), env, links or no_links())


def test_sample_times_convert_like_time64_whatever_their_zone():
    batches = [batch(f"r{i}", TIMES[i % len(TIMES)]) for i in range(11)]
    got = _times64(batches)
    assert got.dtype == np.dtype("datetime64[us]")
    assert got.tolist() == [ref_time(b.sample_time).item() for b in batches]
    assert got[1] != got[0]    # the same instant in +05:00 keeps its wall time, as _time64 gives it
    with pytest.raises(AssertionError):
        _times64([batch("r", T0), RackBatch("s", "r", None, 1, "t", GpuColumns.empty(), None, no_links())])


def ref_rack(b: RackBatch) -> list[float]:
    p = [float(x) for x in b.rack.pdu_input_power_w]
    if len(p) == 1:
        phases, total = [np.nan] * 3, p[0]
    elif len(p) >= 2:
        phases = (p + [np.nan])[:3] if len(p) == 2 else p[:3]
        total = sum(p[:3])
    else:
        phases, total = [np.nan] * 3, np.nan
    e = b.rack
    return [*phases, e.inlet_air_temp_c, e.outlet_air_temp_c, e.coolant_supply_temp_c, e.coolant_return_temp_c,
            e.coolant_flow_lpm, total]


def test_rack_rows_match_a_per_batch_reference():
    nan = float("nan")
    pdus = [[], [30_000.0], np.array([10.0, 20.0]), (1.0, 2.0, 3.0), [1.0, nan, 3.0], np.array([1.0, 2.0, 3.0, 4.0]),
            np.array([5], dtype=np.int64)]
    batches = []
    for i, p in enumerate(pdus):
        env = RackEnv(p, 20.0 + i, 30.0 + i, 25.0, 35.0, float(i))
        batches.append(batch(f"r{i}", TIMES[i % len(TIMES)], env=env))
        if i % 3 == 0:
            batches.append(batch(f"none{i}", T0))   # no rack samples: no row
    cols = rack_columns(batches).columns
    kept = [b for b in batches if b.rack is not None]
    assert cols["rack_id"].tolist() == [b.rack_id.encode() for b in kept]
    assert cols["time"].tolist() == [ref_time(b.sample_time).item() for b in kept]
    names = list(cols)[2:]
    got = np.stack([cols[n] for n in names], axis=1)
    assert np.array_equal(got, np.array([ref_rack(b) for b in kept]), equal_nan=True), names
    assert all(cols[n].dtype == np.float64 for n in names)
    only_none = rack_columns([batch("x", T0)])
    assert len(only_none) == 0 and only_none.columns["pdu_l1_power_w"].dtype == np.float64


def links_of(n: int, base: int, kind: str) -> Links:
    if kind == "uint64":
        counters = {f: np.arange(n, dtype=np.uint64) + np.uint64(base + m) for m, f in enumerate(LINK_COUNT_FIELDS)}
    elif kind == "huge":   # past int64: stored with the bits an unsafe cast gives
        counters = {f: np.full(n, 2**64 - 1 - m, dtype=np.uint64) for m, f in enumerate(LINK_COUNT_FIELDS)}
    elif kind == "int64":
        counters = {f: np.arange(n, dtype=np.int64) + base * 3 + m for m, f in enumerate(LINK_COUNT_FIELDS)}
    elif kind == "uint32":
        counters = {f: np.arange(n, dtype=np.uint32) + base + m for m, f in enumerate(LINK_COUNT_FIELDS)}
    else:   # plain lists, as a feed adapter might hand them
        counters = {f: [base + m + j for j in range(n)] for m, f in enumerate(LINK_COUNT_FIELDS)}
    state = [1 + (base + j) % 3 for j in range(n)] if kind == "list" else np.full(n, 1 + base % 3, np.int64)
    return Links(tuple(f"p{j}" for j in range(n)), counters, state)


def ref_link_groups(batches: list[RackBatch], keys: list[np.ndarray]) -> dict[int, dict[str, list]]:
    out: dict[int, dict[str, list]] = {}
    for b, k in zip(batches, keys, strict=True):
        n = len(b.links.port_id)
        if not n:
            continue
        g = out.setdefault(n, {"time": [], "set_key": []} | {f: [] for f in (*LINK_COUNT_FIELDS, "link_state")})
        g["time"].append(ref_time(b.sample_time).item())
        g["set_key"].append(int(k[0]))
        for f in LINK_COUNT_FIELDS:
            g[f].append(np.asarray(b.links.counters[f]).astype(np.int64, casting="unsafe").tolist())
        g["link_state"].append(np.asarray(b.links.link_state).astype(np.int16).tolist())
    return out


@pytest.mark.parametrize("kinds", [("uint64",), ("int64",), ("uint32",), ("list",), ("huge",),
                                   ("uint64", "int64"), ("uint64", "uint32", "list", "huge")])
def test_link_rows_match_a_per_batch_reference(kinds):
    batches, keys = [], []
    for i in range(9):
        ports = (0, 4, 2, 4, 3)[i % 5]
        t = TIMES[i % len(TIMES)]
        batches.append(batch(f"r{i}", t, links=links_of(ports, 100 * i, kinds[i % len(kinds)]) if ports else None))
        keys.append(np.array([40 + i], np.int64) if ports else np.empty(0, np.int32))
    out = link_rack_columns(batches, keys)
    want = ref_link_groups(batches, keys)
    assert sorted(out.groups) == sorted(want) and out.readings == sum(len(b.links.port_id) for b in batches)
    for w, group in out.groups.items():
        assert group["time"].tolist() == want[w]["time"]
        assert group["set_key"].tolist() == want[w]["set_key"] and group["set_key"].dtype == np.int32
        for f in (*LINK_COUNT_FIELDS, "link_state"):
            assert group[f].tolist() == want[w][f], (w, f)
            assert group[f].dtype == (np.int16 if f == "link_state" else np.int64)
    assert link_rack_columns([batches[0]], [keys[0]]).groups == {}


def test_link_and_node_key_counts_are_checked():
    with_ports = batch("r1", T0, links=links_of(2, 0, "uint64"))
    with pytest.raises(ValueError, match="rack r1: 2 port set keys for one port list"):
        link_rack_columns([batch("r0", T0), with_ports], [np.empty(0), np.array([1, 2])])
    with pytest.raises(ValueError, match="port set keys for 2 batches"):
        link_rack_columns([batch("r0", T0), with_ports], [np.array([1])])
    values = {f: np.zeros(2) for f in GPU_FLOAT_FIELDS} | {f: np.zeros(2, np.uint64) for f in GPU_COUNT_FIELDS}
    gpus = GpuColumns.from_nodes([NodeGpus("n0", np.array([0, 1], np.uint32), values),
                                  NodeGpus("n1", np.array([0, 1], np.uint32), values)])
    b = batch("r2", T0, gpus=gpus)
    with pytest.raises(ValueError, match="rack r2: 1 node keys for 2 nodes"):
        gpu_node_columns([batch("r0", T0), b], [np.empty(0), np.array([1])])
    with pytest.raises(ValueError, match="node key arrays for 1 batches"):
        gpu_node_columns([b], [])


def test_node_counters_over_int64_keep_the_bits_of_an_unsafe_cast():
    values = {f: np.arange(2, dtype=np.float64) for f in GPU_FLOAT_FIELDS}
    values |= {f: np.array([2**64 - 1, 2**63], dtype=np.uint64) for f in GPU_COUNT_FIELDS}
    gpus = GpuColumns.from_nodes([NodeGpus("n0", np.array([0, 1], np.uint32), values)])
    out = gpu_node_columns([batch("r", T0.astimezone(PLUS5), gpus=gpus)], [np.array([5], np.int32)])
    row = out.groups[2]
    assert row["xid_errors"].tolist() == [[-1, -(2**63)]] and row["xid_errors"].dtype == np.int64
    assert row["time"].tolist() == [ref_time(T0.astimezone(PLUS5)).item()]
