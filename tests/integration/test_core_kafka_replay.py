"""twin.core.kafka.replay_topic against the real broker: a restarted process rebuilds state from a topic's start.

The race this guards: `assign()` starts a reset of every partition to the consumer's default (latest); if that
answer lands after the replay asked for the beginning, the partition sits at its end and the replay reads nothing
(a restarted job twin came up with an empty book under CPU load). The test holds that first answer back so it
always lands late.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from dataclasses import replace

import pytest
from aiokafka.consumer.fetcher import Fetcher

from twin.core import topics
from twin.core.kafka import EventProducer, replay_topic
from twin.core.topics_admin import ensure_topics
from twin.telemetry.v1 import telemetry_pb2 as pb

pytestmark = pytest.mark.timeout(60)

_in_position_reset = contextvars.ContextVar("in_position_reset", default=False)


@pytest.fixture
def late_position_resets(monkeypatch):
    """Every offset answer the fetcher's own position reset waits for arrives 1 s late (after the replay's seek);
    other offset requests (end_offsets, beginning_offsets) are answered at once."""
    update, request = Fetcher._update_fetch_positions, Fetcher._proc_offset_request

    async def slow_update(self, *args, **kwargs):
        token = _in_position_reset.set(True)
        try:
            return await update(self, *args, **kwargs)
        finally:
            _in_position_reset.reset(token)

    async def slow_request(self, *args, **kwargs):
        answer = await request(self, *args, **kwargs)
        if _in_position_reset.get():
            await asyncio.sleep(1.0)
        return answer

    monkeypatch.setattr(Fetcher, "_update_fetch_positions", slow_update)
    monkeypatch.setattr(Fetcher, "_proc_offset_request", slow_request)


async def test_replay_reads_from_the_beginning_when_the_default_reset_lands_late(kafka_bootstrap,
                                                                                 late_position_resets):
    topic = replace(topics.FACILITY_TELEMETRY, name=f"test.core.replay.{uuid.uuid4().hex[:10]}", partitions=3)
    await ensure_topics(kafka_bootstrap, [topic])
    async with EventProducer(kafka_bootstrap, source="test") as producer:
        for seq in range(6):
            await producer.send(topic, f"r{seq % 3}", pb.RackTelemetryBatch(site_id="s", rack_id=f"r{seq % 3}",
                                                                            sequence=seq))
    seen: list[int] = []
    handed = await replay_topic(kafka_bootstrap, topic, lambda raw: seen.append(topic.decode(raw.value).sequence),
                                timeout_s=20.0)
    assert handed == 6 and sorted(seen) == list(range(6))


async def test_seek_to_start_holds_against_a_late_default_reset(kafka_bootstrap, late_position_resets):
    """The helper the other group-less readers use (power's read models, `twinctl dlq`); safe whatever they await
    between assign() and the seek."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from twin.core.kafka import seek_to_start

    topic = replace(topics.FACILITY_TELEMETRY, name=f"test.core.seek.{uuid.uuid4().hex[:10]}", partitions=1)
    await ensure_topics(kafka_bootstrap, [topic])
    async with EventProducer(kafka_bootstrap, source="test") as producer:
        for seq in range(3):
            await producer.send(topic, "r", pb.RackTelemetryBatch(site_id="s", rack_id="r", sequence=seq))
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic.name, 0)
        consumer.assign([tp])
        await consumer.end_offsets([tp])   # any await between assign() and the seek lets the default reset start
        await seek_to_start(consumer, [tp])
        await asyncio.sleep(1.5)   # the held-back default reset has landed by now
        assert await consumer.position(tp) == 0
        got = await consumer.getmany(tp, timeout_ms=5000)
        assert [topic.decode(r.value).sequence for r in got.get(tp, [])] == [0, 1, 2]
    finally:
        await consumer.stop()
