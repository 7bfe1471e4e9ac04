"""`twinctl dlq` against the real broker: list dead letters with their reasons, replay them after a fix."""

from __future__ import annotations

import asyncio
import uuid

from twin.core import topics
from twin.core.kafka import BatchResult, EventProducer, Rejected, run_consumer
from twin.core.topics_admin import ensure_topics
from twin.telemetry.v1 import telemetry_pb2
from twinctl.dlq import read_dead_letters, replay


async def _consume_until(bootstrap, topic, handler, group, want, stats_attr="handled", timeout_s=60.0):
    stop = asyncio.Event()
    async with EventProducer(bootstrap, source="test") as dlq:
        task = asyncio.create_task(run_consumer(bootstrap, group, topic, handler, dlq_producer=dlq, stop_event=stop,
                                                session_timeout_ms=3000))
        try:
            async with asyncio.timeout(timeout_s):
                while handler.count(stats_attr) < want:
                    await asyncio.sleep(0.1)
        finally:
            stop.set()
            await task


class Handler:
    """Refuses racks on a block list (the 'bug'); accepts the rest."""

    def __init__(self, blocked: set[str]) -> None:
        self.blocked = blocked
        self.accepted: list[str] = []
        self.rejected: list[str] = []

    def count(self, what: str) -> int:
        return len(self.accepted) if what == "handled" else len(self.rejected)

    async def __call__(self, records) -> BatchResult:
        result = BatchResult()
        for r in records:
            if r.message.rack_id in self.blocked:
                result.rejected.append(Rejected(r, f"validation: rack_id {r.message.rack_id} unknown", "validation"))
                self.rejected.append(r.message.rack_id)
            else:
                self.accepted.append(r.message.rack_id)
        return result


async def test_list_shows_reasons_and_replay_after_the_fix_delivers_them(kafka_bootstrap, unique_topic):
    topic = unique_topic(topics.FACILITY_TELEMETRY)
    await ensure_topics(kafka_bootstrap, [topic])
    racks = ["r1", "r2", "new-1", "new-2", "new-3"]
    async with EventProducer(kafka_bootstrap, source="test") as producer:
        for rack in racks:
            await producer.send(topic, rack, telemetry_pb2.RackTelemetryBatch(rack_id=rack, sequence=1))
    first = Handler(blocked={"new-1", "new-2", "new-3"})
    await _consume_until(kafka_bootstrap, topic, first, f"g-{uuid.uuid4().hex[:6]}", 3, "rejected")
    assert sorted(first.rejected) == ["new-1", "new-2", "new-3"]

    letters = await read_dead_letters(kafka_bootstrap, topic)
    assert len(letters) == 3
    assert {d.summary()["reason"] for d in letters} == {f"validation: rack_id {r} unknown" for r in first.rejected}
    assert all(d.summary()["source_topic"] == topic.name and d.summary()["replayable"] for d in letters)
    assert len(await read_dead_letters(kafka_bootstrap, topic, reason="new-2")) == 1

    sent, skipped = await replay(kafka_bootstrap, topic, letters)
    assert (sent, skipped) == (3, 0)
    fixed = Handler(blocked=set())  # the rule was fixed: the replayed records go through
    # a new group reads the topic from the start: the 2 originally good records, the 3 refused
    # originals (refused no more) and the 3 replayed copies
    await _consume_until(kafka_bootstrap, topic, fixed, f"g-{uuid.uuid4().hex[:6]}", 8)
    assert sorted(fixed.accepted) == sorted(racks + ["new-1", "new-2", "new-3"])
