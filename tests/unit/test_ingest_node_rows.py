"""Rows of telemetry_gpu_node (issue 13, migration 009): one row per node, per-GPU arrays, grouped by width.

Element k of a node's arrays is its gpu_index k; slots the node did not report hold NaN / -1; ±inf (never past
validation) is stored as NaN; the node keys given by the repository are carried through.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from twin.ingest.adapters.codec import no_links
from twin.ingest.domain.model import (
    GPU_COUNT_FIELDS,
    GPU_FIELDS,
    GPU_FLOAT_FIELDS,
    GpuColumns,
    NodeGpus,
    RackBatch,
)
from twin.ingest.domain.rows import ABSENT_COUNT, gpu_node_columns

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def node(node_id: str, index: list[int], base: float) -> NodeGpus:
    n = len(index)
    values = {f: (base + 10 * m + np.arange(n, dtype=np.float64)) for m, f in enumerate(GPU_FLOAT_FIELDS)}
    values.update({f: np.arange(n, dtype=np.uint64) + int(base) + m for m, f in enumerate(GPU_COUNT_FIELDS)})
    return NodeGpus(node_id, np.array(index, np.uint32), values)


def batch(rack: str, nodes: list[NodeGpus], t: datetime = T0) -> RackBatch:
    return RackBatch("s", rack, t, 1, "test", GpuColumns.from_nodes(nodes), None, no_links())


def test_nodes_become_rows_of_their_width_with_absent_slots_marked():
    a = node("a", [0, 1, 2, 3], 100.0)
    gap = node("gap", [3, 0], 200.0)              # out of order, slots 1 and 2 not reported
    wide = node("wide", list(range(8)), 300.0)
    b1, b2 = batch("r1", [a, gap]), batch("r2", [wide], T0 + timedelta(seconds=1))
    out = gpu_node_columns([b1, b2], [np.array([11, 12], np.int32), np.array([13], np.int32)])
    assert out.readings == 4 + 2 + 8
    assert sorted(out.groups) == [4, 8]
    four, eight = out.groups[4], out.groups[8]
    assert four["node_key"].tolist() == [11, 12] and eight["node_key"].tolist() == [13]
    assert four["gpus"].tolist() == [4, 4] and eight["gpus"].tolist() == [8]
    assert four["time"].tolist() == [np.datetime64("2026-01-05T12:00:00", "us")] * 2
    assert eight["time"][0] == np.datetime64("2026-01-05T12:00:01", "us")
    for f in GPU_FIELDS:
        assert four[f].shape == (2, 4)
        np.testing.assert_array_equal(four[f][0], a.values[f])
        np.testing.assert_array_equal(eight[f][0], wide.values[f])
    # the gap node: gpu_index 3 got its first value, 0 its second; slots 1 and 2 absent
    p = four["power_w"][1]
    assert p[3] == gap.values["power_w"][0] and p[0] == gap.values["power_w"][1] and np.isnan(p[1:3]).all()
    assert four["xid_errors"][1].tolist() == [int(gap.values["xid_errors"][1]), ABSENT_COUNT, ABSENT_COUNT,
                                              int(gap.values["xid_errors"][0])]


def test_nan_stays_nan_and_inf_becomes_nan():
    n = node("n", [0, 1], 1.0)
    n.values["gpu_temp_c"][:] = [np.nan, np.inf]
    out = gpu_node_columns([batch("r", [n])], [np.array([1], np.int32)])
    assert np.isnan(out.groups[2]["gpu_temp_c"]).all()
    assert out.groups[2]["power_w"].tolist() == [n.values["power_w"].tolist()]


def test_no_gpus_no_rows_and_key_count_is_checked():
    empty = batch("r", [])
    assert gpu_node_columns([empty], [np.empty(0, np.int32)]).groups == {}
    with pytest.raises(ValueError, match="node keys"):
        gpu_node_columns([batch("r", [node("n", [0], 1.0)])], [np.array([1, 2], np.int32)])


def links_batch(rack: str, ports: int, base: int) -> RackBatch:
    from twin.ingest.domain.model import LINK_COUNT_FIELDS, Links

    counters = {f: np.arange(ports, dtype=np.uint64) + base + 100 * m for m, f in enumerate(LINK_COUNT_FIELDS)}
    links = Links(tuple(f"{rack}/p{j}" for j in range(ports)), counters, np.full(ports, 1 + base % 3, np.int64))
    return RackBatch("s", rack, T0, 1, "test", GpuColumns.empty(), None, links)


def test_link_rows_are_one_per_rack_grouped_by_port_count():
    from twin.ingest.domain.rows import link_rack_columns

    b = [links_batch("r1", 4, 1000), links_batch("r2", 2, 2000), batch("r3", []), links_batch("r4", 4, 4000)]
    out = link_rack_columns(b, [np.array([7], np.int32), np.array([8], np.int32), np.empty(0, np.int32),
                                np.array([9], np.int32)])
    assert out.readings == 10 and sorted(out.groups) == [2, 4]
    four, two = out.groups[4], out.groups[2]
    assert four["set_key"].tolist() == [7, 9] and two["set_key"].tolist() == [8]
    assert four["tx_bytes"].tolist() == [[1000, 1001, 1002, 1003], [4000, 4001, 4002, 4003]]
    assert four["rx_errors"][1].tolist() == [4300, 4301, 4302, 4303]
    assert two["link_state"].tolist() == [[1 + 2000 % 3] * 2] and two["link_state"].dtype == np.int16
    with pytest.raises(ValueError, match="port set keys"):
        link_rack_columns(b[:1], [np.array([1, 2], np.int32)])
