"""PostgreSQL / TimescaleDB access for every service (DESIGN §5), on psycopg 3 (async).

One package, four modules; every public name is re-exported here, so `from twin.core.db import X` works:

- `pool`: `open_pool(url)` (an opened `AsyncConnectionPool`; failures name host/port/db, never the
  password), `DatabaseUnavailable`, `describe_conninfo`, `ident`.
- `migrations`: `apply_migrations(pool, service, dir)`: plain SQL files `NNN_name.sql`, applied once
  each in lexical order and recorded in `twin_migrations`. Variants: `NNN_name.timescale.sql` runs only
  when the `timescaledb` extension is present, `NNN_name.plain.sql` only when it is absent; a logical
  migration (`NNN_name`) counts as applied whichever variant ran.
- `timescale`: `timescale_available(conn_or_pool)`, THE one place that decides hypertables vs plain
  tables (usable = in `shared_preload_libraries` and installed; created under an advisory lock when
  preloaded but not yet installed; never attempted when not preloaded, which would end the
  connection); `time_bucket_sql`, `ensure_hypertable`, `ensure_rollup` (a real-time continuous
  aggregate only on a hypertable, else a plain view), `is_hypertable`: the same code on both.
- `copy`: `copy_rows` (psycopg's C `write_row`, for data already in Python tuples) and `copy_columns`
  (numpy columns → binary COPY stream built here, no per-row Python objects).

All SQL is parameterized or composed with `psycopg.sql` (Identifier/Literal); names given as
`schema.table` are split on the dot and quoted part by part.
"""

from __future__ import annotations

from twin.core.db.copy import _prepare, copy_columns, copy_rows, encode_binary_rows
from twin.core.db.migrations import (
    MIGRATIONS_TABLE,
    Migration,
    MigrationError,
    apply_migrations,
    plan_migrations,
)
from twin.core.db.pool import DatabaseUnavailable, describe_conninfo, ident, open_pool
from twin.core.db.timescale import (
    DEFAULT_ORIGIN,
    Statement,
    ensure_hypertable,
    ensure_rollup,
    hypertable_statements,
    is_hypertable,
    preloaded_libraries,
    rollup_statements,
    time_bucket_sql,
    timescale_available,
    timescale_preloaded,
)

__all__ = [
    "DEFAULT_ORIGIN",
    "MIGRATIONS_TABLE",
    "DatabaseUnavailable",
    "Migration",
    "MigrationError",
    "Statement",
    "_prepare",
    "apply_migrations",
    "copy_columns",
    "copy_rows",
    "describe_conninfo",
    "encode_binary_rows",
    "ensure_hypertable",
    "ensure_rollup",
    "hypertable_statements",
    "ident",
    "is_hypertable",
    "open_pool",
    "plan_migrations",
    "preloaded_libraries",
    "rollup_statements",
    "time_bucket_sql",
    "timescale_available",
    "timescale_preloaded",
]
