"""TelemetryRepository.store's per-poll shortcuts (issue 13) against real PostgreSQL (a fresh database per test):
the per-rack key cache (a rack's nodes and ports are checked, not looked up key by key) and the ledger insert that
answers the positions of the new rows. Whatever a rack sends (its node or port list changed, two ticks of one
rack with different lists in one poll, no ports, no GPUs, non-ASCII ids) the views read back exactly what the
batches hold, through one repository and through a second one (another process) that learns the keys from the
tables; a poll mixing new rows, redeliveries, identical re-sends and corrected re-sends is classified item by item.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from ingest_factory import inventory, rack_batch
from test_ingest_layout import migrated, rows

from twin.core.db import open_pool
from twin.ingest.adapters.codec import decode_batch, no_links
from twin.ingest.adapters.repository import StoreItem, TelemetryRepository
from twin.ingest.domain.model import (
    GPU_COUNT_FIELDS,
    GPU_FIELDS,
    GPU_FLOAT_FIELDS,
    LINK_COUNT_FIELDS,
    GpuColumns,
    Links,
    NodeGpus,
    RackBatch,
    RackEnv,
)

pytestmark = pytest.mark.timeout(120)

T0 = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
GPU_VIEW = "SELECT time, rack_id, node_id, gpu_index, " + ", ".join(GPU_FIELDS) + " FROM telemetry_gpu"
LINK_VIEW = "SELECT time, rack_id, port_id, " + ", ".join(LINK_COUNT_FIELDS) + ", link_state FROM telemetry_link"


def gpus(nodes: dict[str, list[int]], base: float) -> GpuColumns:
    out = []
    for j, (node_id, index) in enumerate(nodes.items()):
        n = len(index)
        values = {f: base + 10 * j + m + np.arange(n, dtype=np.float64) / 8 for m, f in enumerate(GPU_FLOAT_FIELDS)}
        values.update({f: np.arange(n, dtype=np.uint64) * (m + 1) + int(base) for m, f in enumerate(GPU_COUNT_FIELDS)})
        out.append(NodeGpus(node_id, np.array(index, np.uint32), values))
    return GpuColumns.from_nodes(out)


def links(ports: list[str], base: int) -> Links:
    n = len(ports)
    counters = {f: np.arange(n, dtype=np.uint64) * (m + 1) + base for m, f in enumerate(LINK_COUNT_FIELDS)}
    return Links(tuple(ports), counters, np.arange(n, dtype=np.int64) % 3 + 1)


def batch(rack: str, s: int, nodes: dict[str, list[int]], ports: list[str]) -> RackBatch:
    env = RackEnv(np.array([1000.0 + s, 2000.0, 3000.0]), 20.0 + s, 30.0, 18.0, 26.0, 100.0)
    return RackBatch("s", rack, T0 + timedelta(seconds=s), s + 1, "test", gpus(nodes, 100.0 * s),
                     env, links(ports, 1000 * s) if ports else no_links())


def gpu_rows(batches: list[RackBatch]) -> list[tuple]:
    out = []
    for b in batches:
        for nd in b.nodes:
            for j, g in enumerate(nd.gpu_index.tolist()):
                vals = [nd.values[f][j].item() for f in GPU_FIELDS]
                out.append((b.sample_time, b.rack_id, nd.node_id, g,
                            *[None if isinstance(v, float) and math.isnan(v) else v for v in vals]))
    return sorted(out, key=lambda r: r[:4])


def link_rows(batches: list[RackBatch]) -> list[tuple]:
    return sorted((b.sample_time, b.rack_id, p, *[int(b.links.counters[f][k]) for f in LINK_COUNT_FIELDS],
                   int(b.links.link_state[k]))
                  for b in batches for k, p in enumerate(b.links.port_id))


def rack_rows(batches: list[RackBatch]) -> list[tuple]:
    return sorted((b.sample_time, b.rack_id, *b.rack.pdu_input_power_w.tolist(), b.rack.inlet_air_temp_c,
                   float(b.rack.pdu_input_power_w.sum())) for b in batches)


async def test_every_rack_change_reads_back_as_sent_through_one_and_two_repositories(fresh_database):
    await migrated(fresh_database)
    r1_nodes, r1_ports = {"r1-n0": [0, 1, 2, 3], "r1-n1": [0, 1, 2, 3]}, ["r1-p0", "r1-p1", "r1-p2"]
    polls = [
        [batch("r1", 0, r1_nodes, r1_ports), batch("r2", 0, {"r2-n0": [0, 1]}, ["r2-p0"]),
         batch("räck-é", 0, {"nœud-1": [0, 2]}, ["pört/1", "pört/2"])],
        # same lists (the cached keys), r2 gains a node, räck-é loses a port
        [batch("r1", 1, r1_nodes, r1_ports), batch("r2", 1, {"r2-n0": [0, 1], "r2-n1": [1]}, ["r2-p0"]),
         batch("räck-é", 1, {"nœud-1": [0, 2]}, ["pört/2"])],
        # two ticks of r1 in one poll with other lists, then back; a rack without ports; one without GPUs
        [batch("r1", 2, {"r1-n1": [0, 1, 2, 3], "r1-n0": [0, 1, 2, 3]}, ["r1-p2", "r1-p1", "r1-p0"]),
         batch("r1", 3, r1_nodes, r1_ports), batch("r2", 2, {"r2-n0": [0, 1]}, []),
         batch("r3", 2, {}, ["r3-p0", "r3-p1"])],
        [batch("r1", 4, r1_nodes, r1_ports), batch("r2", 4, {"r2-n0": [0, 1], "r2-n1": [1]}, ["r2-p0"]),
         batch("r3", 4, {}, ["r3-p0", "r3-p1"])],
    ]
    pool_a = await open_pool(fresh_database, min_size=1, max_size=2)
    pool_b = await open_pool(fresh_database, min_size=1, max_size=2)
    try:
        a, b = TelemetryRepository(pool_a), TelemetryRepository(pool_b)
        offset = 0
        for k, poll in enumerate(polls):
            repo = b if k == 3 else a    # the last poll through another process, keys learned from the tables
            items = [StoreItem(x, f"ce-{offset + i}", "t", 0, offset + i) for i, x in enumerate(poll)]
            offset += len(items)
            out = await repo.store(items)
            assert out.new == list(range(len(items)))
            assert out.rows["telemetry_gpu"] == sum(len(x.gpus.gpu_index) for x in poll)
            assert out.rows["telemetry_link"] == sum(len(x.links.port_id) for x in poll)
        for cache in ("node_keys", "port_keys", "port_sets"):
            learned = getattr(b, cache).keys
            assert learned.items() <= getattr(a, cache).keys.items() and learned
    finally:
        await pool_a.close()
        await pool_b.close()
    stored = [x for poll in polls for x in poll]
    assert rows(fresh_database, GPU_VIEW + " ORDER BY time, rack_id, node_id, gpu_index") == gpu_rows(stored)
    assert rows(fresh_database, LINK_VIEW + " ORDER BY time, rack_id, port_id") == link_rows(stored)
    assert rows(fresh_database, "SELECT time, rack_id, pdu_l1_power_w, pdu_l2_power_w, pdu_l3_power_w, "
                                "inlet_air_temp_c, pdu_input_power_w FROM telemetry_rack ORDER BY 1, 2") == rack_rows(stored)
    # one port set per distinct list of a rack: r1 (2 orders), r2, räck-é (2), r3
    assert rows(fresh_database, "SELECT count(*) FROM telemetry_port_set") == [(6,)]
    assert rows(fresh_database, "SELECT count(*) FROM telemetry_batches") == [(offset,)]


async def test_a_poll_of_new_redelivered_duplicate_and_conflicting_batches(fresh_database):
    await migrated(fresh_database)
    inv = inventory()
    first = [decode_batch(rack_batch(inv, r, T0, 1)) for r in range(4)]
    pool = await open_pool(fresh_database, min_size=1, max_size=2)
    try:
        repo = TelemetryRepository(pool)
        out = await repo.store([StoreItem(x, f"ce-{i}", "t", 0, i, f"d{i}") for i, x in enumerate(first[:3])])
        assert (out.new, out.redelivered, out.duplicates, out.conflicts) == ([0, 1, 2], [], [], [])
        later = [decode_batch(rack_batch(inv, r, T0 + timedelta(seconds=1), 2)) for r in range(2)]
        items = [StoreItem(later[0], "ce-n0", "t", 0, 10, "n0"),     # new
                 StoreItem(first[1], "ce-1", "t", 0, 1, "d1"),       # redelivered: same record
                 StoreItem(first[3], "ce-3", "t", 0, 13, "d3"),      # new
                 StoreItem(first[0], "ce-x0", "t", 1, 5, "d0"),      # duplicate: another record, same digest
                 StoreItem(first[2], "ce-x2", "t", 1, 6, "other"),   # conflict: another record, other digest
                 StoreItem(later[1], "ce-n1", "t", 0, 11, None)]     # new, no digest
        out = await repo.store(items)
        assert (out.new, out.redelivered, out.duplicates, out.conflicts) == ([0, 2, 5], [1], [3], [4])
        assert out.stored_digests == {1: "d1", 3: "d0", 4: "d2"}
        assert out.rows["telemetry_gpu"] == sum(len(items[i].batch.gpus.gpu_index) for i in (0, 2, 5))
        again = await repo.store(items)
        assert again.new == [] and again.redelivered == [0, 1, 2, 5] and again.rows == {}
    finally:
        await pool.close()
    ledger = rows(fresh_database, "SELECT rack_id, sequence, ce_id, source_partition, source_offset, gpu_rows, "
                                  "content_digest FROM telemetry_batches ORDER BY sample_time, rack_id")
    n = [len(x.gpus.gpu_index) for x in first + later]
    assert ledger == sorted([(x.rack_id, 1, f"ce-{i}", 0, i, n[i], f"d{i}") for i, x in enumerate(first[:3])]
                            + [(first[3].rack_id, 1, "ce-3", 0, 13, n[3], "d3")]) + [
        (later[0].rack_id, 2, "ce-n0", 0, 10, n[4], "n0"), (later[1].rack_id, 2, "ce-n1", 0, 11, n[5], None)]
    nodes = sum(len(x.gpus.node_ids) for x in first + later)
    assert rows(fresh_database, "SELECT count(*) FROM telemetry_gpu_node") == [(nodes,)]
