"""Kafka producer for facility records (aiokafka), plus topic creation from twin.core.topics.

acks=all; idempotence off (not every Kafka-protocol broker, e.g. Tansu, supports idempotent
producers, and duplicates are handled downstream by ingest anyway); lz4 is not a dependency, so no
compression. Topics are created with twin.core.topics_admin.ensure_topics.

Tracing (README "Observability"): while some span processor records spans (`tracing_enabled()`), every
record (one rack's tick batch, an equipment batch, a job event) is sent from its own PRODUCER span
"send <topic>" (messaging semantic conventions, as the kit's EventProducer makes them; `send_span`) and
carries that span's W3C `traceparent` (added to the caller's header list, see `traced`), so ingest's "process" span links to it and ingest's
"send telemetry.samples.v1" span continues its trace. The span is a root (the simulator has no input),
so the head sampler (OTEL_TRACES_SAMPLER) decides here. While nothing records spans, a record gets no
span and no traceparent (the per-record cost stays one check).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from aiokafka import AIOKafkaProducer

from twin.core import limits
from twin.core.envelope import Headers
from twin.core.kafka import send_span
from twin.core.telemetry import inject_headers, tracing_enabled


class Publisher(Protocol):
    async def start(self) -> None: ...
    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers) -> asyncio.Future: ...
    async def flush(self) -> None: ...
    async def stop(self) -> None: ...


@contextmanager
def traced(topic: str, key: bytes, headers: Headers) -> Iterator[Headers]:
    """The PRODUCER span "send <topic>" of one record, current inside; its traceparent is added to `headers`
    IN PLACE, so the same headers sent again (the fault injector's duplicate: the same record twice) are the
    same record: no second span, the same traceparent."""
    if any(k == "traceparent" for k, _ in headers):
        yield headers
        return
    ce_id = next((v.decode("utf-8", "replace") for k, v in headers if k == "ce_id"), None)
    with send_span(topic, key.decode("utf-8", "replace"), ce_id):
        headers[:] = inject_headers(headers)
        yield headers


class KafkaPublisher:
    def __init__(self, bootstrap: str, linger_ms: int = 5) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, client_id="facility-sim", acks="all", enable_idempotence=False,
            linger_ms=linger_ms, compression_type=None, max_request_size=limits.PRODUCER_MAX_REQUEST_BYTES,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers) -> asyncio.Future:
        """Queue one record; the returned future resolves when the broker acknowledged it."""
        if not tracing_enabled():
            return await self._producer.send(topic, value=value, key=key, headers=headers)
        with traced(topic, key, headers):
            return await self._producer.send(topic, value=value, key=key, headers=headers)

    async def flush(self) -> None:
        await self._producer.flush()

    async def stop(self) -> None:
        await self._producer.stop()


class MemoryPublisher:
    """In-process publisher for tests and `--dry-run`: keeps (topic, key, value, headers) records."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.records: list[tuple[str, bytes, bytes, Headers]] = []
        self.count = 0

    async def start(self) -> None:
        return None

    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers) -> asyncio.Future:
        self.count += 1
        if tracing_enabled():  # the same span and traceparent as the Kafka publisher
            with traced(topic, key, headers):
                pass
        if self.keep:
            self.records.append((topic, key, value, headers))
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def flush(self) -> None:
        return None

    async def stop(self) -> None:
        return None
