"""Create the registry's topics (and their dead-letter topics) on a Kafka-protocol broker.

Works against Apache Kafka and Tansu (both implement CreateTopics); topics that already exist are
left alone, whatever their partition count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError

from twin.core import topics as registry
from twin.core.topics import Topic

log = logging.getLogger("twin.core.topics_admin")

TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(bootstrap: str, topics: Iterable[Topic] = registry.ALL, with_dlq: bool = True,
                        replication_factor: int = 1, timeout_s: float = 30.0,
                        client_options: dict | None = None) -> list[str]:
    """Create missing topics with the registry's partition counts; returns the names created.
    `client_options`: aiokafka security arguments (ServiceConfig.kafka_options())."""
    wanted: dict[str, int] = {}
    for t in topics:
        wanted[t.name] = t.partitions
        if with_dlq:
            wanted[t.dlq] = t.partitions
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000),
                                **(client_options or {}))
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, n, replication_factor) for name, n in wanted.items() if name not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(missing)
            for name, code, message in _topic_errors(response):
                if code == 0:
                    created.append(name)
                elif code != TOPIC_ALREADY_EXISTS:  # a concurrent creator won the race: fine
                    raise RuntimeError(f"creating topic {name} failed: error {code} {message}")
        if created:
            log.info("created topics: %s", ", ".join(created))
        return created
    finally:
        await admin.close()


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    out = []
    for item in getattr(response, "topic_errors", []):
        name, code = item[0], item[1]
        message = item[2] if len(item) > 2 else None
        out.append((name, code, message))
    return out
