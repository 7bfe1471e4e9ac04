"""Generated SQL of twin.core.db, above all the TimescaleDB path (no TimescaleDB on test machines)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import psycopg
import pytest

from twin.core import db


def render(stmts: list[db.Statement]) -> list[tuple[str, tuple]]:
    return [(q.as_string(), params) for q, params in stmts]


def test_time_bucket_sql_both_flavours() -> None:
    assert db.time_bucket_sql(True, "1 minute", "time").as_string() == "time_bucket('1 minute'::interval, \"time\")"
    assert (
        db.time_bucket_sql(False, "1 hour", "s.time").as_string()
        == "date_bin('1 hour'::interval, \"s\".\"time\", timestamptz '2000-01-01')"
    )
    # widths are quoted literals, never spliced raw
    assert "''" in db.time_bucket_sql(True, "1 minute'); DROP TABLE x; --", "time").as_string()


def test_hypertable_statements_full() -> None:
    got = render(
        db.hypertable_statements(
            "telemetry.samples", time_column="time", chunk_interval="6 hours", compress_after="2 days",
            retain="14 days", segment_by=["rack_id", "gpu_id"],
        )
    )
    assert got == [
        (
            "SELECT create_hypertable(%s::regclass, %s::name, chunk_time_interval => %s::interval,"
            " if_not_exists => TRUE, migrate_data => TRUE)",
            ("telemetry.samples", "time", "6 hours"),
        ),
        (
            'ALTER TABLE "telemetry"."samples" SET (timescaledb.compress,'
            " timescaledb.compress_segmentby = '\"rack_id\", \"gpu_id\"',"
            " timescaledb.compress_orderby = '\"time\" DESC')",
            (),
        ),
        (
            "SELECT add_compression_policy(%s::regclass, compress_after => %s::interval, if_not_exists => TRUE)",
            ("telemetry.samples", "2 days"),
        ),
        (
            "SELECT add_retention_policy(%s::regclass, drop_after => %s::interval, if_not_exists => TRUE)",
            ("telemetry.samples", "14 days"),
        ),
    ]


def test_hypertable_statements_idempotent_and_optional_policies() -> None:
    # compression already enabled: no second ALTER TABLE (it fails once chunks are compressed)
    got = render(db.hypertable_statements("m", compression_enabled=True, segment_by="rack_id"))
    assert [q.split("(")[0] for q, _ in got] == [
        "SELECT create_hypertable", "SELECT add_compression_policy", "SELECT add_retention_policy",
    ]
    assert all("if_not_exists => TRUE" in q for q, _ in got)
    got = render(db.hypertable_statements("m", compress_after=None, retain=None))
    assert len(got) == 1 and got[0][0].startswith("SELECT create_hypertable")
    got = render(db.hypertable_statements("m", segment_by="rack_id, gpu_id"))
    assert "timescaledb.compress_segmentby = '\"rack_id\", \"gpu_id\"'" in got[1][0]


def test_rollup_statements_timescale() -> None:
    got = render(
        db.rollup_statements(
            True, "telemetry.power_1m", "telemetry.samples", "1 minute", ["rack_id"],
            {"power_w": "avg(power_w)", "peak_w": "MAX(power_w)", "n": "count(*)", "last_t": "last(temp_c, time)"},
        )
    )
    create, policy = got
    assert create == (
        'CREATE MATERIALIZED VIEW IF NOT EXISTS "telemetry"."power_1m" WITH (timescaledb.continuous,'
        " timescaledb.materialized_only = false) AS SELECT time_bucket('1 minute'::interval, \"time\") AS \"bucket\","
        ' "rack_id", avg("power_w") AS "power_w", max("power_w") AS "peak_w", count(*) AS "n",'
        ' last("temp_c", "time") AS "last_t" FROM "telemetry"."samples"'
        " GROUP BY time_bucket('1 minute'::interval, \"time\"), \"rack_id\" WITH NO DATA",
        (),
    )
    assert policy == (
        "SELECT add_continuous_aggregate_policy(%s::regclass, start_offset => greatest(%s::interval * 4,"
        " interval '1 hour'), end_offset => %s::interval, schedule_interval => %s::interval, if_not_exists => TRUE)",
        ("telemetry.power_1m", "1 minute", "1 minute", "1 minute"),
    )
    _, policy = render(
        db.rollup_statements(True, "v", "t", "1 hour", [], {"x": "avg(x)"}, refresh_start="3 days",
                             refresh_end="1 hour", refresh_every="30 minutes")
    )
    assert "start_offset => %s::interval," in policy[0]
    assert policy[1] == ("v", "3 days", "1 hour", "30 minutes")


def test_rollup_statements_plain_is_a_date_bin_view() -> None:
    (only,) = render(db.rollup_statements(False, "power_1h", "samples", "1 hour", ["rack_id", "gpu_id"], {"w": "avg(w)"},
                                          time_column="ts", bucket_column="hour"))
    assert only == (
        'CREATE OR REPLACE VIEW "power_1h" AS SELECT date_bin(\'1 hour\'::interval, "ts", timestamptz \'2000-01-01\')'
        ' AS "hour", "rack_id", "gpu_id", avg("w") AS "w" FROM "samples" GROUP BY'
        " date_bin('1 hour'::interval, \"ts\", timestamptz '2000-01-01'), \"rack_id\", \"gpu_id\"",
        (),
    )


@pytest.mark.parametrize("expr", ["avg(x) + 1", "avg(x)); drop table t; --", "avg(\"x\")", "x", "sum(a b)"])
def test_rollup_aggregates_reject_anything_but_func_of_columns(expr: str) -> None:
    with pytest.raises(ValueError):
        db.rollup_statements(False, "v", "t", "1 minute", [], {"x": expr})


def test_plan_migrations_variant_selection(tmp_path: Path) -> None:
    for name in ["001_a.sql", "002_b.plain.sql", "002_b.timescale.sql", "003_c.timescale.sql", "010_d.sql", "notes.txt"]:
        (tmp_path / name).write_text(f"-- {name}\n")
    plain = db.plan_migrations(tmp_path, timescale=False)
    ts = db.plan_migrations(tmp_path, timescale=True)
    assert [m.name for m in plain] == ["001_a.sql", "002_b.plain.sql", "010_d.sql"]
    assert [m.name for m in ts] == ["001_a.sql", "002_b.timescale.sql", "003_c.timescale.sql", "010_d.sql"]
    assert set(plain[1].variant_checksums) == {"002_b.plain.sql", "002_b.timescale.sql"}
    assert plain[1].stem == ts[1].stem == "002_b"


def test_describe_conninfo_hides_password() -> None:
    assert db.describe_conninfo("postgresql://u:pw@db.example:6432/twin") == "u@db.example:6432/twin"
    assert "pw" not in db.describe_conninfo("host=h password=pw dbname=d")


def test_binary_rows_layout_matches_the_copy_format() -> None:
    cols = [
        db._prepare("int4", np.array([1, 2], dtype=np.int32), 2),
        db._prepare("text", ["ab", None], 2),
        db._prepare("float8", [None, 2.5], 2),
    ]
    data = bytes(db.encode_binary_rows(cols, 0, 2))
    row1 = struct.pack(">hii", 3, 4, 1) + struct.pack(">i", 2) + b"ab" + struct.pack(">i", -1)
    row2 = struct.pack(">hii", 3, 4, 2) + struct.pack(">i", -1) + struct.pack(">id", 8, 2.5)
    assert data == row1 + row2


def _array_send(oid: int, fmt: str, values: list) -> bytes:
    """array_send()'s binary form of a one-dimensional array without NULLs (PostgreSQL arrayfuncs.c)."""
    size = struct.calcsize(">" + fmt)
    return struct.pack(">iiIii", 1, 0, oid, len(values), 1) + b"".join(struct.pack(">i" + fmt, size, v) for v in values)


def test_binary_rows_with_array_columns_match_array_send() -> None:
    # arrays of every element type next to text (padding dropped by the mask), NULLs and plain numbers,
    # in odd chunks: every row as struct packs it by hand
    floats = np.array([[1.5, np.nan, -np.inf], [0.0, 1e300, -0.0], [2.0, 3.0, 4.0]])
    big = np.array([[1, -1, 2**62], [0, 5, -(2**62)], [7, 8, 9]], dtype=np.int64)
    small = np.array([[1], [-32768], [32767]], dtype=np.int64)
    reals = np.array([[0.5, 2.0], [-1.0, 3.5], [1e30, 0.0]], dtype=np.float32)
    flags = np.array([[True, False], [False, False], [True, True]])
    texts = ["abc", None, "ü"]
    plain = [None, 2.5, 3.0]
    specs = [("float8[]", floats, 701, "d"), ("int8[]", big, 20, "q"), ("int2[]", small, 21, "h"),
             ("float4[]", reals, 700, "f"), ("bool[]", flags, 16, "?")]
    for start, stop in ((0, 3), (1, 3), (0, 1), (2, 3)):
        cols = [db._prepare(t, a, 3) for t, a, _, _ in specs]
        cols += [db._prepare("text", texts, 3), db._prepare("float8", plain, 3)]
        data = bytes(db.encode_binary_rows([c.slice(start, stop) for c in cols], 0, stop - start))
        want = b""
        for i in range(start, stop):
            row = struct.pack(">h", len(cols))
            for _, a, oid, fmt in specs:
                body = _array_send(oid, fmt, a[i].tolist())
                row += struct.pack(">i", len(body)) + body
            t = texts[i]
            row += struct.pack(">i", -1) if t is None else struct.pack(">i", len(t.encode())) + t.encode()
            row += struct.pack(">i", -1) if plain[i] is None else struct.pack(">id", 8, plain[i])
            want += row
        assert data == want, (start, stop)
    only = db._prepare("int4[]", np.array([[3, 4]]), 1)   # no mask: the rows as laid out
    body = _array_send(23, "i", [3, 4])
    assert bytes(db.encode_binary_rows([only], 0, 1)) == struct.pack(">hi", 1, len(body)) + body


def test_timestamps_encode_as_microseconds_since_2000() -> None:
    col = db._prepare("timestamptz", np.array(["2000-01-01T00:00:01", "1999-12-31T23:59:59.999999"], dtype="datetime64[us]"), 2)
    assert col.data.astype(np.int64).tolist() == [1_000_000, -1]


# ------------------------------------------------------- TimescaleDB detection (issue 8 item 7)
# A scripted connection: each query's text is answered by `respond(text)` (a row, or an exception to
# raise), so the decisions can be checked for servers this machine does not run.


class _Cursor:
    def __init__(self, row) -> None:
        self.row = row

    async def fetchone(self):
        return self.row


class _Tx:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> bool:
        return False


class ScriptedConn:
    def __init__(self, respond) -> None:
        self.respond = respond
        self.executed: list[str] = []

    def transaction(self) -> _Tx:
        return _Tx()

    async def execute(self, query, params=None):
        text = query if isinstance(query, str) else query.as_string()
        self.executed.append(text)
        answer = self.respond(text)
        if isinstance(answer, BaseException):
            raise answer
        return _Cursor(answer)


def server(*, installed: bool, offered: bool, preload: str | BaseException, installed_after_lock: bool | None = None):
    state = {"locked": False}

    def respond(text: str):
        if "pg_available_extensions" in text:
            return (installed, offered)
        if "current_setting('shared_preload_libraries')" in text:
            return preload if isinstance(preload, BaseException) else (preload,)
        if "pg_settings" in text:
            return (False,)
        if "pg_advisory_xact_lock" in text:
            state["locked"] = True
            return (None,)
        if "FROM pg_extension" in text:
            return (installed_after_lock if state["locked"] and installed_after_lock is not None else installed,)
        if text.startswith("CREATE EXTENSION"):
            return None
        if "timescaledb_information.hypertables" in text:
            return (False,)
        return None

    return ScriptedConn(respond)


def test_preload_setting_parsing() -> None:
    assert db.preloaded_libraries(' pg_stat_statements, "$libdir/timescaledb.so" ,auto_explain') == [
        "pg_stat_statements", "timescaledb", "auto_explain"]
    assert db.timescale_preloaded("timescaledb") and db.timescale_preloaded("pg_cron,timescaledb-2.21.3")
    assert not db.timescale_preloaded("") and not db.timescale_preloaded("timescaledb_toolkit")


async def test_offered_but_not_preloaded_is_absent_without_create_extension(caplog) -> None:
    conn = server(installed=False, offered=True, preload="pg_stat_statements")
    with caplog.at_level("INFO", logger="twin.core.db"):
        assert await db.timescale_available(conn) is False
    assert not any("CREATE EXTENSION" in q for q in conn.executed)  # it would end the connection (FATAL)
    [line] = [r.getMessage() for r in caplog.records if "not preloaded" in r.getMessage()]
    assert "shared_preload_libraries = 'pg_stat_statements'" in line and "restart" in line


async def test_installed_but_not_preloaded_is_absent() -> None:
    conn = server(installed=True, offered=True, preload="")
    assert await db.timescale_available(conn) is False


async def test_unreadable_preload_setting_falls_back_to_registered_settings() -> None:
    conn = server(installed=False, offered=True, preload=psycopg.errors.InsufficientPrivilege("must be superuser"))
    assert await db.timescale_available(conn) is False
    assert any("pg_settings" in q for q in conn.executed)
    assert not any("CREATE EXTENSION" in q for q in conn.executed)


async def test_preloaded_extension_is_created_under_a_lock(caplog) -> None:
    conn = server(installed=False, offered=True, preload="timescaledb", installed_after_lock=False)
    # CREATE EXTENSION succeeds; the re-check afterwards finds it
    conn.respond = _after_create(conn.respond)
    assert await db.timescale_available(conn) is True
    lock = next(i for i, q in enumerate(conn.executed) if "pg_advisory_xact_lock" in q)
    create = next(i for i, q in enumerate(conn.executed) if q.startswith("CREATE EXTENSION"))
    assert lock < create


def _after_create(respond):
    created = {"done": False}

    def wrapped(text: str):
        if text.startswith("CREATE EXTENSION"):
            created["done"] = True
            return None
        if created["done"] and "FROM pg_extension" in text and "pg_available_extensions" not in text:
            return (True,)
        return respond(text)

    return wrapped


async def test_concurrent_first_starter_finds_it_created_and_warns_nothing(caplog) -> None:
    """The other starter created it while we waited for the lock: no CREATE, no 'cannot be created' warning."""
    conn = server(installed=False, offered=True, preload="timescaledb", installed_after_lock=True)
    with caplog.at_level("INFO", logger="twin.core.db"):
        assert await db.timescale_available(conn) is True
    assert not any(q.startswith("CREATE EXTENSION") for q in conn.executed)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


async def test_rollup_on_a_plain_table_is_a_view_even_with_timescaledb() -> None:
    conn = server(installed=True, offered=True, preload="timescaledb")
    assert await db.timescale_available(conn) is True
    assert await db.ensure_rollup(conn, "p_1m", "p", "1 minute", [], {"v": "avg(v)"}) is False
    ddl = [q for q in conn.executed if q.startswith("CREATE")]
    assert len(ddl) == 1 and ddl[0].startswith('CREATE OR REPLACE VIEW "p_1m"') and "date_bin" in ddl[0]
    assert not any("add_continuous_aggregate_policy" in q for q in conn.executed)
