"""IngestHandler hands a publisher with `enqueue_many` (the kit's EventProducer) the events it enqueues one by one
to a publisher without it: the same keys, normalized records, ce_ids and causes, in the same order, and counts them
alike (new batches, redeliveries; not duplicates, conflicts or invalid ones)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from ingest_factory import inventory, rack_batch
from test_ingest_stream_conflicts import Repo, record

from twin.core import topics
from twin.core.clock import FixedClock
from twin.ingest.adapters.codec import samples_ce_id, samples_record
from twin.ingest.adapters.stream import IngestHandler
from twin.ingest.domain.model import BatchKey
from twin.ingest.domain.validation import limits_from_inventory

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class OneByOne:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    async def enqueue(self, topic, key, message, *, ce_id=None, time=None, cause=None):
        self.sent.append((topic, key, message, ce_id, cause.offset))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class Many(OneByOne):
    async def enqueue(self, *args, **kwargs):
        raise AssertionError("enqueue_many is there")

    async def enqueue_many(self, topic, events, *, time=None):
        self.sent += [(topic, key, value, ce_id, cause.offset) for key, value, ce_id, cause in events]
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return [fut]   # one per record batch, not per event


async def test_enqueue_many_gets_what_enqueue_gets_one_by_one():
    inv = inventory()
    t = NOW - timedelta(seconds=30)
    polls = [
        [record(rack_batch(inv, i % 3, t, 5 + i // 3), i) for i in range(6)]
        + [record(rack_batch(inv, 0, t, 5), 6), record(rack_batch(inv, 1, t, 5, seed=9), 7)],   # duplicate, conflict
        [record(rack_batch(inv, 2, t, 6), 8), record(rack_batch(inv, 1, t, 9), 9)],
    ]
    limits = limits_from_inventory(inv)
    plain, many = OneByOne(), Many()
    handlers = [IngestHandler(Repo(), p, limits, FixedClock(NOW), topics.TELEMETRY_SAMPLES) for p in (plain, many)]
    for poll in polls:
        results = [await h(poll) for h in handlers]
        assert [r.record.offset for r in results[0].rejected] == [r.record.offset for r in results[1].rejected]
    stored = polls[0][:6] + polls[1][1:]
    assert plain.sent == [(topics.TELEMETRY_SAMPLES, r.message.rack_id, samples_record(r.value, NOW),
                           samples_ce_id(BatchKey(r.message.rack_id, t, r.message.sequence)),
                           r.offset) for r in stored]
    assert many.sent == plain.sent
    assert handlers[1].stats == handlers[0].stats and handlers[1].stats.published == 7
