"""twin.core.kafka pipelined mode against the real broker (Tansu) and PostgreSQL: a handler with
`prepare` (CPU) and `write` (I/O) phases has poll N+1 prepared while write N runs, and offsets are
still committed in order, each only after its write (and DLQ acks) succeeded.

The committed offset is read from the broker (a second consumer of the same group that never joins)
at the start of every write, so the assertions see what a restarted consumer would see.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import replace

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from twin.core import topics
from twin.core.envelope import header
from twin.core.kafka import BatchResult, ConsumerStats, EventProducer, Record, pipelined, run_consumer
from twin.core.topics_admin import ensure_topics
from twin.telemetry.v1 import telemetry_pb2 as pb

pytestmark = pytest.mark.timeout(180)


def small_topic(partitions: int = 1):
    return replace(topics.FACILITY_TELEMETRY, name=f"test.pipe.{uuid.uuid4().hex[:10]}", partitions=partitions)


def batch(rack: str, seq: int) -> pb.RackTelemetryBatch:
    return pb.RackTelemetryBatch(rack_id=rack, sequence=seq)


class Committed:
    """The group's committed offset of one partition, as the broker has it."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        self.topic = topic

    async def __aenter__(self) -> Committed:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def __call__(self, partition: int = 0) -> int | None:
        return await self.consumer.committed(TopicPartition(self.topic, partition))


class TwoPhase:
    """A pipelined handler: prepare copies the records, write sleeps (the 'database') and records them."""

    pipeline = True

    def __init__(self, committed: Committed | None = None, *, delay_s: float = 0.3, fail_once: set[int] = frozenset(),
                 poison: int | None = None) -> None:
        self.committed, self.delay_s = committed, delay_s
        self.fail_once, self.poison = set(fail_once), poison
        self.events: list[tuple] = []      # ("prepare", first offset) / ("write", first, committed) / ("written", first)
        self.prepared: Counter[int] = Counter()
        self.written: list[int] = []

    def prepare(self, records: list[Record]) -> list[Record]:
        self.events.append(("prepare", records[0].offset))
        self.prepared[records[0].offset] += 1
        return list(records)

    async def write(self, records: list[Record]) -> BatchResult:
        first = records[0].offset
        committed = await self.committed() if self.committed is not None else None
        self.events.append(("write", first, committed))
        await asyncio.sleep(self.delay_s)
        if first in self.fail_once:
            self.fail_once.discard(first)
            raise ValueError(f"write of the batch at offset {first} failed (once)")
        if self.poison is not None and any(r.message.sequence == self.poison for r in records):
            raise ValueError(f"poisoned sequence {self.poison}")
        self.written += [r.offset for r in records]
        self.events.append(("written", first))
        return BatchResult()

    async def __call__(self, records: list[Record]) -> BatchResult:
        return await self.write(self.prepare(records))


async def run_until(bootstrap, group, topic, handler, producer, done, *, timeout_s=60.0, **kw) -> ConsumerStats:
    stop = asyncio.Event()
    stats = ConsumerStats()
    task = asyncio.create_task(run_consumer(bootstrap, group, topic, handler, dlq_producer=producer, stop_event=stop,
                                            stats=stats, backoff_s=0.01, **kw))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while not done(stats):
            if task.done():
                task.result()
            assert loop.time() < deadline, f"timed out: {stats}"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return stats


def test_pipelined_needs_both_phases_and_the_flag():
    class Plain:
        async def __call__(self, records): return BatchResult()

    class Off(TwoPhase):
        pipeline = False

    assert pipelined(TwoPhase())
    assert not pipelined(Plain())
    assert not pipelined(Off())


async def test_next_poll_is_prepared_during_the_write_and_offsets_commit_in_order_after_it(kafka_bootstrap):
    t = small_topic()
    await ensure_topics(kafka_bootstrap, [t])
    group = f"g-{uuid.uuid4().hex[:8]}"
    async with EventProducer(kafka_bootstrap, source="tests") as producer, \
            Committed(kafka_bootstrap, group, t.name) as committed:
        for i in range(8):
            await producer.send(t, "r", batch("r", i))
        handler = TwoPhase(committed)
        stats = await run_until(kafka_bootstrap, group, t, handler, producer,
                                lambda s: s.commits == 4, max_records=2)
        assert await committed() == 8
    assert handler.written == list(range(8))          # each record written once, in order
    writes = [e for e in handler.events if e[0] == "write"]
    assert [e[1] for e in writes] == [0, 2, 4, 6]
    # when write N starts, everything before N is committed and N is not (although N was prepared earlier)
    assert [e[2] for e in writes] == [None, 2, 4, 6]
    # poll N+1 was prepared before write N ended, for every N but the last
    order = handler.events
    for first in (0, 2, 4):
        assert order.index(("prepare", first + 2)) < order.index(("written", first)), order
    assert stats.discarded == 0 and stats.handled == 8


async def test_a_failing_write_does_not_commit_the_prepared_next_poll(kafka_bootstrap):
    t = small_topic()
    await ensure_topics(kafka_bootstrap, [t])
    group = f"g-{uuid.uuid4().hex[:8]}"
    async with EventProducer(kafka_bootstrap, source="tests") as producer, \
            Committed(kafka_bootstrap, group, t.name) as committed:
        for i in range(8):
            await producer.send(t, "r", batch("r", i))
        handler = TwoPhase(committed, fail_once={2})
        stats = await run_until(kafka_bootstrap, group, t, handler, producer,
                                lambda s: s.handled == 8 and s.commits >= 4, max_records=2)
        assert await committed() == 8
    order = handler.events
    failed_at = order.index(("write", 2, 2))
    # poll N+1 (offset 4) was prepared before the failing write N was retried ...
    assert order.index(("prepare", 4)) < order.index(("write", 2, 2), failed_at + 1), order
    # ... then discarded: N was retried on the plain path with N+1 still uncommitted (committed == 2),
    # and N+1 was polled and prepared again, written only after N was committed
    writes = [e for e in order if e[0] == "write"]
    assert writes == [("write", 0, None), ("write", 2, 2), ("write", 2, 2), ("write", 4, 4), ("write", 6, 6)]
    assert handler.prepared[4] == 2
    assert handler.written == list(range(8))  # nothing lost, nothing written twice
    assert stats.discarded == 1 and stats.retries == 1 and stats.dlq_sent == 0


async def test_poison_record_is_isolated_on_the_plain_path(kafka_bootstrap):
    t = small_topic()
    await ensure_topics(kafka_bootstrap, [t])
    group = f"g-{uuid.uuid4().hex[:8]}"
    async with EventProducer(kafka_bootstrap, source="tests") as producer:
        for i in range(8):
            await producer.send(t, "r", batch("r", i))
        handler = TwoPhase(delay_s=0.05, poison=3)
        stats = await run_until(kafka_bootstrap, group, t, handler, producer,
                                lambda s: s.handled == 7 and s.dlq_sent == 1, max_records=4, max_attempts=2)
    assert sorted(handler.written) == [0, 1, 2, 4, 5, 6, 7]
    assert len(handler.written) == 7
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(t.dlq, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()
    dlq = [r for recs in got.values() for r in recs]
    assert len(dlq) == 1
    assert header(dlq[0].headers, "dlq_reason") == b"handler: ValueError: poisoned sequence 3"
    assert header(dlq[0].headers, "dlq_offset") == b"3"
    assert stats.discarded >= 1


class Ledger(TwoPhase):
    """Writes each record's (partition, offset) to PostgreSQL exactly once (ON CONFLICT DO NOTHING)."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(delay_s=0.0)
        self.url, self.name = url, name
        self.again = 0   # records found already in the ledger (redelivered after the rebalance)

    async def write(self, records: list[Record]) -> BatchResult:
        async with await psycopg.AsyncConnection.connect(self.url) as conn, conn.transaction():
            await asyncio.sleep(0.3)  # the transaction is open while the next poll is prepared
            cur = await conn.execute(
                "INSERT INTO ledger (part, off, writer) SELECT p, o, %s FROM unnest(%s::int[], %s::bigint[]) AS u(p, o) "
                "ON CONFLICT DO NOTHING", (self.name, [r.partition for r in records], [r.offset for r in records]))
            self.again += len(records) - cur.rowcount
        self.written += [r.offset for r in records]
        return BatchResult()


async def test_rebalance_mid_pipeline_loses_nothing_and_the_ledger_holds(kafka_bootstrap, fresh_database):
    t = small_topic(partitions=3)
    await ensure_topics(kafka_bootstrap, [t])
    group = f"g-{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(fresh_database, autocommit=True) as conn:
        await conn.execute("CREATE TABLE ledger (part int, off bigint, writer text, PRIMARY KEY (part, off))")
    total = 90
    a, b = Ledger(fresh_database, "a"), Ledger(fresh_database, "b")
    stop = asyncio.Event()
    async with EventProducer(kafka_bootstrap, source="tests") as producer:
        for i in range(total):
            await producer.send(t, f"k{i % 9}", batch(f"k{i % 9}", i))
        stats_a, stats_b = ConsumerStats(), ConsumerStats()
        task_a = asyncio.create_task(run_consumer(kafka_bootstrap, group, t, a, dlq_producer=producer, stop_event=stop,
                                                  stats=stats_a, max_records=3, backoff_s=0.01))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while len(a.written) < 15:  # a is mid-stream (writing, next poll prepared) when b joins
            assert loop.time() < deadline and not task_a.done(), stats_a
            await asyncio.sleep(0.01)
        task_b = asyncio.create_task(run_consumer(kafka_bootstrap, group, t, b, dlq_producer=producer, stop_event=stop,
                                                  stats=stats_b, max_records=3, backoff_s=0.01))
        try:
            while True:
                async with await psycopg.AsyncConnection.connect(fresh_database) as conn:
                    rows = (await (await conn.execute("SELECT count(*) FROM ledger")).fetchone())[0]
                if rows >= total and b.written:
                    break
                assert loop.time() < deadline + 60, (rows, stats_a, stats_b)
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # let the last commits land
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(task_a, task_b), 30)
    async with await psycopg.AsyncConnection.connect(fresh_database) as conn:
        cur = await conn.execute("SELECT part, count(*), min(off), max(off), count(DISTINCT writer) FROM ledger GROUP BY part")
        per_part = {p: (n, lo, hi) for p, n, lo, hi, _ in await cur.fetchall()}
    # nothing lost: every offset of every partition is in the ledger once (the primary key), 0..n-1 without gaps
    assert sum(n for n, _, _ in per_part.values()) == total
    assert all(lo == 0 and hi == n - 1 for n, lo, hi in per_part.values()), per_part
    assert a.written and b.written        # the rebalance really split the partitions
    # nothing written twice but what at-least-once redelivers; those the ledger caught
    assert len(a.written) + len(b.written) == total + a.again + b.again
    async with Committed(kafka_bootstrap, group, t.name) as committed:
        ends = {p: per_part[p][0] for p in per_part}
        for p, n in ends.items():
            assert await committed(p) == n
