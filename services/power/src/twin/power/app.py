"""Composition root of the power service: real adapters by default, fakes injectable for tests.

    facility spec ─▶ SiteModel (network, layout, GPU params, on-site sources)
    telemetry.samples.v1 ─run_consumer─▶ RackHandler (stage 1, key rack) ─▶ power.state.v1 (racks)
                                              │                           ├▶ power.racks.v1 (key site)
                                              │                           └▶ power_state, power.alerts.v1
    power.racks.v1 ──────run_consumer─▶ SiteHandler (stage 2, key site) ─▶ power.state.v1 (PDU … site)
                                                                          └▶ power_state, power.alerts.v1
    POST /openadr3/events ─▶ grid.events.v1 ─run_consumer─▶ GridHandler ─▶ power.plans.v1
    gRPC PowerService ◀─ power_state_latest / history, stage 1's GPU activity (plans, what-ifs)

Consumer groups: `<group>` reads telemetry.samples.v1, `<group>-site` power.racks.v1 and `<group>-grid`
grid.events.v1 (separate groups: a rebalance of the busy telemetry stream never pauses stage 2 or
grid events). Several processes with one POWER_GROUP_ID share the racks; see adapters/stream.py.

Settings: `python -m twin.power --help` lists them all (PowerConfig below is the one place they are
declared). POWER_CONSUME=0 runs gRPC (and HTTP) without consumers or a database.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from twin.core import topics
from twin.core.clock import Clock, SystemClock
from twin.core.facility import load_facility_spec
from twin.core.http import HttpOptions, HttpReceiver
from twin.core.kafka import ConsumerStats, EventProducer, dlq_headers
from twin.core.service import GrpcServiceConfig, ServiceRuntime
from twin.core.settings import LOOPBACK, setting
from twin.core.topics import Topic
from twin.power import whatif
from twin.power.adapters import codec
from twin.power.adapters.codec import SiteIndex
from twin.power.adapters.grpc_api import PowerServicer, power_grpc_server
from twin.power.adapters.repository import MIGRATIONS_DIR, InMemoryPowerStore, PowerStateRepository
from twin.power.adapters.stream import (
    RACK_CONTRIBUTIONS,
    GridBook,
    GridHandler,
    RackHandler,
    SiteHandler,
    StreamStats,
    restore_book,
)
from twin.power.adapters.views import ReadModel, tail
from twin.power.domain.alerts import DEFAULT_THRESHOLD
from twin.power.live import DEFAULT_SENSOR_TOLERANCE, RackStage, SiteStage
from twin.power.site import SiteModel, build_site_model
from twin.power.v1 import power_pb2 as pb

SERVICE = "power"
log = logging.getLogger("twin.power")


@dataclass(frozen=True)
class PowerConfig(GrpcServiceConfig):
    grpc_port: int = setting(50054, "gRPC port (0: any free port)")
    http_host: str = setting(LOOPBACK, "OpenADR 3 HTTP bind address (0.0.0.0: every interface)")
    http_port: int = setting(8082, "OpenADR 3 HTTP port (0: any free port; needs POWER_OPENADR_TOKEN)")
    http_tls_cert_file: str | None = setting(None, "PEM certificate: serve HTTPS")
    http_tls_key_file: str | None = setting(None, "PEM private key for HTTPS")
    openadr_token: str | None = setting(None, "bearer token OpenADR senders must present (unset: no HTTP receiver)",
                                        secret=True)
    consume: bool = setting(True, "consume telemetry and grid events (0: gRPC/HTTP only, no Kafka consumers/database)")
    alert_threshold: float = setting(DEFAULT_THRESHOLD, "share of a rating above which a component raises an alert")
    sensor_tolerance: float = setting(DEFAULT_SENSOR_TOLERANCE,
                                      "relative PDU-vs-model disagreement that flags a suspect sensor")
    min_change_w: float = setting(1.0, "change of a component's output (W) that is published again")
    restore_after_s: float = setting(30.0, "seconds without a site batch after which stage 2 re-reads stored racks")
    samples_topic: Topic = topics.TELEMETRY_SAMPLES
    state_topic: Topic = topics.POWER_STATE
    racks_topic: Topic = RACK_CONTRIBUTIONS
    alerts_topic: Topic = topics.POWER_ALERTS
    plans_topic: Topic = topics.POWER_PLANS
    grid_topic: Topic = topics.GRID_EVENTS
    jobs_topic: Topic = topics.JOBS_STATE
    cooling_topic: Topic = topics.COOLING_STATE


    def http_options(self) -> HttpOptions:
        return HttpOptions(host=self.http_host, port=self.http_port, tls_cert_file=self.http_tls_cert_file,
                           tls_key_file=self.http_tls_key_file)


@dataclass
class PowerApp:
    """`await app.run(stop_event)` until the event is set; `ready` is set once servers and consumers are up."""

    config: PowerConfig
    clock: Clock = field(default_factory=SystemClock)
    model: SiteModel | None = None           # default: from config.facility
    store: object | None = None              # default: PowerStateRepository (consume) / in-memory
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stats: StreamStats = field(default_factory=StreamStats)
    rack_stats: ConsumerStats = field(default_factory=ConsumerStats)
    site_stats: ConsumerStats = field(default_factory=ConsumerStats)
    grid_stats: ConsumerStats = field(default_factory=ConsumerStats)
    racks: RackStage | None = None
    site: SiteStage | None = None
    grid: GridHandler | None = None
    grid_book: GridBook = field(default_factory=GridBook)
    view: ReadModel | None = None
    grpc_port: int = 0
    http_port: int = 0

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        cfg = self.config
        model = self.model or build_site_model(load_facility_spec(cfg.facility))
        self.model = model
        index = SiteIndex.of(model.inventory, cfg.site_id)
        self.racks = RackStage(model, sensor_tolerance=cfg.sensor_tolerance)
        self.site = SiteStage(model, threshold=cfg.alert_threshold)
        self.view = ReadModel(index, len(model.layout.gpu_node))
        async with ServiceRuntime(SERVICE, cfg, stop_event) as rt:
            rt.ready = self.ready
            store = self.store
            if store is None:
                store = PowerStateRepository(await rt.database(MIGRATIONS_DIR)) if cfg.consume else InMemoryPowerStore()
            self.store = store
            producer = None
            if cfg.consume or cfg.openadr_token:
                await rt.ensure_topics(cfg.samples_topic, cfg.state_topic, cfg.racks_topic, cfg.alerts_topic,
                                       cfg.plans_topic, cfg.grid_topic, cfg.jobs_topic, cfg.cooling_topic)
                producer = await rt.producer()
            if cfg.consume:
                assert producer is not None
                # before the grid consumer starts, so the book keeps the topic's order
                n = await restore_book(cfg.kafka_bootstrap, cfg.grid_topic, self.grid_book,
                                       now_s=self.clock.now().timestamp(), **cfg.kafka_options())
                if n:
                    log.info("grid event book restored from %s: %d event(s) in force", cfg.grid_topic.name, n)
                self._start_streams(rt, producer, index, store)
            if cfg.openadr_token:
                assert producer is not None
                self.http_port = await self._start_http(rt, producer)
            elif cfg.http_port:
                log.warning("OpenADR HTTP receiver NOT started: POWER_OPENADR_TOKEN is not set (refusing "
                            "unauthenticated grid events)")
            servicer = PowerServicer(model, self.racks, store, site_id=index.site_id, clock=self.clock, view=self.view)
            self.grpc_port = await rt.serve_grpc(power_grpc_server(servicer, cfg.grpc_options()))
            rt.status(self.status_line)
            log.info("power twin for %s: %d racks, %d GPUs, %d chain components; gRPC :%d%s", index.site_id,
                     model.network.n_racks, len(model.layout.gpu_node), model.network.n_comp, self.grpc_port,
                     f", OpenADR HTTP :{self.http_port}" if self.http_port else "")
            await rt.run()

    def _start_streams(self, rt: ServiceRuntime, producer: EventProducer, index: SiteIndex, store) -> None:
        cfg = self.config
        assert self.model is not None and self.racks is not None and self.site is not None
        model = self.model
        rt.consume(cfg.samples_topic, RackHandler(
            index, self.racks, producer, store, state_topic=cfg.state_topic, racks_topic=cfg.racks_topic,
            alerts_topic=cfg.alerts_topic, stats=self.stats), stats=self.rack_stats)
        view = self.view
        rt.consume(cfg.racks_topic, SiteHandler(
            index, self.site, producer, store, state_topic=cfg.state_topic, alerts_topic=cfg.alerts_topic,
            stats=self.stats, min_change_w=cfg.min_change_w, restore_after_s=cfg.restore_after_s,
            cooling=lambda: (view.cooling_w, view.cooling_source)),
            group_id=f"{rt.group_id}-site", stats=self.site_stats)
        racks = self.racks

        def skipped() -> None:
            view.skipped += 1

        opts = cfg.kafka_options()
        rt.spawn(tail(cfg.kafka_bootstrap, cfg.jobs_topic, view.apply_job, rt.stop_event, on_error=skipped, **opts),
                 "jobs-view")
        rt.spawn(tail(cfg.kafka_bootstrap, cfg.cooling_topic, view.apply_cooling, rt.stop_event, on_error=skipped,
                      **opts), "cooling-view")

        def plan(**kw):
            return whatif.plan(model, racks, **kw)

        def context() -> dict:   # read on the event loop, where the read model changes
            return {"jobs": view.planner_jobs(), "cooling_w": view.cooling_w}

        def encode(p, **kw):
            return codec.plan(p, model.sources, **kw)

        async def rack_w():
            rows = await store.latest(index.site_id, pb.POWER_SCOPE_RACK)
            return codec.rack_w_of(rows, index.rack_index, model.network.n_racks)

        self.grid = GridHandler(index.site_id, plan, encode, producer, plans_topic=cfg.plans_topic, stats=self.stats,
                                rack_w=rack_w, context=context, now=self.clock.now, book=self.grid_book)
        rt.consume(cfg.grid_topic, self.grid, group_id=f"{rt.group_id}-grid", stats=self.grid_stats)

    async def _start_http(self, rt: ServiceRuntime, producer: EventProducer) -> int:
        from twin.power.adapters.http import make_http_app

        cfg = self.config

        async def publish(event) -> None:
            await producer.send(cfg.grid_topic, event.event_id, event)

        async def dead_letter(raw: bytes, reason: str, source: str) -> None:
            headers = dlq_headers([("dlq_source", source.encode())], reason, source, -1, -1, now=self.clock.now())
            await producer.send_raw(cfg.grid_topic.dlq, None, raw, headers)

        app = make_http_app(publish=publish, dead_letter=dead_letter, token=cfg.openadr_token or "")
        return await rt.serve_http(HttpReceiver(app, cfg.http_options()))

    def status_line(self) -> str:
        s = self.stats
        return (f"telemetry consumed={self.rack_stats.consumed} dlq={self.rack_stats.dlq_sent}, racks={s.racks}, "
                f"site evaluations={s.site_evaluations} site={s.last_site_w / 1e6:.3f} MW, "
                f"states={s.states_published} alerts={s.alerts_published} plans={s.plans_published}, "
                f"rows={s.rows_written}, grid events={self.grid_stats.consumed} dlq={self.grid_stats.dlq_sent}, "
                f"jobs running={len(self.view.jobs) if self.view else 0} cooling={self.view.cooling_w / 1e3 if self.view else 0:.0f} kW")
