"""facility-sim's publishing path: a tick's rack records packed per partition into whole record batches
(`KafkaPublisher.send_many`) reach the broker exactly as one `send` per record puts them there (same
partition, same order, same key, value and headers), and the per-tick bookkeeping (bulk CloudEvents ids,
the tick's headers) gives every record its own id."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import MessageSizeTooLargeError

from twin.core import limits, topics
from twin.core.clock import FixedClock
from twin.core.envelope import Envelope
from twin.core.topics_admin import ensure_topics
from twin.facility_sim.adapters.publisher import KafkaPublisher, MemoryPublisher
from twin.facility_sim.app import FacilitySim, SimConfig, uuid4_strings

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def test_bulk_ids_are_canonical_random_uuid4s():
    ids = uuid4_strings(2000)
    assert len(set(ids)) == 2000
    for text in ids:
        u = uuid.UUID(text)
        assert str(u) == text and u.version == 4 and u.variant == uuid.RFC_4122
    assert uuid4_strings(0) == []


async def test_a_tick_publishes_each_racks_encoded_bytes_under_its_own_id():
    pub = MemoryPublisher()
    sim = FacilitySim(SimConfig(facility="dgx-h100-su", seed=2, metrics_port=None), pub, FixedClock(T0))
    await sim.tick(T0)
    encoded = sim.encoder.encode(sim.latest, T0, sequence=1)
    assert [(k, v) for _, k, v, _ in pub.records] == [(e.rack_id.encode(), e.value) for e in encoded]
    envelopes = [Envelope.from_headers(h) for *_, h in pub.records]
    assert len({e.id for e in envelopes}) == len(pub.records)
    assert {(e.type, e.source, e.time) for e in envelopes} == {(topics.FACILITY_TELEMETRY.ce_type, "facility-sim", T0)}
    assert all([k for k, _ in h] == [k for k, _ in pub.records[0][3]] for *_, h in pub.records)
    a = sim.layout.arrays
    assert (sim.stats.messages, sim.stats.good, sim.stats.good_gpu_rows) == (a.n_racks, a.n_racks, a.n_gpus)


async def _consume(bootstrap: str, topic: str, n: int) -> list[tuple[int, bytes, bytes, list]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    got: list[tuple[int, int, bytes, bytes, list]] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < n:
                for tp, recs in (await consumer.getmany(timeout_ms=500)).items():
                    got += [(tp.partition, r.offset, r.key, r.value, list(r.headers)) for r in recs]
    finally:
        await consumer.stop()
    got.sort(key=lambda r: (r[0], r[1]))
    return [(p, k, v, h) for p, _, k, v, h in got]


async def test_batched_records_land_as_one_send_per_record_puts_them(kafka_bootstrap, unique_topic):
    batched, single = unique_topic(topics.FACILITY_TELEMETRY), unique_topic(topics.FACILITY_TELEMETRY)
    await ensure_topics(kafka_bootstrap, [batched, single], with_dlq=False)
    records = [(f"rack-{i % 40:03d}".encode(), bytes([i % 251]) * (500 + 37 * i),
                [("ce_id", str(i).encode()), ("n", b"x" * (i % 7))]) for i in range(200)]
    records.append(records[5])   # a duplicate: the same record again, later
    # 2 KiB batches: several batches per partition, so batches of one partition go out in order
    pubs = [KafkaPublisher(kafka_bootstrap, batch_bytes=2048), KafkaPublisher(kafka_bootstrap, batch_bytes=0)]
    for p in pubs:
        await p.start()
    try:
        for p, t in zip(pubs, (batched, single), strict=True):
            await asyncio.gather(*await p.send_many(t.name, records))
    finally:
        for p in pubs:
            await p.stop()
    a = await _consume(kafka_bootstrap, batched.name, len(records))
    b = await _consume(kafka_bootstrap, single.name, len(records))
    assert a == b
    assert len({p for p, *_ in a}) > 1 and len(a) == len(records)


async def test_a_record_above_the_request_limit_is_refused_as_send_refuses_it(kafka_bootstrap, unique_topic):
    t = unique_topic(topics.FACILITY_TELEMETRY)
    await ensure_topics(kafka_bootstrap, [t], with_dlq=False)
    pub = KafkaPublisher(kafka_bootstrap)
    await pub.start()
    try:
        big = b"\0" * limits.PRODUCER_MAX_REQUEST_BYTES
        with pytest.raises(MessageSizeTooLargeError):
            await pub.send_many(t.name, [(b"rack-000", b"ok", []), (b"rack-001", big, [])])
        with pytest.raises(MessageSizeTooLargeError):
            await pub.send(t.name, b"rack-001", big, [])
    finally:
        await pub.stop()


def test_batch_bytes_must_fit_the_brokers_message_limit():
    for bad in (limits.BROKER_MAX_MESSAGE_BYTES, -1):
        with pytest.raises(ValueError, match="batch_bytes"):
            KafkaPublisher("127.0.0.1:1", batch_bytes=bad)
        with pytest.raises(ValueError, match="batch_bytes"):
            SimConfig(facility="dgx-h100-su", batch_bytes=bad)



async def test_batched_records_each_carry_their_own_producer_span(kafka_bootstrap, unique_topic, spans):
    from opentelemetry import trace

    t = unique_topic(topics.FACILITY_TELEMETRY)
    await ensure_topics(kafka_bootstrap, [t], with_dlq=False)
    records = [(f"rack-{i:03d}".encode(), b"v" * 700, [("ce_id", f"id-{i}".encode())]) for i in range(12)]
    records.append(records[3])   # the fault injector's duplicate: the same headers object, the same record
    pub = KafkaPublisher(kafka_bootstrap, batch_bytes=2048)
    await pub.start()
    try:
        await asyncio.gather(*await pub.send_many(t.name, records))
    finally:
        await pub.stop()
    produced = {f"{s.context.span_id:016x}": s for s in spans.get_finished_spans()
                if s.kind == trace.SpanKind.PRODUCER and s.name == f"send {t.name}"}
    got = await _consume(kafka_bootstrap, t.name, len(records))
    assert len(produced) == 12
    for _, key, _, headers in got:
        h = dict(headers)
        span = produced[h["traceparent"].decode().split("-")[2]]
        assert span.attributes["messaging.kafka.message.key"] == key.decode()
        assert span.attributes["messaging.message.id"] == h["ce_id"].decode()
