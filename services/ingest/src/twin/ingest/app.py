"""Composition root of the ingest service: real adapters by default, fakes injectable for tests.

    facility.telemetry.v1 ──run_consumer──▶ IngestHandler ──▶ PostgreSQL (ledger + COPY)
                                   │                 └──────▶ telemetry.samples.v1
                                   └── undecodable / invalid ─▶ facility.telemetry.v1.dlq

External-format feeds (DCGM-exporter scrapes, the HTTP receiver) do not write to the database:
they turn what they read into RackTelemetryBatch protos and publish them to facility.telemetry.v1,
so everything passes the same validation, dedupe and exactly-once write path (see `_feed_tasks`).

Settings (env): TWIN_KAFKA_BOOTSTRAP, TWIN_DATABASE_URL, TWIN_FACILITY and
  INGEST_GROUP_ID (ingest)          INGEST_MAX_RECORDS (500)       INGEST_SESSION_TIMEOUT_MS (6000)
  INGEST_STATUS_INTERVAL_S (10)     INGEST_CREATE_TOPICS (1)       INGEST_DB_POOL_SIZE (4)
  INGEST_DCGM_URLS (comma list)     INGEST_DCGM_INTERVAL_S (10)
  INGEST_HTTP_PORT (8081; 0 = off)  INGEST_HTTP_HOST (0.0.0.0)     INGEST_REDFISH_TOKEN (bearer token)
  INGEST_REDFISH_MAP (path of a JSON/YAML file {odata_id_prefix: rack_id | [rack ids]})
The HTTP receiver starts when the port is non-zero AND a token is configured: without a token it
refuses to start (an error is logged, consumption and the DCGM scraper keep running), so nobody can
post unauthenticated telemetry. Feed rejects go to facility.telemetry.v1.dlq with the consumer's DLQ
headers (`twin.core.kafka.dlq_headers`: dlq_reason, dlq_source_topic = the feed, e.g.
"redfish-http:/redfish/v1/ingest", dlq_partition/dlq_offset = -1: never read from Kafka) plus
dlq_source (the same feed name).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from twin.core import topics
from twin.core.clock import Clock, SystemClock
from twin.core.db import apply_migrations, open_pool
from twin.core.facility import Inventory, build_inventory, load_facility_spec
from twin.core.kafka import ConsumerStats, EventProducer, dlq_headers, run_consumer
from twin.core.settings import Settings
from twin.core.topics import Topic
from twin.core.topics_admin import ensure_topics
from twin.ingest.adapters.repository import MIGRATIONS_DIR, TelemetryRepository
from twin.ingest.adapters.stream import IngestHandler, IngestStats, Publisher, Repository
from twin.ingest.domain.validation import limits_from_inventory

SERVICE = "ingest"
DEFAULT_HTTP_PORT = 8081  # Redfish metric-report / JSON receiver (docker-compose publishes it)
log = logging.getLogger("twin.ingest")


@dataclass(frozen=True)
class IngestConfig:
    kafka_bootstrap: str
    database_url: str
    facility: str
    group_id: str = SERVICE
    source_topic: Topic = topics.FACILITY_TELEMETRY
    samples_topic: Topic = topics.TELEMETRY_SAMPLES
    max_records: int = 500
    session_timeout_ms: int = 6000
    status_interval_s: float = 10.0
    create_topics: bool = True
    db_pool_size: int = 4
    dcgm_urls: tuple[str, ...] = ()
    dcgm_interval_s: float = 10.0
    http_port: int | None = None          # None/0: no HTTP receiver (from_settings defaults to 8081)
    http_host: str = "0.0.0.0"
    redfish_token: str | None = None
    redfish_map: str | None = None        # path of the {odata_id_prefix: rack id(s)} file

    @classmethod
    def from_settings(cls, s: Settings) -> IngestConfig:
        port = s.get_int("HTTP_PORT", DEFAULT_HTTP_PORT)
        return cls(
            kafka_bootstrap=s.kafka_bootstrap,
            database_url=s.database_url,
            facility=s.facility,
            group_id=s.get("GROUP_ID", SERVICE),
            max_records=s.get_int("MAX_RECORDS", 500),
            session_timeout_ms=s.get_int("SESSION_TIMEOUT_MS", 6000),
            status_interval_s=s.get_float("STATUS_INTERVAL_S", 10.0),
            create_topics=s.get("CREATE_TOPICS", "1").lower() not in ("0", "false", "no"),
            db_pool_size=s.get_int("DB_POOL_SIZE", 4),
            dcgm_urls=tuple(u.strip() for u in s.get("DCGM_URLS", "").split(",") if u.strip()),
            dcgm_interval_s=s.get_float("DCGM_INTERVAL_S", 10.0),
            http_port=port or None,
            http_host=s.get("HTTP_HOST", "0.0.0.0"),
            redfish_token=s.get("REDFISH_TOKEN", "") or None,
            redfish_map=s.get("REDFISH_MAP", "") or None,
        )


def load_rack_map(path: str | Path | None) -> dict[str, str | list[str]]:
    """Read INGEST_REDFISH_MAP: a JSON or YAML object {odata_id_prefix: rack_id | [rack ids]} (None: empty)."""
    if not path:
        return {}
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected an object {{odata_id_prefix: rack id(s)}}, got {type(data).__name__}")
    out: dict[str, str | list[str]] = {}
    for prefix, racks in data.items():
        if isinstance(racks, str):
            out[str(prefix)] = racks
        elif isinstance(racks, Sequence) and all(isinstance(r, str) for r in racks):
            out[str(prefix)] = list(racks)
        else:
            raise ValueError(f"{path}: rack ids for {prefix!r} must be a string or a list of strings, got {racks!r}")
    return out


@dataclass
class IngestApp:
    """`await app.run(stop_event)` until the event is set; `ready` is set once the consumer is up."""

    config: IngestConfig
    clock: Clock = field(default_factory=SystemClock)
    repository: Repository | None = None     # default: TelemetryRepository on a psycopg pool
    publisher: Publisher | None = None       # default: the app's EventProducer
    inventory: Inventory | None = None       # default: from config.facility
    consumer_stats: ConsumerStats = field(default_factory=ConsumerStats)
    ingest_stats: IngestStats = field(default_factory=IngestStats)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        stop_event = stop_event or asyncio.Event()
        cfg = self.config
        inventory = self.inventory or build_inventory(load_facility_spec(cfg.facility))
        limits = limits_from_inventory(inventory)
        async with contextlib.AsyncExitStack() as stack:
            repository = self.repository
            if repository is None:
                pool = await open_pool(cfg.database_url, min_size=1, max_size=cfg.db_pool_size, name=SERVICE)
                stack.push_async_callback(pool.close)
                applied = await apply_migrations(pool, SERVICE, MIGRATIONS_DIR)
                if applied:
                    log.info("applied migrations: %s", ", ".join(applied))
                repository = TelemetryRepository(pool)
            if cfg.create_topics:
                await ensure_topics(cfg.kafka_bootstrap, [cfg.source_topic, cfg.samples_topic])
            producer = EventProducer(cfg.kafka_bootstrap, source=SERVICE)
            await producer.start()
            stack.push_async_callback(producer.stop)
            handler = IngestHandler(repository, self.publisher or producer, limits, self.clock,
                                    cfg.samples_topic, self.ingest_stats)
            consumer = asyncio.create_task(run_consumer(
                cfg.kafka_bootstrap, cfg.group_id, cfg.source_topic, handler, dlq_producer=producer,
                max_records=cfg.max_records, session_timeout_ms=cfg.session_timeout_ms, stop_event=stop_event,
                stats=self.consumer_stats, on_started=self.ready.set), name="ingest-consumer")
            helpers = [asyncio.create_task(self._status_loop(stop_event), name="ingest-status")]
            helpers += await self._feed_tasks(stack, producer, inventory, stop_event)
            try:
                stopper = asyncio.create_task(stop_event.wait())
                await asyncio.wait([consumer, stopper], return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if consumer.done():
                    consumer.result()  # a consumer that died on its own is an error: raise it
                    return
                await consumer  # graceful: finishes the current batch, leaves the group
            finally:
                stop_event.set()
                for task in helpers + [consumer]:
                    if not task.done():
                        task.cancel()
                await asyncio.gather(*helpers, consumer, return_exceptions=True)
                self.log_status()

    # -- external feeds: the hook for the DCGM scraper and the HTTP receiver ---------------------

    async def _feed_tasks(self, stack: contextlib.AsyncExitStack, producer: EventProducer, inventory: Inventory,
                          stop_event: asyncio.Event) -> list[asyncio.Task]:
        """Start the optional feed adapters; each publishes RackTelemetryBatch into the source topic."""
        cfg = self.config

        async def publish(batch) -> None:
            await producer.send(cfg.source_topic, batch.rack_id, batch)

        async def dead_letter(raw: bytes, reason: str, source: str) -> None:
            # Same DLQ format as the consumer loop; the feed takes the place of the source topic.
            headers = dlq_headers([("dlq_source", source.encode())], reason, source, -1, -1, now=self.clock.now())
            await producer.send_raw(cfg.source_topic.dlq, None, raw, headers)

        tasks: list[asyncio.Task] = []
        if cfg.dcgm_urls:
            import aiohttp

            from twin.ingest.adapters import dcgm

            session = aiohttp.ClientSession()
            stack.push_async_callback(session.close)
            tasks.append(asyncio.create_task(dcgm.scrape_loop(
                cfg.dcgm_urls, cfg.dcgm_interval_s, session, publish, dead_letter,
                dcgm.host_resolver_from_inventory(inventory), self.clock, stop_event,
                site_id=inventory.spec.site_id), name="ingest-dcgm"))
            log.info("DCGM scraper: %s every %.1f s", ", ".join(cfg.dcgm_urls), cfg.dcgm_interval_s)
        if cfg.http_port:
            await self._start_http(stack, publish, dead_letter, inventory)
        return tasks

    async def _start_http(self, stack: contextlib.AsyncExitStack, publish, dead_letter, inventory: Inventory) -> None:
        """The Redfish push receiver; refuses to start (error logged, rest keeps running) when misconfigured."""
        cfg = self.config
        if not cfg.redfish_token:
            log.error("HTTP receiver NOT started: INGEST_HTTP_PORT=%d but INGEST_REDFISH_TOKEN is not set; "
                      "refusing to accept unauthenticated telemetry (set a token, or INGEST_HTTP_PORT=0)",
                      cfg.http_port)
            return
        from aiohttp import web

        from twin.ingest.adapters import http_api

        try:
            racks = load_rack_map(cfg.redfish_map)
            app = http_api.make_http_app(publish=publish, dead_letter=dead_letter, token=cfg.redfish_token,
                                         rack_of_resource=racks, clock=self.clock, site_id=inventory.spec.site_id)
        except (OSError, ValueError, TypeError) as exc:
            log.error("HTTP receiver NOT started: bad INGEST_REDFISH_MAP %r: %s", cfg.redfish_map, exc)
            return
        if not racks:
            log.warning("INGEST_REDFISH_MAP is empty or unset: every Redfish resource will be rejected "
                        "(no rack mapping) and dead-lettered")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        try:
            await web.TCPSite(runner, cfg.http_host, cfg.http_port).start()
        except OSError as exc:
            log.error("HTTP receiver NOT started: cannot listen on %s:%d: %s", cfg.http_host, cfg.http_port, exc)
            return
        log.info("HTTP receiver on %s:%d (%d Redfish rack mapping(s))", cfg.http_host, cfg.http_port, len(racks))

    # -- operator status -------------------------------------------------------------------------

    def log_status(self, rate: float | None = None) -> None:
        c, s = self.consumer_stats, self.ingest_stats
        log.info(
            "status: consumed=%d%s stored_batches=%d gpu_rows=%d rack_rows=%d link_rows=%d invalid=%d "
            "dlq=%d duplicates=%d redelivered=%d published=%d retries=%d lag=%d",
            c.consumed, f" ({rate:.1f}/s)" if rate is not None else "", s.stored_batches,
            s.rows.get("telemetry_gpu", 0), s.rows.get("telemetry_rack", 0), s.rows.get("telemetry_link", 0),
            s.invalid, c.dlq_sent, s.duplicates, s.redelivered, s.published, c.retries, c.total_lag)

    async def _status_loop(self, stop_event: asyncio.Event) -> None:
        last_count, last_time = 0, time.monotonic()
        while not stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), self.config.status_interval_s)
            now = time.monotonic()
            rate = (self.consumer_stats.consumed - last_count) / max(now - last_time, 1e-9)
            last_count, last_time = self.consumer_stats.consumed, now
            self.log_status(rate)
