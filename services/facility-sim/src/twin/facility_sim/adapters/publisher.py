"""Kafka producer for facility records (aiokafka), plus topic creation from twin.core.topics.

acks=all; idempotence off (not every Kafka-protocol broker, e.g. Tansu, supports idempotent
producers, and duplicates are handled downstream by ingest anyway); lz4 is not a dependency, so no
compression. Topics are created with twin.core.topics_admin.ensure_topics.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiokafka import AIOKafkaProducer

from twin.core import limits
from twin.core.envelope import Headers


class Publisher(Protocol):
    async def start(self) -> None: ...
    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers) -> asyncio.Future: ...
    async def flush(self) -> None: ...
    async def stop(self) -> None: ...


class KafkaPublisher:
    def __init__(self, bootstrap: str, linger_ms: int = 5) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, client_id="facility-sim", acks="all", enable_idempotence=False,
            linger_ms=linger_ms, compression_type=None, max_request_size=limits.PRODUCER_MAX_REQUEST_BYTES,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers) -> asyncio.Future:
        """Queue one record; the returned future resolves when the broker acknowledged it."""
        return await self._producer.send(topic, value=value, key=key, headers=headers)

    async def flush(self) -> None:
        await self._producer.flush()

    async def stop(self) -> None:
        await self._producer.stop()


class MemoryPublisher:
    """In-process publisher for tests and `--dry-run`: keeps (topic, key, value, headers) records."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.records: list[tuple[str, bytes, bytes, Headers]] = []
        self.count = 0

    async def start(self) -> None:
        return None

    async def send(self, topic: str, key: bytes, value: bytes, headers: Headers) -> asyncio.Future:
        self.count += 1
        if self.keep:
            self.records.append((topic, key, value, headers))
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def flush(self) -> None:
        return None

    async def stop(self) -> None:
        return None
