"""Composition root of the fabric service: real adapters by default, fakes injectable for tests.

    facility spec ─▶ inventory ─▶ core FabricTopology + link index
    fabric.events.v1 ──run_consumer──▶ LinkEventHandler ─┐
    telemetry.samples.v1 ─run_consumer─▶ LinkCounterHandler ─┤─▶ LiveFabricState ─▶ fabric_state (PostgreSQL)
                                                          │        │ swap after the write, then
    invalid events ─▶ fabric.events.v1.dlq (reason)       │        ├─▶ StatePublisher ─▶ fabric.state.v1
                                                          │        └─▶ FabricSimulator ◀─ gRPC FabricSimulationService

Settings: `python -m twin.fabric --help` lists them all (FabricConfig below is the one place they are
declared). FABRIC_CONSUME=0 runs gRPC only: no Kafka, no database.

Consumer groups: `<group>` reads fabric.events.v1, `<group>-telemetry` reads telemetry.samples.v1
(separate groups so a rebalance of the busy telemetry stream never pauses link events).
Jobs: FABRIC_JOBS_FILE (JSON or YAML `{job_id: [gpu ids or "a-b" ranges]}`) fills the job registry
the gRPC placements use (`job_id`); unknown jobs answer NOT_FOUND. The jobs twin will feed it later.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import partial

from twin.core import topics
from twin.core.clock import Clock, SystemClock
from twin.core.facility import Inventory, build_inventory, load_facility_spec
from twin.core.grpc_server import GrpcServer
from twin.core.kafka import ConsumerStats
from twin.core.service import GrpcServiceConfig, ServiceRuntime
from twin.core.settings import setting
from twin.core.topics import Topic
from twin.fabric.adapters.assumed import assumed_view
from twin.fabric.adapters.grpc_api import FabricSimulationServicer, fabric_grpc_server
from twin.fabric.adapters.repository import FabricStateRepository, InMemoryStateStore
from twin.fabric.adapters.stream import LinkCounterHandler, LinkEventHandler, StatePublisher
from twin.fabric.adapters.topology import LinkIndex, check_compatible, fabric_topology
from twin.fabric.live_state import LiveFabricState
from twin.fabric.ports import StateStore
from twin.fabric.simulation import FabricSimulator, JobRegistry, LiveView

SERVICE = "fabric"
log = logging.getLogger("twin.fabric")


@dataclass(frozen=True)
class FabricConfig(GrpcServiceConfig):
    grpc_port: int = setting(50053, "gRPC port (0: any free port)")
    consume: bool = setting(True, "consume link events and counters (0: gRPC only, no Kafka/database)")
    jobs_file: str | None = setting(None, "JSON/YAML {job_id: [gpu ids or 'a-b' ranges]} for job placements")
    publish_interval_s: float = setting(10.0, "seconds between fabric.state.v1 publications")
    state_max_links: int = setting(10_000, "links per FabricState message / gRPC answer")
    utilization_min_change: float = setting(0.01, "utilization change that counts as a state change")
    events_topic: Topic = topics.FABRIC_EVENTS
    samples_topic: Topic = topics.TELEMETRY_SAMPLES
    state_topic: Topic = topics.FABRIC_STATE


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
    servicer: FabricSimulationServicer | None = None
    server: GrpcServer | None = None
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
        self.servicer = FabricSimulationServicer(self.simulator, state, max_state_links=cfg.state_max_links,
                                                 assume=partial(assumed_view, live))
        self.server = fabric_grpc_server(self.servicer, cfg.grpc_options())
        log.info("facility %s: %d GPUs, %d uplinks, %d NICs, %d jobs registered", site_id, topology.n_gpus,
                 index.n_uplinks, index.n_nics, len(registry))

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        cfg = self.config
        async with ServiceRuntime(SERVICE, cfg, stop_event) as rt:
            rt.ready = self.ready
            store = self.store
            if store is None and cfg.consume:
                repo = FabricStateRepository(await rt.database())
                applied = await repo.setup()  # migrations + hypertable policies when TimescaleDB is there
                if applied:
                    log.info("applied migrations: %s", ", ".join(applied))
                store = repo
            self.build(store or InMemoryStateStore())
            assert self.live is not None and self.server is not None
            restored = await self.live.restore()
            if restored:
                log.info("restored state of %d links from storage", restored)
            if cfg.consume:
                await self._start_streams(rt)
            self.port = await rt.serve_grpc(self.server)
            live = self.live
            rt.status(lambda: f"events consumed={self.events_stats.consumed} dlq={self.events_stats.dlq_sent}, "
                              f"samples consumed={self.samples_stats.consumed}, rows written={live.stats.rows_written}, "
                              f"state version={live.version}")
            await rt.run()

    async def _start_streams(self, rt: ServiceRuntime) -> None:
        cfg = self.config
        assert self.live is not None
        await rt.ensure_topics(cfg.events_topic, cfg.samples_topic, cfg.state_topic)
        producer = await rt.producer()
        # Separate groups so a rebalance of the busy telemetry stream never pauses link events.
        rt.consume(cfg.events_topic, LinkEventHandler(self.live), stats=self.events_stats)
        rt.consume(cfg.samples_topic, LinkCounterHandler(self.live), group_id=f"{rt.group_id}-telemetry",
                   stats=self.samples_stats)
        self.publisher = StatePublisher(self.live, producer, cfg.state_topic, interval_s=cfg.publish_interval_s,
                                        max_links=cfg.state_max_links, clock=self.clock)
        rt.spawn(self.publisher.run(rt.stop_event), "publisher")
