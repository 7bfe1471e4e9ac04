"""deploy/grafana/ against docker-compose.yml and the services' migrations (no database, no Grafana needed).

Dashboards use the provisioned data source (by uid), every panel is raw SQL over a table or view some
service's migrations create (a panel over a table no migration creates is an error: such panels
are left out until the table exists, not faked), and compose mounts the provisioning where Grafana reads it.
tests/integration/test_grafana_panels_sql.py runs every panel's SQL against the real schema.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy/grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
DATASOURCES = yaml.safe_load((GRAFANA / "provisioning/datasources/timescaledb.yaml").read_text())["datasources"]
PROVIDERS = yaml.safe_load((GRAFANA / "provisioning/dashboards/twin.yaml").read_text())["providers"]


def _panels(dash: dict) -> list[dict]:
    out, stack = [], list(dash["panels"])
    while stack:
        p = stack.pop(0)
        stack += p.get("panels", [])
        if p.get("type") != "row":
            out.append(p)
    return out


def _migration_relations() -> set[str]:
    names: set[str] = set()
    for path in ROOT.glob("services/*/src/twin/*/migrations/*.sql"):
        text = re.sub(r"--[^\n]*", "", path.read_text())
        names |= set(re.findall(r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?(?:TABLE|VIEW)\s+"
                                r"(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", text, re.I))
    return names


def test_dashboards_exist_with_unique_uids_and_panel_ids():
    assert {p.name for p in DASHBOARDS} >= {"site-power.json", "rack-thermal.json", "ingest-health.json",
                                            "cooling.json", "jobs.json"}
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))
    for path in DASHBOARDS:
        ids = [p["id"] for p in _panels(json.loads(path.read_text()))]
        assert ids and len(ids) == len(set(ids)), path.name


def test_every_panel_is_raw_sql_on_the_provisioned_data_source():
    (ds,) = DATASOURCES
    for path in DASHBOARDS:
        for p in _panels(json.loads(path.read_text())):
            assert p["datasource"] == {"type": ds["type"], "uid": ds["uid"]}, (path.name, p["title"])
            assert p["targets"], (path.name, p["title"])
            for t in p["targets"]:
                assert t["datasource"]["uid"] == ds["uid"] and t["rawQuery"] is True and t["rawSql"].strip()
                assert t["format"] in ("time_series", "table"), (path.name, p["title"])


def test_panels_read_only_tables_the_migrations_create():
    known = _migration_relations()
    assert {"power_state", "telemetry_gpu", "telemetry_rack", "telemetry_batches", "cooling_state", "job_state"} <= known
    for path in DASHBOARDS:
        for p in _panels(json.loads(path.read_text())):
            for t in p["targets"]:
                tables = set(re.findall(r"(?<!epoch )\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)", t["rawSql"], re.I))
                assert tables and tables <= known, (path.name, p["title"], tables - known)


def test_data_source_points_at_the_compose_database():
    (ds,) = DATASOURCES
    db = COMPOSE["timescaledb"]["environment"]
    host, port = ds["url"].split(":")
    assert host == "timescaledb" and port == "5432"
    assert ds["jsonData"]["database"] == db["POSTGRES_DB"] and ds["user"] == db["POSTGRES_USER"]
    var = re.fullmatch(r"\$\{(\w+)\}", ds["secureJsonData"]["password"]).group(1)
    assert str(COMPOSE["grafana"]["environment"][var]) == db["POSTGRES_PASSWORD"]


def test_compose_runs_grafana_with_the_provisioning_mounted():
    g = COMPOSE["grafana"]
    assert g["image"].startswith("grafana/grafana-oss:") and "latest" not in g["image"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in g["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    (provider,) = PROVIDERS
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    home = g["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/") and (GRAFANA / "dashboards" / Path(home).name).exists()
    assert g["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    assert "3000:3000" in g["ports"] and g["healthcheck"]["test"]
