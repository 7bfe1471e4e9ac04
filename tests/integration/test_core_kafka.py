"""twin.core.kafka / topics_admin / faust_app against the real broker (Tansu, or TWIN_KAFKA_BOOTSTRAP).

Every test uses its own topic names and group ids, so the shared session broker needs no cleanup.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from twin.core import topics
from twin.core.envelope import Envelope, header
from twin.core.kafka import BatchResult, ConsumerStats, EventProducer, Record, Rejected, run_consumer
from twin.core.telemetry import setup_telemetry
from twin.core.topics_admin import ensure_topics
from twin.telemetry.v1 import telemetry_pb2 as pb

pytestmark = pytest.mark.timeout(120)


def small_topic(partitions: int = 3):
    return replace(topics.FACILITY_TELEMETRY, name=f"test.core.{uuid.uuid4().hex[:10]}", partitions=partitions)


def batch(rack: str, seq: int) -> pb.RackTelemetryBatch:
    return pb.RackTelemetryBatch(site_id="s", rack_id=rack, sequence=seq)


async def read_topic(bootstrap: str, name: str, partitions: int, expected: int, timeout_s: float = 20.0):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(out) < expected and loop.time() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                out += recs
        await asyncio.sleep(0.3)
        for recs in (await consumer.getmany(timeout_ms=300)).values():
            out += recs
        return out
    finally:
        await consumer.stop()


class Collector:
    def __init__(self, fail=None) -> None:
        self.seen: list[Record] = []
        self.calls: list[int] = []
        self.fail = fail

    async def __call__(self, records: list[Record]) -> BatchResult:
        self.calls.append(len(records))
        if self.fail is not None:
            self.fail(records)
        self.seen += records
        return BatchResult()


async def consume_until(bootstrap, group, topic, handler, producer, done, *, stats=None, timeout_s=30.0, **kw):
    stop = asyncio.Event()
    stats = stats or ConsumerStats()
    task = asyncio.create_task(run_consumer(bootstrap, group, topic, handler, dlq_producer=producer,
                                            stop_event=stop, stats=stats, backoff_s=0.01, **kw))
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
        await asyncio.wait_for(task, 20)
    return stats


async def test_ensure_topics_creates_missing_topics_once(kafka_bootstrap):
    t = small_topic(4)
    created = await ensure_topics(kafka_bootstrap, [t])
    assert sorted(created) == sorted([t.name, t.dlq])
    assert await ensure_topics(kafka_bootstrap, [t]) == []


async def test_produce_consume_commit_with_envelope_and_trace(kafka_bootstrap):
    setup_telemetry("twin-tests")  # SDK providers (no exporter) unless another test set them first
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))

    t = small_topic()
    await ensure_topics(kafka_bootstrap, [t])
    group = f"g-{uuid.uuid4().hex[:8]}"
    async with EventProducer(kafka_bootstrap, source="tests") as producer:
        with trace.get_tracer("tests").start_as_current_span("produce") as parent:
            for i in range(10):
                await producer.send(t, f"rack-{i % 3}", batch(f"rack-{i % 3}", i), ce_id=f"id-{i}")
        collector = Collector()
        stats = await consume_until(kafka_bootstrap, group, t, collector, producer,
                                    lambda s: s.handled == 10 and s.commits > 0)
        assert stats.dlq_sent == 0
        got = sorted(collector.seen, key=lambda r: r.message.sequence)
        assert [r.message.sequence for r in got] == list(range(10))
        assert [r.envelope.id for r in got] == [f"id-{i}" for i in range(10)]
        assert all(r.envelope.type == "twin.telemetry.v1.RackTelemetryBatch" and r.envelope.source == "tests"
                   for r in got)
        assert all(r.key == r.message.rack_id for r in got)
        trace_id = f"{parent.get_span_context().trace_id:032x}"
        assert all(header(r.headers, "traceparent").decode().split("-")[1] == trace_id for r in got)
        assert header(got[0].headers, "content-type") == b"application/protobuf"
        # per-key order inside a partition
        for rack in ("rack-0", "rack-1", "rack-2"):
            seqs = [r.message.sequence for r in collector.seen if r.key == rack]
            assert seqs == sorted(seqs)

        batch_spans = [s for s in spans.get_finished_spans() if s.name == f"process {t.name}"]
        assert batch_spans and all(s.kind == trace.SpanKind.CONSUMER for s in batch_spans)
        linked = {link.context.trace_id for s in batch_spans for link in s.links}
        assert parent.get_span_context().trace_id in linked

        # offsets were committed: the same group sees nothing new
        again = Collector()
        stop = asyncio.Event()
        task = asyncio.create_task(run_consumer(kafka_bootstrap, group, t, again, dlq_producer=producer,
                                                stop_event=stop))
        await asyncio.sleep(5)  # long enough to join the group (~3 s on Tansu) and poll
        stop.set()
        await asyncio.wait_for(task, 20)
        assert again.seen == []


async def test_undecodable_and_poison_records_go_to_dlq_without_blocking(kafka_bootstrap):
    t = small_topic(partitions=1)  # one partition: later records queue behind the bad ones
    await ensure_topics(kafka_bootstrap, [t])

    def fail_on_poison(records):
        if any(r.message.sequence == 3 for r in records):
            raise ValueError("poisoned sequence 3")

    async with EventProducer(kafka_bootstrap, source="tests") as producer:
        await producer.send(t, "r", batch("r", 1))
        good_headers = producer.headers_for(t)
        await producer.send_raw(t.name, b"r", b"\x0a\xff\xff garbage", good_headers)  # offset 1
        await producer.send_raw(t.name, b"r", batch("r", 2).SerializeToString(), [])  # offset 2: no envelope
        wrong = producer.headers_for(topics.FABRIC_EVENTS)  # offset 3: ce_type of another topic
        await producer.send_raw(t.name, b"r", batch("r", 9).SerializeToString(), wrong)
        for seq in (3, 4, 5):  # offsets 4, 5, 6
            await producer.send(t, "r", batch("r", seq))

        collector = Collector(fail=fail_on_poison)
        stats = await consume_until(kafka_bootstrap, f"g-{uuid.uuid4().hex[:8]}", t, collector, producer,
                                    lambda s: s.dlq_sent == 4 and s.handled == 3, max_attempts=2)
        assert sorted(r.message.sequence for r in collector.seen) == [1, 4, 5]
        assert stats.retries >= 2

    dlq = await read_topic(kafka_bootstrap, t.dlq, t.partitions, expected=4)
    by_offset = {int(header(r.headers, "dlq_offset")): r for r in dlq}
    assert sorted(by_offset) == [1, 2, 3, 4]
    reasons = {o: header(r.headers, "dlq_reason").decode() for o, r in by_offset.items()}
    assert reasons[1].startswith("decode: ")
    assert reasons[2] == "envelope: missing CloudEvents headers: ce_id, ce_type, ce_source, ce_time"
    assert reasons[3].startswith("envelope: ce_type 'twin.fabric.v1.LinkEvent' is not")
    assert reasons[4] == "handler: ValueError: poisoned sequence 3"
    assert by_offset[1].value == b"\x0a\xff\xff garbage"  # original bytes
    assert Envelope.from_headers(list(by_offset[1].headers)).id == header(good_headers, "ce_id").decode()
    assert by_offset[4].value == batch("r", 3).SerializeToString()
    for r in dlq:
        assert header(r.headers, "dlq_source_topic") == t.name.encode()
        assert header(r.headers, "dlq_partition") == b"0"
        assert header(r.headers, "dlq_time")
        assert r.key == b"r"


async def test_transient_failures_are_retried_without_dead_lettering(kafka_bootstrap):
    t = small_topic()
    await ensure_topics(kafka_bootstrap, [t])
    failures = {"left": 3}

    def flaky(records):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise ConnectionError("database unreachable")

    async with EventProducer(kafka_bootstrap, source="tests") as producer:
        for i in range(5):
            await producer.send(t, f"k{i}", batch(f"k{i}", i))
        collector = Collector(fail=flaky)
        # max_attempts=1: a non-transient error would be split/dead-lettered at once; transient ones never are
        stats = await consume_until(kafka_bootstrap, f"g-{uuid.uuid4().hex[:8]}", t, collector, producer,
                                    lambda s: s.handled == 5 and s.commits > 0, max_attempts=1)
    assert stats.dlq_sent == 0 and stats.retries == 3
    assert sorted(r.message.sequence for r in collector.seen) == list(range(5))


async def test_handler_rejects_go_to_dlq(kafka_bootstrap):
    t = small_topic()
    await ensure_topics(kafka_bootstrap, [t])

    async def reject_odd(records: list[Record]) -> BatchResult:
        return BatchResult([Rejected(r, f"validation: odd {r.message.sequence}", "validation.range")
                            for r in records if r.message.sequence % 2])

    async with EventProducer(kafka_bootstrap, source="tests") as producer:
        for i in range(6):
            await producer.send(t, "k", batch("k", i))
        stats = await consume_until(kafka_bootstrap, f"g-{uuid.uuid4().hex[:8]}", t, reject_odd, producer,
                                    lambda s: s.consumed == 6 and s.dlq_sent == 3 and s.commits > 0)
    assert stats.handled == 3
    dlq = await read_topic(kafka_bootstrap, t.dlq, t.partitions, expected=3)
    assert sorted(header(r.headers, "dlq_reason") for r in dlq) == [b"validation: odd 1", b"validation: odd 3",
                                                                    b"validation: odd 5"]


async def test_faust_agent_receives_protobuf_from_event_producer(kafka_bootstrap):
    from twin.core.faust_app import make_app, topic_for
    from twin.core.settings import Settings

    t = small_topic()
    await ensure_topics(kafka_bootstrap, [t], with_dlq=False)
    app = make_app("faust-test", Settings.from_env("faust-test", {"TWIN_KAFKA_BOOTSTRAP": kafka_bootstrap}),
                   id=f"faust-test-{uuid.uuid4().hex[:8]}")
    received: asyncio.Queue = asyncio.Queue()

    @app.agent(topic_for(app, t))
    async def agent(stream):
        async for key, value in stream.items():
            await received.put((key, value))

    await app.start()
    try:
        async with EventProducer(kafka_bootstrap, source="tests") as producer:
            sent = batch("su1-0003", 42)
            await producer.send(t, "su1-0003", sent)
        key, value = await asyncio.wait_for(received.get(), 60)
        assert key == "su1-0003"
        assert isinstance(value, pb.RackTelemetryBatch) and value == sent
    finally:
        await app.stop()


async def test_an_already_serialized_event_is_sent_as_given_with_its_envelope(kafka_bootstrap):
    """enqueue/send take a message or its serialized bytes (ingest frames its normalized record from the bytes it
    received): the consumer decodes both alike, each with the topic's envelope; anything else is a TypeError."""
    t = small_topic(1)
    await ensure_topics(kafka_bootstrap, [t])
    group = f"g-{uuid.uuid4().hex[:8]}"
    async with EventProducer(kafka_bootstrap, source="tests") as producer:
        await producer.send(t, "rack-0", batch("rack-0", 0), ce_id="as-message")
        await producer.send(t, "rack-0", batch("rack-0", 1).SerializeToString(), ce_id="as-bytes")
        with pytest.raises(TypeError, match="carries twin.telemetry.v1.RackTelemetryBatch"):
            await producer.send(t, "rack-0", pb.TelemetrySamples())
        collector = Collector()
        await consume_until(kafka_bootstrap, group, t, collector, producer, lambda s: s.handled == 2 and s.commits > 0)
    got = sorted(collector.seen, key=lambda r: r.message.sequence)
    assert [(r.message, r.envelope.id) for r in got] == [(batch("rack-0", 0), "as-message"),
                                                         (batch("rack-0", 1), "as-bytes")]
    assert all(r.envelope.type == "twin.telemetry.v1.RackTelemetryBatch" for r in got)


async def test_stats_name_the_partitions_a_member_holds(kafka_bootstrap):
    """ConsumerStats.assigned / topic_partitions: one member of a group holds every partition; a second member in the
    same group takes some of them, and the two hold disjoint sets that cover the topic (what the job twin's status
    line reads to say that another process shares its group)."""
    t = small_topic(partitions=4)
    await ensure_topics(kafka_bootstrap, [t])
    group = f"g-{uuid.uuid4().hex[:8]}"
    async with EventProducer(kafka_bootstrap, source="tests") as producer:
        first, second = ConsumerStats(), ConsumerStats()
        stop = asyncio.Event()
        run = [asyncio.create_task(run_consumer(kafka_bootstrap, group, t, Collector(), dlq_producer=producer,
                                                stop_event=stop, stats=first, session_timeout_ms=6000))]
        loop = asyncio.get_running_loop()
        try:
            deadline = loop.time() + 30
            while first.assigned != frozenset(range(4)):
                assert loop.time() < deadline, first
                await asyncio.sleep(0.1)
            assert first.topic_partitions == 4
            run.append(asyncio.create_task(run_consumer(kafka_bootstrap, group, t, Collector(), dlq_producer=producer,
                                                        stop_event=stop, stats=second, session_timeout_ms=6000)))
            deadline = loop.time() + 45
            while not (second.assigned and first.assigned and not first.assigned & second.assigned
                       and first.assigned | second.assigned == frozenset(range(4))):
                assert loop.time() < deadline, (first.assigned, second.assigned)
                await asyncio.sleep(0.1)
            assert len(first.assigned) < 4 and len(second.assigned) < 4
            assert second.topic_partitions == 4
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*run), 30)
