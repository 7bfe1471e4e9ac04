"""The integration tier again, on real Apache Kafka and TimescaleDB started by testcontainers.

Runs where a Docker engine answers; elsewhere every test here is skipped with the reason. The
integration tests read TWIN_KAFKA_BOOTSTRAP / TWIN_DATABASE_URL (tests/conftest.py), so this tier
points them at the containers and runs them unchanged in a subprocess, then checks what only
TimescaleDB can show: migrations take the `.timescale.sql` path and telemetry tables are hypertables.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KAFKA_IMAGE = "apache/kafka:3.9.0"
TIMESCALE_IMAGE = "timescale/timescaledb:latest-pg16"


def _docker_unavailable_reason() -> str | None:
    try:
        import docker
    except ImportError as exc:
        return f"docker SDK not importable: {exc}"
    try:
        docker.from_env(timeout=3).ping()
    except Exception as exc:  # any failure to reach the engine means: no engine here
        return f"no Docker engine reachable ({exc.__class__.__name__}: {str(exc)[:120]})"
    return None


REASON = _docker_unavailable_reason()
pytestmark = [pytest.mark.containers, pytest.mark.skipif(REASON is not None, reason=REASON or "")]


@pytest.fixture(scope="module")
def kafka_container():
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@pytest.fixture(scope="module")
def timescale_url():
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer(TIMESCALE_IMAGE, username="postgres", password="postgres", dbname="twin") as pg:
        url = pg.get_connection_url(driver=None)
        yield url


def test_integration_tier_passes_on_apache_kafka_and_timescaledb(kafka_container, timescale_url):
    env = dict(os.environ, TWIN_KAFKA_BOOTSTRAP=kafka_container, TWIN_DATABASE_URL=timescale_url)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", str(ROOT / "tests" / "integration")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


async def test_ingest_tables_are_hypertables_on_timescaledb(timescale_url):
    from twin.core.db import apply_migrations, open_pool, timescale_available

    pool = await open_pool(timescale_url)
    try:
        async with pool.connection() as conn:
            assert await timescale_available(conn)
        applied = await apply_migrations(pool, "ingest", ROOT / "services" / "ingest" / "migrations")
        assert any(name.endswith(".timescale.sql") for name in applied), applied
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
            names = {row[0] for row in await cur.fetchall()}
        # telemetry_gpu and telemetry_link: views (009, 011) over these
        assert {"telemetry_gpu_node", "telemetry_rack", "telemetry_link_rack"} <= names
    finally:
        await pool.close()
