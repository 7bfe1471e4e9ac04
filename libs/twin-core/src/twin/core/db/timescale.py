"""TimescaleDB: detection (THE one place that decides hypertables vs plain tables), `time_bucket_sql`,
hypertables with compression/retention policies, and rollups (continuous aggregates or plain views).

The `*_statements` functions are pure (unit-testable without TimescaleDB); the `ensure_*` coroutines run them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, TypeAlias
from weakref import WeakKeyDictionary

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from twin.core.db.pool import ident

log = logging.getLogger("twin.core.db")

DEFAULT_ORIGIN = "2000-01-01"  # date_bin origin; time_bucket's default origin for non-week widths

Statement: TypeAlias = tuple[sql.Composable, tuple[Any, ...]]


_TIMESCALE_BY_POOL: WeakKeyDictionary[AsyncConnectionPool, bool] = WeakKeyDictionary()
_TIMESCALE_BY_CONN: WeakKeyDictionary[psycopg.AsyncConnection, bool] = WeakKeyDictionary()


async def timescale_available(conn: psycopg.AsyncConnection | AsyncConnectionPool) -> bool:
    """True when TimescaleDB is usable in this database (DESIGN §5: the one place that decides).

    Usable means: the server preloads the `timescaledb` library (`shared_preload_libraries`) and the
    extension is installed in this database. When it is preloaded and offered but not installed yet,
    `CREATE EXTENSION IF NOT EXISTS timescaledb` runs under an advisory lock (so concurrent first
    starters wait for each other instead of racing into a duplicate-key error) and the answer is
    whether that worked. When it is offered but NOT preloaded, nothing is attempted: creating or
    loading it would end the connection (FATAL "must be preloaded"), so it is treated as absent and
    one INFO line says why. The answer is cached per pool and per connection.
    """
    if isinstance(conn, AsyncConnectionPool):
        cached = _TIMESCALE_BY_POOL.get(conn)
        if cached is None:
            async with conn.connection() as c:
                cached = await timescale_available(c)
            _TIMESCALE_BY_POOL[conn] = cached
        return cached
    cached = _TIMESCALE_BY_CONN.get(conn)
    if cached is None:
        cached = await _detect_timescale(conn)
        _TIMESCALE_BY_CONN[conn] = cached
    return cached


_EXTENSION = "timescaledb"
_CREATE_LOCK = "twin.core.db: CREATE EXTENSION timescaledb"


def preloaded_libraries(setting: str) -> list[str]:
    """Library names in a `shared_preload_libraries` value: quotes, `$libdir/` paths and `.so` dropped."""
    names = []
    for part in setting.split(","):
        name = part.strip().strip('"').strip()
        name = name.rsplit("/", 1)[-1]
        if name.endswith(".so"):
            name = name[:-3]
        if name:
            names.append(name)
    return names


def timescale_preloaded(setting: str) -> bool:
    """Whether a `shared_preload_libraries` value loads TimescaleDB (`timescaledb` or `timescaledb-<version>`)."""
    return any(n == _EXTENSION or n.startswith(_EXTENSION + "-") for n in preloaded_libraries(setting))


async def _preloaded(conn: psycopg.AsyncConnection) -> tuple[bool, str]:
    """(preloaded?, how we know). Reading shared_preload_libraries needs superuser or
    pg_read_all_settings; without them, TimescaleDB's own settings being registered tells the same."""
    try:
        async with conn.transaction():
            cur = await conn.execute("SELECT current_setting('shared_preload_libraries')")
            row = await cur.fetchone()
        setting = str(row[0]) if row else ""
        return timescale_preloaded(setting), f"shared_preload_libraries = {setting!r}"
    except psycopg.errors.InsufficientPrivilege:
        cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM pg_settings WHERE name LIKE 'timescaledb.%')")
        row = await cur.fetchone()
        return bool(row and row[0]), "shared_preload_libraries unreadable here; timescaledb.* settings registered"


async def _installed(conn: psycopg.AsyncConnection) -> bool:
    cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = %s)", (_EXTENSION,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def _detect_timescale(conn: psycopg.AsyncConnection) -> bool:
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = %s),"
            " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = %s)",
            (_EXTENSION, _EXTENSION),
        )
        installed, offered = await cur.fetchone()  # type: ignore[misc]
        if not installed and not offered:
            return False
        preloaded, how = await _preloaded(conn)
        if not preloaded:
            log.info(
                "timescaledb is %s on this server but not preloaded (%s): using plain PostgreSQL tables "
                "and views; add timescaledb to shared_preload_libraries and restart PostgreSQL to use it",
                "installed" if installed else "offered", how,
            )
            return False
        if installed:
            return True
        # Concurrent first starters: one creates, the others wait here and then find it installed.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_CREATE_LOCK,))
        if await _installed(conn):
            return True
        try:
            async with conn.transaction():
                await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as exc:
            log.warning("timescaledb is preloaded and offered but CREATE EXTENSION failed (%s): using plain "
                        "PostgreSQL tables and views", str(exc).strip())
            return False
        log.info("created extension timescaledb in this database")
        return await _installed(conn)


def time_bucket_sql(timescale: bool, width: str, column: str) -> sql.Composable:
    """`time_bucket('<width>'::interval, col)` or `date_bin('<width>'::interval, col, timestamptz '2000-01-01')`.

    The width is a quoted literal (not a placeholder) so the fragment also works inside DDL (views,
    continuous aggregates), where bind parameters are not allowed. Both bucket on the same grid for
    widths below a week (time_bucket's default origin is 2000-01-01 too; weeks start on Monday 2000-01-03).
    """
    if timescale:
        return sql.SQL("time_bucket({}::interval, {})").format(sql.Literal(width), ident(column))
    return sql.SQL("date_bin({}::interval, {}, timestamptz {})").format(
        sql.Literal(width), ident(column), sql.Literal(DEFAULT_ORIGIN)
    )


def _column_list_literal(columns: str | Sequence[str]) -> sql.Composable:
    """A string literal holding quoted column names, for timescaledb.compress_* storage options."""
    cols = [c.strip() for c in columns.split(",")] if isinstance(columns, str) else list(columns)
    return sql.Literal(", ".join(sql.Identifier(c).as_string() for c in cols if c))


def hypertable_statements(
    table: str,
    *,
    time_column: str = "time",
    chunk_interval: str = "1 day",
    compress_after: str | None = "7 days",
    retain: str | None = "30 days",
    segment_by: str | Sequence[str] | None = None,
    compression_enabled: bool = False,
) -> list[Statement]:
    """The TimescaleDB statements `ensure_hypertable` runs (pure: unit-testable without TimescaleDB)."""
    stmts: list[Statement] = [
        (
            sql.SQL(
                "SELECT create_hypertable(%s::regclass, %s::name, chunk_time_interval => %s::interval,"
                " if_not_exists => TRUE, migrate_data => TRUE)"
            ),
            (table, time_column, chunk_interval),
        )
    ]
    if compress_after is not None:
        if not compression_enabled:
            options = [sql.SQL("timescaledb.compress")]
            if segment_by:
                options.append(sql.SQL("timescaledb.compress_segmentby = {}").format(_column_list_literal(segment_by)))
            options.append(
                sql.SQL("timescaledb.compress_orderby = {}").format(
                    sql.Literal(sql.Identifier(time_column).as_string() + " DESC")
                )
            )
            stmts.append((sql.SQL("ALTER TABLE {} SET ({})").format(ident(table), sql.SQL(", ").join(options)), ()))
        stmts.append(
            (
                sql.SQL("SELECT add_compression_policy(%s::regclass, compress_after => %s::interval, if_not_exists => TRUE)"),
                (table, compress_after),
            )
        )
    if retain is not None:
        stmts.append(
            (
                sql.SQL("SELECT add_retention_policy(%s::regclass, drop_after => %s::interval, if_not_exists => TRUE)"),
                (table, retain),
            )
        )
    return stmts


async def ensure_hypertable(
    conn: psycopg.AsyncConnection,
    table: str,
    time_column: str = "time",
    chunk_interval: str = "1 day",
    compress_after: str | None = "7 days",
    retain: str | None = "30 days",
    segment_by: str | Sequence[str] | None = None,
) -> bool:
    """Make `table` a hypertable with compression and retention policies; idempotent.

    Returns False (and does nothing) without TimescaleDB. `compress_after=None` / `retain=None` skip
    that policy. Existing policies are kept (`if_not_exists`): change them with a migration.
    """
    if not await timescale_available(conn):
        return False
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = %s::regclass",
            (table,),
        )
        schema, relname = await cur.fetchone()  # type: ignore[misc]
        cur = await conn.execute(
            "SELECT compression_enabled FROM timescaledb_information.hypertables"
            " WHERE hypertable_schema = %s AND hypertable_name = %s",
            (schema, relname),
        )
        row = await cur.fetchone()
        for query, params in hypertable_statements(
            table,
            time_column=time_column,
            chunk_interval=chunk_interval,
            compress_after=compress_after,
            retain=retain,
            segment_by=segment_by,
            compression_enabled=bool(row and row[0]),
        ):
            await conn.execute(query, params or None)
    return True


_AGGREGATE_RE = re.compile(
    r"^\s*(?P<func>[A-Za-z_][A-Za-z0-9_]*)\s*\(\s*(?P<args>\*|[A-Za-z_][A-Za-z0-9_]*(?:\s*,\s*[A-Za-z_][A-Za-z0-9_]*)*)?\s*\)\s*$"
)


def _aggregate_sql(expr: str) -> sql.Composable:
    """`func(col[, col...])` or `count(*)` → composed SQL with quoted column names."""
    m = _AGGREGATE_RE.match(expr)
    if m is None:
        raise ValueError(f"aggregate {expr!r} must look like func(column[, column]) or count(*)")
    args = m["args"] or ""
    rendered: sql.Composable = (
        sql.SQL("*") if args == "*" else sql.SQL(", ").join(sql.Identifier(a.strip()) for a in args.split(",") if a.strip())
    )
    return sql.SQL("{}({})").format(sql.SQL(m["func"].lower()), rendered)


def rollup_statements(
    timescale: bool,
    view: str,
    source_table: str,
    bucket: str,
    group_by: Sequence[str],
    aggregates: dict[str, str],
    *,
    time_column: str = "time",
    bucket_column: str = "bucket",
    refresh_start: str | None = None,
    refresh_end: str | None = None,
    refresh_every: str | None = None,
) -> list[Statement]:
    """The statements `ensure_rollup` runs (pure: unit-testable without TimescaleDB)."""
    if not aggregates:
        raise ValueError("a rollup needs at least one aggregate")
    bucket_expr = time_bucket_sql(timescale, bucket, time_column)
    select_list = [sql.SQL("{} AS {}").format(bucket_expr, sql.Identifier(bucket_column))]
    select_list += [sql.Identifier(c) for c in group_by]
    select_list += [sql.SQL("{} AS {}").format(_aggregate_sql(expr), sql.Identifier(out)) for out, expr in aggregates.items()]
    group_list = [bucket_expr] + [sql.Identifier(c) for c in group_by]
    body = sql.SQL("SELECT {} FROM {} GROUP BY {}").format(
        sql.SQL(", ").join(select_list), ident(source_table), sql.SQL(", ").join(group_list)
    )
    if not timescale:
        return [(sql.SQL("CREATE OR REPLACE VIEW {} AS {}").format(ident(view), body), ())]
    create = sql.SQL(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {} WITH (timescaledb.continuous,"
        " timescaledb.materialized_only = false) AS {} WITH NO DATA"
    ).format(ident(view), body)
    # Default refresh window: the last max(4 buckets, 1 hour) up to one bucket ago, every bucket.
    start = (
        sql.SQL("greatest(%s::interval * 4, interval '1 hour')") if refresh_start is None else sql.SQL("%s::interval")
    )
    policy = sql.SQL(
        "SELECT add_continuous_aggregate_policy(%s::regclass, start_offset => {}, end_offset => %s::interval,"
        " schedule_interval => %s::interval, if_not_exists => TRUE)"
    ).format(start)
    params = (view, refresh_start or bucket, refresh_end or bucket, refresh_every or bucket)
    return [(create, ()), (policy, params)]


async def ensure_rollup(
    conn: psycopg.AsyncConnection,
    view: str,
    source_table: str,
    bucket: str,
    group_by: list[str],
    aggregates: dict[str, str],
    *,
    time_column: str = "time",
    bucket_column: str = "bucket",
    refresh_start: str | None = None,
    refresh_end: str | None = None,
    refresh_every: str | None = None,
) -> bool:
    """A `bucket`-wide rollup of `source_table` named `view`; idempotent. True when it is a continuous aggregate.

    Columns: `bucket_column`, the `group_by` columns, then one per `aggregates` item
    (output name → `func(column)`, e.g. `{"power_w": "avg(power_w)", "n": "count(*)"}`).
    With TimescaleDB and a hypertable source: a real-time continuous aggregate (`WITH NO DATA`) with
    a refresh policy. Otherwise (no TimescaleDB, or a source that is a plain table, which a
    continuous aggregate cannot be built on): a plain `CREATE OR REPLACE VIEW` using `date_bin`
    (computed at query time).
    """
    continuous = await timescale_available(conn) and await is_hypertable(conn, source_table)
    async with conn.transaction():
        for query, params in rollup_statements(
            continuous,
            view,
            source_table,
            bucket,
            group_by,
            aggregates,
            time_column=time_column,
            bucket_column=bucket_column,
            refresh_start=refresh_start,
            refresh_end=refresh_end,
            refresh_every=refresh_every,
        ):
            await conn.execute(query, params or None)
    return continuous


async def is_hypertable(conn: psycopg.AsyncConnection, table: str) -> bool:
    """Whether `table` (`name` or `schema.name`, resolved like SQL would) is a TimescaleDB hypertable."""
    if not await timescale_available(conn):
        return False
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables h"
            " JOIN pg_namespace n ON n.nspname = h.hypertable_schema"
            " JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = h.hypertable_name"
            " WHERE c.oid = to_regclass(%s))",
            (table,),
        )
        row = await cur.fetchone()
    found = bool(row and row[0])
    if not found:
        log.info("%s is not a hypertable: its rollups are plain views, not continuous aggregates", table)
    return found
