"""The ingest service's integration tests (test_ingest_pipeline.py: valid/invalid/duplicate records, poison
record isolation, restart after a crash without duplicates) run again with INGEST_PIPELINE on: the
handler's prepare/write phases overlapped by twin.core.kafka's pipelined loop, real broker and database."""

from __future__ import annotations

import uuid

import pytest
from test_ingest_pipeline import (  # noqa: F401 - collected here with the pipelined `env` below
    test_poison_record_is_isolated_and_later_records_flow,
    test_restart_after_crash_stores_nothing_twice,
    test_valid_invalid_and_duplicate_records,
)

from twin.core import topics
from twin.core.kafka import pipelined
from twin.ingest.adapters.stream import IngestHandler
from twin.ingest.app import IngestConfig

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def env(kafka_bootstrap, fresh_database, unique_topic):
    # test_ingest_pipeline.env with pipeline=True
    return IngestConfig(kafka_bootstrap=kafka_bootstrap, database_url=fresh_database, facility="dgx-h100-su",
                        group_id=f"ingest-{uuid.uuid4().hex[:8]}", source_topic=unique_topic(topics.FACILITY_TELEMETRY),
                        samples_topic=unique_topic(topics.TELEMETRY_SAMPLES), max_records=50, status_interval_s=5.0,
                        pipeline=True)


def test_ingest_handler_opts_in_only_when_asked():
    args = (None, None, None, None, None)
    assert pipelined(IngestHandler(*args, pipeline=True))
    assert not pipelined(IngestHandler(*args))
