"""Every Grafana panel's SQL runs against the services' real schema in PostgreSQL and returns the columns
the panel expects, with data in them.

The services' migrations (every `twin.<service>` package with `migrations/`) are applied to a fresh
database; a few rows are written the way ingest and the power twin write them (within the last hour);
then each panel's `rawSql` is expanded the way Grafana's PostgreSQL data source does it
($__interval / $__interval_ms first, then $__timeFilter, $__timeFrom, $__timeTo, $__timeGroup,
$__timeGroupAlias, $__time, $__timeEpoch, $__unixEpochFilter) over "now-1h .. now" and executed. A macro
this expander does not know fails the test (so a panel never passes by not being run), and so does a
panel missing from EXPECTED below (new panels declare their columns here).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

import twin
from twin.core import db

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
INTERVAL = "15s"

# (dashboard uid, panel id) → the columns the panel reads, in order
EXPECTED: dict[tuple[str, int], list[str]] = {
    ("twin-site-power", 1): ["time", "facility", "IT"],
    ("twin-site-power", 2): ["time", "PUE"],
    ("twin-site-power", 3): ["time", "headroom"],
    ("twin-site-power", 4): ["time", "metric", "value"],
    ("twin-site-power", 5): ["time", "metric", "value"],
    ("twin-site-power", 6): ["rack", "input W", "rack loss W", "state time"],
    ("twin-rack-thermal", 1): ["time", "metric", "value"],
    ("twin-rack-thermal", 2): ["time", "metric", "value"],
    ("twin-rack-thermal", 3): ["time", "metric", "value"],
    ("twin-rack-thermal", 4): ["time", "supply", "return"],
    ("twin-rack-thermal", 5): ["rack", "node", "gpu", "GPU °C", "HBM °C", "power W", "time"],
    ("twin-ingest-health", 1): ["time", "GPU rows/s"],
    ("twin-ingest-health", 2): ["time", "batches"],
    ("twin-ingest-health", 3): ["time", "mean", "max"],
    ("twin-ingest-health", 4): ["rack", "batches", "GPU rows", "last sample"],
    ("twin-cooling", 1): ["time", "metric", "value"],
    ("twin-cooling", 2): ["time", "metric", "value"],
    ("twin-cooling", 3): ["time", "cooling power", "heat load"],
    ("twin-cooling", 4): ["time", "supply"],
    ("twin-cooling", 5): ["time", "metric", "value"],
    ("twin-cooling", 6): ["rack", "heat W", "coolant °C", "throttle in s", "state time"],
    ("twin-jobs", 1): ["time", "running"],
    ("twin-jobs", 2): ["time", "metric", "value"],
    ("twin-jobs", 3): ["time", "metric", "value"],
    ("twin-jobs", 4): ["time", "metric", "value"],
    ("twin-jobs", 5): ["time", "metric", "value"],
    ("twin-jobs", 6): ["job", "status", "GPUs", "step s", "predicted s", "MFU", "goodput", "power W", "risks",
                       "state time"],
}


def panels() -> list[tuple[str, dict]]:
    out = []
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        stack = list(dash["panels"])
        while stack:
            p = stack.pop(0)
            stack += p.get("panels", [])  # collapsed rows hold their panels
            if p.get("targets"):
                out.append((dash["uid"], p))
    return out


# -- Grafana's PostgreSQL macros ----------------------------------------------------------------------


def interval_seconds(text: str) -> float:
    m = re.fullmatch(r"\s*'?(\d+(?:\.\d+)?)(ms|s|m|h|d)'?\s*", text)
    if not m:
        raise ValueError(f"not a Grafana interval: {text!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def expand(sql: str, start: datetime, end: datetime, interval: str = INTERVAL) -> str:
    """What Grafana sends to PostgreSQL for `sql` over [start, end] at `interval`."""
    sql = sql.replace("$__interval_ms", str(int(interval_seconds(interval) * 1000)))
    sql = sql.replace("$__interval", interval)
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731

    def group(args: list[str], alias: bool) -> str:
        secs = interval_seconds(args[1])
        text = f"floor(extract(epoch from {args[0]})/{secs:g})*{secs:g}"
        return text + (' AS "time"' if alias else "")

    macros = {
        "__timeFilter": lambda a: f"{a[0]} BETWEEN '{iso(start)}' AND '{iso(end)}'",
        "__timeFrom": lambda a: f"'{iso(start)}'",
        "__timeTo": lambda a: f"'{iso(end)}'",
        "__time": lambda a: f'{a[0]} AS "time"',
        "__timeEpoch": lambda a: f'extract(epoch from {a[0]}) AS "time"',
        "__unixEpochFilter": lambda a: f"{a[0]} >= {int(start.timestamp())} AND {a[0]} <= {int(end.timestamp())}",
        "__timeGroup": lambda a: group(a, False),
        "__timeGroupAlias": lambda a: group(a, True),
    }

    def one(m: re.Match) -> str:
        name, args = m.group(1), [a.strip() for a in m.group(2).split(",")] if m.group(2).strip() else []
        if name not in macros:
            raise AssertionError(f"macro ${name} is not one this test expands: add it (Grafana docs: PostgreSQL macros)")
        return macros[name](args)

    out = re.sub(r"\$(__\w+)\(([^()]*)\)", one, sql)
    leftover = re.findall(r"\$\w+", out)
    assert not leftover, f"unexpanded variables {leftover} in:\n{out}"
    return out


def test_macro_expansion_matches_grafana() -> None:
    start, end = datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(2026, 1, 1, 11, tzinfo=UTC)
    got = expand("SELECT $__timeGroupAlias(time, $__interval), x / ($__interval_ms / 1000.0) FROM t "
                 "WHERE $__timeFilter(time)", start, end, "1m")
    assert got == ('SELECT floor(extract(epoch from time)/60)*60 AS "time", x / (60000 / 1000.0) FROM t '
                   "WHERE time BETWEEN '2026-01-01T10:00:00Z' AND '2026-01-01T11:00:00Z'")
    with pytest.raises(AssertionError, match="__timeFill"):
        expand("SELECT $__timeFill(x)", start, end)


# -- the schema, with data ----------------------------------------------------------------------------


def service_migrations() -> dict[str, Path]:
    found = {}
    for location in twin.__path__:
        for child in sorted(Path(location).iterdir()):
            folder = child / "migrations"
            if child.name != "core" and folder.is_dir() and any(folder.glob("*.sql")):
                found[child.name] = folder
    return found


@pytest.fixture
async def schema_with_data(fresh_database: str) -> str:
    pool = await db.open_pool(fresh_database, max_size=2)
    try:
        for name, folder in sorted(service_migrations().items()):
            await db.apply_migrations(pool, name, folder)
    finally:
        await pool.close()
    now = datetime.now(UTC).replace(microsecond=0)
    times = [now - timedelta(minutes=m) for m in (40, 20, 5)]
    racks = ["su1-0000", "su1-0001"]
    with psycopg.connect(fresh_database) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO power_state (time, site_id, entity_id, scope, input_power_w, output_power_w, loss_w, rating_w,"
                " utilization, source, message) VALUES (%s, 'su-h100', %s, %s, %s, %s, %s, %s, %s, 1, '')",
                [row for t in times for row in (
                    (t, "su-h100", 7, 250e3, 226e3, 24e3, 2e6, 0.125),
                    (t, "pdu-1", 2, 31e3, 30.5e3, 0.5e3, 50e3, 0.61),
                    (t, "feed-a", 6, 126e3, 125e3, 1e3, 1e6, 0.125),
                    *((t, r, 1, 30e3, 29e3, 1e3, 0, 0) for r in racks))])
            cur.executemany(
                "INSERT INTO telemetry_rack (time, rack_id, pdu_input_power_w, inlet_air_temp_c, coolant_supply_temp_c,"
                " coolant_return_temp_c, coolant_flow_lpm) VALUES (%s, %s, 30000, 24.5, 18.0, 27.5, 45)",
                [(t, r) for t in times for r in racks])
            cur.executemany(
                "INSERT INTO telemetry_gpu (time, rack_id, node_id, gpu_index, power_w, gpu_temp_c, mem_temp_c,"
                " xid_errors, ecc_sbe_total, ecc_dbe_total) VALUES (%s, %s, %s, %s, 650, %s, 80, 0, 0, 0)",
                [(t, r, f"{r}-n00", g, 86.5 if g == 0 else 70.0) for t in times for r in racks for g in range(2)])
            cur.executemany(
                "INSERT INTO telemetry_batches (rack_id, sample_time, sequence, ce_id, source_topic, source_partition,"
                " source_offset, gpu_rows, ingested_time) VALUES (%s, %s, %s, %s, 'facility.telemetry.v1', 0, %s, 32, %s)",
                [(r, t, i, f"ce-{r}-{i}", i, t + timedelta(seconds=0.4))
                 for i, t in enumerate(times) for r in racks])
            cur.executemany(
                "INSERT INTO cooling_state (time, site_id, entity_id, scope, heat_w, temp_c, power_w, time_to_throttle_s,"
                " source, message) VALUES (%s, 'su-h100', %s, %s, %s, %s, %s, %s, 2, '')",
                [row for t in times for row in (
                    (t, "su1-0000", 1, 30e3, 31.0, None, 420.0),
                    (t, "su1-0001", 1, 29e3, 29.5, None, None),      # not throttling within the horizon
                    (t, "cdu-su1-1", 2, 59e3, 22.0, 1.2e3, None),
                    (t, "su-h100", 6, 62e3, 18.0, 9.5e3, None))])
            cur.executemany(
                "INSERT INTO job_state (time, job_id, status, n_gpus, predicted_step_time_s, measured_step_time_s,"
                " step_time_error_ratio, predicted_tokens_per_s, mfu, power_w, goodput_fraction, energy_j, risk_flags,"
                " message) VALUES (%s, %s, %s, 64, 2.4, 2.5, 1.04, 1.2e5, 0.41, 41e3, 0.93, 1e9, 0, '')",
                [(t, job, status) for t in times for job, status in (("job-1", 2), ("job-2", 2), ("job-0", 5))])
        conn.commit()
    return fresh_database


async def test_every_panel_returns_rows_with_its_columns(schema_with_data: str) -> None:
    found = {(uid, p["id"]): p for uid, p in panels()}
    assert set(found) == set(EXPECTED), ("declare each panel's columns in EXPECTED (and drop removed ones): "
                                         f"new {set(found) - set(EXPECTED)}, gone {set(EXPECTED) - set(found)}")
    end = datetime.now(UTC) + timedelta(seconds=5)
    start = end - timedelta(hours=1)
    with psycopg.connect(schema_with_data) as conn:
        for key, p in sorted(found.items()):
            for target in p["targets"]:
                sql = expand(target["rawSql"], start, end)
                try:
                    cur = conn.execute(sql)
                except psycopg.Error as exc:
                    pytest.fail(f"{key} {p['title']!r}: {exc}\n{sql}")
                columns = [d.name for d in cur.description]
                rows = cur.fetchall()
                assert columns == EXPECTED[key], (key, p["title"])
                assert rows, f"{key} {p['title']!r} returned no rows:\n{sql}"
                for i, name in enumerate(columns):
                    assert any(r[i] is not None for r in rows), f"{key} {p['title']!r}: column {name!r} is all NULL"
                if target["format"] == "time_series":
                    assert columns[0] == "time", f"{key}: a time series starts with its time column"
                    numeric = [i for i, c in enumerate(columns) if c not in ("time", "metric")]
                    assert all(isinstance(r[i], (int, float, Decimal)) or r[i] is None for r in rows for i in numeric), key


def test_panels_read_the_numbers_written(schema_with_data: str) -> None:
    """PUE is facility / IT of the site rows; per-rack power is per rack; time to throttle shows only the
    racks that have one; running jobs are counted once per bucket, finished ones not."""
    by_key = {(uid, p["id"]): p for uid, p in panels()}
    end = datetime.now(UTC) + timedelta(seconds=5)

    def run(key: tuple[str, int]) -> list[tuple]:
        with psycopg.connect(schema_with_data) as conn:
            return conn.execute(expand(by_key[key]["targets"][0]["rawSql"], end - timedelta(hours=1), end)).fetchall()

    assert [round(v, 6) for _, v in run(("twin-site-power", 2))] == [round(250e3 / 226e3, 6)] * 3
    racks = run(("twin-site-power", 5))
    assert sorted({m for _, m, _ in racks}) == ["su1-0000", "su1-0001"] and {v for _, _, v in racks} == {30e3}
    assert {(m, v) for _, m, v in run(("twin-cooling", 5))} == {("su1-0000", 420.0)}
    assert [v for _, v in run(("twin-jobs", 1))] == [2, 2, 2]
    assert {r[0]: r[1] for r in run(("twin-jobs", 6))} == {"job-0": "finished", "job-1": "running", "job-2": "running"}
