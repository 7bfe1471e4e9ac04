"""The decoder's and validation's per-rack caches are bounded by the bytes they hold, not only by entries: a feed of
ever new rack ids (or, for a known rack, ever new port lists) cannot fill the ingest process's memory, and what is
decoded is the same either way."""

from __future__ import annotations

import random
import tracemalloc
from datetime import UTC, datetime

import pytest
from ingest_factory import inventory, rack_batch
from test_ingest_wire_decode import container_path, same

import twin.ingest.adapters.codec as codec
import twin.ingest.domain.validation as validation
from twin.ingest.adapters.codec import decode_batches
from twin.ingest.domain.caches import BoundedCache, held_bytes
from twin.ingest.domain.validation import limits_from_inventory, validate_batches
from twin.telemetry.v1 import telemetry_pb2 as pb

T = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
INV = inventory()


def test_bounded_cache_keeps_its_byte_and_entry_caps_and_its_count_of_what_it_holds() -> None:
    rng = random.Random(7)
    cache = BoundedCache(max_entries=20, max_bytes=1000)
    model: dict = {}   # what the cache should hold: key -> (value, size)
    for _ in range(5000):
        key, size = rng.randrange(40), rng.randrange(1, 1200)
        cache.put(key, (key, size), size)
        if size > 1000:   # larger than the whole budget alone: not kept, nothing else changes
            pass
        else:
            held = sum(s for k, (_, s) in model.items() if k != key)
            if (key not in model and len(model) >= 20) or held + size > 1000:
                model.clear()
            model[key] = ((key, size), size)
        assert dict(cache) == {k: v for k, (v, _) in model.items()}
        assert cache.held == sum(s for _, s in model.values()) <= 1000
        assert len(cache) <= 20
    cache.clear()
    assert not cache and cache.held == 0


def test_held_bytes_counts_the_contents_of_bytes_and_strings() -> None:
    assert held_bytes(b"x" * 1000) >= 1000
    assert held_bytes(("a" * 500, "b" * 500)) < 100 <= held_bytes(("a",), each=("a" * 500, "b" * 500)) - 1000


def _bogus_racks(n: int, ports: int) -> tuple[list[pb.RackTelemetryBatch], list[bytes]]:
    """n batches of one real rack's shape, each under a rack id of its own, with `ports` port ids each."""
    base = rack_batch(INV, 0, T, 1)
    msgs, raws = [], []
    for i in range(n):
        msg = pb.RackTelemetryBatch()
        msg.CopyFrom(base)
        msg.rack_id = f"bogus-{i:05d}"
        links = msg.links
        del links.port_id[:], links.tx_bytes[:], links.rx_bytes[:], links.tx_errors[:], links.rx_errors[:]
        del links.link_state[:]
        links.port_id.extend(f"{msg.rack_id}/port-with-a-long-name-{p:05d}" for p in range(ports))
        for counter in (links.tx_bytes, links.rx_bytes, links.tx_errors, links.rx_errors):
            counter.extend(range(ports))
        links.link_state.extend([pb.LINK_STATE_UP] * ports)
        msgs.append(msg)
        raws.append(msg.SerializeToString())
    return msgs, raws


def test_decoding_ever_new_racks_holds_at_most_the_caches_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = 1 << 20
    for name, entries in (("_TOPS", 65536), ("_RUN_LAYOUTS", 1024), ("_NODE_IDS", 65536), ("_PORT_RUNS", 65536)):
        monkeypatch.setattr(codec, name, BoundedCache(entries, budget))
    msgs, raws = _bogus_racks(60, 1000)
    # what the port-id cache alone would hold if it kept every rack: several budgets (so the bound is exercised)
    assert sum(held_bytes(raw, tuple(m.links.port_id), each=m.links.port_id) for m, raw in zip(msgs, raws,
                                                                                              strict=True)) > 4 * budget
    decoded = []
    for at in range(0, len(msgs), 10):   # polls of 10
        decoded += decode_batches(msgs[at:at + 10], raws[at:at + 10])
        for name in ("_TOPS", "_RUN_LAYOUTS", "_NODE_IDS", "_PORT_RUNS"):
            assert getattr(codec, name).held <= budget, name
        # counted from the entries themselves (each a rack's port-id bytes and ids), not from the cache's own count
        assert sum(held_bytes(*hit, each=hit[1]) for hit in codec._PORT_RUNS.values()) <= budget
    assert 0 < len(codec._PORT_RUNS) < len(msgs)
    for got, want in zip(decoded, container_path(msgs, monkeypatch), strict=True):
        same(got, want)


def test_the_port_cache_estimate_is_what_its_entries_really_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_PORT_RUNS", BoundedCache(65536, 1 << 30))
    msgs, raws = _bogus_racks(40, 500)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for m, raw in zip(msgs, raws, strict=True):
            decode_batches([m], [raw])
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    held = codec._PORT_RUNS.held
    assert held > 0 and 0.5 * held <= kept <= 2.0 * held, (held, kept)


def test_validation_of_ever_new_port_lists_for_a_known_rack_holds_at_most_its_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    budget = 1 << 19
    monkeypatch.setattr(validation, "_PORTS_SEEN", BoundedCache(65536, budget))
    limits = limits_from_inventory(INV)
    base = rack_batch(INV, 0, T, 1)
    rejected = 0
    for i in range(40):
        msg = pb.RackTelemetryBatch()
        msg.CopyFrom(base)
        links = msg.links
        n = len(links.port_id)
        del links.port_id[:]
        links.port_id.extend(f"unknown-{i:03d}-{p:04d}-" + "x" * 200 for p in range(n - 1))
        links.port_id.append(f"unknown-{i:03d}-last-" + "x" * 20000)
        (batch,) = decode_batches([msg])
        (problems,) = validate_batches([batch], limits, T)
        rejected += bool(problems)
        assert validation._PORTS_SEEN.held <= budget
        assert sum(held_bytes(hit[0], each=hit[0]) for hit in validation._PORTS_SEEN.values()) <= budget
    assert rejected == 40   # every one of them names ports the rack does not have
