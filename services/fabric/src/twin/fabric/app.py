"""Composition root of the fabric service: real adapters by default, fakes injectable for tests.

    facility spec ─▶ inventory ─▶ core FabricTopology + link index
    fabric.events.v1 ──run_consumer──▶ LinkEventHandler ─┐
    telemetry.samples.v1 ─run_consumer─▶ LinkCounterHandler ─┤─▶ LiveFabricState ─▶ fabric_state (PostgreSQL)
                                                          │        │ swap after the write, then
    invalid events ─▶ fabric.events.v1.dlq (reason)       │        ├─▶ StatePublisher ─▶ fabric.state.v1
                                                          │        └─▶ FabricSimulator ◀─ gRPC FabricSimulationService

Settings (env): TWIN_KAFKA_BOOTSTRAP, TWIN_DATABASE_URL, TWIN_FACILITY (default dgx-h100-su), TWIN_SITE_ID
(default: the spec's site_id) and
  FABRIC_GRPC_PORT (50053)          FABRIC_GRPC_HOST (0.0.0.0)       FABRIC_CONSUME (1; 0 = gRPC only:
  FABRIC_JOBS_FILE (unset)          FABRIC_PUBLISH_INTERVAL_S (10)     no Kafka, no database)
  FABRIC_GROUP_ID (fabric)          FABRIC_STATE_MAX_LINKS (10000)   FABRIC_CREATE_TOPICS (1)
  FABRIC_DB_POOL_SIZE (4)           FABRIC_UTILIZATION_MIN_CHANGE (0.01)   FABRIC_GRACE_S (5)

Consumer groups: `<group>` reads fabric.events.v1, `<group>-telemetry` reads telemetry.samples.v1
(separate groups so a rebalance of the busy telemetry stream never pauses link events).
Jobs: FABRIC_JOBS_FILE (JSON or YAML `{job_id: [gpu ids or "a-b" ranges]}`) fills the job registry
the gRPC placements use (`job_id`); unknown jobs answer NOT_FOUND. The jobs twin will feed it later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from twin.core import topics
from twin.core.clock import Clock, SystemClock
from twin.core.facility import Inventory, build_inventory, load_facility_spec
from twin.core.kafka import ConsumerStats, EventProducer, run_consumer
from twin.core.settings import Settings
from twin.core.topics import Topic
from twin.fabric.adapters.grpc_api import FabricGrpcServer, FabricSimulationServicer
from twin.fabric.adapters.repository import FabricStateRepository, InMemoryStateStore, StateStore
from twin.fabric.adapters.stream import LinkCounterHandler, LinkEventHandler, StatePublisher
from twin.fabric.adapters.topology import LinkIndex, check_compatible, fabric_topology
from twin.fabric.live_state import LiveFabricState
from twin.fabric.simulation import FabricSimulator, JobRegistry, LiveView

SERVICE = "fabric"
log = logging.getLogger("twin.fabric")


def _flag(raw: str) -> bool:
    return raw.strip().lower() not in ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class FabricConfig:
    kafka_bootstrap: str
    database_url: str
    facility: str
    site_id: str | None = None
    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50053
    consume: bool = True
    jobs_file: str | None = None
    group_id: str = SERVICE
    events_topic: Topic = topics.FABRIC_EVENTS
    samples_topic: Topic = topics.TELEMETRY_SAMPLES
    state_topic: Topic = topics.FABRIC_STATE
    publish_interval_s: float = 10.0
    state_max_links: int = 10_000
    create_topics: bool = True
    db_pool_size: int = 4
    utilization_min_change: float = 0.01
    grace_s: float = 5.0
    max_records: int = 500

    @classmethod
    def from_settings(cls, s: Settings) -> FabricConfig:
        return cls(
            kafka_bootstrap=s.kafka_bootstrap,
            database_url=s.database_url,
            facility=s.facility,
            site_id=s.env.get("TWIN_SITE_ID") or None,
            grpc_host=s.get("GRPC_HOST", "0.0.0.0"),
            grpc_port=s.get_int("GRPC_PORT", 50053),
            consume=_flag(s.get("CONSUME", "1")),
            jobs_file=s.get("JOBS_FILE", "") or None,
            group_id=s.get("GROUP_ID", SERVICE),
            publish_interval_s=s.get_float("PUBLISH_INTERVAL_S", 10.0),
            state_max_links=s.get_int("STATE_MAX_LINKS", 10_000),
            create_topics=_flag(s.get("CREATE_TOPICS", "1")),
            db_pool_size=s.get_int("DB_POOL_SIZE", 4),
            utilization_min_change=s.get_float("UTILIZATION_MIN_CHANGE", 0.01),
            grace_s=s.get_float("GRACE_S", 5.0),
        )


@dataclass
class FabricApp:
    """`await app.run(stop_event)` until the event is set; `ready` is set once gRPC (and consumers) are up."""

    config: FabricConfig
    clock: Clock = field(default_factory=SystemClock)
    store: StateStore | None = None          # default: FabricStateRepository (consume) / in-memory (gRPC only)
    inventory: Inventory | None = None       # default: from config.facility
    jobs: dict[str, list[int | str]] | None = None  # extra jobs (tests); FABRIC_JOBS_FILE adds more
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    events_stats: ConsumerStats = field(default_factory=ConsumerStats)
    samples_stats: ConsumerStats = field(default_factory=ConsumerStats)

    # filled by build()/run()
    live: LiveFabricState | None = None
    simulator: FabricSimulator | None = None
    server: FabricGrpcServer | None = None
    publisher: StatePublisher | None = None
    port: int = 0

    def build(self, store: StateStore) -> None:
        """Facility → inventory → topology → live state → simulator → gRPC servicer (no I/O)."""
        cfg = self.config
        inventory = self.inventory or build_inventory(load_facility_spec(cfg.facility))
        self.inventory = inventory
        topology = fabric_topology(inventory)
        index = LinkIndex(inventory)
        check_compatible(index, topology)
        site_id = cfg.site_id or inventory.spec.site_id
        self.live = live = LiveFabricState(site_id, index, topology, store,
                                           utilization_min_change=cfg.utilization_min_change)
        registry = JobRegistry(topology.n_gpus)
        if cfg.jobs_file:
            registry.load_file(cfg.jobs_file)
        if self.jobs:
            registry.load_mapping(self.jobs)

        def view() -> LiveView:
            snap = live.snapshot()
            return LiveView(snap.version, snap.link_state)

        def state():
            return site_id, self.clock.now().timestamp(), live.snapshot().health, index.link_id

        self.simulator = FabricSimulator(topology, view, registry)
        servicer = FabricSimulationServicer(self.simulator, state, max_state_links=cfg.state_max_links)
        self.server = FabricGrpcServer(servicer, host=cfg.grpc_host, port=cfg.grpc_port)
        log.info("facility %s: %d GPUs, %d uplinks, %d NICs, %d jobs registered", site_id, topology.n_gpus,
                 index.n_uplinks, index.n_nics, len(registry))

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        stop_event = stop_event or asyncio.Event()
        cfg = self.config
        async with contextlib.AsyncExitStack() as stack:
            store = self.store
            if store is None and cfg.consume:
                from twin.core.db import open_pool

                pool = await open_pool(cfg.database_url, min_size=1, max_size=cfg.db_pool_size, name=SERVICE)
                stack.push_async_callback(pool.close)
                repo = FabricStateRepository(pool)
                applied = await repo.setup()
                if applied:
                    log.info("applied migrations: %s", ", ".join(applied))
                store = repo
            store = store or InMemoryStateStore()
            self.build(store)
            assert self.live is not None and self.server is not None
            restored = await self.live.restore()
            if restored:
                log.info("restored state of %d links from storage", restored)

            tasks: list[asyncio.Task] = []
            if cfg.consume:
                tasks += await self._start_consumers(stack, stop_event)
            self.port = await self.server.start()
            log.info("FabricSimulationService listening on %s:%d", cfg.grpc_host, self.port)
            if not cfg.consume:
                self.ready.set()
            try:
                stopper = asyncio.create_task(stop_event.wait())
                await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                for task in tasks:
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # a consumer that died on its own is an error
            finally:
                stop_event.set()
                await self.server.stop(cfg.grace_s)
                await asyncio.gather(*tasks, return_exceptions=True)
                log.info("stopped: events consumed=%d dlq=%d, samples consumed=%d, rows written=%d",
                         self.events_stats.consumed, self.events_stats.dlq_sent, self.samples_stats.consumed,
                         self.live.stats.rows_written)

    async def _start_consumers(self, stack: contextlib.AsyncExitStack, stop_event: asyncio.Event) -> list[asyncio.Task]:
        cfg = self.config
        assert self.live is not None
        if cfg.create_topics:
            from twin.core.topics_admin import ensure_topics

            await ensure_topics(cfg.kafka_bootstrap, [cfg.events_topic, cfg.samples_topic, cfg.state_topic])
        producer = EventProducer(cfg.kafka_bootstrap, source=SERVICE)
        await producer.start()
        stack.push_async_callback(producer.stop)
        started: set[str] = set()

        def on_started(name: str):
            def mark() -> None:
                started.add(name)
                if len(started) == 2:
                    self.ready.set()
            return mark

        self.publisher = StatePublisher(self.live, producer, cfg.state_topic, interval_s=cfg.publish_interval_s,
                                        max_links=cfg.state_max_links, clock=self.clock)
        return [
            asyncio.create_task(run_consumer(
                cfg.kafka_bootstrap, cfg.group_id, cfg.events_topic, LinkEventHandler(self.live),
                dlq_producer=producer, max_records=cfg.max_records, stop_event=stop_event,
                stats=self.events_stats, on_started=on_started("events")), name="fabric-events"),
            asyncio.create_task(run_consumer(
                cfg.kafka_bootstrap, f"{cfg.group_id}-telemetry", cfg.samples_topic, LinkCounterHandler(self.live),
                dlq_producer=producer, max_records=cfg.max_records, stop_event=stop_event,
                stats=self.samples_stats, on_started=on_started("samples")), name="fabric-samples"),
            asyncio.create_task(self.publisher.run(stop_event), name="fabric-publisher"),
        ]
