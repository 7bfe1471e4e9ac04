"""The consumer loop's lag figure survives a rebalance that revokes a partition while position() awaits."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import TopicPartition

from twin.core import topics
from twin.core.kafka import _Loop


class RevokedDuringPosition:
    """aiokafka raises AssertionError("Partition is not assigned") from position() for a revoked partition."""

    def __init__(self) -> None:
        self.tps = [TopicPartition("t", 0), TopicPartition("t", 1)]

    def assignment(self):
        return set(self.tps)

    def highwater(self, tp):
        return 10

    def partitions_for_topic(self, topic):
        return {0, 1}

    async def position(self, tp):
        if tp.partition == 0:
            raise AssertionError("Partition is not assigned")
        return 7


def test_lag_skips_a_partition_revoked_mid_update():
    stats = SimpleNamespace(lag={})
    loop = _Loop(RevokedDuringPosition(), "g", topics.TELEMETRY_SAMPLES, handler=None, dlq=None,
                 is_transient=lambda e: False, max_attempts=1, backoff_s=0.0, max_backoff_s=0.0, stats=stats,
                 stop_event=asyncio.Event())
    asyncio.run(loop.update_lag())  # raised AssertionError before: the consumer task died
    assert stats.lag == {1: 3}
