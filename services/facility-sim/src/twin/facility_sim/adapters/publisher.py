"""Kafka producer for facility records (aiokafka), plus topic creation from twin.core.topics.

acks=all; idempotence off (not every Kafka-protocol broker, e.g. Tansu, supports idempotent
producers, and duplicates are handled downstream by ingest anyway); lz4 is not a dependency, so no
compression. Topics are created with twin.core.topics_admin.ensure_topics.

A tick's rack records go out with `send_many`: the records of each partition (aiokafka's default
partitioner, the same partition `send` picks for the key) are packed, in order, into record batches of up
to `batch_bytes` and handed to the producer whole (`send_batch`), a partition's batches in order, every
partition's k-th batch in the same produce request. At 49,984 GPUs (1,562 ~4 KiB records a tick) that is
~22 record batches in ~2 produce requests a tick instead of ~400 batches (aiokafka's default 16 KiB
`max_batch_size`, ~4 records each) in ~170 requests (aiokafka keeps one request in flight per broker):
the broker's CPU per tick fell to 0.27x and the simulator skips aiokafka's per-record send path
(bench/README.md "sim_producer", services/facility-sim/README.md). `batch_bytes` stays under the broker's
`message.max.bytes` (`limits.BROKER_MAX_MESSAGE_BYTES`: a record batch is one message to the broker).
batch_bytes=0: one `send` per record (the path before, kept for comparison).

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
from contextlib import contextmanager, nullcontext
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from twin.core import limits
from twin.core.envelope import Headers
from twin.core.kafka import send_span
from twin.core.telemetry import inject_headers, tracing_enabled

Record = tuple[bytes, bytes, Headers]   # key, value, headers

# Bytes of rack records packed into one record batch (aiokafka `max_batch_size`). Half the broker's
# message.max.bytes, as the kit's producers use (twin.core.kafka): a batch is closed before a record would
# overflow it, and a 4 KiB record (a 32-GPU rack) leaves plenty of room.
BATCH_BYTES = limits.BROKER_MAX_MESSAGE_BYTES // 2
MAX_BATCH_BYTES = limits.BROKER_MAX_MESSAGE_BYTES - limits.RECORD_OVERHEAD_BYTES   # a batch's framing stays within


class Publisher(Protocol):
    async def start(self) -> None: ...
    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers) -> asyncio.Future: ...
    async def send_many(self, topic: str, records: list[Record]) -> list[asyncio.Future]: ...
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
    def __init__(self, bootstrap: str, linger_ms: int = 5, batch_bytes: int = BATCH_BYTES) -> None:
        if not 0 <= batch_bytes <= MAX_BATCH_BYTES:
            raise ValueError(f"batch_bytes must be in [0, {MAX_BATCH_BYTES}] (the broker's message.max.bytes less a "
                             f"record's framing budget), got {batch_bytes}")
        self.batch_bytes = batch_bytes
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, client_id="facility-sim", acks="all", enable_idempotence=False,
            linger_ms=linger_ms, compression_type=None, max_request_size=limits.PRODUCER_MAX_REQUEST_BYTES,
            **({"max_batch_size": batch_bytes} if batch_bytes else {}),
        )
        self._partitioner = DefaultPartitioner()
        self._key_partition: dict[tuple[str, tuple[int, ...]], dict[bytes, int]] = {}

    async def start(self) -> None:
        await self._producer.start()

    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers) -> asyncio.Future:
        """Queue one record; the returned future resolves when the broker acknowledged it."""
        if not tracing_enabled():
            return await self._producer.send(topic, value=value, key=key, headers=headers)
        with traced(topic, key, headers):
            return await self._producer.send(topic, value=value, key=key, headers=headers)

    async def send_many(self, topic: str, records: list[Record]) -> list[asyncio.Future]:
        """Queue records in this order (per partition); the futures resolve when the broker acknowledged them."""
        if not self.batch_bytes:
            return [await self.send(topic, key, value, headers) for key, value, headers in records]
        partitions = tuple(sorted(await self._producer.partitions_for(topic)))
        known = self._key_partition.setdefault((topic, partitions), {})
        by_partition: dict[int, list[Record]] = {}
        for rec in records:
            p = known.get(rec[0])
            if p is None:
                p = known[rec[0]] = self._partitioner(rec[0], list(partitions), list(partitions))
            by_partition.setdefault(p, []).append(rec)
        batches = [(p, self._batches(topic, recs)) for p, recs in by_partition.items()]
        # round by round: every partition's first batch goes into the next produce request together
        futures = []
        for k in range(max((len(b) for _, b in batches), default=0)):
            for p, bs in batches:
                if k < len(bs):
                    futures.append(await self._producer.send_batch(bs[k], topic, partition=p))
        return futures

    def _batches(self, topic: str, records: list[Record]) -> list:
        out = [self._producer.create_batch()]
        tracing = tracing_enabled()
        for key, value, headers in records:
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
            if size > limits.PRODUCER_MAX_REQUEST_BYTES:   # what send() refuses
                raise MessageSizeTooLargeError(f"the record for key {key!r} is {size} bytes, above the "
                                               f"maximum request size {limits.PRODUCER_MAX_REQUEST_BYTES}")
            with traced(topic, key, headers) if tracing else nullcontext():
                if out[-1].append(timestamp=None, key=key, value=value, headers=headers) is None:
                    out.append(self._producer.create_batch())   # full: the record opens the next batch
                    if out[-1].append(timestamp=None, key=key, value=value, headers=headers) is None:
                        raise RuntimeError("an empty record batch refused a record")  # pragma: no cover
        for b in out:
            b.close()
        return out

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

    async def send_many(self, topic: str, records: list[Record]) -> list[asyncio.Future]:
        return [await self.send(topic, key, value, headers) for key, value, headers in records]

    async def flush(self) -> None:
        return None

    async def stop(self) -> None:
        return None
