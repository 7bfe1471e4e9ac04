"""faust-streaming apps for the twin services: broker from settings, protobuf values from the registry.

    app = make_app("power", Settings.from_env("power"))
    samples = topic_for(app, topics.TELEMETRY_SAMPLES)

    @app.agent(samples)
    async def on_samples(stream):
        async for msg in stream:          # msg is a twin.telemetry.v1.TelemetrySamples
            ...

Values are the serialized protobuf of the topic's message type (DESIGN §4), decoded by a faust codec
registered per message type as `protobuf:<full name>`; keys are raw UTF-8 entity ids.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.serializers import codecs
from google.protobuf.message import DecodeError, Message

from twin.core.settings import Settings
from twin.core.topics import Topic


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


def make_app(service: str, settings: Settings, **overrides: Any) -> faust.App:
    """A faust App named after the service, on TWIN_KAFKA_BOOTSTRAP, with in-memory tables by default."""
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
