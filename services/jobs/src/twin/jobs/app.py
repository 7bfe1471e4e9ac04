"""Composition root of the jobs service: real adapters by default, fakes injectable for tests.

    facility spec ─▶ SiteMap (nodes, GPU ids, leaf groups, cooling groups, UPS racks)
    jobs.events.v1 ───run_consumer─▶ EventsHandler ───┐
    fabric.state.v1 ──run_consumer─▶ FabricHandler ───┤                      ┌▶ jobs.state.v1, job_state
    power.plans.v1 ───run_consumer─▶ PlansHandler ────┼─▶ JobTwin ─ Engine ──┤
    power.alerts.v1 ──run_consumer─▶ AlertsHandler ───┤     ▲                └▶ jobs.recommendations.v1
    cooling.alerts.v1 run_consumer─▶ AlertsHandler ───┤     │ comm times per collective on the job's GPUs
    telemetry.samples.v1 ──────────▶ TelemetryHandler ┤     │
    power.state.v1 (site key, no group) SitePowerReader┘    │ (facility / IT power: the energy overhead)
    tick (JOBS_TICK_S) ───────────────────────────────────  └── gRPC FabricSimulationService (JOBS_FABRIC_TARGET)
    slurmrestd (JOBS_SLURMRESTD_URL, polled) ─▶ jobs.events.v1 (parser rejects ─▶ jobs.events.v1.dlq)
    gRPC JobService ◀─ the twin (what-ifs), job_state_latest for jobs this process does not hold

Consumer groups: `<group>` reads jobs.events.v1, `<group>-fabric` fabric.state.v1, `<group>-power`
power.alerts.v1 and power.plans.v1 (one group each: `<group>-power-alerts`, `<group>-power-plans`) and
`<group>-cooling` cooling.alerts.v1 (when twin.core.topics has it), `<group>-telemetry` telemetry.samples.v1, so
a rebalance of one input never pauses another; power.state.v1 is read with no group (every process needs the
site state: only the partition of the site id's key). At start the job book is rebuilt from jobs.events.v1, the plans and alerts in force
from power.plans.v1 and the alerts topics (stream.restore_conditions), and the link state asked of the fabric twin.

Settings: `python -m twin.jobs --help` lists them all (JobsConfig below is the one place they are declared).
JOBS_CONSUME=0 runs gRPC only: no Kafka, no database.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from twin.core import topics
from twin.core.clock import Clock, SystemClock
from twin.core.facility import load_facility_spec
from twin.core.kafka import ConsumerStats, EventProducer
from twin.core.service import GrpcServiceConfig, ServiceRuntime
from twin.core.settings import setting
from twin.core.topics import Topic
from twin.jobs.adapters import codec
from twin.jobs.adapters.fabric_client import FabricComm
from twin.jobs.adapters.grpc_api import JobServicer, jobs_grpc_server
from twin.jobs.adapters.repository import MIGRATIONS_DIR, InMemoryJobStore, JobStateRepository
from twin.jobs.adapters.slurm_feed import SlurmPublisher, SlurmRestPoller
from twin.jobs.adapters.stream import (
    AlertsHandler,
    Engine,
    EngineStats,
    EventsHandler,
    FabricHandler,
    PlansHandler,
    SitePowerReader,
    TelemetryHandler,
    restore_accounts,
    restore_book,
    restore_conditions,
)
from twin.jobs.domain.goodput import DEFAULT_GPU_MTBF_H
from twin.jobs.domain.overhead import FRESH_S as OVERHEAD_FRESH_S
from twin.jobs.live import JobTwin, TwinSettings
from twin.jobs.site import SiteMap, build_site_map

SERVICE = "jobs"
log = logging.getLogger("twin.jobs")
COOLING_ALERTS: Topic | None = getattr(topics, "COOLING_ALERTS", None)  # the cooling twin is newer than this one


@dataclass(frozen=True)
class JobsConfig(GrpcServiceConfig):
    grpc_port: int = setting(50056, "gRPC port (0: any free port)")
    consume: bool = setting(True, "consume events and the other twins' outputs (0: gRPC only, no Kafka/database)")
    fabric_target: str | None = setting("127.0.0.1:50053", "fabric twin gRPC host:port (unset: own estimate only)")
    fabric_token: str | None = setting(None, "bearer token for the fabric twin's gRPC", secret=True)
    fabric_tls_ca_file: str | None = setting(None, "PEM CA of the fabric twin's certificate (enables TLS)")
    fabric_timeout_s: float = setting(2.0, "seconds a fabric RPC may take before the own estimate is used")
    fabric_retry_s: float = setting(10.0, "seconds before an unreachable fabric twin is asked again")
    fabric_max_groups: int = setting(16, "communicators timed per collective kind and job (slowest wins)")
    slurmrestd_url: str | None = setting(None, "slurmrestd jobs endpoint to poll, e.g. http://h:6820/slurm/v0.0.41/jobs")
    slurmrestd_token: str | None = setting(None, "X-SLURM-USER-TOKEN (JWT from `scontrol token`)", secret=True)
    slurmrestd_user: str | None = setting(None, "X-SLURM-USER-NAME sent with the token")
    slurmrestd_interval_s: float = setting(30.0, "seconds between slurmrestd polls")
    tick_s: float = setting(1.0, "seconds between time-driven re-evaluations")
    republish_s: float = setting(30.0, "a running job's state is published at least this often (energy grows)")
    throttle_clock_fraction: float = setting(0.8, "SM clock share assumed while a GPU throttles thermally")
    slower_margin: float = setting(0.15, "measured step time above predicted by more than this share: flagged")
    recommend_margin: float = setting(0.05, "network slowdown above this share: recommend moving the job")
    gpu_mtbf_h: float = setting(DEFAULT_GPU_MTBF_H, "per-GPU mean time between job interruptions, hours")
    checkpoint_s: float = setting(60.0, "checkpoint write time when the job states none, s")
    restart_s: float = setting(300.0, "restart time when the job states none, s")
    pue: float = setting(1.3, "facility power / IT power (conversion and cooling share of a job's energy) used "
                         "while no fresh site state of the power twin is held (power.state.v1)")
    overhead_fresh_s: float = setting(
        OVERHEAD_FRESH_S, "the power twin's site state (facility / IT power) counts this long after it was "
        "produced, s; then JOBS_PUE stands in")
    tariff_usd_per_kwh: float = setting(0.08, "electricity tariff, USD per kWh")
    carbon_kg_per_kwh: float = setting(0.4, "grid carbon intensity, kg CO2 per kWh")
    alert_ttl_s: float = setting(600.0, "seconds a power/cooling alert stays in force")
    telemetry_interval_s: float = setting(
        5.0, "a rack's GPU telemetry is read at most this often, s of sample time (0: every batch): measured "
        "energy integrates over it, XID/ECC and stragglers are seen within it")
    progress_publish_s: float = setting(
        5.0, "a job's state changed by progress reports alone is republished at most this often (s; 0: every report)")
    events_topic: Topic = topics.JOBS_EVENTS
    state_topic: Topic = topics.JOBS_STATE
    recommendations_topic: Topic = topics.JOBS_RECOMMENDATIONS
    fabric_topic: Topic = topics.FABRIC_STATE
    power_alerts_topic: Topic = topics.POWER_ALERTS
    power_plans_topic: Topic = topics.POWER_PLANS
    cooling_alerts_topic: Topic | None = COOLING_ALERTS
    samples_topic: Topic | None = topics.TELEMETRY_SAMPLES   # measured energy, GPU errors, stragglers
    power_state_topic: Topic | None = topics.POWER_STATE     # the site's facility / IT power (energy overhead)


    def twin_settings(self) -> TwinSettings:
        return TwinSettings(throttle_clock_fraction=self.throttle_clock_fraction, margin=self.slower_margin,
                            recommend_margin=self.recommend_margin, gpu_mtbf_h=self.gpu_mtbf_h,
                            checkpoint_s=self.checkpoint_s, restart_s=self.restart_s, pue=self.pue,
                            tariff_usd_per_kwh=self.tariff_usd_per_kwh, carbon_kg_per_kwh=self.carbon_kg_per_kwh,
                            alert_ttl_s=self.alert_ttl_s, progress_publish_s=self.progress_publish_s,
                            overhead_fresh_s=self.overhead_fresh_s)


@dataclass
class JobsApp:
    """`await app.run(stop_event)` until the event is set; `ready` is set once gRPC and the consumers are up."""

    config: JobsConfig
    clock: Clock = field(default_factory=SystemClock)
    site: SiteMap | None = None              # default: from config.facility
    store: object | None = None              # default: JobStateRepository (consume) / in-memory
    fabric: FabricComm | None = None         # default: config.fabric_target
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stats: EngineStats = field(default_factory=EngineStats)
    events_stats: ConsumerStats = field(default_factory=ConsumerStats)
    fabric_stats: ConsumerStats = field(default_factory=ConsumerStats)
    plans_stats: ConsumerStats = field(default_factory=ConsumerStats)
    power_alerts_stats: ConsumerStats = field(default_factory=ConsumerStats)
    cooling_stats: ConsumerStats = field(default_factory=ConsumerStats)
    telemetry_stats: ConsumerStats = field(default_factory=ConsumerStats)
    twin: JobTwin | None = None
    engine: Engine | None = None
    slurm: SlurmPublisher | None = None
    site_power: SitePowerReader | None = None
    grpc_port: int = 0

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        cfg = self.config
        site = self.site or build_site_map(load_facility_spec(cfg.facility), cfg.site_id)
        self.site = site
        self.twin = twin = JobTwin(site, cfg.twin_settings())
        fabric = self.fabric or FabricComm(cfg.fabric_target, token=cfg.fabric_token, tls_ca_file=cfg.fabric_tls_ca_file,
                                           timeout_s=cfg.fabric_timeout_s, retry_s=cfg.fabric_retry_s,
                                           max_groups=cfg.fabric_max_groups)
        self.fabric = fabric
        async with ServiceRuntime(SERVICE, cfg, stop_event) as rt:
            rt.ready = self.ready
            rt.on_close(fabric.close)
            store = self.store
            if store is None:
                store = JobStateRepository(await rt.database(MIGRATIONS_DIR)) if cfg.consume else InMemoryJobStore()
            self.store = store
            producer = None
            if cfg.consume:
                wanted = [cfg.events_topic, cfg.state_topic, cfg.recommendations_topic, cfg.fabric_topic,
                          cfg.power_alerts_topic, cfg.power_plans_topic]
                wanted += [t for t in (cfg.cooling_alerts_topic, cfg.samples_topic, cfg.power_state_topic)
                           if t is not None]
                await rt.ensure_topics(*wanted)
                producer = await rt.producer()
            self.engine = engine = Engine(twin, fabric, producer, store, state_topic=cfg.state_topic,
                                          recommendations_topic=cfg.recommendations_topic, clock=self.clock,
                                          republish_s=cfg.republish_s, stats=self.stats)
            if cfg.consume:
                assert producer is not None
                await self._restore(twin, store)
                self._start_streams(rt, engine, site)
                rt.spawn(engine.run_ticks(rt.stop_event, cfg.tick_s), "tick")
                if cfg.slurmrestd_url:
                    self._start_slurmrestd(rt, producer)
            servicer = JobServicer(twin, store, clock=self.clock, fabric=fabric)
            self.grpc_port = await rt.serve_grpc(jobs_grpc_server(servicer, cfg.grpc_options()))
            rt.status(self.status_line)
            log.info("job twin for %s: %d nodes, %d GPUs; fabric %s; gRPC :%d", site.site_id, len(site.node_ids),
                     site.inventory.n_gpus, cfg.fabric_target or "not configured (own estimate)", self.grpc_port)
            await rt.run()

    async def _restore(self, twin: JobTwin, store) -> None:
        cfg = self.config
        n = await restore_book(cfg.kafka_bootstrap, cfg.events_topic, twin, **cfg.kafka_options())
        if n:
            log.info("job book restored from %s: %d events, %d jobs (%d running)", cfg.events_topic.name, n,
                     len(twin.book.jobs), len(twin.book.running()))
            await restore_accounts(store, twin)
        alerts = [(cfg.power_alerts_topic, codec.rack_alert, twin.add_rack_alert)]
        if cfg.cooling_alerts_topic is not None:
            alerts.append((cfg.cooling_alerts_topic, codec.thermal_alert, twin.add_thermal))
        taken = await restore_conditions(cfg.kafka_bootstrap, twin, plans_topic=cfg.power_plans_topic,
                                         alerts_topics=alerts, now_s=self.clock.now().timestamp(),
                                         **cfg.kafka_options())
        if taken:
            log.info("plans and alerts in force restored: %d plans, %d power and %d cooling alerts", len(twin.plans),
                     len(twin.rack_alerts), len(twin.thermal))
        assert self.fabric is not None
        links = await self.fabric.link_state()
        if links is not None:
            twin.set_links(*links)

    def _start_streams(self, rt: ServiceRuntime, engine: Engine, site: SiteMap) -> None:
        cfg = self.config
        twin = engine.twin
        group = rt.group_id
        rt.consume(cfg.events_topic, EventsHandler(engine), stats=self.events_stats)
        rt.consume(cfg.fabric_topic, FabricHandler(engine, site.site_id), group_id=f"{group}-fabric",
                   stats=self.fabric_stats)
        rt.consume(cfg.power_plans_topic, PlansHandler(engine), group_id=f"{group}-power-plans",
                   stats=self.plans_stats)
        rt.consume(cfg.power_alerts_topic, AlertsHandler(engine, codec.rack_alert, twin.add_rack_alert),
                   group_id=f"{group}-power-alerts", stats=self.power_alerts_stats)
        if cfg.cooling_alerts_topic is not None:
            rt.consume(cfg.cooling_alerts_topic, AlertsHandler(engine, codec.thermal_alert, twin.add_thermal),
                       group_id=f"{group}-cooling", stats=self.cooling_stats)
        if cfg.samples_topic is not None:
            self.telemetry = TelemetryHandler(engine, cfg.telemetry_interval_s)
            rt.consume(cfg.samples_topic, self.telemetry, group_id=f"{group}-telemetry", stats=self.telemetry_stats)
        if cfg.power_state_topic is not None:
            self.site_power = SitePowerReader(engine, site.site_id, cfg.power_state_topic)
            rt.spawn(self.site_power.run(cfg.kafka_bootstrap, rt.stop_event, **cfg.kafka_options()), "power-site")

    def _start_slurmrestd(self, rt: ServiceRuntime, producer: EventProducer) -> None:
        from twin.core.polling import poll_loop

        cfg = self.config
        self.slurm = SlurmPublisher(producer, cfg.events_topic, source="slurmrestd")
        poller = SlurmRestPoller(cfg.slurmrestd_url or "", self.slurm, token=cfg.slurmrestd_token,
                                 user=cfg.slurmrestd_user)
        rt.spawn(poll_loop(poller, interval_s=cfg.slurmrestd_interval_s, stop=rt.stop_event, name="slurmrestd"),
                 "slurmrestd")

    def overhead_line(self) -> str:
        """Which energy overhead factor is in force (the power twin's site facility / IT, or JOBS_PUE)."""
        twin = self.twin
        if twin is None:
            return "energy overhead: -"
        factor, source = twin.overhead.current(self.engine.now_s() if self.engine else twin.overhead.produced_s)
        meas, spec = twin.platform_gpu_samples
        return (f"energy overhead {factor:.3f} ({'site state' if source == 'site' else 'JOBS_PUE'}; site states "
                f"{self.stats.site_states} taken, {self.stats.site_states_refused} refused), platform share "
                f"measured for {meas} of {meas + spec} GPU samples")

    def membership_warning(self) -> str:
        """Non-empty when this process holds only some of jobs.events.v1's partitions: another jobs process shares
        its consumer group, and (until the job twin scales out, README "Still to do") each then sees part of the
        site, so the status line says so instead of answering for the whole site."""
        held, total = self.events_stats.assigned, self.events_stats.topic_partitions
        if not held or len(held) >= total:
            return ""
        return (f"WARNING: this process holds {len(held)} of {total} {self.config.events_topic.name} partitions: "
                f"another jobs process shares its consumer group, so each sees only part of the site's jobs and "
                f"inputs (run one jobs process per site)")

    def status_line(self) -> str:
        s = self.stats
        twin = self.twin
        running = len(twin.book.running()) if twin else 0
        fabric = self.fabric
        return (f"events consumed={self.events_stats.consumed} dlq={self.events_stats.dlq_sent}, jobs running={running}, "
                f"recomputed={s.recomputed} (fabric fallbacks={s.fabric_fallbacks}), states={s.states_published} "
                f"recommendations={s.recommendations_published} rows={s.rows_written}, {self.overhead_line()}, fabric "
                f"{'up' if fabric and fabric.up else 'DOWN: ' + (fabric.last_error if fabric else '')}"
                + (f", {warning}" if (warning := self.membership_warning()) else ""))
