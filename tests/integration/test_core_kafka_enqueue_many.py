"""EventProducer.enqueue_many against the real broker: the same records as enqueue per event (key, value, headers,
partition, order within a partition), also when a partition's record batch fills and another is begun, and the same
refusal of a record over max_request_size."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from test_core_kafka import read_topic

from twin.core import topics
from twin.core.kafka import EventProducer
from twin.core.topics_admin import ensure_topics

pytestmark = pytest.mark.timeout(120)

T = datetime(2026, 11, 30, 3, 0, 0, 123456, tzinfo=UTC)


def topic(partitions: int = 4):
    return replace(topics.TELEMETRY_SAMPLES, name=f"test.many.{uuid.uuid4().hex[:10]}", partitions=partitions)


def events(n: int) -> list[tuple[str, bytes, str, None]]:
    """n serialized events over 7 keys (so every partition gets several), values of ~3 KB of varied sizes."""
    return [(f"rack-{i % 7}", bytes([i % 251]) * (2000 + 37 * i), f"ce-{i}", None) for i in range(n)]


def by_partition(records) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        out.setdefault(r.partition, []).append((r.key, r.value, list(r.headers)))
    return out


async def test_enqueue_many_gives_the_records_of_enqueue_per_event(kafka_bootstrap):
    plain, many = topic(), topic()
    await ensure_topics(kafka_bootstrap, [plain, many])
    evs = events(60)
    # a 16 KiB batch holds ~5 of these values: each partition's records fill several batches
    async with EventProducer(kafka_bootstrap, source="tests", max_batch_size=16384) as producer:
        futures = [await producer.enqueue(plain, k, v, ce_id=ce, time=T) for k, v, ce, _ in evs]
        await asyncio.gather(*futures)
        batch_futures = await producer.enqueue_many(many, evs, time=T)
        await asyncio.gather(*batch_futures)
        assert len(batch_futures) > many.partitions   # some partition needed more than one batch
        assert await producer.enqueue_many(many, []) == []
    want = by_partition(await read_topic(kafka_bootstrap, plain.name, plain.partitions, len(evs)))
    got = by_partition(await read_topic(kafka_bootstrap, many.name, many.partitions, len(evs)))
    assert sum(map(len, got.values())) == len(evs)
    assert got == want
    assert len(want) > 1


async def test_enqueue_many_refuses_a_record_over_max_request_size_like_enqueue(kafka_bootstrap):
    t = topic(1)
    await ensure_topics(kafka_bootstrap, [t])
    async with EventProducer(kafka_bootstrap, source="tests", max_request_size=5000) as producer:
        big = [("rack-0", b"x" * 6000, "ce-big", None)]
        with pytest.raises(MessageSizeTooLargeError) as plain:
            await producer.enqueue(t, "rack-0", b"x" * 6000, ce_id="ce-big", time=T)
        with pytest.raises(MessageSizeTooLargeError) as many:
            await producer.enqueue_many(t, big, time=T)
        assert str(many.value) == str(plain.value)


@pytest.mark.parametrize("tracing", [False, True], ids=["batched", "per-event"])
async def test_enqueue_many_without_a_time_stamps_every_record_with_the_call_time(kafka_bootstrap, monkeypatch, tracing):
    """No `time`: one ce_time for the whole call (a time between the call's start and end), the other headers those of
    enqueue; a ce_id left out gets a fresh UUID per record. On both paths: the batched one (tracing off) and the
    per-event loop tracing takes (an earlier test in the suite may have turned tracing on for the process)."""
    monkeypatch.setattr("twin.core.kafka.tracing_enabled", lambda: tracing)
    t = topic(2)
    await ensure_topics(kafka_bootstrap, [t])
    evs = [(f"rack-{i % 3}", b"v%d" % i, f"ce-{i}" if i % 2 else None, None) for i in range(8)]
    async with EventProducer(kafka_bootstrap, source="tests") as producer:
        before = datetime.now(UTC)
        await asyncio.gather(*await producer.enqueue_many(t, evs))
        after = datetime.now(UTC)
    records = await read_topic(kafka_bootstrap, t.name, t.partitions, len(evs))
    headers = [dict(r.headers) for r in records]
    stamps = {h["ce_time"] for h in headers}
    assert len(stamps) == 1
    assert before <= datetime.fromisoformat(stamps.pop().decode()) <= after
    by_value = {r.value: dict(r.headers) for r in records}
    for i, (_, value, ce_id, _) in enumerate(evs):
        h = by_value[value]
        assert h["ce_type"] == t.ce_type.encode() and h["ce_source"] == b"tests"
        if ce_id is None:
            assert uuid.UUID(h["ce_id"].decode())
        else:
            assert h["ce_id"] == ce_id.encode(), i
    generated = [h["ce_id"] for h in headers if not h["ce_id"].startswith(b"ce-")]
    assert len(set(generated)) == len(generated) == 4
