"""Composition root of the console: a read-only web page of the live twin.

    facility spec ─▶ floor plan (halls → rows → racks)                         GET /api/layout
    power/cooling/job_state_latest (database) ─▶ LiveState  (seed: the picture before the first live event)
    power.state.v1, cooling.state.v1, jobs.state.v1 ─tail_latest─▶ LiveState (last state per entity)
    power.alerts.v1, power.plans.v1, cooling.alerts.v1, jobs.recommendations.v1 ─▶ LiveState events
    LiveState ─Hub (every CONSOLE_FLUSH_INTERVAL_S)─▶ SSE to every browser       GET /api/events
    power_state (database) ─▶ site power and PUE over the last hour             GET /api/history
    demo mode only: scenario buttons ─▶ twin.core.scenarios ─steps─▶ LiveState  POST /api/scenarios/{name}

One latest-only consumer per topic in the process (no consumer group, no commits, seek to the end at
start: a restart never replays history), fanned out to any number of browsers. Topics that the
registry does not (yet) declare are left out and said so in the log. The HTTP server starts after
every tail has resolved its end offsets, so a page that loads misses no event produced after.

Demo mode (CONSOLE_DEMO=1, which `make run` sets when it runs the facility simulator) adds the scenario
buttons: they need CONSOLE_OPERATOR_TOKEN (the stack passes its TWIN_STACK_TOKEN) and the twins' addresses
(CONSOLE_SCENARIO_*); the page never carries the token, the operator types it or opens the page with
`#token=...` in the URL fragment (which browsers never send to the server).

Settings: `python -m twin.console --help`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from importlib import resources

from twin.console.adapters import codec
from twin.console.adapters.history import History
from twin.console.adapters.http import ConsoleRoutes, make_console_app
from twin.console.adapters.hub import Hub
from twin.console.adapters.scenarios import ScenarioRunner
from twin.console.adapters.stream import TailStats, tail_latest
from twin.console.domain.floor import floor_plan
from twin.console.domain.live import LiveState
from twin.core import topics
from twin.core.facility import build_inventory, load_facility_spec
from twin.core.http import HttpOptions, HttpReceiver
from twin.core.scenarios import Targets
from twin.core.service import ServiceRuntime, StreamConfig
from twin.core.settings import LOOPBACK, setting
from twin.core.topics import Topic

SERVICE = "console"
STATIC_FILES = ("index.html", "console.js", "console.css")
log = logging.getLogger("twin.console")


def registry_topics() -> tuple[Topic, ...]:
    """The topics the console shows, as far as the registry declares them (jobs and cooling may not yet)."""
    names = ("POWER_STATE", "POWER_ALERTS", "POWER_PLANS", "COOLING_STATE", "COOLING_ALERTS", "JOBS_STATE",
             "JOBS_RECOMMENDATIONS")
    return tuple(t for name in names if (t := getattr(topics, name, None)) is not None)


@dataclass(frozen=True)
class ConsoleConfig(StreamConfig):
    http_host: str = setting(LOOPBACK, "HTTP bind address (0.0.0.0: every interface)")
    http_port: int = setting(8080, "HTTP port of the page (0: any free port)")
    http_tls_cert_file: str | None = setting(None, "PEM certificate: serve HTTPS")
    http_tls_key_file: str | None = setting(None, "PEM private key for HTTPS")
    history_minutes: int = setting(60, "minutes of site power and PUE the charts show")
    flush_interval_s: float = setting(0.5, "seconds between update frames to the browsers")
    max_events: int = setting(200, "alerts, plans and recommendations kept for new browsers")
    max_browsers: int = setting(100, "concurrent event streams (one per browser tab)")
    seed_from_database: bool = setting(True, "show the stored last states (power, cooling, jobs) at start")
    demo: bool = setting(False, "demo mode (against the facility simulator): scenario buttons on the page")
    operator_token: str | None = setting(None, "bearer token the scenario buttons need (demo mode)", secret=True)
    scenario_power_target: str = setting(Targets.power, "power twin gRPC host:port (scenarios)")
    scenario_power_http: str = setting(Targets.power_http, "power twin's OpenADR 3 receiver URL (scenarios)")
    scenario_cooling_target: str = setting(Targets.cooling, "cooling twin gRPC host:port (scenarios)")
    scenario_jobs_target: str = setting(Targets.jobs, "job twin gRPC host:port (scenarios)")
    scenario_fabric_target: str = setting(Targets.fabric, "fabric twin gRPC host:port (scenarios)")
    scenario_step_timeout_s: float = setting(60.0, "seconds one scenario step may wait")
    topics: tuple[Topic, ...] = field(default_factory=registry_topics)

    def __post_init__(self) -> None:
        if self.demo and not self.operator_token:
            raise ValueError("CONSOLE_DEMO needs CONSOLE_OPERATOR_TOKEN (the scenario buttons are for the operator)")
        if self.scenario_step_timeout_s <= 0:
            raise ValueError("CONSOLE_SCENARIO_STEP_TIMEOUT_S must be > 0")

    def scenario_targets(self) -> Targets:
        """Where the scenarios inject and look: the stack's broker and twins, with the operator token."""
        return Targets(bootstrap=self.kafka_bootstrap, power=self.scenario_power_target,
                       power_http=self.scenario_power_http, cooling=self.scenario_cooling_target,
                       jobs=self.scenario_jobs_target, fabric=self.scenario_fabric_target,
                       token=self.operator_token or "", facility=self.facility,
                       step_timeout_s=self.scenario_step_timeout_s)

    def http_options(self) -> HttpOptions:
        return HttpOptions(host=self.http_host, port=self.http_port, tls_cert_file=self.http_tls_cert_file,
                           tls_key_file=self.http_tls_key_file)


def load_static() -> dict[str, bytes]:
    folder = resources.files("twin.console") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_FILES}


@dataclass
class ConsoleApp:
    """`await app.run(stop_event)` until the event is set; `ready` once the page is served."""

    config: ConsoleConfig
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    state: LiveState | None = None
    hub: Hub | None = None
    tails: dict[str, TailStats] = field(default_factory=dict)
    http_port: int = 0
    scenarios: ScenarioRunner | None = None

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        cfg = self.config
        spec = load_facility_spec(cfg.facility)
        inventory = build_inventory(spec)
        site_id = cfg.site_id or spec.site_id
        nameplate = {name: rt.nodes * spec.node_types[rt.node_type].max_w for name, rt in spec.rack_types.items()}
        layout = floor_plan(site_id, inventory.racks, nameplate)
        self.state = state = LiveState(max_events=cfg.max_events)
        self.hub = hub = Hub(state, flush_interval_s=cfg.flush_interval_s, max_subscribers=cfg.max_browsers)
        async with ServiceRuntime(SERVICE, cfg, stop_event) as rt:
            rt.ready = self.ready
            release = rt.hold_ready()
            pool = await rt.database(None)
            history = History(pool, site_id)
            if cfg.seed_from_database:
                stored = await history.latest()
                for msg in stored:
                    section, convert = codec.converter_for(type(msg))
                    state.apply(section, convert(msg))
                state.take_changes()  # part of every snapshot; no browser is connected yet
                log.info("seeded %d stored state(s) from the database", len(stored))
            await rt.ensure_topics(*cfg.topics)
            await self._start_tails(rt, state, site_id)
            rt.spawn(hub.run(rt.stop_event), "fan-out")
            if cfg.demo:
                self.scenarios = ScenarioRunner(state, cfg.scenario_targets())
            routes = ConsoleRoutes(hub=hub, layout=layout, static=load_static(), history=history.site_power,
                                   history_minutes=cfg.history_minutes, info=self.info, scenarios=self.scenarios,
                                   operator_token=cfg.operator_token if cfg.demo else None)
            self.http_port = await rt.serve_http(HttpReceiver(make_console_app(routes), cfg.http_options()))
            release()
            rt.status(self.status_line)
            host = "127.0.0.1" if cfg.http_host in ("0.0.0.0", "") else cfg.http_host
            log.info("console for %s (%d racks) on http://%s:%d/ reading %s%s", site_id, layout["n_racks"], host,
                     self.http_port, ", ".join(t.name for t in cfg.topics),
                     "; demo mode: scenario buttons (operator token needed)" if cfg.demo else "")
            await rt.run()

    async def _start_tails(self, rt: ServiceRuntime, state: LiveState, site_id: str) -> None:
        cfg = self.config
        started: list[asyncio.Event] = []
        tasks: list[asyncio.Task] = []
        for topic in cfg.topics:
            try:
                section, convert = codec.converter_for(topic.message_type)
            except KeyError:
                log.warning("%s carries %s, which the console does not show; skipped", topic.name, topic.ce_type)
                continue
            if section is None:
                def apply(msg, convert=convert) -> None:
                    if getattr(msg, "site_id", "") in ("", site_id):   # another site's events are not ours
                        state.add_event(convert(msg))
            else:
                def apply(msg, convert=convert, section=section) -> None:
                    if getattr(msg, "site_id", "") in ("", site_id):
                        state.apply(section, convert(msg))
            done = asyncio.Event()
            started.append(done)
            stats = self.tails[topic.name] = TailStats()
            tasks.append(rt.spawn(tail_latest(cfg.kafka_bootstrap, topic, apply, rt.stop_event, started=done.set,
                                              stats=stats, max_records=cfg.max_records, **cfg.kafka_options()),
                                  f"tail:{topic.name}"))
        # until every tail has resolved its end offsets (or one failed: run() re-raises it, or stop)
        while not all(e.is_set() for e in started):
            if rt.stop_event.is_set() or any(t.done() for t in tasks):
                return
            await asyncio.sleep(0.05)

    def info(self) -> dict:
        return {"topics": {name: {"records": s.records, "undecodable": s.undecodable} for name, s in self.tails.items()},
                "browsers": len(self.hub.subscribers) if self.hub else 0}

    def status_line(self) -> str:
        s, h = self.state, self.hub
        records = sum(t.records for t in self.tails.values())
        bad = sum(t.undecodable for t in self.tails.values())
        return (f"records={records} undecodable={bad} entities="
                f"{sum(len(v) for v in s.entities.values()) if s else 0} events={len(s.events) if s else 0} "
                f"browsers={len(h.subscribers) if h else 0} frames={h.frames_sent if h else 0} "
                f"dropped={h.dropped if h else 0}")
