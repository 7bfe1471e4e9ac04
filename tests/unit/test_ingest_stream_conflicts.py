"""IngestHandler: a batch re-sent under a stored key with other values (a corrected report) is a
conflict and goes to the DLQ with a reason; the same batch re-sent unchanged stays a counted duplicate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from ingest_factory import inventory, rack_batch

from twin.core import topics
from twin.core.clock import FixedClock
from twin.core.envelope import new_envelope
from twin.core.kafka import Record
from twin.ingest.adapters.repository import StoreOutcome
from twin.ingest.adapters.stream import IngestHandler
from twin.ingest.domain.validation import limits_from_inventory
from twin.telemetry.v1 import telemetry_pb2 as pb

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def record(msg, offset: int) -> Record:
    value = msg.SerializeToString()
    env = new_envelope(topics.FACILITY_TELEMETRY.ce_type, "test", NOW)
    return Record(topics.FACILITY_TELEMETRY.name, 0, offset, msg.rack_id, value, env.to_headers(), 0, msg, env,
                  raw=None)


class Repo:
    """An in-memory ledger answering like TelemetryRepository (new / duplicate / conflict by digest)."""

    def __init__(self) -> None:
        self.ledger: dict = {}

    async def store(self, items) -> StoreOutcome:
        out = StoreOutcome()
        for i, it in enumerate(items):
            key = it.batch.key
            if key not in self.ledger:
                self.ledger[key] = (it.ce_id, it.digest)
                out.new.append(i)
            else:
                out.stored_digests[i] = self.ledger[key][1]
                (out.conflicts if self.ledger[key][1] != it.digest else out.duplicates).append(i)
        return out


class Publisher:
    async def enqueue(self, topic, key, message, *, ce_id=None, time=None, cause=None):
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


async def test_conflicts_in_one_poll_and_across_polls_are_rejected_with_a_reason():
    inv = inventory()
    t = NOW - timedelta(seconds=30)
    first = rack_batch(inv, 0, t, 5)
    corrected = rack_batch(inv, 0, t, 5, seed=99)  # same key, other values
    handler = IngestHandler(Repo(), Publisher(), limits_from_inventory(inv), FixedClock(NOW),
                            topics.TELEMETRY_SAMPLES)

    result = await handler([record(first, 0), record(first, 1), record(corrected, 2)])
    assert [r.record.offset for r in result.rejected] == [2]
    [rej] = result.rejected
    assert rej.kind == "conflict" and rej.reason.startswith("conflict: batch rack_id=su1-0000 sample_time=")
    assert "in the database" in rej.reason
    assert (handler.stats.stored_batches, handler.stats.duplicates, handler.stats.conflicts) == (1, 1, 1)

    # the correction first, then the original again: only the correction differs from what is stored
    result = await handler([record(corrected, 3), record(first, 4)])
    assert [(r.record.offset, r.kind) for r in result.rejected] == [(3, "conflict")]
    assert "in the database" in result.rejected[0].reason
    assert (handler.stats.stored_batches, handler.stats.duplicates, handler.stats.conflicts) == (1, 2, 2)
    assert handler.stats.invalid == 0


async def test_an_undecodable_batch_in_a_poll_is_dead_lettered_and_its_neighbours_stored():
    """The handler decodes a poll at once: a sample_time no datetime holds rejects that record alone
    ("decode: ..."), the batches around it are stored and published (their bytes framed as received)."""
    inv = inventory()
    t = NOW - timedelta(seconds=30)
    good = [rack_batch(inv, r, t, 1) for r in range(3)]
    bad = rack_batch(inv, 3, t, 1)
    bad.sample_time.seconds = 2**40
    published = []

    class Recording(Publisher):
        async def enqueue(self, topic, key, message, *, ce_id=None, time=None, cause=None):
            published.append((key, message))
            return await super().enqueue(topic, key, message, ce_id=ce_id, time=time, cause=cause)

    handler = IngestHandler(Repo(), Recording(), limits_from_inventory(inv), FixedClock(NOW),
                            topics.TELEMETRY_SAMPLES)
    result = await handler([record(good[0], 0), record(bad, 1), record(good[1], 2), record(good[2], 3)])
    [rej] = result.rejected
    assert rej.record.offset == 1 and rej.kind == "decode"
    assert rej.reason.startswith("decode: timestamp seconds=1099511627776") and "outside the Timestamp range" in rej.reason
    assert handler.stats.stored_batches == 3
    assert [(k, pb.TelemetrySamples.FromString(m).batch) for k, m in published] == [(m.rack_id, m) for m in good]


def test_prepared_digests_are_the_ledgers_blake2b_128():
    """The ledger holds these digests and compares a redelivery's with them: blake2b, 16 bytes, hex."""
    import hashlib

    inv = inventory()
    t = NOW - timedelta(seconds=30)
    recs = [record(rack_batch(inv, r, t, 5), r) for r in range(3)] + [record(rack_batch(inv, 0, t, 5, seed=9), 3)]
    handler = IngestHandler(Repo(), Publisher(), limits_from_inventory(inv), FixedClock(NOW),
                            topics.TELEMETRY_SAMPLES)
    p = handler.prepare(recs)
    want = [hashlib.blake2b(r.value, digest_size=16).hexdigest() for r in recs]
    assert p.digests == want and p.repeats == [3]
    assert [it.digest for it in p.items] == want[:3]
