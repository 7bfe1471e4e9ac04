"""e2e tier: the services as real processes (`python -m twin.<service>`) against a real broker and PostgreSQL.

kafka (per test)   a fresh Tansu broker for every test, so the registry's real topic names
                   (facility.telemetry.v1, its .dlq, ...) start empty and counts can be exact.
                   With TWIN_KAFKA_BOOTSTRAP set, that broker is used instead; the real topic names
                   are then shared with anything else on it, so a test whose source topic already
                   holds records is SKIPPED (exact counts would be meaningless). Point it at a
                   throwaway broker to run this tier against real Kafka.
fresh_database     (tests/conftest.py) a new database per test on the session's PostgreSQL.
procs              starts subprocesses with logs in files; every process is killed at teardown and
                   the tail of every log is printed (pytest shows it when the test fails).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from e2e_support import Procs

from twin.core.embedded.kafka import TansuBroker


@pytest.fixture
def kafka() -> Iterator[str]:
    external = os.environ.get("TWIN_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    with TansuBroker() as broker:
        yield broker.bootstrap


@pytest.fixture
def procs(tmp_path, kafka, fresh_database) -> Iterator[Procs]:
    env = dict(os.environ)
    for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "TWIN_KAFKA_BOOTSTRAP", "TWIN_DATABASE_URL"):
        env.pop(k, None)
    env.update({
        "TWIN_KAFKA_BOOTSTRAP": kafka, "TWIN_DATABASE_URL": fresh_database, "TWIN_FACILITY": "dgx-h100-su",
        "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "PYTHONUNBUFFERED": "1",
        "INGEST_SESSION_TIMEOUT_MS": "3000", "INGEST_STATUS_INTERVAL_S": "1", "INGEST_HTTP_PORT": "0",
    })
    ps = Procs(tmp_path, env)
    try:
        yield ps
    finally:
        for p in ps.started:
            p.kill()
        for p in ps.started:
            try:
                p.popen.wait(10)
            except subprocess.TimeoutExpired:
                pass
        print(ps.dump())
