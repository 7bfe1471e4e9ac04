"""GPU samples stored one row per node with per-GPU arrays (issue 13, migrations 009/010), the old query
surface kept.

Against real PostgreSQL (a fresh database per test): rows already stored in the old `telemetry_gpu` table move
into `telemetry_gpu_node` + `telemetry_node_entity` and read back through the `telemetry_gpu` view as they were
(NULL floats, gaps in gpu_index, the rollup views); the view takes INSERTs; the repository's node rows read
back through the view exactly as sent (NaN → NULL, unreported slots absent, nodes of several widths); two
repositories agree on node keys; one GPU's history is served by the (node_key, time) index; copy_columns writes
array columns that PostgreSQL reads back element for element.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from test_ingest_layout import migrated, rows

from twin.core.db import copy_columns, open_pool
from twin.ingest.adapters.codec import no_links
from twin.ingest.adapters.repository import StoreItem, TelemetryRepository
from twin.ingest.domain.model import GPU_COUNT_FIELDS, GPU_FLOAT_FIELDS, GpuColumns, NodeGpus, RackBatch

pytestmark = pytest.mark.timeout(120)

# Recent, whole minute: with TimescaleDB the 30-day retention policy (002/008/010) drops older rows at once, and
# the 1-minute rollups are compared bucket by bucket.
T0 = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
FIELDS = GPU_FLOAT_FIELDS + GPU_COUNT_FIELDS
OLD_COLUMNS = "time, rack_id, node_id, gpu_index, " + ", ".join(FIELDS)


def old_row(t: datetime, rack: str, node: str, gpu: int, base: float, missing: str | None = None) -> tuple:
    floats = [None if f == missing else base + m + gpu / 8 for m, f in enumerate(GPU_FLOAT_FIELDS)]
    return (t, rack, node, gpu, *floats, gpu, 2 * gpu, 0)


async def test_migration_moves_old_gpu_rows_and_the_view_answers_the_old_columns(fresh_database, tmp_path):
    applied = await migrated(fresh_database, upto="009", tmp=tmp_path)
    assert applied and max(applied) < "009"
    old = [old_row(T0 + timedelta(seconds=s), "r1", "r1-n0", g, 50.0 + s) for s in range(3) for g in range(4)]
    old += [old_row(T0, "r1", "r1-n1", g, 70.0, missing="mem_temp_c" if g == 5 else None) for g in (0, 2, 5)]
    old.append(old_row(T0, "r2", "r2-n0", 0, 90.0, missing="power_w"))
    links = [(T0 + timedelta(seconds=t), r, f"{r}-n0/nic{p}", 10**15 + t, p, 0, 1, 1 + p % 2)
             for t in range(2) for r in ("r1", "r2") for p in range(3 if r == "r1" or t == 0 else 2)]
    with psycopg.connect(fresh_database) as conn:
        with conn.cursor() as cur:
            cols = ", ".join(["%s"] * (4 + len(FIELDS)))
            cur.executemany(f"INSERT INTO telemetry_gpu ({OLD_COLUMNS}) VALUES ({cols})", old + old[:2])  # 2 dups
            # link rows as 007/008 stored them (through the view's trigger): they move on in 011
            cur.executemany("INSERT INTO telemetry_link VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", links)
    applied = await migrated(fresh_database)
    names = [n for n in applied if n >= "009"]
    variant = "timescale" if "010_gpu_node_arrays_policies.timescale.sql" in names else "plain"   # the server's
    assert names == ["009_gpu_node_arrays.sql", f"010_gpu_node_arrays_policies.{variant}.sql",
                     "011_link_rack_arrays.sql", f"011_link_rack_arrays_policies.{variant}.sql"]
    assert rows(fresh_database, "SELECT * FROM telemetry_link ORDER BY time, rack_id, port_id") == sorted(links)
    assert rows(fresh_database, "SELECT relkind FROM pg_class WHERE relname = 'telemetry_gpu'") == [("v",)]
    back = rows(fresh_database, f"SELECT {OLD_COLUMNS} FROM telemetry_gpu ORDER BY time, rack_id, node_id, gpu_index")
    assert back == sorted(old, key=lambda r: r[:4])
    # one node row per (time, node), as wide as the highest gpu_index; the gaps of r1-n1 hold NaN / -1
    assert rows(fresh_database, "SELECT count(*) FROM telemetry_node_entity") == [(3,)]
    assert rows(fresh_database, "SELECT count(*) FROM telemetry_gpu_node") == [(5,)]
    gap = rows(fresh_database, "SELECT n.gpus, n.xid_errors, n.power_w[2] = 'NaN' FROM telemetry_gpu_node n "
                               "JOIN telemetry_node_entity e USING (node_key) WHERE e.node_id = 'r1-n1'")
    assert gap == [(6, [0, -1, 2, -1, -1, 5], True)]
    # the rollups are back with their columns
    assert rows(fresh_database, "SELECT gpu_index, samples, power_w_max FROM telemetry_gpu_1m "
                                "WHERE node_id = 'r1-n0' ORDER BY gpu_index") == [
        (g, 3, 52.0 + g / 8) for g in range(4)]
    # the per-position rollup (a continuous aggregate with TimescaleDB, a view here) agrees slot by slot, absent
    # slots of r1-n1 counting no sample
    per_slot = rows(fresh_database, "SELECT e.node_id, r.i - 1, r.samples, r.power_w_max, r.mem_temp_c_max "
                                    "FROM telemetry_gpu_node_1m r JOIN telemetry_node_entity e USING (node_key) "
                                    "WHERE r.samples > 0 ORDER BY 1, 2")
    by_gpu = rows(fresh_database, "SELECT node_id, gpu_index, samples, power_w_max, mem_temp_c_max FROM telemetry_gpu_1m "
                                  "ORDER BY 1, 2")
    assert per_slot == by_gpu and len(by_gpu) == 4 + 3 + 1
    assert rows(fresh_database, "SELECT count(*) FROM telemetry_gpu_node_1m r JOIN telemetry_node_entity e "
                                "USING (node_key) WHERE e.node_id = 'r1-n1' AND r.samples = 0") == [(3,)]
    # writers of the old table keep working through the view
    with psycopg.connect(fresh_database) as conn:
        conn.execute(f"INSERT INTO telemetry_gpu ({OLD_COLUMNS}) VALUES "
                     f"({', '.join(['%s'] * (4 + len(FIELDS)))})", old_row(T0 + timedelta(seconds=9), "r3", "r3-n0", 3, 1.0))
    with psycopg.connect(fresh_database) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="counters"):
            conn.execute(f"INSERT INTO telemetry_gpu ({OLD_COLUMNS}) VALUES "
                         f"({', '.join(['%s'] * (4 + len(FIELDS)))})", (*old_row(T0, "r3", "r3-n0", 0, 1.0)[:-3], -1, 0, 0))
    assert rows(fresh_database, "SELECT node_id, gpu_index, xid_errors FROM telemetry_gpu WHERE rack_id = 'r3'") == [
        ("r3-n0", 3, 3)]


def gpus_of(node_id: str, index: list[int], base: float) -> NodeGpus:
    n = len(index)
    values = {f: base + m + np.arange(n, dtype=np.float64) / 8 for m, f in enumerate(GPU_FLOAT_FIELDS)}
    values["sm_active"][0] = np.nan          # not measured
    values.update({f: np.arange(n, dtype=np.uint64) * (m + 1) for m, f in enumerate(GPU_COUNT_FIELDS)})
    return NodeGpus(node_id, np.array(index, np.uint32), values)


def expected(batches: list[RackBatch]) -> list[tuple]:
    out = []
    for b in batches:
        for nd in b.nodes:
            for j, g in enumerate(nd.gpu_index.tolist()):
                vals = [nd.values[f][j].item() for f in FIELDS]
                vals = [None if isinstance(v, float) and math.isnan(v) else v for v in vals]
                out.append((b.sample_time, b.rack_id, nd.node_id, g, *vals))
    return sorted(out, key=lambda r: r[:4])


async def test_repository_writes_node_rows_that_read_back_as_gpu_rows(fresh_database):
    await migrated(fresh_database)
    ticks = [[RackBatch("s", "r1", T0 + timedelta(seconds=s), s + 1, "test",
                        GpuColumns.from_nodes([gpus_of("r1-n0", [0, 1, 2, 3], 10.0 + s),
                                               gpus_of("r1-n1", [4, 0, 1], 20.0 + s)]), None, no_links()),
              RackBatch("s", "r2", T0 + timedelta(seconds=s), s + 1, "test",
                        GpuColumns.from_nodes([gpus_of("r2-n0", list(range(8)), 30.0 + s)]), None, no_links())]
             for s in range(2)]
    pool_a = await open_pool(fresh_database, min_size=1, max_size=2)
    pool_b = await open_pool(fresh_database, min_size=1, max_size=2)
    try:
        a, b = TelemetryRepository(pool_a), TelemetryRepository(pool_b)
        out_a = await a.store([StoreItem(x, f"ce-a{i}", "t", 0, i) for i, x in enumerate(ticks[0])])
        out_b = await b.store([StoreItem(x, f"ce-b{i}", "t", 0, i) for i, x in enumerate(ticks[1])])
        assert out_a.rows["telemetry_gpu"] == out_b.rows["telemetry_gpu"] == 4 + 3 + 8   # GPU readings
        assert a.node_keys.keys == b.node_keys.keys and len(a.node_keys.keys) == 3
        again = await b.store([StoreItem(x, f"ce-a{i}", "t", 0, i) for i, x in enumerate(ticks[0])])
        assert again.new == [] and again.rows == {}
    finally:
        await pool_a.close()
        await pool_b.close()
    got = rows(fresh_database, f"SELECT {OLD_COLUMNS} FROM telemetry_gpu ORDER BY time, rack_id, node_id, gpu_index")
    assert got == expected(ticks[0] + ticks[1])
    assert rows(fresh_database, "SELECT gpus, count(*) FROM telemetry_gpu_node GROUP BY 1 ORDER BY 1") == [
        (4, 2), (5, 2), (8, 2)]


async def test_history_of_one_gpu_uses_the_node_time_index(fresh_database):
    await migrated(fresh_database)
    with psycopg.connect(fresh_database) as conn:
        conn.execute("INSERT INTO telemetry_node_entity (rack_id, node_id) SELECT 'r' || (g / 4), 'r' || (g / 4) || "
                     "'-n' || (g % 4) FROM generate_series(0, 1999) g")
        f8 = ", ".join("array_fill(s::float8, ARRAY[8])" for _ in GPU_FLOAT_FIELDS)
        i8 = ", ".join("array_fill(s::bigint, ARRAY[8])" for _ in GPU_COUNT_FIELDS)
        conn.execute(f"INSERT INTO telemetry_gpu_node SELECT %s::timestamptz + s * interval '1 second', k, 8, {f8}, {i8} "
                     "FROM generate_series(1, 2000) k, generate_series(0, 29) s", (T0,))
        conn.execute("ANALYZE telemetry_gpu_node")
        conn.execute("ANALYZE telemetry_node_entity")
        query = ("SELECT time, power_w FROM telemetry_gpu WHERE node_id = 'r7-n3' AND gpu_index = 5 "
                 "AND time > %s ORDER BY time DESC")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query, (T0 + timedelta(seconds=5),)).fetchall())
        got = conn.execute(query, (T0 + timedelta(seconds=5),)).fetchall()
    assert "telemetry_gpu_node_node_time" in plan, plan
    assert "telemetry_node_entity_node" in plan, plan
    assert "Seq Scan on telemetry_gpu_node" not in plan, plan
    assert [p for _, p in got] == [float(s) for s in range(29, 5, -1)]


async def test_copy_columns_writes_array_columns(fresh_database):
    floats = np.array([[1.5, np.nan, -2.0], [0.0, 1e300, 3.25]])
    ints = np.array([[1, -1, 2**62], [0, 5, -(2**62)]], dtype=np.int64)
    pool = await open_pool(fresh_database, min_size=1, max_size=1)
    try:
        async with pool.connection() as conn:
            await conn.execute("CREATE TABLE arr (k int4, f double precision[] NOT NULL, i bigint[] NOT NULL, "
                               "s smallint[] NOT NULL, r real[] NOT NULL)")
            n = await copy_columns(conn, "arr", ["k", "f", "i", "s", "r"], ["int4", "float8[]", "bigint[]", "int2[]",
                                                                           "float4[]"],
                                   [np.array([1, 2]), floats, ints, np.array([[1, 2, 3], [4, 5, 6]]), floats[:, :1]])
            assert n == 2
            with pytest.raises(ValueError, match="int2 column has values outside"):
                await copy_columns(conn, "arr", ["s"], ["int2[]"], [np.array([[1, 40000]])])
            with pytest.raises(ValueError, match="2-D"):
                await copy_columns(conn, "arr", ["f"], ["float8[]"], [np.array([1.0, 2.0])])
    finally:
        await pool.close()
    got = rows(fresh_database, "SELECT k, f, i, s, r, array_ndims(f), array_lower(f, 1) FROM arr ORDER BY k")
    assert got[0][1][0] == 1.5 and math.isnan(got[0][1][1]) and got[0][1][2] == -2.0
    assert got[1][1] == [0.0, 1e300, 3.25]
    assert [g[2] for g in got] == ints.tolist()
    assert [g[3] for g in got] == [[1, 2, 3], [4, 5, 6]]
    assert [g[4] for g in got] == [[1.5], [0.0]]
    assert {(g[5], g[6]) for g in got} == {(1, 1)}
