"""Ingest's storage layout (issue 13): link samples keyed by integer port keys, stored one row per rack with
per-port arrays (migration 011), the old query surface kept.

Against real PostgreSQL (a fresh database per test): migrations 007 + 011 move rows already stored in the
old `telemetry_link` table into `telemetry_link_rack` + `telemetry_port_set(_member)` +
`telemetry_port_entity`; the view `telemetry_link` answers the old columns (and takes INSERTs); the
repository writes link rows that read back through the view exactly as sent; two repositories (two ingest
processes) agree on keys; history by (port, time) is served by the indexes from port id to (set_key, time).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from ingest_factory import inventory, rack_batch

from twin.core.db import apply_migrations, open_pool
from twin.ingest.adapters.codec import decode_batch, no_links
from twin.ingest.adapters.repository import (
    GPU_TYPES,
    MIGRATIONS_DIR,
    RACK_TYPES,
    StoreItem,
    TelemetryRepository,
    copy_table,
)
from twin.ingest.domain.model import (
    GPU_COUNT_FIELDS,
    GPU_FIELDS,
    GpuColumns,
    Links,
    NodeGpus,
    RackBatch,
    RackEnv,
)
from twin.ingest.domain.rows import gpu_columns, rack_columns

pytestmark = pytest.mark.timeout(120)

# Recent, whole minute: with TimescaleDB the 30-day retention policy (002/008/010) drops older rows at once, and
# the 1-minute rollups are compared bucket by bucket.
T0 = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)


def rows(url: str, query: str, params=()):
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


async def migrated(url: str, upto: str | None = None, tmp: Path | None = None):
    """Apply ingest's migrations (only those named < `upto` when given, from a copy in `tmp`)."""
    folder = MIGRATIONS_DIR
    if upto is not None:
        assert tmp is not None
        folder = tmp / "migrations"
        folder.mkdir()
        for f in MIGRATIONS_DIR.glob("*.sql"):
            if f.name < upto:
                shutil.copy(f, folder / f.name)
    pool = await open_pool(url, min_size=1, max_size=2)
    try:
        return await apply_migrations(pool, "ingest", folder)
    finally:
        await pool.close()


async def test_migration_moves_old_link_rows_and_the_view_answers_the_old_columns(fresh_database, tmp_path):
    applied = await migrated(fresh_database, upto="007", tmp=tmp_path)
    assert applied and all(name < "007" for name in applied)
    old = [(T0 + timedelta(seconds=s), "r1", f"r1-n0{p}/nic0", 10**12 + s, 5, 0, p, 1) for s in range(3) for p in range(2)]
    old.append((T0, "r2", "leaf-1/7", 1, 2, 3, 4, 3))
    with psycopg.connect(fresh_database) as conn:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO telemetry_link VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", old)
    applied = await migrated(fresh_database)
    assert [n for n in applied if n.startswith("007")] == ["007_link_entity_keys.sql"]
    assert rows(fresh_database, "SELECT relkind FROM pg_class WHERE relname = 'telemetry_link'") == [("v",)]
    back = rows(fresh_database, "SELECT time, rack_id, port_id, tx_bytes, rx_bytes, tx_errors, rx_errors, link_state "
                                "FROM telemetry_link ORDER BY time, rack_id, port_id")
    assert back == sorted(old)
    # one entity per (rack, port); one row per (rack, time) holding its ports' samples, one port set per rack
    assert rows(fresh_database, "SELECT count(*) FROM telemetry_port_entity") == [(3,)]
    assert rows(fresh_database, "SELECT count(*), count(DISTINCT set_key), sum(cardinality(tx_bytes)) "
                                "FROM telemetry_link_rack") == [(4, 2, 7)]
    assert rows(fresh_database, "SELECT count(*) FROM telemetry_port_set_member") == [(3,)]
    # writers of the old table keep working through the view (a new port gets a key, a known one keeps it)
    with psycopg.connect(fresh_database) as conn:
        conn.execute("INSERT INTO telemetry_link (time, rack_id, port_id, tx_bytes, rx_bytes, tx_errors, rx_errors,"
                     " link_state) VALUES (%s, 'r1', 'r1-n00/nic0', 9, 9, 9, 9, 2), (%s, 'r3', 'r3-n00/nic1', 1, 1, 1, 1, 1)",
                     (T0 + timedelta(seconds=9), T0 + timedelta(seconds=9)))
    assert rows(fresh_database, "SELECT count(*) FROM telemetry_port_entity") == [(4,)]
    assert rows(fresh_database, "SELECT tx_bytes, link_state FROM telemetry_link WHERE port_id = 'r1-n00/nic0' "
                                "ORDER BY time DESC LIMIT 1") == [(9, 2)]


async def test_repository_writes_link_rows_by_port_key_and_processes_agree_on_keys(fresh_database):
    await migrated(fresh_database)
    inv = inventory()
    msgs = [rack_batch(inv, r, T0 + timedelta(seconds=s), s + 1) for s in range(2) for r in range(3)]
    batches = [decode_batch(m) for m in msgs]
    items = [StoreItem(b, f"ce-{i}", "t", 0, i) for i, b in enumerate(batches)]
    pool_a = await open_pool(fresh_database, min_size=1, max_size=2)
    pool_b = await open_pool(fresh_database, min_size=1, max_size=2)
    try:
        a, b = TelemetryRepository(pool_a), TelemetryRepository(pool_b)
        out_a = await a.store(items[:3])     # first tick through one process
        out_b = await b.store(items[3:])     # second tick through another: same ports, keys learned from the table
        assert len(out_a.new) == len(out_b.new) == 3
        assert out_a.rows["telemetry_link"] == out_b.rows["telemetry_link"] == 3 * 4
        assert a.port_keys.keys == b.port_keys.keys and len(a.port_keys.keys) == 12
        assert a.port_sets.keys == b.port_sets.keys and len(a.port_sets.keys) == 3   # one port list per rack
        again = await b.store(items[:3])    # a redelivery writes nothing
        assert again.new == [] and again.rows == {}
    finally:
        await pool_a.close()
        await pool_b.close()
    want = sorted((T0 + timedelta(seconds=s), m.rack_id, p, tx, rx, te, re_, st)
                  for s, m in ((m.sample_time.seconds - int(T0.timestamp()), m) for m in msgs)
                  for p, tx, rx, te, re_, st in zip(m.links.port_id, m.links.tx_bytes, m.links.rx_bytes,
                                                     m.links.tx_errors, m.links.rx_errors, m.links.link_state,
                                                     strict=True))
    got = rows(fresh_database, "SELECT time, rack_id, port_id, tx_bytes, rx_bytes, tx_errors, rx_errors, link_state "
                               "FROM telemetry_link ORDER BY time, rack_id, port_id")
    assert got == want
    assert rows(fresh_database, "SELECT count(*) FROM telemetry_port_entity") == [(12,)]


async def test_history_of_one_port_uses_the_set_time_index(fresh_database):
    await migrated(fresh_database)
    with psycopg.connect(fresh_database) as conn:
        conn.execute("INSERT INTO telemetry_port_entity (rack_id, port_id) SELECT 'r' || (g / 8), 'r' || (g / 8) || "
                     "'-n0/nic' || (g % 8) FROM generate_series(0, 15999) g")
        conn.execute("INSERT INTO telemetry_port_set (rack_id, port_keys, port_keys_md5) SELECT rack_id, k, "
                     "md5(k::text)::uuid FROM (SELECT rack_id, array_agg(port_key ORDER BY port_key) k "
                     "FROM telemetry_port_entity GROUP BY rack_id) s")
        conn.execute("INSERT INTO telemetry_port_set_member SELECT p.set_key, u.pos, u.port_key FROM telemetry_port_set p, "
                     "unnest(p.port_keys) WITH ORDINALITY AS u(port_key, pos)")
        c8 = "array_fill(s::bigint, ARRAY[8])"
        conn.execute(f"INSERT INTO telemetry_link_rack SELECT %s::timestamptz + s * interval '1 second', set_key, "
                     f"{c8}, {c8}, {c8}, {c8}, array_fill(1::smallint, ARRAY[8]) "
                     "FROM telemetry_port_set, generate_series(0, 59) s", (T0,))
        for table in ("telemetry_link_rack", "telemetry_port_entity", "telemetry_port_set_member"):
            conn.execute(f"ANALYZE {table}")
        query = "SELECT time, tx_bytes FROM telemetry_link WHERE port_id = 'r7-n0/nic3' AND time > %s ORDER BY time DESC"
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query, (T0 + timedelta(seconds=5),)).fetchall())
        got = conn.execute(query, (T0 + timedelta(seconds=5),)).fetchall()
    assert "telemetry_link_rack_set_time" in plan, plan
    assert "telemetry_port_set_member_port" in plan, plan
    assert "telemetry_port_entity_port" in plan, plan
    assert "Seq Scan on telemetry_link_rack" not in plan, plan
    assert [tx for _, tx in got] == list(range(59, 5, -1))


async def test_a_rack_of_many_ports_and_a_changed_port_list(fresh_database):
    """A port list too long for a B-tree entry (2,000 switch ports) is keyed by its digest; a rack whose list
    changes gets a second set, and both ticks read back through the view."""
    await migrated(fresh_database)

    def links_batch(ports: int, s: int) -> RackBatch:
        counters = {f: np.arange(ports, dtype=np.uint64) + s for f in ("tx_bytes", "rx_bytes", "tx_errors", "rx_errors")}
        links = Links(tuple(f"leaf-{j // 64}/{j % 64}" for j in range(ports)), counters, np.full(ports, 1, np.int64))
        return RackBatch("s", "net1", T0 + timedelta(seconds=s), s + 1, "test", GpuColumns.empty(), None, links)

    pool = await open_pool(fresh_database, min_size=1, max_size=2)
    try:
        repo = TelemetryRepository(pool)
        out = await repo.store([StoreItem(links_batch(2000, 0), "ce-0", "t", 0, 0)])
        out2 = await repo.store([StoreItem(links_batch(1500, 1), "ce-1", "t", 0, 1)])   # fewer ports now
        assert out.rows["telemetry_link"] == 2000 and out2.rows["telemetry_link"] == 1500
    finally:
        await pool.close()
    assert rows(fresh_database, "SELECT count(*), sum(cardinality(port_keys)) FROM telemetry_port_set") == [(2, 3500)]
    got = rows(fresh_database, "SELECT time, count(*), min(tx_bytes), max(tx_bytes) FROM telemetry_link "
                               "GROUP BY time ORDER BY time")
    assert got == [(T0, 2000, 0, 1999), (T0 + timedelta(seconds=1), 1500, 1, 1500)]
    assert rows(fresh_database, "SELECT tx_bytes FROM telemetry_link WHERE port_id = 'leaf-20/10' ORDER BY time") == [
        (20 * 64 + 10,), (20 * 64 + 10 + 1,)]


async def test_gpu_and_rack_rows_keep_their_text_ids(fresh_database):
    """The id columns go to COPY as UTF-8 bytes: ids of one width (the fast path), of several widths and
    non-ASCII ones must all read back as sent."""
    await migrated(fresh_database)
    values = {f: np.arange(2, dtype=np.uint64 if f in GPU_COUNT_FIELDS else np.float64) for f in GPU_FIELDS}
    env = RackEnv(np.array([1.0, 2.0, 3.0]), 20.0, 30.0, 25.0, 35.0, 100.0)

    def batch(rack_id: str, node_ids: list[str]) -> RackBatch:
        nodes = GpuColumns.from_nodes([NodeGpus(n, np.array([0, 1], np.uint32), values) for n in node_ids])
        return RackBatch("s", rack_id, T0, 1, "test", nodes, env, no_links())

    sets = [[batch("r1", ["r1-n0", "r1-n1"]), batch("r2", ["r2-n0"])],
            [batch("räck-é", ["nœud-1", "n2"]), batch("r3", ["r3-node-long"])]]
    pool = await open_pool(fresh_database, min_size=1, max_size=1)
    try:
        for batches in sets:
            async with pool.connection() as conn, conn.transaction():
                await copy_table(conn, "telemetry_gpu", gpu_columns(batches), GPU_TYPES)
                await copy_table(conn, "telemetry_rack", rack_columns(batches), RACK_TYPES)
    finally:
        await pool.close()
    got = rows(fresh_database, "SELECT rack_id, node_id, gpu_index, power_w FROM telemetry_gpu ORDER BY 1, 2, 3")
    want = [(r, n, g, float(g)) for r, ns in (("r1", ["r1-n0", "r1-n1"]), ("r2", ["r2-n0"]),
                                              ("räck-é", ["nœud-1", "n2"]), ("r3", ["r3-node-long"]))
            for n in ns for g in (0, 1)]
    assert got == sorted(want)
    assert rows(fresh_database, "SELECT rack_id, pdu_input_power_w FROM telemetry_rack ORDER BY 1") == [
        ("r1", 6.0), ("r2", 6.0), ("r3", 6.0), ("räck-é", 6.0)]
