"""The ingest process's young-generation GC threshold (twin/ingest/__main__.py) is above what two polls of 2,000
records keep alive at once (the pipelined loop holds one prepared while the other is written): a young collection
then does not re-walk a poll's live objects again and again (issue 13)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta

from ingest_factory import inventory, rack_batch

from twin.core import topics
from twin.core.clock import FixedClock
from twin.core.envelope import new_envelope
from twin.core.kafka import Record
from twin.ingest.__main__ import GC_GEN0_THRESHOLD
from twin.ingest.adapters.codec import samples_ce_id, samples_record
from twin.ingest.adapters.stream import IngestHandler
from twin.ingest.domain.validation import limits_from_inventory

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
POLL = 2_000   # the benchmark's INGEST_MAX_RECORDS (bench/ingest.py), 4x the service's default


def test_two_polls_of_live_objects_stay_under_the_young_threshold() -> None:
    inv = inventory()
    racks = len(inv.racks)
    t = NOW - timedelta(seconds=5)
    values = [rack_batch(inv, i % racks, t - timedelta(seconds=i // racks), 1).SerializeToString() for i in range(POLL)]
    handler = IngestHandler(None, None, limits_from_inventory(inv), FixedClock(NOW), topics.TELEMETRY_SAMPLES)
    msg_type = topics.FACILITY_TELEMETRY.message_type

    def poll(offset: int) -> list[Record]:
        out = []
        for i, v in enumerate(values):
            env = new_envelope(topics.FACILITY_TELEMETRY.ce_type, "facility-sim", NOW)
            out.append(Record(topics.FACILITY_TELEMETRY.name, i % 12, offset + i, None, v, env.to_headers(), 0,
                              msg_type.FromString(v), env, raw=None))
        return out

    handler.prepare(poll(0))   # the decoder's per-rack caches filled, as in a running service
    threshold = gc.get_threshold()
    gc.collect()
    gc.set_threshold(10**9)   # counted, not collected
    try:
        before = gc.get_count()[0]
        held = []
        for n in range(2):
            prepared = handler.prepare(poll(n * POLL))
            events = [(it.batch.rack_id, samples_record(rec.value, NOW), samples_ce_id(it.batch.key))
                      for it, (rec, _) in zip(prepared.items, prepared.good, strict=True)]
            held.append((prepared, events))
        live = gc.get_count()[0] - before
    finally:
        gc.set_threshold(*threshold)
    assert len(held[1][0].items) == POLL   # all valid, all stored
    # ours only: aiokafka's records add ~8 objects per record (headers), leave room for them
    assert live + 2 * POLL * 10 < GC_GEN0_THRESHOLD, live
