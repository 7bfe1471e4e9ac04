"""Composition root of the cooling service: real adapters by default, fakes injectable for tests.

    facility spec ─▶ CoolingSite (network, GPU thermal defaults and layout)
    stage 1 (keyed by rack / entity; any number of processes in one group share it):
    power.state.v1 (rack states) ─run_consumer─▶ PowerHandler ─────┐ IT power
    telemetry.samples.v1 ─────────run_consumer─▶ TelemetryHandler ─┼▶ calibration, measured GPU power ─▶ cooling.racks.v1
    cooling.events.v1 ────────────run_consumer─▶ EventHandler ─────┘ validated events, equipment batches   (key site)
    stage 2 (keyed by site: one process holds a site's network):
    cooling.racks.v1 ─────────────run_consumer─▶ SiteHandler ─▶ CoolingPipeline (CoolingLive) ─▶ cooling.state.v1
                                                                                            ├▶ cooling.alerts.v1
                                                                                            └▶ cooling_state
    gRPC CoolingService ◀─ cooling_state_latest / history, stage 2's live twin (what-ifs)

Consumer groups: `<group>` reads power.state.v1, `<group>-telemetry` telemetry.samples.v1, `<group>-events`
cooling.events.v1 and `<group>-site` cooling.racks.v1 (separate groups: a rebalance of the busy telemetry
stream never pauses heat, events or the site). Several processes with one COOLING_GROUP_ID share the racks;
the site's CDU, loop and plant totals come from whichever owns its partition of cooling.racks.v1 (see
adapters/stream.py on scale-out).

Settings: `python -m twin.cooling --help` lists them all (CoolingConfig below is the one place they
are declared). COOLING_CONSUME=0 runs gRPC without consumers or a database.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from twin.cooling.adapters.grpc_api import CoolingServicer, cooling_grpc_server
from twin.cooling.adapters.repository import MIGRATIONS_DIR, CoolingStateRepository, InMemoryCoolingStore
from twin.cooling.adapters.stream import (
    CoolingPipeline,
    EventHandler,
    PowerHandler,
    RackStage,
    SiteHandler,
    StreamStats,
    TelemetryHandler,
)
from twin.cooling.domain.alerts import SENSOR_ABS_TOL_W, SENSOR_REL_TOL
from twin.cooling.domain.whatif import HORIZON_S
from twin.cooling.live import MEASURED_MAX_AGE_S, CoolingLive
from twin.cooling.site import CoolingSite, build_cooling_site
from twin.core import topics
from twin.core.clock import Clock, SystemClock
from twin.core.facility import load_facility_spec
from twin.core.kafka import ConsumerStats
from twin.core.service import GrpcServiceConfig, ServiceRuntime
from twin.core.settings import setting
from twin.core.topics import Topic

SERVICE = "cooling"
log = logging.getLogger("twin.cooling")


@dataclass(frozen=True)
class CoolingConfig(GrpcServiceConfig):
    grpc_port: int = setting(50055, "gRPC port (0: any free port)")
    consume: bool = setting(
        True, "consume power states, telemetry and events (0: gRPC only, no Kafka/database)"
    )
    horizon_s: float = setting(
        HORIZON_S, "time-to-throttle horizon: GPUs throttling within it raise alerts (s)"
    )
    sensor_rel_tolerance: float = setting(
        SENSOR_REL_TOL, "suspect sensor: relative disagreement of ṁ·c_p·ΔT with the heat"
    )
    sensor_abs_tolerance_w: float = setting(
        SENSOR_ABS_TOL_W, "suspect sensor: absolute disagreement allowed on top (W)"
    )
    min_change_w: float = setting(100.0, "change of a heat or power figure (W) that publishes a state again")
    settle_s: float = setting(
        2.0, "seconds after a tick's first rack state before an incomplete tick is evaluated"
    )
    max_event_future_s: float = setting(300.0, "equipment events further ahead of the clock are rejected (s)")
    min_calibration_samples: int = setting(
        5, "GPU temperature samples before a GPU's calibrated model is used"
    )
    calibrate_interval_s: float = setting(
        0.0,
        "seconds of sample time between a rack's calibration steps (0: every sample; ~2 ms per 72-GPU rack, "
        "so a 100k-GPU site at 1 Hz needs ~10)",
    )
    measured_max_age_s: float = setting(
        MEASURED_MAX_AGE_S,
        "a measured plant / CDU reading older than this (s of sample time) expires: the value falls back to "
        "the event's or the spec's",
    )
    restore_after_s: float = setting(
        30.0, "seconds without a cooling.racks.v1 batch after which stage 2 re-reads stored heat and conditions"
    )
    view_refresh_s: float = setting(
        10.0,
        "seconds between stage 1's reads of the stored rack states (IT power, coolant) its calibration uses "
        "when this process's stage 2 does not hold the site",
    )
    power_topic: Topic = topics.POWER_STATE
    samples_topic: Topic = topics.TELEMETRY_SAMPLES
    events_topic: Topic = topics.COOLING_EVENTS
    state_topic: Topic = topics.COOLING_STATE
    alerts_topic: Topic = topics.COOLING_ALERTS
    racks_topic: Topic = topics.COOLING_RACKS


@dataclass
class CoolingApp:
    """`await app.run(stop_event)` until the event is set; `ready` is set once servers and consumers are up."""

    config: CoolingConfig
    clock: Clock = field(default_factory=SystemClock)
    site: CoolingSite | None = None  # default: from config.facility
    store: object | None = None  # default: CoolingStateRepository (consume) / in-memory
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stats: StreamStats = field(default_factory=StreamStats)
    power_stats: ConsumerStats = field(default_factory=ConsumerStats)
    telemetry_stats: ConsumerStats = field(default_factory=ConsumerStats)
    event_stats: ConsumerStats = field(default_factory=ConsumerStats)
    site_stats: ConsumerStats = field(default_factory=ConsumerStats)
    live: CoolingLive | None = None  # stage 2's (the site's network, every GPU's thermal state)
    racks: RackStage | None = None  # stage 1
    pipeline: CoolingPipeline | None = None
    grpc_port: int = 0

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        cfg = self.config
        site = self.site or build_cooling_site(load_facility_spec(cfg.facility))
        self.site = site
        def live_twin() -> CoolingLive:
            return CoolingLive(
                site,
                horizon_s=cfg.horizon_s,
                sensor_rel_tol=cfg.sensor_rel_tolerance,
                sensor_abs_tol_w=cfg.sensor_abs_tolerance_w,
                min_calibration_samples=cfg.min_calibration_samples,
                calibrate_interval_s=cfg.calibrate_interval_s,
                measured_max_age_s=cfg.measured_max_age_s,
            )

        self.live = live = live_twin()
        site_handler: SiteHandler | None = None
        async with ServiceRuntime(SERVICE, cfg, stop_event) as rt:
            rt.ready = self.ready
            store = self.store
            if store is None:
                store = (
                    CoolingStateRepository(await rt.database(MIGRATIONS_DIR))
                    if cfg.consume
                    else InMemoryCoolingStore()
                )
            self.store = store
            if cfg.consume:
                await rt.ensure_topics(
                    cfg.power_topic,
                    cfg.samples_topic,
                    cfg.events_topic,
                    cfg.racks_topic,
                    cfg.state_topic,
                    cfg.alerts_topic,
                )
                producer = await rt.producer()
                self.pipeline = p = CoolingPipeline(
                    live,
                    producer,
                    store,
                    cfg.state_topic,
                    cfg.alerts_topic,
                    stats=self.stats,
                    min_change_w=cfg.min_change_w,
                    settle_s=cfg.settle_s,
                )
                self.racks = racks = RackStage(
                    live_twin(),
                    producer,
                    store,
                    cfg.racks_topic,
                    stats=self.stats,
                    site=p,
                    view_refresh_s=cfg.view_refresh_s,
                )
                site_handler = SiteHandler(p, restore_after_s=cfg.restore_after_s)
                # before the consumers start: heat and conditions as stored (stage 2), the event book (stage 1)
                await p.restore()
                site_handler.restored()
                await racks.restore()
                rt.consume(cfg.power_topic, PowerHandler(racks), stats=self.power_stats)
                rt.consume(
                    cfg.samples_topic,
                    TelemetryHandler(racks),
                    group_id=f"{rt.group_id}-telemetry",
                    stats=self.telemetry_stats,
                )
                rt.consume(
                    cfg.events_topic,
                    EventHandler(
                        racks, now=lambda: self.clock.now().timestamp(), max_future_s=cfg.max_event_future_s
                    ),
                    group_id=f"{rt.group_id}-events",
                    stats=self.event_stats,
                )
                rt.consume(
                    cfg.racks_topic, site_handler, group_id=f"{rt.group_id}-site", stats=self.site_stats
                )
                rt.spawn(p.settle(rt.stop_event), "settle")
            servicer = CoolingServicer(
                live, store, clock=self.clock, refresh=None if site_handler is None else site_handler.refresh_if_idle
            )
            self.grpc_port = await rt.serve_grpc(cooling_grpc_server(servicer, cfg.grpc_options()))
            rt.status(self.status_line)
            net = site.network
            log.info(
                "cooling twin for %s: %d racks, %d GPUs, %d CDUs in %d loops, %d CRAHs, %d plant units; gRPC :%d",
                net.site_id,
                net.n_racks,
                len(site.gpus.gpu_rack),
                len(net.cdu_ids),
                len(net.loop_ids),
                len(net.crah_ids),
                len(net.plant_ids),
                self.grpc_port,
            )
            await rt.run()

    def status_line(self) -> str:
        s = self.stats
        return (
            f"power states={s.power_states} dlq={self.power_stats.dlq_sent}, telemetry={s.telemetry_batches} "
            f"dlq={self.telemetry_stats.dlq_sent} calibration samples={s.calibration_samples}, "
            f"events in={self.event_stats.consumed} dlq={self.event_stats.dlq_sent}, site records={s.site_records} "
            f"dlq={self.site_stats.dlq_sent} events applied={s.events_applied}, evaluations={s.evaluations} "
            f"states={s.states_published} alerts={s.alerts_published} rows={s.rows_written}, "
            f"cooling={s.last_cooling_w / 1e3:.0f} kW PUE(cooling)="
            f"{'n/a' if s.last_pue_cooling is None else f'{s.last_pue_cooling:.3f}'}"
        )
