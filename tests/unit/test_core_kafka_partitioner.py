"""The producers' key partitioner keeps each key's hash but must place every key where Kafka's own rule
(aiokafka's DefaultPartitioner = the Java client's murmur2 rule) does: consumers of a keyed topic (the power twin's
site key, ingest's racks) rely on that placement."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from twin.core.kafka import KeyHashPartitioner


def test_same_partition_as_kafkas_rule_for_every_key_and_count():
    rng = random.Random(7)
    keys = [f"su{rng.randrange(100)}-{rng.randrange(10_000):04d}".encode() for _ in range(2_000)]
    keys += [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))) for _ in range(500)]
    ours, theirs = KeyHashPartitioner(), DefaultPartitioner()
    for n in (1, 2, 3, 12, 24, 97):
        parts = list(range(n))
        for k in keys + keys:   # the second pass is served from the cache
            assert ours(k, parts, parts) == theirs(k, parts, parts), (k, n)


def test_the_cache_is_bounded_and_keyless_records_go_to_an_available_partition(monkeypatch):
    monkeypatch.setattr(KeyHashPartitioner, "MAX_KEYS", 10)
    p = KeyHashPartitioner()
    for i in range(35):
        p(str(i).encode(), [0, 1, 2], [0, 1, 2])
        assert len(p._hash) <= 10
    assert all(p(None, [0, 1, 2, 3], [1, 3]) in (1, 3) for _ in range(50))
