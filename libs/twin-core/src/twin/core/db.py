"""PostgreSQL / TimescaleDB access for every service (DESIGN §5), on psycopg 3 (async).

- `open_pool(url)`: an opened `AsyncConnectionPool`; failures name host/port/db, never the password.
- `apply_migrations(pool, service, dir)`: plain SQL files `NNN_name.sql`, applied once each in lexical
  order and recorded in `twin_migrations`. Variants: `NNN_name.timescale.sql` runs only when the
  `timescaledb` extension is present, `NNN_name.plain.sql` only when it is absent; a logical migration
  (`NNN_name`) counts as applied whichever variant ran.
- `timescale_available(conn_or_pool)`: THE one place that decides hypertables vs plain tables.
- `time_bucket_sql`, `ensure_hypertable`, `ensure_rollup`: the same time-series code on both.
- `copy_rows` (psycopg's C `write_row`, for data already in Python tuples) and `copy_columns`
  (numpy columns → binary COPY stream built here, no per-row Python objects). Measured on the dev box
  (100k rows × 15 cols into local PostgreSQL 15): both are server-bound at ~0.8–1.0 M rows/s once
  rows exist; copy_columns encodes in ~40 ms of client CPU, while turning the same numpy columns into
  tuples for copy_rows alone costs ~190 ms.

All SQL is parameterized or composed with `psycopg.sql` (Identifier/Literal); names given as
`schema.table` are split on the dot and quoted part by part.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias
from weakref import WeakKeyDictionary

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "twin_migrations"
DEFAULT_ORIGIN = "2000-01-01"  # date_bin origin; time_bucket's default origin for non-week widths

Statement: TypeAlias = tuple[sql.Composable, tuple[Any, ...]]


class DatabaseUnavailable(ConnectionError):
    """The database could not be reached (message names host/port/db, never the password)."""


class MigrationError(RuntimeError):
    """A migration could not be planned or applied (bad file name, changed checksum, SQL error)."""


# --------------------------------------------------------------------------------------------- names


def ident(name: str) -> sql.Identifier:
    """`table` or `schema.table` as a quoted identifier."""
    parts = name.split(".")
    if not all(parts):
        raise ValueError(f"invalid SQL name {name!r}")
    return sql.Identifier(*parts)


def describe_conninfo(url: str) -> str:
    """`user@host:port/dbname` for messages: never includes the password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable connection string>"
    host = info.get("host") or info.get("hostaddr") or "<default socket>"
    port = info.get("port") or "5432"
    user = info.get("user") or "<default user>"
    return f"{user}@{host}:{port}/{info.get('dbname') or '<default db>'}"


def _redact(message: str, url: str) -> str:
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.ProgrammingError:
        password = None
    if password:
        message = message.replace(str(password), "***")
    return message


# ---------------------------------------------------------------------------------------------- pool


async def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 4, name: str | None = None, timeout: float = 10.0
) -> AsyncConnectionPool:
    """An opened pool; waits until `min_size` connections are ready, else `DatabaseUnavailable`."""
    where = describe_conninfo(url)
    pool = AsyncConnectionPool(url, min_size=min_size, max_size=max_size, name=name, open=False)
    try:
        await pool.open(wait=True, timeout=timeout)
    except PoolTimeout:
        await pool.close()
        reason = "timed out"
        try:  # one direct attempt to learn why (the pool only logs its failures)
            conn = await psycopg.AsyncConnection.connect(url, connect_timeout=max(2, int(timeout)))
            await conn.close()
        except psycopg.Error as exc:
            reason = _redact(str(exc).strip(), url)
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {where} within {timeout:g}s: {reason}"
        ) from None
    log.debug("pool %s open on %s", pool.name, where)
    return pool


# ------------------------------------------------------------------------------------- timescale


_TIMESCALE_BY_POOL: WeakKeyDictionary[AsyncConnectionPool, bool] = WeakKeyDictionary()
_TIMESCALE_BY_CONN: WeakKeyDictionary[psycopg.AsyncConnection, bool] = WeakKeyDictionary()


async def timescale_available(conn: psycopg.AsyncConnection | AsyncConnectionPool) -> bool:
    """True when the `timescaledb` extension is installed in this database (DESIGN §5: the one place).

    If it is not installed but the server offers it, tries `CREATE EXTENSION IF NOT EXISTS timescaledb`
    (in a savepoint) and reports whether that worked (it fails e.g. without shared_preload_libraries
    or privileges). The answer is cached per pool and per connection.
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


async def _detect_timescale(conn: psycopg.AsyncConnection) -> bool:
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = %s),"
            " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = %s)",
            ("timescaledb", "timescaledb"),
        )
        installed, offered = await cur.fetchone()  # type: ignore[misc]
        if installed or not offered:
            return bool(installed)
        try:
            async with conn.transaction():
                await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as exc:
            log.warning("timescaledb is offered by the server but cannot be created: %s", exc)
        cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = %s)", ("timescaledb",))
        row = await cur.fetchone()
        return bool(row and row[0])


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


# ------------------------------------------------------------------------------------- migrations


_MIGRATION_RE = re.compile(r"^(?P<stem>\d+_[A-Za-z0-9_\-]+)(?:\.(?P<variant>timescale|plain))?\.sql$")


@dataclass(frozen=True)
class Migration:
    stem: str  # "002_metrics": the logical migration
    name: str  # the file name actually applied, recorded in twin_migrations.name
    path: Path
    checksum: str  # sha256 of the file bytes
    variant_checksums: dict[str, str] = field(default_factory=dict)  # every file of this stem


def plan_migrations(migrations_dir: Path, timescale: bool) -> list[Migration]:
    """The files to apply, in lexical order, with the variant chosen for this database."""
    migrations_dir = Path(migrations_dir)
    if not migrations_dir.is_dir():
        raise MigrationError(f"migrations directory {migrations_dir} does not exist")
    by_stem: dict[str, dict[str | None, Path]] = {}
    for path in sorted(migrations_dir.glob("*.sql")):
        m = _MIGRATION_RE.match(path.name)
        if m is None:
            raise MigrationError(
                f"{path}: migration files are named NNN_name.sql, NNN_name.timescale.sql or NNN_name.plain.sql"
            )
        by_stem.setdefault(m["stem"], {})[m["variant"]] = path
    wanted = "timescale" if timescale else "plain"
    plan: list[Migration] = []
    for stem in sorted(by_stem):
        files = by_stem[stem]
        if None in files and len(files) > 1:
            raise MigrationError(f"{migrations_dir}: {stem}.sql cannot also have .timescale/.plain variants")
        path = files.get(None) or files.get(wanted)
        if path is None:
            continue  # e.g. a compression-only .timescale.sql on plain PostgreSQL
        checksums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files.values()}
        plan.append(Migration(stem, path.name, path, checksums[path.name], checksums))
    return plan


async def apply_migrations(pool: AsyncConnectionPool, service: str, migrations_dir: Path) -> list[str]:
    """Apply pending migrations of `service`; return the file names applied (in order).

    Each file runs in its own transaction together with its `twin_migrations` row, under
    `pg_advisory_xact_lock(hashtext(service))`, so concurrent starters apply each file once. A file
    whose checksum differs from the one recorded raises `MigrationError` (migrations are immutable:
    add a new file). Files must be transaction-safe: no `CREATE INDEX CONCURRENTLY`, and continuous
    aggregates `WITH NO DATA`.
    """
    timescale = await timescale_available(pool)
    plan = plan_migrations(migrations_dir, timescale)
    applied: list[str] = []
    async with pool.connection() as conn:
        await _ensure_migrations_table(conn)
        for mig in plan:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (service,))
                cur = await conn.execute(
                    sql.SQL("SELECT name, checksum FROM {} WHERE service = %s AND name = ANY(%s)").format(
                        ident(MIGRATIONS_TABLE)
                    ),
                    (service, [mig.stem + s for s in (".sql", ".timescale.sql", ".plain.sql")]),
                )
                row = await cur.fetchone()
                if row is not None:
                    recorded_name, recorded_sum = row
                    current = mig.variant_checksums.get(recorded_name)
                    if current is not None and current != recorded_sum:
                        raise MigrationError(
                            f"migration {service}/{recorded_name} was applied with checksum {recorded_sum[:12]}… "
                            f"but {migrations_dir}/{recorded_name} now has {current[:12]}…; applied migrations "
                            "must not change — add a new migration file instead"
                        )
                    if recorded_name != mig.name:
                        log.info("%s: %s already applied as %s", service, mig.stem, recorded_name)
                    continue
                try:
                    await conn.execute(mig.path.read_text(encoding="utf-8"))  # type: ignore[arg-type]
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {service}/{mig.name} failed: {exc}") from exc
                await conn.execute(
                    sql.SQL("INSERT INTO {} (service, name, checksum, applied_at) VALUES (%s, %s, %s, now())").format(
                        ident(MIGRATIONS_TABLE)
                    ),
                    (service, mig.name, mig.checksum),
                )
            applied.append(mig.name)
            log.info("%s: applied migration %s", service, mig.name)
    return applied


async def _ensure_migrations_table(conn: psycopg.AsyncConnection) -> None:
    async with conn.transaction():
        # CREATE TABLE IF NOT EXISTS is not safe against a concurrent twin: serialize it.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (MIGRATIONS_TABLE,))
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (service text NOT NULL, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),"
                " PRIMARY KEY (service, name))"
            ).format(ident(MIGRATIONS_TABLE))
        )


# ------------------------------------------------------------------------- hypertables and rollups


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
    With TimescaleDB: a real-time continuous aggregate (`WITH NO DATA`) with a refresh policy;
    without: a plain `CREATE OR REPLACE VIEW` using `date_bin` (computed at query time).
    """
    timescale = await timescale_available(conn)
    async with conn.transaction():
        for query, params in rollup_statements(
            timescale,
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
    return timescale


# -------------------------------------------------------------------------------------- bulk COPY


def _copy_statement(table: str, columns: Sequence[str]) -> sql.Composable:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        ident(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )


async def copy_rows(
    conn: psycopg.AsyncConnection,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> int:
    """Binary COPY of Python rows (psycopg adapts each value; None → NULL). Returns the row count."""
    if len(columns) != len(types):
        raise ValueError("columns and types must have the same length")
    n = 0
    async with conn.cursor() as cur:
        async with cur.copy(_copy_statement(table, columns)) as copy:
            copy.set_types(list(types))
            for row in rows:
                await copy.write_row(row)
                n += 1
    return n


_PG_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_PG_TRAILER = b"\xff\xff"
_EPOCH_2000 = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_EPOCH_2000_US = 946_684_800_000_000  # 2000-01-01 in µs since 1970-01-01
_TYPE_ALIASES = {
    "double precision": "float8", "float": "float8", "real": "float4",
    "integer": "int4", "int": "int4", "bigint": "int8", "smallint": "int2", "boolean": "bool",
    "timestamp with time zone": "timestamptz", "timestamp without time zone": "timestamp",
    "character varying": "text", "varchar": "text",
}
_FIXED = {"float8": ">f8", "float4": ">f4", "int2": ">i2", "int4": ">i4", "int8": ">i8", "bool": "?"}
_SUPPORTED = set(_FIXED) | {"text", "timestamptz", "timestamp"}


@dataclass
class _Column:
    data: np.ndarray  # fixed-width values (big-endian dtype) or S<w> bytes for text
    lengths: np.ndarray | None  # per-row data length (int32, -1 = NULL) when rows differ, else None
    variable: bool  # text column: data width varies per row

    def slice(self, start: int, stop: int) -> _Column:
        lengths = None if self.lengths is None else self.lengths[start:stop]
        return _Column(self.data[start:stop], lengths, self.variable)


def _null_mask(values: Any, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(array, mask of NULLs or None): None in lists/object arrays and masked entries are NULL."""
    if isinstance(values, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(values)
        return np.ma.getdata(values), (mask if mask.any() else None)
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.dtype == object:
        mask = np.equal(arr, None)
        return arr, (mask if mask.any() else None)
    return arr, None


def _prepare_fixed(pgtype: str, values: Any, n: int) -> _Column:
    arr, mask = _null_mask(values, n)
    if arr.dtype == object:
        fill = False if pgtype == "bool" else 0
        arr = np.where(mask, fill, arr) if mask is not None else arr
        arr = np.asarray(arr.tolist(), dtype=np.float64 if pgtype.startswith("float") else None)
    if pgtype in ("int2", "int4", "int8"):
        info = np.iinfo(np.dtype(_FIXED[pgtype]).newbyteorder("="))
        if arr.dtype.kind == "f":
            live = arr if mask is None else arr[~mask]
            if not np.all(np.isfinite(live)) or not np.all(live == np.round(live)):
                raise ValueError(f"{pgtype} column got non-integral or non-finite floats")
        elif arr.dtype.kind not in "iub":
            raise ValueError(f"{pgtype} column got {arr.dtype} values")
        if arr.size and arr.dtype.kind != "b" and (arr.min() < info.min or arr.max() > info.max):
            raise ValueError(f"{pgtype} column has values outside [{info.min}, {info.max}]")
    data = np.asarray(arr).astype(_FIXED[pgtype], copy=False)
    lengths = None
    if mask is not None:
        lengths = np.where(mask, -1, data.dtype.itemsize).astype(np.int32)
    return _Column(data, lengths, False)


def _prepare_timestamp(values: Any, n: int) -> _Column:
    arr, mask = _null_mask(values, n)
    if arr.dtype.kind == "M":
        us = arr.astype("datetime64[us]").view(np.int64)
        nat = np.isnat(arr)
        if nat.any():
            mask = nat if mask is None else (mask | nat)
    elif arr.dtype == object:
        out = np.zeros(len(arr), dtype=np.int64)
        for i, v in enumerate(arr.tolist()):
            if v is None:
                continue
            if not isinstance(v, dt.datetime):
                raise ValueError(f"timestamp column got {type(v).__name__} {v!r}")
            if v.tzinfo is None:
                v = v.replace(tzinfo=dt.UTC)  # naive = UTC
            d = v - _EPOCH_2000
            out[i] = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
        us = out + _EPOCH_2000_US
    else:
        raise ValueError(f"timestamp column needs datetime64 values or datetime objects, got {arr.dtype}")
    data = (us - _EPOCH_2000_US).astype(">i8")
    lengths = None if mask is None else np.where(mask, -1, 8).astype(np.int32)
    return _Column(data, lengths, False)


def _prepare_text(values: Any, n: int) -> _Column:
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    has_null = None in items
    try:
        encoded = [b"" if v is None else v.encode() for v in items] if has_null else list(map(str.encode, items))
    except (AttributeError, TypeError):  # non-str values: bytes are taken as UTF-8, anything else via str()
        encoded = [b"" if v is None else v if isinstance(v, bytes) else str(v).encode() for v in items]
    lengths = np.fromiter(map(len, encoded), dtype=np.int32, count=len(encoded))
    if has_null:
        lengths[np.equal(np.asarray(items, dtype=object), None)] = -1
    data = np.array(encoded, dtype=f"S{max(int(lengths.max(initial=0)), 1)}")
    return _Column(data, lengths, True)


def _prepare(pgtype: str, values: Any, n: int) -> _Column:
    if pgtype in _FIXED:
        return _prepare_fixed(pgtype, values, n)
    if pgtype in ("timestamptz", "timestamp"):
        return _prepare_timestamp(values, n)
    return _prepare_text(values, n)


class _Scratch:
    """Byte buffers reused across chunks: fresh multi-MB arrays per chunk cost more in page faults
    than the encoding itself."""

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def take(self, key: str, nbytes: int) -> np.ndarray:
        buf = self._bufs.get(key)
        if buf is None or buf.size < nbytes:
            buf = self._bufs[key] = np.empty(max(nbytes, 1 << 16), dtype=np.uint8)
        return buf[:nbytes]


def encode_binary_rows(
    cols: Sequence[_Column], start: int, stop: int, scratch: _Scratch | None = None
) -> memoryview:
    """Tuples `start:stop` in PostgreSQL binary COPY format (no signature/trailer).

    Every row is laid out in a numpy structured array (int16 field count, then per field an int32
    length and the big-endian value; text padded to the chunk's longest value). When some fields are
    shorter than their slot (text, NULL), a boolean byte mask drops the padding, which keeps row order.
    The result may point into `scratch`: consume it before the next call with the same scratch.
    """
    scratch = scratch or _Scratch()
    n = stop - start
    fields: list[tuple[str, Any]] = [("count", ">i2")]
    widths: list[int] = []
    for j, col in enumerate(cols):
        if col.variable:
            width = max(int(col.lengths[start:stop].max(initial=0)), 1)  # type: ignore[index]
            dtype: Any = f"S{width}"
        else:
            dtype = col.data.dtype
            width = dtype.itemsize
        widths.append(width)
        fields += [(f"l{j}", ">i4"), (f"d{j}", dtype)]
    row_dtype = np.dtype(fields)
    raw = scratch.take("rows", n * row_dtype.itemsize).reshape(n, row_dtype.itemsize)
    rec = raw.view(row_dtype).reshape(n)
    rec["count"] = len(cols)
    needs_mask = False
    for j, col in enumerate(cols):
        if col.lengths is None:
            rec[f"l{j}"] = widths[j]
        else:
            rec[f"l{j}"] = col.lengths[start:stop]
            needs_mask = True
        rec[f"d{j}"] = col.data[start:stop]
    if not needs_mask:
        return memoryview(raw.reshape(-1))
    keep = scratch.take("keep", raw.size).view(bool).reshape(raw.shape)
    keep[...] = True
    for j, col in enumerate(cols):
        if col.lengths is not None:
            offset = row_dtype.fields[f"d{j}"][1]  # type: ignore[index]
            keep[:, offset : offset + widths[j]] = np.arange(widths[j]) < col.lengths[start:stop, None]
    return memoryview(raw[keep])  # boolean indexing: faster than np.compress(..., out=) here


async def copy_columns(
    conn: psycopg.AsyncConnection,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    arrays: Sequence[np.ndarray | list[Any]],
    *,
    chunk_rows: int = 8192,
) -> int:
    """Binary COPY of columnar data (one array per column); returns the row count.

    Types: float8/float4, int2/int4/int8, bool, text/varchar, timestamptz/timestamp (aliases such as
    `double precision`, `bigint` accepted); use `copy_rows` for anything else.
    Values: NaN in float columns stays NaN; None (lists / object arrays), masked entries
    (`numpy.ma`) and NaT are NULL. Timestamps are `datetime64` (taken as UTC) or `datetime` objects
    (naive = UTC). Integer columns reject out-of-range or non-integral values instead of wrapping.
    """
    if not (len(columns) == len(types) == len(arrays)):
        raise ValueError("columns, types and arrays must have the same length")
    if not columns:
        raise ValueError("copy_columns needs at least one column")
    pgtypes = [_TYPE_ALIASES.get(t.strip().lower(), t.strip().lower()) for t in types]
    unsupported = [t for t in pgtypes if t not in _SUPPORTED]
    if unsupported:
        raise ValueError(f"copy_columns does not support types {unsupported}; use copy_rows")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"all arrays must have the same length ({[len(a) for a in arrays]})")
    # Numbers and timestamps are converted (and validated) up front: cheap, and a bad value raises
    # before COPY starts, leaving the transaction usable. Text is encoded per chunk, just before the
    # chunk is sent, so the server ingests chunk k while we encode chunk k+1.
    fixed = {j: _prepare(t, a, n) for j, (t, a) in enumerate(zip(pgtypes, arrays, strict=True)) if t != "text"}
    texts = {j: (a if isinstance(a, np.ndarray) else list(a)) for j, a in enumerate(arrays) if j not in fixed}
    scratch = _Scratch()
    async with conn.cursor() as cur:
        async with cur.copy(_copy_statement(table, columns)) as copy:
            await copy.write(_PG_SIGNATURE)
            for start in range(0, n, chunk_rows):
                stop = min(n, start + chunk_rows)
                cols = [
                    fixed[j].slice(start, stop) if j in fixed else _prepare_text(texts[j][start:stop], stop - start)
                    for j in range(len(columns))
                ]
                await copy.write(encode_binary_rows(cols, 0, stop - start, scratch))  # consumed (copied by libpq) before the next chunk
            await copy.write(_PG_TRAILER)
    return n
