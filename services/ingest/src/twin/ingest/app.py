"""Composition root of the ingest service: real adapters by default, fakes injectable for tests.

    facility.telemetry.v1 ──run_consumer──▶ IngestHandler ──▶ PostgreSQL (ledger + COPY)
                                   │                 └──────▶ telemetry.samples.v1
                                   └── undecodable / invalid ─▶ facility.telemetry.v1.dlq

External-format feeds (DCGM-exporter scrapes, the HTTP receiver) do not write to the database:
they turn what they read into RackTelemetryBatch protos and publish them to facility.telemetry.v1,
so everything passes the same validation, dedupe and exactly-once write path (see `_feed_tasks`).

Settings: `python -m twin.ingest --help` lists them all (IngestConfig below declares them).
The HTTP receiver starts when the port is non-zero AND a token is configured: without a token it
refuses to start (an error is logged, consumption and the DCGM scraper keep running), so nobody can
post unauthenticated telemetry. Feed rejects go to facility.telemetry.v1.dlq with the consumer's DLQ
headers (`twin.core.kafka.dlq_headers`: dlq_reason, dlq_source_topic = the feed, e.g.
"redfish-http:/redfish/v1/ingest", dlq_partition/dlq_offset = -1: never read from Kafka) plus
dlq_source (the same feed name).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.core import topics
from twin.core.clock import Clock, SystemClock
from twin.core.facility import Inventory, build_inventory, load_facility_spec
from twin.core.http import HttpOptions, HttpReceiver
from twin.core.kafka import ConsumerStats, EventProducer, dlq_headers
from twin.core.service import ServiceRuntime, StreamConfig
from twin.core.settings import LOOPBACK, setting
from twin.core.topics import Topic
from twin.ingest.adapters.repository import MIGRATIONS_DIR, TelemetryRepository
from twin.ingest.adapters.stream import IngestHandler, IngestStats, Publisher, Repository
from twin.ingest.domain.equipment import limits_from_spec as equipment_limits_from_spec
from twin.ingest.domain.validation import limits_from_inventory

SERVICE = "ingest"
DEFAULT_HTTP_PORT = 8081  # Redfish metric-report / JSON receiver (docker-compose publishes it)
log = logging.getLogger("twin.ingest")


@dataclass(frozen=True)
class IngestConfig(StreamConfig):
    dcgm_urls: tuple[str, ...] = setting((), "comma-separated dcgm-exporter /metrics URLs to scrape")
    dcgm_interval_s: float = setting(10.0, "seconds between DCGM scrapes")
    dcgm_host_map: str | None = setting(
        None, "JSON/YAML file mapping dcgm-exporter Hostname labels to twin node ids: {host: node id} or "
        "{hosts: {host: node id}, patterns: [{match: regex, node: template}]} (unset: hosts must be node ids)")
    http_port: int | None = setting(DEFAULT_HTTP_PORT, "Redfish HTTP receiver port (0: off)")
    http_host: str = setting(LOOPBACK, "HTTP bind address (0.0.0.0: every interface)")
    http_tls_cert_file: str | None = setting(None, "PEM certificate: serve HTTPS")
    http_tls_key_file: str | None = setting(None, "PEM private key for HTTPS")
    redfish_token: str | None = setting(None, "bearer token Redfish senders must present (required for HTTP)",
                                        secret=True)
    redfish_map: str | None = setting(None, "JSON/YAML file {odata_id_prefix: rack id | [rack ids]}")
    pipeline: bool = setting(False, "decode and validate the next poll while the last one's transaction runs "
                                    "(offsets still committed in order, each after its write)")
    source_topic: Topic = topics.FACILITY_TELEMETRY
    samples_topic: Topic = topics.TELEMETRY_SAMPLES


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
    http_port: int = 0                       # the receiver's bound port once it listens
    dcgm_stats: Any = None                   # dcgm.ScrapeStats once the scraper runs

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        cfg = self.config
        inventory = self.inventory or build_inventory(load_facility_spec(cfg.facility))
        limits = limits_from_inventory(inventory)
        async with ServiceRuntime(SERVICE, cfg, stop_event) as rt:
            rt.ready = self.ready
            repository = self.repository or TelemetryRepository(await rt.database(MIGRATIONS_DIR))
            await rt.ensure_topics(cfg.source_topic, cfg.samples_topic)
            producer = await rt.producer()
            handler = IngestHandler(repository, self.publisher or producer, limits, self.clock,
                                    cfg.samples_topic, self.ingest_stats,
                                    equipment_limits=equipment_limits_from_spec(inventory.spec),
                                    pipeline=cfg.pipeline)
            rt.consume(cfg.source_topic, handler, stats=self.consumer_stats)
            await self._start_feeds(rt, producer, inventory)
            rt.status(self.status_line)
            await rt.run()

    # -- external feeds: the hook for the DCGM scraper and the HTTP receiver ---------------------

    async def _start_feeds(self, rt: ServiceRuntime, producer: EventProducer, inventory: Inventory) -> None:
        """Start the optional feed adapters; each publishes RackTelemetryBatch into the source topic."""
        cfg = self.config

        async def publish(batch) -> None:
            await producer.send(cfg.source_topic, batch.rack_id or batch.site_id, batch)  # equipment: by site

        async def dead_letter(raw: bytes, reason: str, source: str) -> None:
            # Same DLQ format as the consumer loop; the feed takes the place of the source topic.
            headers = dlq_headers([("dlq_source", source.encode())], reason, source, -1, -1, now=self.clock.now())
            await producer.send_raw(cfg.source_topic.dlq, None, raw, headers)

        if cfg.dcgm_urls:
            await self._start_dcgm(rt, publish, dead_letter, inventory)
        if cfg.http_port:
            await self._start_http(rt, publish, dead_letter, inventory)

    async def _start_dcgm(self, rt: ServiceRuntime, publish, dead_letter, inventory: Inventory) -> None:
        """The DCGM-exporter scraper; refuses to start (error logged, rest keeps running) on a bad host map."""
        import aiohttp

        from twin.ingest.adapters import dcgm

        cfg = self.config
        try:
            host_map = dcgm.load_host_map(cfg.dcgm_host_map)
        except (OSError, ValueError) as exc:
            log.error("DCGM scraper NOT started: bad INGEST_DCGM_HOST_MAP %r: %s", cfg.dcgm_host_map, exc)
            return
        self.dcgm_stats = dcgm.ScrapeStats()
        session = aiohttp.ClientSession()
        rt.on_close(session.close)
        rt.spawn(dcgm.scrape_loop(
            cfg.dcgm_urls, cfg.dcgm_interval_s, session, publish, dead_letter,
            dcgm.host_resolver_from_inventory(inventory, host_map=host_map), self.clock, rt.stop_event,
            site_id=inventory.spec.site_id, stats=self.dcgm_stats), "dcgm")
        log.info("DCGM scraper: %s every %.1f s (%d exact, %d pattern host mapping(s))", ", ".join(cfg.dcgm_urls),
                 cfg.dcgm_interval_s, len(host_map.hosts), len(host_map.patterns))

    async def _start_http(self, rt: ServiceRuntime, publish, dead_letter, inventory: Inventory) -> None:
        """The Redfish push receiver; refuses to start (error logged, rest keeps running) when misconfigured."""
        cfg = self.config
        if not cfg.redfish_token:
            log.error("HTTP receiver NOT started: INGEST_HTTP_PORT=%d but INGEST_REDFISH_TOKEN is not set; "
                      "refusing to accept unauthenticated telemetry (set a token, or INGEST_HTTP_PORT=0)",
                      cfg.http_port)
            return
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
        receiver = HttpReceiver(app, HttpOptions(host=cfg.http_host, port=cfg.http_port,
                                                 tls_cert_file=cfg.http_tls_cert_file,
                                                 tls_key_file=cfg.http_tls_key_file))
        try:
            self.http_port = await rt.serve_http(receiver)
        except OSError as exc:
            log.error("HTTP receiver NOT started: cannot listen on %s:%d: %s", cfg.http_host, cfg.http_port, exc)
            return
        log.info("HTTP receiver on %s:%d (%d Redfish rack mapping(s))", cfg.http_host, self.http_port, len(racks))

    # -- operator status -------------------------------------------------------------------------

    def status_line(self) -> str:
        c, s = self.consumer_stats, self.ingest_stats
        line = (f"consumed={c.consumed} stored_batches={s.stored_batches} gpu_rows={s.rows.get('telemetry_gpu', 0)} "
                f"rack_rows={s.rows.get('telemetry_rack', 0)} link_rows={s.rows.get('telemetry_link', 0)} "
                f"invalid={s.invalid} conflicts={s.conflicts} dlq={c.dlq_sent} duplicates={s.duplicates} "
                f"redelivered={s.redelivered} published={s.published} retries={c.retries} lag={c.total_lag}")
        if self.dcgm_stats is not None:
            d = self.dcgm_stats
            line += f" dcgm_scrapes={d.scrapes} dcgm_failed={d.failed} dcgm_empty={d.empty} dcgm_batches={d.published}"
        return line
