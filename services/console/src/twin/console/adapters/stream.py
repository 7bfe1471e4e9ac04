"""Latest-only Kafka tails: one consumer per topic for the whole console process.

No consumer group and nothing committed: each tail assigns itself every partition of its topic and
seeks to the end, so a console that (re)starts shows what happens from now on and never replays the
topic's history (the last stored power states come from the database instead, see app.py). The end
offsets are resolved before `started()` is called, so a record produced after that is never missed.

A record the console cannot decode is counted and skipped: dead-lettering is the consumers' business
that own the topic (the console only reads).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import Message

from twin.core.topics import Topic

log = logging.getLogger("twin.console.stream")


@dataclass
class TailStats:
    records: int = 0
    undecodable: int = 0


async def tail_latest(bootstrap: str, topic: Topic, apply: Callable[[Message], None], stop: asyncio.Event, *,
                      started: Callable[[], None], stats: TailStats, max_records: int = 2000,
                      **client_options) -> None:
    """Apply every record of `topic` produced from now on (all partitions) until `stop` is set."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                client_id=f"twin-console-{topic.name}", **client_options)
    await consumer.start()
    try:
        await consumer.topics()  # metadata: the real partition count, when it differs from the registry's
        partitions = consumer.partitions_for_topic(topic.name) or set(range(topic.partitions))
        tps = [TopicPartition(topic.name, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolve "end" now, before anyone is told we are listening
        started()
        while not stop.is_set():
            polled = await consumer.getmany(timeout_ms=500, max_records=max_records)
            for records in polled.values():
                for raw in records:
                    stats.records += 1
                    try:
                        apply(topic.decode(raw.value))
                    except Exception:  # noqa: BLE001 - a record the console cannot read is skipped, never fatal
                        stats.undecodable += 1
    finally:
        await consumer.stop()
