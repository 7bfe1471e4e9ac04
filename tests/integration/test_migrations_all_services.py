"""Every service's migrations, applied together to one fresh database (TWIN_DATABASE_URL's server).

Services are found as installed packages, the way the services find their own migrations: each
`twin.<service>` package with a `migrations/` folder of SQL files (package data, the same installed
or editable). What the files declare must exist afterwards: every table they create; with
TimescaleDB, every hypertable they make and every continuous aggregate, real-time
(`materialized_only = false`) and with a refresh and a retention policy. On plain PostgreSQL only
the TimescaleDB part is skipped (with the reason); the plain variants must still give every
relation the TimescaleDB variants would (same table and rollup names).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import twin
from twin.core import db

NOT_SERVICES = {"core"}


def service_migrations() -> dict[str, Path]:
    """service name → its migrations folder, for every `twin.<name>` package that ships one.

    `twin.<name>` may be a namespace package (the generated `twin.<name>.v1` protos live in another
    distribution), so the folders of the `twin` namespace are listed rather than imported."""
    found: dict[str, Path] = {}
    for location in twin.__path__:
        for child in sorted(Path(location).iterdir()):
            folder = child / "migrations"
            if child.name not in NOT_SERVICES and folder.is_dir() and any(folder.glob("*.sql")):
                found[child.name] = folder
    return found


def _strip_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


# What the files create and drop, in file order: a later migration may drop a relation (ingest 011 drops the
# telemetry_link_sample table of 007) or replace a table by a view of the same name (ingest 009: telemetry_gpu).
_STATEMENTS = re.compile(
    r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<table>\w+)"
    r"|CREATE\s+MATERIALIZED\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<cagg>\w+)\s+WITH\s*\(\s*timescaledb\.continuous"
    r"|CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(?P<view>\w+)"
    r"|create_hypertable\(\s*'(?P<hypertable>\w+)'"
    r"|DROP\s+(?:TABLE|VIEW|MATERIALIZED\s+VIEW)\s+(?:IF\s+EXISTS\s+)?(?P<drop>\w+)", re.I)


def declared(folder: Path, timescale: bool) -> dict[str, set[str]]:
    """Names the files of this database's variant leave created: tables, views, hypertables, continuous
    aggregates (a name dropped by a later statement counts only if created again after it)."""
    out: dict[str, set[str]] = {"tables": set(), "views": set(), "hypertables": set(), "caggs": set()}
    kinds = {"table": "tables", "view": "views", "hypertable": "hypertables", "cagg": "caggs"}
    for mig in db.plan_migrations(folder, timescale):
        for m in _STATEMENTS.finditer(_strip_comments(mig.path.read_text(encoding="utf-8"))):
            if m["drop"]:
                for names in out.values():
                    names.discard(m["drop"])
                continue
            kind = next(k for k in kinds if m[k])
            out[kinds[kind]].add(m[kind])
    return out


SERVICES = service_migrations()


def test_every_service_with_tables_ships_migrations() -> None:
    assert {"ingest", "fabric"} <= set(SERVICES), SERVICES


@pytest.fixture
async def applied(fresh_database: str):
    pool = await db.open_pool(fresh_database, max_size=2)
    try:
        timescale = await db.timescale_available(pool)
        results = {name: await db.apply_migrations(pool, name, folder) for name, folder in sorted(SERVICES.items())}
        yield pool, timescale, results
    finally:
        await pool.close()


async def rows(pool, query: str, params=None) -> list[tuple]:
    async with pool.connection() as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall()


async def test_all_migrations_apply_to_a_fresh_database_and_create_what_they_declare(applied) -> None:
    pool, timescale, results = applied
    for name, folder in SERVICES.items():
        plan = [m.name for m in db.plan_migrations(folder, timescale)]
        assert results[name] == plan, name
        want = declared(folder, timescale)
        relations = sorted(want["tables"] | want["views"] | want["caggs"])
        missing = [r for (r, ok) in await rows(pool, "SELECT r, to_regclass(r) IS NOT NULL FROM unnest(%s::text[]) r",
                                               (relations,)) if not ok]
        assert missing == [], f"{name}: declared but missing after its migrations: {missing}"
        # applying again changes nothing
        assert await db.apply_migrations(pool, name, folder) == [], name


def test_plain_and_timescale_variants_give_the_same_relations() -> None:
    for name, folder in SERVICES.items():
        plain, ts = declared(folder, False), declared(folder, True)
        assert plain["tables"] | plain["views"] == ts["tables"] | ts["views"] | ts["caggs"], name


async def test_hypertables_and_real_time_aggregates_with_policies_when_timescaledb_is_there(applied) -> None:
    pool, timescale, _ = applied
    if not timescale:
        pytest.skip("this server has no usable TimescaleDB (not offered or not in shared_preload_libraries): "
                    "hypertables and continuous aggregates are checked only where it is")
    for name, folder in SERVICES.items():
        want = declared(folder, True)
        hypertables = {r[0] for r in await rows(pool, "SELECT hypertable_name FROM timescaledb_information.hypertables")}
        assert want["hypertables"] <= hypertables, (name, want["hypertables"] - hypertables)
        if not want["caggs"]:
            continue
        caggs = dict(await rows(pool, "SELECT view_name, materialized_only"
                                      " FROM timescaledb_information.continuous_aggregates"))
        assert {c: caggs.get(c) for c in want["caggs"]} == dict.fromkeys(want["caggs"], False), \
            f"{name}: continuous aggregates must exist and be real-time"
        jobs = await rows(pool, "SELECT hypertable_name, proc_name FROM timescaledb_information.jobs"
                                " WHERE proc_name IN ('policy_refresh_continuous_aggregate', 'policy_retention')")
        # jobs on a continuous aggregate name its materialization hypertable: map it back to the view
        mat = dict(await rows(pool, "SELECT materialization_hypertable_name, view_name"
                                    " FROM timescaledb_information.continuous_aggregates"))
        policies: dict[str, set[str]] = {}
        for table, proc in jobs:
            policies.setdefault(mat.get(table, table), set()).add(proc)
        for cagg in want["caggs"]:
            assert policies.get(cagg) == {"policy_refresh_continuous_aggregate", "policy_retention"}, (name, cagg)


async def test_real_time_aggregate_shows_rows_written_after_the_last_refresh(applied) -> None:
    pool, timescale, _ = applied
    if not timescale:
        pytest.skip("needs TimescaleDB (continuous aggregates); the plain views are computed at query time anyway")
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO telemetry_rack (time, rack_id, pdu_input_power_w) VALUES (now(), 'r', 10),"
                           " (now(), 'r', 30)")
        await conn.commit()
        cur = await conn.execute("SELECT pdu_power_w_avg, samples FROM telemetry_rack_1m WHERE rack_id = 'r'")
        assert await cur.fetchall() == [(20.0, 2)]


def test_service_migrations_are_found_where_the_services_look() -> None:
    for name, folder in SERVICES.items():
        db.plan_migrations(folder, False)  # names are valid
        try:
            repository = importlib.import_module(f"twin.{name}.adapters.repository")
        except ImportError:
            continue
        if hasattr(repository, "MIGRATIONS_DIR"):
            assert Path(repository.MIGRATIONS_DIR).resolve() == folder.resolve(), name
