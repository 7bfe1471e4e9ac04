"""Oversized records and DLQ sends that can never succeed (issue 8 item 1), against the real broker.

Before the fix, a record larger than the producer's 1 MiB max_request_size wedged `run_consumer`: its
DLQ copy was refused (MessageSizeTooLargeError) and retried forever, nothing else on the partition
was handled or committed, and stop_event was ignored. Tansu, like a Kafka broker configured with a
larger message.max.bytes, accepts such records from a foreign producer; the tests put them there with
a plain aiokafka producer whose max_request_size is raised.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from twin.core import limits, topics
from twin.core.envelope import header
from twin.core.kafka import BatchResult, ConsumerStats, EventProducer, Record, run_consumer
from twin.core.testing.kafka import TansuBroker
from twin.core.topics_admin import ensure_topics
from twin.telemetry.v1 import telemetry_pb2 as pb

pytestmark = pytest.mark.timeout(240)

BIG_VALID = 1_100_000  # a well-formed RackTelemetryBatch of 1.1 MB
BIG_GARBAGE = 5_000_000  # 5 MB of bytes that are not even protobuf
STOP_BOUND_S = 30.0  # liveness bound (a wedged consumer never returns), not a performance threshold


def one_partition_topic():
    # One partition: everything after an oversized record queues behind it.
    return replace(topics.FACILITY_TELEMETRY, name=f"test.limits.{uuid.uuid4().hex[:10]}", partitions=1)


def batch(seq: int, site: str = "s") -> pb.RackTelemetryBatch:
    return pb.RackTelemetryBatch(site_id=site, rack_id=f"rack-{seq % 3}", sequence=seq)


class ForeignProducer:
    """A producer outside the twin whose max_request_size is larger than the twin's limits."""

    def __init__(self, bootstrap: str, envelope: EventProducer) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=16 * limits.MIB)
        self._envelope = envelope

    async def __aenter__(self) -> ForeignProducer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send(self, topic, key: str, value: bytes) -> int:
        headers = self._envelope.headers_for(topic)
        md = await self._producer.send_and_wait(topic.name, value, key=key.encode(), headers=headers)
        return md.offset


class Store:
    """The handler: stores every good record in PostgreSQL, idempotently (like ingest)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def setup(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute("CREATE TABLE batches (rack_id text, sequence int, PRIMARY KEY (rack_id, sequence))")

    async def __call__(self, records: list[Record]) -> BatchResult:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO batches VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [(r.message.rack_id, r.message.sequence) for r in records])
        return BatchResult()

    async def stored(self) -> list[int]:
        async with await psycopg.AsyncConnection.connect(self.url) as conn:
            rows = await (await conn.execute("SELECT sequence FROM batches ORDER BY sequence")).fetchall()
        return [r[0] for r in rows]


async def read_all(bootstrap: str, name: str, expected: int, timeout_s: float = 20.0):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=16 * limits.MIB, fetch_max_bytes=64 * limits.MIB)
    await consumer.start()
    try:
        tp = TopicPartition(name, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        out = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(out) < expected and asyncio.get_running_loop().time() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                out += recs
        for recs in (await consumer.getmany(timeout_ms=500)).values():
            out += recs
        return out
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str, name: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(name, 0))
    finally:
        await consumer.stop()


async def wait_for(predicate, task: asyncio.Task, what: str, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if task.done():
            task.result()
            raise AssertionError(f"consumer ended before {what}")
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_limits_are_consistent():
    limits.check()
    assert limits.RECORD_MAX_BYTES < BIG_VALID < BIG_GARBAGE
    assert limits.PRODUCER_MAX_REQUEST_BYTES <= limits.BROKER_MAX_MESSAGE_BYTES
    assert limits.HTTP_MAX_BODY_BYTES <= limits.RECORD_MAX_BYTES
    assert limits.DLQ_REFERENCE_MAX_BYTES < limits.PRODUCER_MAX_REQUEST_BYTES
    assert EventProducer("127.0.0.1:1", source="t").max_request_size == limits.PRODUCER_MAX_REQUEST_BYTES


async def test_oversized_records_are_dead_lettered_as_references(kafka_bootstrap, fresh_database):
    t = one_partition_topic()
    await ensure_topics(kafka_bootstrap, [t])
    store = Store(fresh_database)
    await store.setup()
    group = f"g-{uuid.uuid4().hex[:8]}"
    big_valid = batch(1000, site="x" * BIG_VALID).SerializeToString()
    big_garbage = bytes(range(256)) * (BIG_GARBAGE // 256)
    async with EventProducer(kafka_bootstrap, source="tests") as producer, \
            ForeignProducer(kafka_bootstrap, producer) as foreign:
        good_offsets = {}
        big_offsets = {}
        for seq in range(12):
            if seq == 4:
                big_offsets[await foreign.send(t, "rack-1", big_valid)] = big_valid
            if seq == 8:
                big_offsets[await foreign.send(t, "rack-2", big_garbage)] = big_garbage
            good_offsets[(await producer.send(t, f"rack-{seq % 3}", batch(seq))).offset] = seq
        end = max(good_offsets) + 1

        stats = ConsumerStats()
        stop = asyncio.Event()
        task = asyncio.create_task(run_consumer(kafka_bootstrap, group, t, store, dlq_producer=producer,
                                                stop_event=stop, stats=stats, backoff_s=0.01))
        try:
            await wait_for(lambda: stats.handled == 12 and stats.dlq_sent == 2 and stats.consumed == 14
                           and stats.commits > 0, task, "12 stored, 2 dead-lettered")
        finally:
            stop.set()
            await asyncio.wait_for(task, STOP_BOUND_S)  # it stops; a wedged consumer never would

    assert await store.stored() == list(range(12))
    assert stats.dlq_references == 2 and stats.dlq_failed == 0
    assert await committed(kafka_bootstrap, group, t.name) == end

    dlq = await read_all(kafka_bootstrap, t.dlq, expected=2)
    assert len(dlq) == 2
    for rec in dlq:
        offset = int(header(rec.headers, "dlq_offset"))
        original = big_offsets[offset]
        reason = header(rec.headers, "dlq_reason").decode()
        assert reason.startswith("size: ") and str(len(original)) in reason
        assert header(rec.headers, "dlq_source_topic") == t.name.encode()
        assert header(rec.headers, "dlq_partition") == b"0"
        assert header(rec.headers, "dlq_original_size") == str(len(original)).encode()
        assert header(rec.headers, "dlq_payload") == b"prefix"
        assert header(rec.headers, "ce_type") is not None  # the original (small) headers are kept
        assert rec.value == original[:limits.DLQ_PAYLOAD_PREFIX_BYTES]


async def test_dlq_send_that_can_never_succeed_is_logged_and_does_not_block(kafka_bootstrap, caplog):
    t = one_partition_topic()
    await ensure_topics(kafka_bootstrap, [t])
    group = f"g-{uuid.uuid4().hex[:8]}"
    # A DLQ producer that refuses anything above 2 KB: even the reference of a 100 KB record
    # (64 KiB prefix) can never be sent. The loop must say so and move on.
    handled: list[int] = []

    async def collect(records: list[Record]) -> BatchResult:
        handled.extend(r.message.sequence for r in records)
        return BatchResult()

    bad_value = b"\xff" * 100_000  # not protobuf: a decode rejection
    async with EventProducer(kafka_bootstrap, source="tests") as producer, \
            EventProducer(kafka_bootstrap, source="tests-dlq", max_request_size=2000) as tiny_dlq:
        for seq in range(3):
            await producer.send(t, "rack-0", batch(seq))
        bad_offset = (await producer.send_raw(t.name, b"rack-0", bad_value, producer.headers_for(t))).offset
        for seq in range(3, 6):
            await producer.send(t, "rack-0", batch(seq))

        stats = ConsumerStats()
        stop = asyncio.Event()
        with caplog.at_level(logging.ERROR, logger="twin.core.kafka"):
            task = asyncio.create_task(run_consumer(kafka_bootstrap, group, t, collect, dlq_producer=tiny_dlq,
                                                    stop_event=stop, stats=stats, backoff_s=0.01))
            try:
                await wait_for(lambda: len(handled) == 6 and stats.dlq_failed == 1 and stats.consumed == 7
                               and stats.commits > 0, task, "6 handled, 1 DLQ failure")
            finally:
                stop.set()
                await asyncio.wait_for(task, STOP_BOUND_S)

    assert sorted(handled) == list(range(6))
    assert stats.dlq_sent == 0
    assert await committed(kafka_bootstrap, group, t.name) == bad_offset + 4
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"{t.name}[0]@{bad_offset}" in m and "100000" in m and "decode" in m for m in errors), errors


async def test_retriable_dlq_failure_stops_on_stop_event_without_commit(kafka_bootstrap):
    t = one_partition_topic()
    await ensure_topics(kafka_bootstrap, [t])
    group = f"g-{uuid.uuid4().hex[:8]}"
    handled: list[int] = []

    async def collect(records: list[Record]) -> BatchResult:
        handled.extend(r.message.sequence for r in records)
        return BatchResult()

    dead = TansuBroker().start()  # the DLQ producer's broker, taken away below: every send is retriable
    dead_producer = EventProducer(dead.bootstrap, source="tests-dlq", request_timeout_ms=60_000)
    await dead_producer.start()
    try:
        async with EventProducer(kafka_bootstrap, source="tests") as producer:
            for seq in range(3):
                await producer.send(t, "rack-0", batch(seq))
            stats = ConsumerStats()
            stop = asyncio.Event()
            task = asyncio.create_task(run_consumer(kafka_bootstrap, group, t, collect, dlq_producer=dead_producer,
                                                    stop_event=stop, stats=stats, backoff_s=0.01))
            try:
                await wait_for(lambda: len(handled) == 3 and stats.commits > 0, task, "3 handled")
                dead.stop()
                bad_offset = (await producer.send_raw(t.name, b"rack-0", b"\xff-not-protobuf",
                                                      producer.headers_for(t))).offset
                await wait_for(lambda: stats.consumed == 4, task, "the bad record polled")
                await asyncio.sleep(1.0)  # the DLQ send is under way (and cannot succeed)
                assert stats.dlq_sent == 0
            finally:
                stop.set()
                await asyncio.wait_for(task, STOP_BOUND_S)  # stops although the DLQ is unreachable
            assert await committed(kafka_bootstrap, group, t.name) == bad_offset  # the bad one is not

            # A consumer with a reachable DLQ picks the record up again and dead-letters it.
            again = ConsumerStats()
            stop2 = asyncio.Event()
            task2 = asyncio.create_task(run_consumer(kafka_bootstrap, group, t, collect, dlq_producer=producer,
                                                     stop_event=stop2, stats=again, backoff_s=0.01))
            try:
                await wait_for(lambda: again.dlq_sent == 1 and again.commits > 0, task2, "redelivery")
            finally:
                stop2.set()
                await asyncio.wait_for(task2, STOP_BOUND_S)
        assert await committed(kafka_bootstrap, group, t.name) == bad_offset + 1
        dlq = await read_all(kafka_bootstrap, t.dlq, expected=1)
        assert [int(header(r.headers, "dlq_offset")) for r in dlq] == [bad_offset]
        assert header(dlq[0].headers, "dlq_reason").startswith(b"decode: ")
        assert dlq[0].value == b"\xff-not-protobuf"
    finally:
        dead.stop()
        try:
            await asyncio.wait_for(dead_producer.stop(), 10)
        except (TimeoutError, Exception):  # noqa: BLE001 - its broker is gone; nothing to flush to
            pass


async def test_stop_during_transient_handler_failures_returns_without_commit(kafka_bootstrap):
    # The database is away (every handler call fails with a transient error): a SIGTERM (stop_event)
    # must end the loop cleanly, without committing, so the records are redelivered later.
    t = one_partition_topic()
    await ensure_topics(kafka_bootstrap, [t])
    group = f"g-{uuid.uuid4().hex[:8]}"
    calls: list[int] = []

    async def database_away(records: list[Record]) -> BatchResult:
        calls.append(len(records))
        raise ConnectionError("database unreachable")

    async with EventProducer(kafka_bootstrap, source="tests") as producer:
        for seq in range(3):
            await producer.send(t, "rack-0", batch(seq))
        stats = ConsumerStats()
        stop = asyncio.Event()
        task = asyncio.create_task(run_consumer(kafka_bootstrap, group, t, database_away, dlq_producer=producer,
                                                stop_event=stop, stats=stats, backoff_s=0.01, max_backoff_s=0.5))
        try:
            await wait_for(lambda: len(calls) >= 3, task, "three failed attempts")
        finally:
            stop.set()
            returned = await asyncio.wait_for(task, STOP_BOUND_S)  # returns; does not raise
    assert returned is stats and stats.commits == 0 and stats.dlq_sent == 0
    assert await committed(kafka_bootstrap, group, t.name) is None
