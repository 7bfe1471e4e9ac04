"""Migrations: plain SQL files `NNN_name.sql`, applied once each in lexical order and recorded in
`twin_migrations`. Variants: `NNN_name.timescale.sql` runs only when the `timescaledb` extension is
present, `NNN_name.plain.sql` only when it is absent; a logical migration (`NNN_name`) counts as applied
whichever variant ran.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from twin.core.db.pool import ident
from twin.core.db.timescale import timescale_available

log = logging.getLogger("twin.core.db")

MIGRATIONS_TABLE = "twin_migrations"


class MigrationError(RuntimeError):
    """A migration could not be planned or applied (bad file name, changed checksum, SQL error)."""


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
            if await _apply_one(conn, service, migrations_dir, mig):
                applied.append(mig.name)
                log.info("%s: applied migration %s", service, mig.name)
    return applied


#: A file that loses a deadlock is run again (its transaction rolled back whole, so nothing half-applied stays).
#: With TimescaleDB the background jobs an earlier file scheduled (retention, compression, continuous aggregate
#: refresh: they start at once on a fresh database) take their relation's lock and then their job's advisory
#: lock; a later file that drops or replaces that relation takes them the other way round, and PostgreSQL
#: aborts one side (seen applying ingest 009/011 to a fresh TimescaleDB 2.25 database). Once the job has ended
#: or given way, the file's next attempt goes through.
DEADLOCK_ATTEMPTS = 5
DEADLOCK_BACKOFF_S = 0.2


async def _apply_one(conn: psycopg.AsyncConnection, service: str, migrations_dir: Path, mig: Migration) -> bool:
    """Apply `mig` unless recorded (then check its checksum); True when applied now."""
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        try:
            return await _apply_once(conn, service, migrations_dir, mig)
        except MigrationError as exc:
            if not isinstance(exc.__cause__, psycopg.errors.DeadlockDetected) or attempt == DEADLOCK_ATTEMPTS:
                raise
            log.warning("%s: migration %s lost a deadlock (attempt %d of %d), running it again: %s", service,
                        mig.name, attempt, DEADLOCK_ATTEMPTS, exc.__cause__)
            await asyncio.sleep(DEADLOCK_BACKOFF_S * attempt)
    raise AssertionError("unreachable")


async def _apply_once(conn: psycopg.AsyncConnection, service: str, migrations_dir: Path, mig: Migration) -> bool:
    """One attempt: the file and its twin_migrations row in one transaction, under the service's lock."""
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
            return False
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
    return True


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
