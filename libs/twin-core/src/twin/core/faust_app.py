"""faust-streaming apps for the twin services: broker from settings, protobuf values from the registry.

    app = make_app("power", Settings.from_env("power"))
    samples = topic_for(app, topics.TELEMETRY_SAMPLES)

    @app.agent(samples)
    async def on_samples(stream):
        async for msg in stream:          # msg is a twin.telemetry.v1.TelemetrySamples
            ...

Values are the serialized protobuf of the topic's message type (DESIGN §4), decoded by a faust codec
registered per message type as `protobuf:<full name>`; keys are raw UTF-8 entity ids. Stateful
processors (twin.core.stateful) read raw bytes instead, so that undecodable records reach the DLQ.

Running inside a service's own asyncio program (no faust worker, no second event loop):

    async with running(app):          # await app.start(); then wait_ready(app) (optional)
        await stop_event.wait()
    # leaving the block = stop_app(app): drain in-flight batches, flush, commit, leave the group

`app.start()` / `app.stop()` are mode's Service API and work from any running loop. `stop_app` drains
first because `app.stop()` alone does not: faust's Consumer.on_stop calls `wait_empty()`, whose loop
exits at once when the consumer is already stopping, and then agents are cancelled mid-batch. So
`stop_app` stops the flow, waits until every delivered record is acked, flushes the producer and
commits, and only then calls `app.stop()` (each step bounded; a failure there only means replay).
Keep `drain_timeout_s` above the longest batch: with records still unacked, `app.stop()` was seen to
block the whole event loop (faust 0.15 on Tansu: `asyncio.wait_for(app.stop(), 20)` never returned).

Tansu (the embedded broker) works with faust-streaming 0.15: topic and changelog creation, consumer
groups with faust's assignor, changelog recovery on start and rebalance. Each group join takes a few
seconds there (the broker delays the first join of a generation), so a start is ~4-12 s.

Tansu 0.6 bug and its workaround (`one_record_per_batch`, on by default): after a produce request whose
batch holds several records, Tansu's ListOffsets(latest) answers base offset + 1 instead of last
offset + 1, and keeps answering it until the next write. Measured with aiokafka: 3 partitions,
1-5 records per round awaited with acks=all, then `end_offsets()`: 119 of 200 rounds short (e.g.
offsets 3 and 4 acknowledged on partition 1, end offset 4); 0 of 200 with max_batch_size=1. faust's
table recovery reads a changelog up to that end offset, so a process taking over a partition
silently missed the newest state (seen: a rack restored at its second-last value). With one record
per producer batch every end offset is right. Set TWIN_FAUST_ONE_RECORD_PER_BATCH=0 against Apache
Kafka (docker compose, production) to get normal batching back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import faust
from faust.serializers import codecs
from google.protobuf.message import DecodeError, Message

from twin.core.settings import Settings
from twin.core.topics import Topic

log = logging.getLogger("twin.core.faust_app")


class ProtobufCodec(codecs.Codec):
    """faust codec: protobuf message of one type <-> its wire bytes."""

    def __init__(self, message_type: type[Message], **kwargs: Any) -> None:
        self.message_type = message_type
        super().__init__(message_type=message_type, **kwargs)

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, self.message_type):
            return obj.SerializeToString()
        if isinstance(obj, bytes | bytearray):  # already serialized
            return bytes(obj)
        raise TypeError(f"expected {self.message_type.DESCRIPTOR.full_name}, got {type(obj).__name__}")

    def _loads(self, s: bytes) -> Message:
        msg = self.message_type()
        try:
            msg.ParseFromString(s)
        except DecodeError as exc:
            raise ValueError(f"not a {self.message_type.DESCRIPTOR.full_name}: {exc}") from exc
        return msg


def codec_name(topic: Topic) -> str:
    return f"protobuf:{topic.ce_type}"


def register_codec(topic: Topic) -> str:
    """Register (once) the codec for the topic's message type; returns its name."""
    name = codec_name(topic)
    if name not in codecs.codecs:
        codecs.register(name, ProtobufCodec(topic.message_type))
    return name


def make_app(service: str, settings: Settings, *, one_record_per_batch: bool | None = None,
             **overrides: Any) -> faust.App:
    """A faust App named after the service, on TWIN_KAFKA_BOOTSTRAP, with in-memory tables by default.

    `one_record_per_batch` (default: TWIN_FAUST_ONE_RECORD_PER_BATCH, "1" unless "0"/"false"/"no")
    sends every record in its own producer batch: the workaround for Tansu's end offsets (above).
    """
    if one_record_per_batch is None:
        flag = settings.env.get("TWIN_FAUST_ONE_RECORD_PER_BATCH", "1").strip().lower()
        one_record_per_batch = flag not in ("0", "false", "no")
    options: dict[str, Any] = {
        "broker": f"kafka://{settings.kafka_bootstrap}",
        "store": "memory://",
        "web_enabled": False,
        "topic_partitions": 6,
        "topic_replication_factor": 1,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": 6.0,
        "broker_heartbeat_interval": 2.0,
    }
    if one_record_per_batch:
        options["producer_max_batch_size"] = 1  # aiokafka then puts each record in a batch of its own
    options.update(overrides)
    app_id = options.pop("id", service)  # the consumer group; tests pass a unique one
    return faust.App(app_id, **options)


def topic_for(app: faust.App, topic: Topic, **kwargs: Any) -> faust.TopicT:
    """The faust topic for a registry Topic: protobuf values, UTF-8 string keys, registry partitions."""
    return app.topic(
        topic.name,
        key_type=str,
        key_serializer="raw",
        value_serializer=register_codec(topic),
        partitions=topic.partitions,
        **kwargs,
    )


def is_ready(app: faust.App) -> bool:
    """Joined, assigned, and every table recovered: no rebalance or recovery pending, records flowing.

    (faust's `recovery.completed` stays set from the first recovery, so after a later rebalance it
    alone does not say the newly assigned partitions' state has been read back.)
    """
    recovery = app.tables.recovery
    return (app.started and recovery.completed.is_set() and not app.rebalancing
            and not recovery.in_recovery and not recovery.signal_recovery_start.is_set()
            and app.flow_control.is_active() and bool(app.consumer.flow_active))


async def wait_ready(app: faust.App, timeout_s: float = 60.0) -> None:
    """Wait until `is_ready(app)`: the app joined its group and recovered its tables."""
    async def ready() -> None:
        while not is_ready(app):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(ready(), timeout_s)


async def stop_app(app: faust.App, drain_timeout_s: float = 10.0) -> None:
    """Stop gracefully: no new records, in-flight batches finish and are acked, flush, commit, stop."""
    if app.started and not app.should_stop:
        try:
            consumer = app.consumer
            consumer.stop_flow()
            app.flow_control.suspend()
            app.flow_control.clear()
            assignment = consumer.assignment()
            if assignment:
                consumer.pause_partitions(assignment)
            await asyncio.wait_for(consumer.wait_empty(), drain_timeout_s)
            await asyncio.wait_for(app.producer.flush(), drain_timeout_s)
            await asyncio.wait_for(consumer.commit(), drain_timeout_s)
        except Exception as exc:  # noqa: BLE001 - stopping anyway; uncommitted records are replayed
            log.warning("graceful drain of %s failed (records will be replayed): %r", app.conf.id, exc)
    await app.stop()


@asynccontextmanager
async def running(app: faust.App, *, ready_timeout_s: float | None = 60.0) -> AsyncIterator[faust.App]:
    """Start `app` in the current event loop, optionally wait until ready, stop it gracefully on exit."""
    await app.start()
    try:
        if ready_timeout_s is not None:
            await wait_ready(app, ready_timeout_s)
        yield app
    finally:
        await stop_app(app)
