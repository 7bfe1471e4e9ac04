"""What the service integration tests share: a small facility file, run an app in-process until it is ready, read a
topic from the real broker until a condition holds (or to its end), poll a call until its answer holds. Every wait is
bounded."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.facilities import small_leaf_facility  # noqa: F401  (the integration tests import it from here)
from twin.core.topics import Topic

WAIT_S = 60.0


async def live_fabric_config(bootstrap: str, db: str, facility: str | Path, unique_topic, group: str):
    """A fabric twin (twin.fabric) on loopback gRPC (any free port) consuming its own unique event, sample and state
    topics (created here on the broker), publishing its state every second."""
    from twin.core import topics
    from twin.core.topics_admin import ensure_topics
    from twin.fabric.app import FabricConfig

    cfg = FabricConfig(
        kafka_bootstrap=bootstrap, database_url=db, facility=str(facility), grpc_host="127.0.0.1",
        grpc_port=0, consume=True, group_id=group, events_topic=unique_topic(topics.FABRIC_EVENTS),
        samples_topic=unique_topic(topics.TELEMETRY_SAMPLES), state_topic=unique_topic(topics.FABRIC_STATE),
        publish_interval_s=1.0)
    await ensure_topics(bootstrap, [cfg.events_topic, cfg.samples_topic, cfg.state_topic])
    return cfg


def jobs_config(bootstrap: str, db: str, facility: str | Path, unique_topic, fabric_target: str | None,
                fabric_topic: Topic | None = None):
    """A job twin (twin.jobs) on loopback gRPC (any free port) with its own unique input and output topics, a 0.2 s
    tick, asking the fabric twin at ``fabric_target`` (None: its own estimate only)."""
    from twin.core import topics
    from twin.jobs.app import JobsConfig

    return JobsConfig(kafka_bootstrap=bootstrap, database_url=db, facility=str(facility), grpc_host="127.0.0.1",
                      grpc_port=0, group_id=f"jobs-it-{uuid.uuid4().hex[:8]}", fabric_target=fabric_target,
                      fabric_timeout_s=5.0, tick_s=0.2,
                      events_topic=unique_topic(topics.JOBS_EVENTS), state_topic=unique_topic(topics.JOBS_STATE),
                      recommendations_topic=unique_topic(topics.JOBS_RECOMMENDATIONS),
                      fabric_topic=fabric_topic or unique_topic(topics.FABRIC_STATE),
                      power_alerts_topic=unique_topic(topics.POWER_ALERTS),
                      power_plans_topic=unique_topic(topics.POWER_PLANS),
                      cooling_alerts_topic=unique_topic(topics.COOLING_ALERTS),
                      samples_topic=unique_topic(topics.TELEMETRY_SAMPLES),
                      power_state_topic=unique_topic(topics.POWER_STATE))


class Running:
    """`async with Running(app) as app:` runs ``app.run`` until the block ends; entering waits for ``app.ready``
    (and raises what the app raised if it stopped first)."""

    def __init__(self, app, timeout_s: float = WAIT_S) -> None:
        self.app, self.timeout_s, self.stop, self.task = app, timeout_s, asyncio.Event(), None

    async def __aenter__(self):
        self.task = asyncio.create_task(self.app.run(self.stop))
        ready = asyncio.create_task(self.app.ready.wait())
        await asyncio.wait([ready, self.task], timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            self.task.result()
        assert self.app.ready.is_set(), f"{type(self.app).__name__} did not become ready"
        return self.app

    async def __aexit__(self, *exc) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, self.timeout_s)


async def _assigned_from_start(bootstrap: str, topic: Topic, dlq: bool) -> tuple[AIOKafkaConsumer, list]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    tps = [TopicPartition(topic.dlq if dlq else topic.name, p) for p in range(topic.partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer, tps


async def read_until(bootstrap: str, topic: Topic, want, *, dlq: bool = False, timeout_s: float = WAIT_S) -> list:
    """Records of `topic` (or its DLQ) from the beginning until want(records) holds (asserted)."""
    consumer, _ = await _assigned_from_start(bootstrap, topic, dlq)
    try:
        records: list = []
        deadline = time.monotonic() + timeout_s
        while not want(records) and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(recs)
        assert want(records), f"{topic.dlq if dlq else topic.name}: condition not met with {len(records)} records"
        return records
    finally:
        await consumer.stop()


async def read_to_end(bootstrap: str, topic: Topic, timeout_s: float = WAIT_S) -> list:
    """Every record of `topic` up to its end offsets at the time of the call."""
    consumer, tps = await _assigned_from_start(bootstrap, topic, dlq=False)
    try:
        ends = await consumer.end_offsets(tps)
        records: list = []
        deadline = time.monotonic() + timeout_s
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            assert time.monotonic() < deadline, f"{topic.name}: not read to its end within {timeout_s}s"
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def poll(fn, until, timeout_s: float = WAIT_S, every_s: float = 0.1):
    """Call async fn until until(result) holds; returns the last result (asserted)."""
    deadline = time.monotonic() + timeout_s
    result = await fn()
    while not until(result) and time.monotonic() < deadline:
        await asyncio.sleep(every_s)
        result = await fn()
    assert until(result), f"condition not met within {timeout_s}s; last result: {result}"
    return result
