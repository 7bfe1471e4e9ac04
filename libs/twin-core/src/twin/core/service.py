"""The lifecycle every service shares: resources opened in order, tasks watched, a graceful drain.

    async with ServiceRuntime("fabric", cfg, stop) as rt:
        pool = await rt.database(MIGRATIONS_DIR)              # pool + this service's migrations
        producer = await rt.producer()                        # CloudEvents protobuf producer
        await rt.ensure_topics(topics.FABRIC_EVENTS, ...)     # when cfg.create_topics
        rt.consume(topics.FABRIC_EVENTS, handler)             # at-least-once loop, DLQ, lag
        await rt.serve_grpc(server)                           # started now, stopped first on drain
        rt.status(lambda: f"consumed={...}")                  # status line every status_interval_s
        await rt.run()                                        # until stop, or until a task fails

Drain order on stop (SIGTERM/SIGINT via `twin.core.runner`): gRPC and HTTP servers report
NOT_SERVING and finish running requests (grace), consumers finish their current batch, commit and
leave their group, helper tasks are cancelled, then the producer flushes and the pool closes
(reverse order of opening). A task that ends with an exception on its own is an error: the runtime
drains and re-raises it, so the process exits non-zero and a supervisor restarts it.
`rt.ready` is set once every consumer has joined and every server is listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.core.kafka import ConsumerStats, EventProducer, Handler, run_consumer
from twin.core.settings import LOOPBACK, ServiceConfig, setting
from twin.core.topics import Topic

log = logging.getLogger("twin.core.service")


@dataclass(frozen=True)
class StreamConfig(ServiceConfig):
    """Settings of a service that consumes Kafka and keeps tables (add its own fields after these)."""

    group_id: str | None = setting(None, "consumer group (default: the service name)")
    max_records: int = setting(500, "records per consumer poll")
    session_timeout_ms: int = setting(6000, "consumer group session timeout")
    create_topics: bool = setting(True, "create missing topics at start")
    db_pool_size: int = setting(4, "PostgreSQL connections")
    status_interval_s: float = setting(10.0, "seconds between status log lines")
    grace_s: float = setting(5.0, "seconds running requests get to finish on stop")


@dataclass(frozen=True)
class GrpcServiceConfig(StreamConfig):
    """A stream service that also answers gRPC: bind address, port, token and TLS, declared once.
    A service sets its own port by redefining `grpc_port` with its default."""

    grpc_host: str = setting(LOOPBACK, "gRPC bind address (0.0.0.0: every interface)")
    grpc_port: int = setting(0, "gRPC port (0: any free port)")
    grpc_token: str | None = setting(None, "bearer token gRPC clients must send (unset: none)", secret=True)
    grpc_tls_cert_file: str | None = setting(None, "PEM server certificate (enables TLS)")
    grpc_tls_key_file: str | None = setting(None, "PEM server private key")
    grpc_tls_client_ca_file: str | None = setting(None, "PEM CA for client certificates (mutual TLS)")

    def grpc_options(self):
        """twin.core.grpc_server.GrpcOptions from these settings."""
        from twin.core.grpc_server import GrpcOptions

        return GrpcOptions(host=self.grpc_host, port=self.grpc_port, token=self.grpc_token,
                           tls_cert_file=self.grpc_tls_cert_file, tls_key_file=self.grpc_tls_key_file,
                           tls_client_ca_file=self.grpc_tls_client_ca_file)


class _Server:
    """What the runtime needs of a gRPC or HTTP server."""

    async def stop(self, grace_s: float) -> None: ...


class ServiceRuntime:
    def __init__(self, service: str, config: ServiceConfig, stop: asyncio.Event | None = None) -> None:
        self.service = service
        self.config = config
        self.stop_event = stop or asyncio.Event()
        self.ready = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task] = []
        self._consumers: list[asyncio.Task] = []
        self._servers: list[Callable[[float], Coroutine[Any, Any, None]]] = []
        self._producer: EventProducer | None = None
        self._pending_ready: set[str] = set()
        self._ready_blockers = 0

    async def __aenter__(self) -> ServiceRuntime:
        await self._stack.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._drain()
        finally:
            await self._stack.__aexit__(*exc)

    # -- resources ------------------------------------------------------------------------------
    @property
    def group_id(self) -> str:
        return getattr(self.config, "group_id", None) or self.service

    async def database(self, migrations_dir: Path | None = None, *, pool_size: int | None = None):
        """A psycopg pool for this service, closed last; applies its migrations first when given."""
        from twin.core.db import apply_migrations, open_pool

        size = pool_size or getattr(self.config, "db_pool_size", 4)
        pool = await open_pool(self.config.database_url, min_size=1, max_size=size, name=self.service)
        self._stack.push_async_callback(pool.close)
        if migrations_dir is not None:
            applied = await apply_migrations(pool, self.service, migrations_dir)
            if applied:
                log.info("applied migrations: %s", ", ".join(applied))
        return pool

    async def producer(self) -> EventProducer:
        """The service's one producer (events and DLQ), flushed and closed after the consumers stop."""
        if self._producer is None:
            producer = EventProducer(self.config.kafka_bootstrap, source=self.service, **self.config.kafka_options())
            await producer.start()
            self._stack.push_async_callback(producer.stop)
            self._producer = producer
        return self._producer

    async def ensure_topics(self, *wanted: Topic) -> None:
        if getattr(self.config, "create_topics", True):
            from twin.core.topics_admin import ensure_topics

            await ensure_topics(self.config.kafka_bootstrap, list(wanted), client_options=self.config.kafka_options())

    def on_close(self, callback: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run `callback` on the way out (after the servers and tasks stopped)."""
        self._stack.push_async_callback(callback)

    # -- work -----------------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=f"{self.service}-{name}")
        self._tasks.append(task)
        return task

    def consume(self, topic: Topic, handler: Handler, *, group_id: str | None = None,
                stats: ConsumerStats | None = None, **kwargs: Any) -> ConsumerStats:
        """Start the at-least-once consumer loop for `topic` (its DLQ goes through `producer()`;
        call `await rt.producer()` first). Returns the loop's live counters."""
        if self._producer is None:
            raise RuntimeError("call `await runtime.producer()` before consume(): the DLQ needs it")
        stats = stats or ConsumerStats()
        group = group_id or self.group_id
        label = f"consume:{topic.name}"
        self._pending_ready.add(label)
        cfg = self.config
        kwargs.setdefault("max_records", getattr(cfg, "max_records", 500))
        kwargs.setdefault("session_timeout_ms", getattr(cfg, "session_timeout_ms", 6000))
        task = self.spawn(run_consumer(
            cfg.kafka_bootstrap, group, topic, handler, dlq_producer=self._producer, stop_event=self.stop_event,
            stats=stats, on_started=lambda: self._mark_ready(label), **cfg.kafka_options(), **kwargs), label)
        self._consumers.append(task)
        return stats

    async def serve_grpc(self, server: Any) -> int:
        """Start a `twin.core.grpc_server.GrpcServer`; it is the first thing stopped on drain."""
        port = await server.start()
        self._servers.append(server.stop)
        self._check_ready()
        return port

    async def serve_http(self, receiver: Any) -> int:
        """Start a `twin.core.http.HttpReceiver` (stopped with the servers on drain)."""
        port = await receiver.start()

        async def stop(_grace_s: float) -> None:
            await receiver.stop()

        self._servers.append(stop)
        return port

    def status(self, line: Callable[[], str], interval_s: float | None = None) -> None:
        """Log `line()` every interval (status_interval_s) and once more on the way out."""
        every = interval_s or getattr(self.config, "status_interval_s", 10.0)

        async def loop() -> None:
            while not self.stop_event.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), every)
                log.info("status: %s", line())

        self.spawn(loop(), "status")

    def hold_ready(self) -> Callable[[], None]:
        """Delay `ready` until the returned callable is called (e.g. state restored)."""
        self._ready_blockers += 1

        def release() -> None:
            self._ready_blockers -= 1
            self._check_ready()

        return release

    def _mark_ready(self, label: str) -> None:
        self._pending_ready.discard(label)
        self._check_ready()

    def _check_ready(self) -> None:
        if not self._pending_ready and self._ready_blockers == 0:
            self.ready.set()

    async def run(self) -> None:
        """Until stop is set or a task ends on its own; a task that failed is re-raised after the drain."""
        self._check_ready()
        stopper = asyncio.create_task(self.stop_event.wait(), name=f"{self.service}-stop")
        try:
            await asyncio.wait([stopper, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("%s ended with an error; stopping the service", task.get_name())
                raise task.exception()  # __aexit__ drains
            if task.done() and not self.stop_event.is_set():
                log.error("%s ended on its own; stopping the service", task.get_name())
                raise RuntimeError(f"{task.get_name()} ended unexpectedly")

    async def _drain(self) -> None:
        self.stop_event.set()
        grace = getattr(self.config, "grace_s", 5.0)
        started = time.monotonic()
        for stop in reversed(self._servers):
            with contextlib.suppress(Exception):
                await stop(grace)
        # consumers: they saw stop_event, finish the current batch, commit, leave the group
        if self._consumers:
            await asyncio.wait(self._consumers, timeout=max(grace, 10.0))
        for task in self._tasks:
            if not task.done():
                task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for task, result in zip(self._tasks, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.debug("%s ended with %r during drain", task.get_name(), result)
        log.info("drained in %.1f s", time.monotonic() - started)
