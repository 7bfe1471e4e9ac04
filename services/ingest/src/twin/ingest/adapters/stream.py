"""The ingest batch handler: decoded Kafka records → validate → dedupe → store → publish normalized.

`run_consumer` (twin.core.kafka) polls, decodes protobuf + envelope, dead-letters what cannot be
decoded, and calls `IngestHandler` once per poll. The handler returns the invalid records (the loop
sends them to `facility.telemetry.v1.dlq` with the original bytes) after the database transaction
has committed and the normalized records are acknowledged by the broker; the loop then commits the
offsets. Order per poll: DB commit → telemetry.samples.v1 acks → DLQ acks → offset commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry import metrics

from twin.core.clock import Clock
from twin.core.kafka import BatchResult, Record, Rejected
from twin.core.topics import Topic
from twin.ingest.adapters.codec import (
    DECODE_ERRORS,
    decode_batches,
    decode_equipment,
    equipment_ce_id,
    is_equipment,
    samples_ce_id,
    samples_record,
)
from twin.ingest.adapters.repository import StoreItem, StoreOutcome
from twin.ingest.domain import equipment as eq
from twin.ingest.domain.dedupe import split_duplicates
from twin.ingest.domain.validation import Limits, validate_batches

log = logging.getLogger("twin.ingest.stream")
_meter = metrics.get_meter("twin.ingest")
_rows = _meter.create_counter("twin.ingest.rows.stored", unit="{row}", description="sample rows written, by table")
_batches = _meter.create_counter("twin.ingest.batches", unit="{batch}", description="batches by outcome")
_write_latency = _meter.create_histogram("twin.ingest.write.duration", unit="s", description="DB transaction time")


class Repository(Protocol):
    async def store(self, items: Sequence[StoreItem]) -> StoreOutcome: ...


class Publisher(Protocol):
    """`enqueue` per record; a publisher that also has `enqueue_many` (twin.core.kafka.EventProducer) gets a
    poll's normalized records in one call."""

    async def enqueue(self, topic: Topic, key: str, message, *, ce_id: str | None = None, time=None,
                      cause: Record | None = None) -> asyncio.Future: ...


@dataclass
class IngestStats:
    stored_batches: int = 0
    redelivered: int = 0
    duplicates: int = 0
    invalid: int = 0
    conflicts: int = 0  # re-sent under a stored key with other values: dead-lettered ("conflict: ...")
    published: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    equipment_batches: int = 0   # equipment batches accepted (stored or already stored) and published


@dataclass
class _Prepared:
    """One poll after IngestHandler.prepare: what write() needs, nothing written yet."""

    equipment_rejected: list[Rejected]
    equipment_good: list[tuple[Record, object]]
    rejected: list[Rejected]             # telemetry batches that failed decoding or validation
    good: list[tuple[Record, object]]    # (record, RackBatch) that passed
    first: list[int]                     # indexes into good: first occurrence of each batch key in the poll
    repeats: list[int]                   # indexes into good: later occurrences
    digests: list[str]                   # per good record
    items: list[StoreItem]               # one per `first`


class IngestHandler:
    """`await handler(records)`; or the two phases `prepare` (CPU) and `write` (I/O), which the consumer
    loop overlaps across polls when `pipeline` is true (INGEST_PIPELINE; twin.core.kafka, pipelined mode)."""

    def __init__(self, repository: Repository, publisher: Publisher, limits: Limits, clock: Clock,
                 samples_topic: Topic, stats: IngestStats | None = None,
                 equipment_limits: eq.EquipmentLimits | None = None, *, pipeline: bool = False) -> None:
        self.pipeline = pipeline
        self.repository, self.publisher, self.limits, self.clock = repository, publisher, limits, clock
        self.samples_topic = samples_topic
        self.stats = stats or IngestStats()
        self.equipment_limits = equipment_limits   # None: equipment batches are rejected (no topology given)

    async def __call__(self, records: list[Record]) -> BatchResult:
        return await self.write(self.prepare(records))

    def prepare(self, records: list[Record]) -> _Prepared:
        """The CPU half of a poll (no I/O, no side effects): decode, validate, dedupe inside the poll, digest.
        With `pipeline` on, the consumer loop runs it for poll N+1 while write(N) awaits the database."""
        now = self.clock.now()
        rejected: list[Rejected] = []
        equipment = [rec for rec in records if is_equipment(rec.message)]
        equipment_good: list[tuple[Record, object]] = []
        equipment_rejected: list[Rejected] = []
        if equipment:
            equipment_good, equipment_rejected = self._equipment_checked(equipment, now)
            records = [rec for rec in records if not is_equipment(rec.message)]
        good: list[tuple[Record, object]] = []
        decoded: list[tuple[Record, object]] = []
        # with the bytes as received: decode cuts the GPU fields and link counters straight from them
        batches = decode_batches([rec.message for rec in records], [rec.value for rec in records])
        for rec, batch in zip(records, batches, strict=True):
            if isinstance(batch, DECODE_ERRORS):   # a field no datetime or array can hold
                rejected.append(Rejected(rec, f"decode: {batch}", kind="decode"))
            else:
                decoded.append((rec, batch))
        # The whole poll at once: the same problems as validate_batch per batch, one numpy pass per check.
        for (rec, batch), problems in zip(decoded, validate_batches([b for _, b in decoded], self.limits, now),
                                          strict=True):
            if problems:
                reason = "validation: " + "; ".join(p.text for p in problems)
                rejected.append(Rejected(rec, reason, kind=f"validation.{problems[0].kind}"))
            else:
                good.append((rec, batch))
        first, repeats = split_duplicates([b.key for _, b in good])
        blake2b = hashlib.blake2b   # 128-bit, hex: the ledger's digests, compared with a redelivery's
        digests = [blake2b(rec.value, digest_size=16).hexdigest() for rec, _ in good]
        item = StoreItem.direct
        items = [item(good[i][1], good[i][0].envelope.id, good[i][0].topic, good[i][0].partition, good[i][0].offset,
                      digests[i]) for i in first]
        return _Prepared(equipment_rejected, equipment_good, rejected, good, first, repeats, digests, items)

    async def write(self, prepared: _Prepared) -> BatchResult:
        """The I/O half: equipment rows, the batch transaction (ledger + COPY), publishing; the rejects."""
        p = prepared
        rejected = list(p.equipment_rejected)
        if p.equipment_good:
            await self._equipment_store(p.equipment_good)
        self.stats.invalid += len(p.equipment_rejected)
        rejected += p.rejected
        good, first, repeats, digests, items = p.good, p.first, p.repeats, p.digests, p.items
        outcome = await self.repository.store(items)
        _write_latency.record(outcome.seconds)
        for table, n in outcome.rows.items():
            _rows.add(n, {"table": table})
            self.stats.rows[table] = self.stats.rows.get(table, 0) + n

        # Publish the new batches, and re-publish redeliveries (their first publication may have been
        # lost in a crash between the DB commit and the broker ack); the ce_id is deterministic.
        ingested = self.clock.now()
        events = []
        for i in outcome.new + outcome.redelivered:
            rec = good[first[i]][0]
            key = items[i].batch.key
            # framed from the batch's bytes as received; the cause: the batch's trace goes on
            events.append((key.rack_id, samples_record(rec.value, ingested), samples_ce_id(key), rec))
        enqueue_many = getattr(self.publisher, "enqueue_many", None)
        if enqueue_many is not None:   # the kit's producer: one record batch per partition (twin.core.kafka)
            futures = await enqueue_many(self.samples_topic, events)
        else:
            enqueue, topic = self.publisher.enqueue, self.samples_topic
            futures = [await enqueue(topic, key, msg, ce_id=ce_id, cause=rec) for key, msg, ce_id, rec in events]
        if futures:
            await asyncio.gather(*futures)

        for i in outcome.conflicts:
            rejected.append(Rejected(good[first[i]][0], _conflict_reason(items[i].batch.key, "in the database"),
                                     kind="conflict"))
        # A repeat inside this poll is compared with what the key now holds: the first occurrence when
        # that was stored now, else the ledger's digest (when known).
        item_of = {items[n].batch.key: n for n in range(len(items))} if repeats else {}
        same_repeats = []
        for j in repeats:
            n = item_of[good[j][1].key]
            held = items[n].digest if n not in outcome.stored_digests else outcome.stored_digests[n]
            if held is not None and digests[j] != held:
                rejected.append(Rejected(good[j][0], _conflict_reason(good[j][1].key, "in the database"),
                                         kind="conflict"))
            else:
                same_repeats.append(j)
        conflicts = len(repeats) - len(same_repeats) + len(outcome.conflicts)
        duplicates = len(same_repeats) + len(outcome.duplicates)
        self.stats.stored_batches += len(outcome.new)
        self.stats.redelivered += len(outcome.redelivered)
        self.stats.duplicates += duplicates
        invalid = len(rejected) - conflicts
        self.stats.invalid += invalid
        self.stats.conflicts += conflicts
        self.stats.published += len(events)
        for name, n in (("stored", len(outcome.new)), ("redelivered", len(outcome.redelivered)),
                        ("duplicate", duplicates), ("conflict", conflicts), ("invalid", invalid)):
            if n:
                _batches.add(n, {"outcome": name})
        return BatchResult(rejected=rejected)

    def _equipment_checked(self, records: list[Record], now) -> tuple[list[tuple[Record, object]], list[Rejected]]:
        """CDU / CRAH / plant batches: decode and validate against the cooling topology (no I/O)."""
        rejected: list[Rejected] = []
        good = []
        for rec in records:
            try:
                batch = decode_equipment(rec.message)
            except (ValueError, OverflowError) as exc:
                rejected.append(Rejected(rec, f"decode: {exc}", kind="decode"))
                continue
            if self.equipment_limits is None:
                rejected.append(Rejected(rec, "validation: equipment: this ingest has no cooling topology",
                                         kind="validation.equipment"))
                continue
            problems = eq.validate_equipment(batch, self.equipment_limits, now)
            if problems:
                rejected.append(Rejected(rec, "validation: " + "; ".join(problems), kind="validation.equipment"))
            else:
                good.append((rec, batch))
        return good, rejected

    async def _equipment_store(self, good: list[tuple[Record, object]]) -> None:
        """Store the valid equipment batches (natural key, ON CONFLICT DO NOTHING) and publish them to
        telemetry.samples.v1 keyed by site (deterministic ce_id: a redelivery repeats it)."""
        rows = [r for _, b in good for r in eq.rows(b)]
        n = await self.repository.store_equipment(rows)
        _rows.add(n, {"table": "telemetry_equipment"})
        self.stats.rows["telemetry_equipment"] = self.stats.rows.get("telemetry_equipment", 0) + n
        ingested = self.clock.now()
        futures = [await self.publisher.enqueue(self.samples_topic, b.site_id, samples_record(rec.value, ingested),
                                                ce_id=equipment_ce_id(b), cause=rec) for rec, b in good]
        await asyncio.gather(*futures)
        self.stats.equipment_batches += len(good)
        self.stats.published += len(futures)


def _conflict_reason(key, where: str) -> str:
    t = key.sample_time.isoformat() if key.sample_time else "-"
    return (f"conflict: batch rack_id={key.rack_id} sample_time={t} sequence={key.sequence} was already stored "
            f"({where}) with other values; the stored values are kept and this record (e.g. a corrected "
            "re-send) is kept here instead of being dropped")
