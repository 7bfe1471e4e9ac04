"""The live job twin: the job book, the conditions the other twins report, and each running job's prediction,
risk flags, recommendations, goodput and energy (no Kafka, SQL or gRPC here; ``adapters/stream.py`` drives it).

Inputs of a running job (``JobInputs``): its spec and placement (nodes, global GPU ids), the impaired fabric links
its traffic crosses (``SiteMap.crosses``), the lowest power cap a curtailment plan in force puts on its GPUs, and
the thermal clock fraction (``throttle_clock_fraction`` once a cooling alert's predicted throttle time has come on
one of its GPUs or racks). A job is recomputed only when these change (or when its communication came from the
fallback and the fabric twin is back). Communication comes from a ``CommAnswer``: the fabric twin's time for each
collective on the job's real GPUs, or the job twin's own ``LinkModel`` estimate (network bandwidth scaled by the
impaired links' capacity) when the fabric twin cannot answer -- the state says which (``JobLive.comm_source``:
jobs.state.v1 ``comm_source`` and ``comm_source_detail``, with the fallback's reason; a truncated fabric.state.v1 is
noted in the detail). That is the prediction's provenance, not a risk to the job, so it is no risk flag.

Risk flags and their slowdowns compare the prediction with the same prediction without the cause: power cap
(uncapped), thermal (unthrottled), degraded link (the job's last communication answer with healthy links, or the
own estimate's ratio when none is known), slower than predicted (measured / predicted - 1 beyond ``margin``, with
the likeliest visible cause). No flag is raised with ``RISK_KIND_UNSPECIFIED``.

Energy (``domain.overhead``): the predicted GPU power plus the node's CPU/platform share per GPU (facility spec),
times the overhead factor for conversion and cooling, integrated over wall time while the job runs; cost and CO2
from a tariff and a grid carbon intensity. Measured energy (``apply_telemetry``, from telemetry.samples.v1): each
of the job's GPUs' DCGM board power integrated between its samples, plus its node platform share over the same
seconds -- measured where its rack's batch carries the rack's PDU input power (rack PDU - the rack's GPU power,
an equal share per GPU of the rack), the facility spec's figure where that is missing or implausible -- each
sample times the overhead factor in force when it is read. The overhead factor is the power twin's site state
(power.state.v1, ``set_site_power``): facility / IT power, which includes the cooling twin's plant power; while
none is fresh (``TwinSettings.overhead_fresh_s``) or the last one was implausible, ``TwinSettings.pue`` stands in
(``overhead.current`` says which). The factor last applied to a job's energy and its source ("site" / "setting")
are kept per job (``JobLive.overhead_factor`` / ``overhead_source``, jobs.state.v1 ``energy_overhead_factor`` /
``energy_overhead_source``); a change of source republishes the job's state at once, a new factor from the same
source rides the next periodic republish (the energy it multiplies grows on that cadence too).

Power alerts (power.alerts.v1) flag the jobs on their rack, or, for a PDU, UPS bus, UPS, transformer or feed, on
every rack with a path through it (``power_paths``); a critical one recommends a checkpoint when some of the
job's racks have no path around the component. The power twin's clear (or the time-to-live) lifts them.

Telemetry also names GPU errors and stragglers (``domain.gpu_meter``, only for GPUs of running jobs): a GPU with
a new XID code or a growing double-bit ECC count raises a ``gpu_errors`` flag on its job at once; a node whose
GPU utilization, or GPU power and SM activity both, lag the job's median node raises ``straggler`` (or whose power
lags at equal or higher activity: a lower clock; checked at most every
``health_interval_s`` per job). A job slower than predicted names them first as its likeliest cause.
"""

from __future__ import annotations

import heapq
import math
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from twin.jobs.domain.book import (
    ENDED,
    EventRejected,
    JobBook,
    JobRecord,
    JobStatus,
    plan_event,
    plan_progress,
)
from twin.jobs.domain.comm import CollectiveCall, LinkModel
from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.domain.goodput import (
    DEFAULT_GPU_MTBF_H,
    daly_interval_s,
    failures_per_day,
    goodput_fraction,
    job_mtbf_s,
)
from twin.jobs.domain.gpu_meter import GpuMeter, stragglers
from twin.jobs.domain.hardware import gpu_spec
from twin.jobs.domain.overhead import FRESH_S as OVERHEAD_FRESH_S
from twin.jobs.domain.overhead import SiteOverhead, rack_platform_w
from twin.jobs.domain.spec import JobSpec
from twin.jobs.domain.step import Conditions, StepPrediction, predict_step
from twin.jobs.power_paths import PowerPath, power_paths_of_spec
from twin.jobs.site import LinkScope, SiteMap

_NS = uuid.UUID("3c1f0a52-7d4e-4b9a-9d61-0f2a8e5b7c14")

# risk kinds (the proto's RiskKind names, lower case) and recommendation kinds
UNSPECIFIED, THERMAL, POWER_CAP, DEGRADED_LINK, GPU_ERRORS, STRAGGLER, SLOWER = (
    "unspecified", "thermal_throttle", "power_cap", "degraded_link", "gpu_errors", "straggler",
    "slower_than_predicted")
CHECKPOINT_NOW, MOVE_JOB, CHANGE_INTERVAL = "checkpoint_now", "move_job", "change_checkpoint_interval"

CallKey = tuple[str, str, int, int, int]
#: the slower-than-predicted flag's reason when no other flag of the job names a cause
_NO_CAUSE = "no cause the twin can see (a straggler node, software or input pipeline)"


def call_key(call: CollectiveCall) -> CallKey:
    return (call.kind, call.collective, int(math.ceil(call.size_bytes)), call.group.n_ranks,
            call.group.ranks_per_domain)


@dataclass(frozen=True)
class TwinSettings:
    throttle_clock_fraction: float = 0.8   # assumed SM clock share while throttling (no measured figure read)
    margin: float = 0.15                   # measured slower than predicted beyond this -> flag
    recommend_margin: float = 0.05        # network slowdown worth moving a job
    gpu_mtbf_h: float = DEFAULT_GPU_MTBF_H
    checkpoint_s: float = 60.0             # when the job states none
    restart_s: float = 300.0
    #: facility / IT power used when no fresh site state of the power twin is held (``domain.overhead``)
    pue: float = 1.3
    #: a site state of the power twin counts this long after it was produced (``domain.overhead.FRESH_S``)
    overhead_fresh_s: float = OVERHEAD_FRESH_S
    tariff_usd_per_kwh: float = 0.08
    carbon_kg_per_kwh: float = 0.4
    #: a power or cooling alert is removed at once by its twin's clear (power.alerts.v1 / cooling.alerts.v1
    #: ``cleared``; neither repeats an alert while it is in force) and lapses this long after it was received when
    #: none comes (a twin restarted while it was in force sends none)
    alert_ttl_s: float = 600.0
    #: a change that is only progress (measured step time / tokens, running error) republishes a job's state at
    #: most this often; status, placement, prediction, flags and goodput publish at once, and so does a job's
    #: first measurement (assumption, stated: dashboards refresh every 5-15 s, e.g. Grafana's 5 s minimum)
    progress_publish_s: float = 5.0
    #: a job's straggler check from telemetry runs at most this often (GPU errors are checked when they change)
    health_interval_s: float = 10.0
    nic_gbps: float | None = None          # per-GPU scale-out line rate for the own estimate (None: GPU default)


@dataclass(frozen=True)
class LinkHealth:
    capacity: float
    utilization: float = 0.0
    flapping: bool = False


@dataclass(frozen=True)
class CapPlan:
    plan_id: str
    key: str                       # the grid event it answers (a newer plan for it replaces this one)
    start_s: float
    end_s: float
    caps: dict[int, float]         # GPU id -> cap W
    paused: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ThermalAlert:
    alert_id: str
    entity_id: str
    gpu_ids: frozenset[int]
    throttle_at_s: float
    received_s: float
    raised_s: float = -math.inf    # the alert's own time (a clear older than it does not remove it)


@dataclass(frozen=True)
class ThermalClear:
    """cooling.alerts.v1 ``cleared``: no throttle alert on the entity is in force since ``at_s``."""

    entity_id: str
    at_s: float


@dataclass(frozen=True)
class RackAlert:
    """A power.alerts.v1 alert on a rack, or on a component above racks (``scope``: pdu, ups_group, ups,
    transformer, feed): it concerns the jobs on the racks below it (``power_paths``)."""

    alert_id: str
    entity_id: str
    kind: str
    critical: bool
    received_s: float
    message: str = ""
    raised_s: float = -math.inf    # the alert's own time (a clear older than it does not remove it)
    scope: str = "rack"


@dataclass(frozen=True)
class RackClear:
    """power.alerts.v1 ``cleared``: no alert of this kind on the rack (component) is in force since ``at_s``."""

    entity_id: str
    kind: str
    at_s: float
    scope: str = "rack"


@dataclass(frozen=True)
class CommAnswer:
    """Seconds per collective (``call_key``) from the fabric twin, or empty for the own estimate."""

    table: dict[CallKey, float]
    source: str            # "fabric" | "local"
    detail: str = ""
    retry: bool = False    # the fabric twin failed: ask again once it is back


@dataclass(frozen=True)
class JobInputs:
    spec: JobSpec
    nodes: tuple[str, ...]
    gpu_ids: tuple[int, ...]
    links: tuple[tuple[str, float, bool], ...]
    cap_w: float | None
    thermal_fraction: float
    alerts: tuple[str, ...] = ()   # ids of the alerts and plans that concern the job (flags, recommendations)


@dataclass(frozen=True)
class Flag:
    kind: str
    entity_id: str
    slowdown: float
    detail: str


@dataclass(frozen=True)
class Recommendation:
    recommendation_id: str
    job_id: str
    kind: str
    entity_id: str
    message: str
    deadline_s: float = 0.0
    gain: float = 0.0


@dataclass
class JobLive:
    """Everything the twin keeps about one job beyond its book record."""

    gpu_override: tuple[int, ...] = ()
    inputs: JobInputs | None = None
    prediction: StepPrediction | None = None
    comm: CommAnswer | None = None
    healthy_comm: CommAnswer | None = None     # last fabric answer while no impaired link was crossed
    flags: tuple[Flag, ...] = ()
    recommendations: tuple[Recommendation, ...] = ()
    published_recs: set[str] = field(default_factory=set)
    goodput: float = 0.0
    optimal_interval_s: float = 0.0
    failures_per_day: float = 0.0
    error_sum: float = 0.0
    error_n: int = 0
    last_ratio: float = 0.0
    counted_step: int = -1
    energy_j: float = 0.0
    accrued_s: float | None = None
    published_key: tuple | None = None
    published_progress: tuple | None = None
    health: tuple[Flag, ...] = ()                # from telemetry: gpu_errors, straggler
    health_checked_s: float = -math.inf
    measured_gpu_j: float = 0.0                  # its GPUs' measured board energy
    measured_platform_j: float = 0.0             # the node platform share over the measured seconds
    measured_j: float = 0.0                      # both, times the site overhead factor in force at each sample
    overhead_factor: float = 0.0                 # facility / IT factor last applied to its energy (0: none yet)
    overhead_source: str = ""                    # "site" | "setting" (``SiteOverhead.current``), "" none yet
    comm_detail: str = ""                        # the communication answer's detail (+ truncated fabric state)
    published_s: float = 0.0
    sig_of: StepPrediction | None = None         # the prediction ``sig`` is of (``changed``)
    sig: float = 0.0                             # its step time to 6 significant digits

    @property
    def comm_source(self) -> str:
        """"fabric" (the fabric twin timed the collectives), "local" (own estimate), "" (no prediction)."""
        return self.comm.source if self.comm is not None and self.prediction is not None else ""

    @property
    def error_ratio(self) -> float:
        return self.error_sum / self.error_n if self.error_n else 0.0


@dataclass(frozen=True)
class JobView:
    rec: JobRecord
    live: JobLive
    gpu_ids: tuple[int, ...]

    def energy_kwh(self) -> float:
        return self.live.energy_j / 3.6e6

    def measured_energy_j(self) -> float:
        """Measured GPU energy plus the node platform share, with the conversion and cooling overhead."""
        return self.live.measured_j


class JobTwin:
    def __init__(self, site: SiteMap, settings: TwinSettings | None = None) -> None:
        self.site = site
        self.settings = settings or TwinSettings()
        self.facility = site.facility
        self.book = JobBook()
        self.jobs: dict[str, JobLive] = {}
        self.links: dict[str, LinkHealth] = {}         # impaired / busy links from fabric.state.v1
        self.links_truncated = False
        self.impaired_links_complete = True    # every impaired link of the fabric is in ``links`` (see set_links)
        self.plans: dict[str, CapPlan] = {}
        self.thermal: dict[str, ThermalAlert] = {}
        self.rack_alerts: dict[str, RackAlert] = {}
        self._power_paths: dict[str, PowerPath] | None = None   # component -> racks below (built at first use)
        self._scopes: dict[str, LinkScope | None] = {}
        self.fabric_up = True
        # -- what a refresh visits (see ``stale`` and ``to_publish``): only jobs whose inputs or state may have
        #    changed, found through indexes of the running jobs' placements and of the impaired links
        self._dirty: set[str] = set()          # inputs may have changed: ``stale`` checks them
        self._touched: set[str] = set()        # published state may have changed: ``to_publish`` returns them
        self._retry: set[str] = set()          # communication from the fallback: asked again while the fabric is up
        self._due: list[tuple[float, str]] = []  # (republish time, job) heap
        self._due_at: dict[str, float] = {}
        self._accruing: set[str] = set()       # jobs whose energy is being integrated (accrued_s set)
        self._watts: dict[str, tuple[StepPrediction, JobInputs | None, float]] = {}  # facility W per job
        self._seq: dict[str, int] = {}         # book order (states are published in it)
        self._place: dict[str, tuple[frozenset[int], frozenset[int], frozenset[str], tuple[int, ...]]] = {}
        self._by_node: dict[int, set[str]] = {}
        self._by_group: dict[int, set[str]] = {}
        self._by_rack: dict[str, set[str]] = {}
        self._by_gpu: dict[int, set[str]] = {}
        self._links_by_node: dict[int, list[str]] = {}    # impaired links indexed by the nodes / leaf groups
        self._links_by_group: dict[int, list[str]] = {}   # whose jobs they can concern
        self._links_all: list[str] = []
        self._scope_groups: dict[str, frozenset[int]] = {}
        self._timed_state: dict[tuple[str, str], tuple] = {}
        self._accrued_all_s = -math.inf        # the instant of the last full ``accrue``
        n_gpus = site.inventory.n_gpus
        self.meter = GpuMeter.of(n_gpus)
        self._gpu_slot = np.full(n_gpus, -1, np.int64)   # running job per GPU (slot), -1: none
        self._slot_job: list[str | None] = []
        self._job_slot: dict[str, int] = {}
        self._free_slots: list[int] = []
        self._health_due: set[str] = set()     # telemetry came for these jobs since the last health check
        self._health_now: set[str] = set()     # ... with a GPU error change: checked at the next refresh
        self._health_flagged: set[str] = set()  # jobs with a telemetry flag (checked until it clears)
        self._accrue_new = False               # a job started, stopped or was recomputed since then
        self.overhead = SiteOverhead(self.settings.pue, self.settings.overhead_fresh_s)  # facility / IT
        self.platform_gpu_samples = [0, 0]     # GPU samples whose platform share was [measured, from the spec]

    # -- events -----------------------------------------------------------------------------------
    def apply(self, ev: JobEvent, gpu_ids: tuple[int, ...] = ()) -> bool:
        """Apply one event (raises ``EventRejected``); True when the book changed (updated in place)."""
        placing = ev.kind in (EventKind.STARTED, EventKind.RESIZED)
        if gpu_ids:
            bad = [g for g in gpu_ids if not 0 <= g < self.site.inventory.n_gpus]
            if bad:
                raise EventRejected(f"placement.gpu_ids: GPU {bad[0]} does not exist "
                                    f"(the facility has 0..{self.site.inventory.n_gpus - 1})")
            if ev.n_gpus and len(gpu_ids) != ev.n_gpus:
                raise EventRejected(f"placement.gpu_ids: {len(gpu_ids)} ids for n_gpus = {ev.n_gpus}")
            if placing:
                by_gpu, job_id = self._by_gpu, ev.job_id
                clash = sorted(g for g in set(gpu_ids) if any(j != job_id for j in by_gpu.get(g, ())))
                if clash:
                    raise EventRejected(f"placement.gpu_ids: GPU {clash[0]} is taken by a running job")
        change = plan_event(self.book, ev, self.facility)
        if change is None:
            return False
        rec = change[0]
        if placing and rec.spec is not None:
            self._check_tp(rec.spec, tuple(gpu_ids) or self.site.gpu_ids(rec.nodes, rec.n_gpus))
        if ev.job_id not in self._seq:
            self._seq[ev.job_id] = len(self._seq)
        self.book.commit(change)
        live = self._live(ev.job_id)
        if placing:
            live.gpu_override = tuple(gpu_ids)
            live.healthy_comm = None
        if change[1] is not None or ev.kind not in (EventKind.PROGRESS, EventKind.CHECKPOINTED):
            self._reindex(ev.job_id)
        if ev.kind not in (EventKind.PROGRESS, EventKind.CHECKPOINTED):  # those change no input of the job
            self._dirty.add(ev.job_id)
            self._accrue_new = True  # it may start or stop integrating energy
        if ev.kind == EventKind.PROGRESS:
            self._progress_due(ev.job_id, live)
        else:
            self._touched.add(ev.job_id)
        return True

    def apply_progress(self, job_id: str, time_s: float, step: int, step_time_s: float, tokens_per_s: float, *,
                       schedule: bool = True) -> bool:
        """``apply`` of a PROGRESS event without spec or placement, from its fields (``codec.progress_report``; the
        handler's path for the hottest event): the same book change, the same rejections, no ``JobEvent`` built.
        ``schedule`` False leaves the job's publishing to ``progress`` / ``progress_many`` (which the handler runs
        after the batch for every job that reported and which schedules it the same way)."""
        rec = self.book.jobs.get(job_id)
        if rec is None:
            raise EventRejected(f"progress event for unknown job {job_id!r}")
        new = plan_progress(rec, time_s, step, step_time_s, tokens_per_s)
        if new is None:
            return False
        if job_id not in self._seq:
            self._seq[job_id] = len(self._seq)
        self.book.commit_record(new)
        live = self.jobs.get(job_id)
        if live is None:
            live = self.jobs[job_id] = JobLive()
        if schedule:
            self._progress_due(job_id, live)
        return True

    def _progress_due(self, job_id: str, live: JobLive) -> None:
        """A progress report: the job's first measurement is published at once (touched); a later one when its
        coalescing window ends (``changed`` decides then, with the values of that moment)."""
        old = live.published_progress
        if old is None or not (old[0] or old[1]):
            self._touched.add(job_id)
            return
        at = live.published_s + self.settings.progress_publish_s
        if self._due_at.get(job_id, math.inf) > at:
            self._schedule(job_id, at)

    def _live(self, job_id: str) -> JobLive:
        """The job's live record, made on first use (not built on every call as ``setdefault``'s argument)."""
        live = self.jobs.get(job_id)
        if live is None:
            live = self.jobs[job_id] = JobLive()
        return live

    # -- what a refresh visits ------------------------------------------------------------------------
    def touch(self, job_id: str) -> None:
        """The job's published state may have changed outside ``apply``/``compute`` (e.g. restored accounts)."""
        self._touched.add(job_id)

    def _reindex(self, job_id: str) -> None:
        """The running job's placement in the node / leaf group / rack / GPU indexes (removed when it stops)."""
        old = self._place.pop(job_id, None)
        slot = self._job_slot.pop(job_id, None)
        if slot is not None:
            held = self._gpu_slot
            if old is not None and old[3]:
                g = np.fromiter(old[3], np.int64)
                held[g[held[g] == slot]] = -1
            self._slot_job[slot] = None
            self._free_slots.append(slot)
        if old is not None:
            nodes, groups, racks, gpus = old
            for index, keys in ((self._by_node, nodes), (self._by_group, groups), (self._by_rack, racks),
                                (self._by_gpu, gpus)):
                for k in keys:
                    held = index.get(k)
                    if held is not None:
                        held.discard(job_id)
                        if not held:
                            del index[k]
        rec = self.book.jobs.get(job_id)
        if rec is None or rec.status != JobStatus.RUNNING:
            return
        site = self.site
        gpus = self.gpu_ids(rec)
        nodes = frozenset(site.nodes_of_gpus(gpus) or {site.node_index[n] for n in rec.nodes
                                                       if n in site.node_index})
        groups = frozenset(site.leaf_groups(nodes))
        racks = frozenset(site.rack_of_node[n] for n in nodes)
        self._place[job_id] = (nodes, groups, racks, gpus)
        if self._free_slots:
            slot = self._free_slots.pop()
            self._slot_job[slot] = job_id
        else:
            slot = len(self._slot_job)
            self._slot_job.append(job_id)
        self._job_slot[job_id] = slot
        if gpus:
            self._gpu_slot[np.fromiter(gpus, np.int64)] = slot
        for index, keys in ((self._by_node, nodes), (self._by_group, groups), (self._by_rack, racks),
                            (self._by_gpu, gpus)):
            for k in keys:
                index.setdefault(k, set()).add(job_id)

    def _jobs_on(self, index: dict, keys) -> set[str]:
        out: set[str] = set()
        for k in keys:
            held = index.get(k)
            if held:
                out |= held
        return out

    def _link_jobs(self, link_id: str) -> set[str]:
        """Running jobs a link may concern (a superset of those crossing it)."""
        scope = self.scope(link_id)
        if scope is None:
            return set()
        if not scope.cross_leaf:
            return self._jobs_on(self._by_node, scope.nodes)
        if len(scope.nodes) >= self.site.inventory.n_nodes:
            return set(self._place)
        return self._jobs_on(self._by_group, self._groups_of_scope(link_id, scope))

    def _groups_of_scope(self, link_id: str, scope: LinkScope) -> frozenset[int]:
        groups = self._scope_groups.get(link_id)
        if groups is None:
            groups = self._scope_groups[link_id] = frozenset(self.site.leaf_groups(scope.nodes))
        return groups

    def _plan_jobs(self, plan: CapPlan) -> set[str]:
        if plan.paused:  # a plan pausing jobs is among every job's alerts (see ``inputs_for``)
            return set(self._place)
        return self._jobs_on(self._by_gpu, plan.caps)

    def _thermal_jobs(self, alert: ThermalAlert) -> set[str]:
        return self._jobs_on(self._by_rack, (alert.entity_id,)) | self._jobs_on(self._by_gpu, alert.gpu_ids)

    def _timed(self, now_s: float) -> None:
        """Time-driven input changes: a plan coming into force or ending, a predicted throttle time arriving."""
        state = self._timed_state
        for key, p in self.plans.items():
            cur = (p.plan_id, p.start_s <= now_s < p.end_s, p.end_s > now_s)
            if state.get(("plan", key)) != cur:
                state[("plan", key)] = cur
                self._dirty |= self._plan_jobs(p)
        for key, a in self.thermal.items():
            cur = (a.alert_id, a.throttle_at_s <= now_s)
            if state.get(("thermal", key)) != cur:
                state[("thermal", key)] = cur
                self._dirty |= self._thermal_jobs(a)

    def to_publish(self, now_s: float) -> list[str]:
        """Jobs whose published state may be out of date (touched since the last call, or due for their periodic
        republish), in book order; ``changed`` decides."""
        out = self._touched
        self._touched = set()
        due = self._due
        while due and due[0][0] <= now_s:
            t, job_id = heapq.heappop(due)
            if self._due_at.get(job_id) == t:
                del self._due_at[job_id]
                out.add(job_id)
        seq = self._seq
        return sorted((j for j in out if j in seq), key=seq.__getitem__)

    def _check_tp(self, spec: JobSpec, gpus: tuple[int, ...]) -> None:
        """Tensor parallelism runs inside one NVLink domain: a TP group larger than the job's GPUs per domain on
        this placement would put its per-layer collectives on the network (where the domain is small: HGX nodes)."""
        if not gpus or spec.parallel.tp <= 1:
            return
        _, counts = np.unique(self.site.inventory.gpu_nvlink_domain[np.asarray(gpus)], return_counts=True)
        if spec.parallel.tp > int(counts.max()):
            raise EventRejected(f"parallel.tp = {spec.parallel.tp} is larger than the NVLink domain on this placement "
                                f"({int(counts.max())} of the job's GPUs per domain)")

    def gpu_ids(self, rec: JobRecord) -> tuple[int, ...]:
        live = self.jobs.get(rec.job_id)
        if live is not None and live.gpu_override:
            return live.gpu_override
        return self.site.gpu_ids(rec.nodes, rec.n_gpus)

    # -- conditions ---------------------------------------------------------------------------------
    def set_links(self, links: dict[str, LinkHealth], truncated: bool = False) -> None:
        old = self.links
        self.links = {k: v for k, v in links.items() if v.capacity < 1.0 or v.flapping}
        self.links_truncated = truncated
        # fabric.state.v1 lists down, degraded and flapping links first, then the busiest: a truncated snapshot that
        # still carries a merely busy link holds every impaired one (twin.fabric.adapters.codec.fabric_state)
        self.impaired_links_complete = not truncated or len(self.links) < len(links)
        # the jobs a changed link may concern are checked again (what a job's inputs hold of a link)
        for link_id in old.keys() | self.links.keys():
            a, b = old.get(link_id), self.links.get(link_id)
            if a is None or b is None or round(a.capacity, 4) != round(b.capacity, 4) or a.flapping != b.flapping:
                self._dirty |= self._link_jobs(link_id)
        by_node: dict[int, list[str]] = {}
        by_group: dict[int, list[str]] = {}
        every: list[str] = []
        n_nodes = self.site.inventory.n_nodes
        for link_id in self.links:
            scope = self.scope(link_id)
            if scope is None:
                continue
            if not scope.cross_leaf:
                for n in scope.nodes:
                    by_node.setdefault(n, []).append(link_id)
            elif len(scope.nodes) >= n_nodes:
                every.append(link_id)
            else:
                for g in self._groups_of_scope(link_id, scope):
                    by_group.setdefault(g, []).append(link_id)
        self._links_by_node, self._links_by_group, self._links_all = by_node, by_group, every

    def add_plan(self, plan: CapPlan) -> None:
        old = self.plans.get(plan.key)
        if old is not None:
            self._dirty |= self._plan_jobs(old)
        self.plans[plan.key] = plan
        self._dirty |= self._plan_jobs(plan)

    def add_thermal(self, alert: ThermalAlert | ThermalClear) -> None:
        if isinstance(alert, ThermalClear):
            self.clear_thermal(alert)
            return
        old = self.thermal.get(alert.entity_id)
        if old is not None:
            self._dirty |= self._thermal_jobs(old)
        self.thermal[alert.entity_id] = alert
        self._dirty |= self._thermal_jobs(alert)

    def clear_thermal(self, clear: ThermalClear) -> None:
        """The cooling twin's clear: the entity's throttle alert (raised no later than the clear) is removed and
        the jobs under it are predicted again (their thermal flag and slowdown go, published at once)."""
        old = self.thermal.get(clear.entity_id)
        if old is None or old.raised_s > clear.at_s:
            return
        del self.thermal[clear.entity_id]
        self._timed_state.pop(("thermal", clear.entity_id), None)
        self._dirty |= self._thermal_jobs(old)

    def power_path(self, component: str) -> PowerPath | None:
        """The racks below a power component of the facility spec (None: not a component of it)."""
        if self._power_paths is None:
            try:
                self._power_paths = power_paths_of_spec(self.site.spec)
            except (ValueError, AttributeError):  # a spec without a power chain: component alerts concern no rack
                self._power_paths = {}
        return self._power_paths.get(component)

    def alert_racks(self, alert: RackAlert | RackClear) -> frozenset[str]:
        """The racks an alert concerns: its rack, or every rack with a path through its component."""
        if alert.scope == "rack":
            return frozenset((alert.entity_id,))
        path = self.power_path(alert.entity_id)
        return path.racks if path is not None else frozenset()

    def add_rack_alert(self, alert: RackAlert | RackClear) -> None:
        if isinstance(alert, RackClear):
            self.clear_rack_alert(alert)
            return
        self.rack_alerts[f"{alert.entity_id}/{alert.kind}"] = alert
        self._dirty |= self._jobs_on(self._by_rack, self.alert_racks(alert))

    def clear_rack_alert(self, clear: RackClear) -> None:
        """The power twin's clear: the rack's (component's) alert of that kind (raised no later than the clear) is
        removed and the jobs on the racks below are evaluated again (their power flag goes, published at once)."""
        key = f"{clear.entity_id}/{clear.kind}"
        old = self.rack_alerts.get(key)
        if old is None or old.raised_s > clear.at_s:
            return
        del self.rack_alerts[key]
        self._dirty |= self._jobs_on(self._by_rack, self.alert_racks(old))

    def expire(self, now_s: float) -> None:
        ttl = self.settings.alert_ttl_s
        gone_plans = [k for k, p in self.plans.items() if not p.end_s > now_s]
        for k in gone_plans:
            self._dirty |= self._plan_jobs(self.plans.pop(k))
            self._timed_state.pop(("plan", k), None)
        gone_thermal = [k for k, a in self.thermal.items() if not now_s - a.received_s < ttl]
        for k in gone_thermal:
            self._dirty |= self._thermal_jobs(self.thermal.pop(k))
            self._timed_state.pop(("thermal", k), None)
        gone_racks = [k for k, a in self.rack_alerts.items() if not now_s - a.received_s < ttl]
        for k in gone_racks:
            self._dirty |= self._jobs_on(self._by_rack, self.alert_racks(self.rack_alerts.pop(k)))
        self._timed(now_s)

    def scope(self, link_id: str) -> LinkScope | None:
        if link_id not in self._scopes:
            self._scopes[link_id] = self.site.link_scope(link_id)
        return self._scopes[link_id]

    def crossed_links(self, nodes: set[int], gpus: tuple[int, ...]) -> tuple[tuple[str, float, bool], ...]:
        """The impaired links the job's traffic crosses: only the links indexed under its nodes and, for a job
        spanning leaf groups, its groups (then ``SiteMap.crosses`` decides)."""
        if not self.links:
            return ()
        cand: set[str] = set(self._links_all)
        by_node = self._links_by_node
        if by_node:
            for n in nodes:
                ids = by_node.get(n)
                if ids:
                    cand.update(ids)
        by_group = self._links_by_group
        if by_group:
            groups = self.site.leaf_groups(nodes)
            if len(groups) > 1:
                for g in groups:
                    ids = by_group.get(g)
                    if ids:
                        cand.update(ids)
        out = []
        for link_id in cand:
            h = self.links[link_id]
            scope = self.scope(link_id)
            if scope is not None and self.site.crosses(scope, nodes, gpus):
                out.append((link_id, round(h.capacity, 4), h.flapping))
        return tuple(sorted(out))

    def network_fraction(self, links: tuple[tuple[str, float, bool], ...]) -> float:
        """The bandwidth share left on the job's worst path, for the own estimate: a leaf keeps the mean
        capacity of its uplinks (absent = healthy), a NIC its own capacity."""
        spines = self.site.spec.fabric.spines
        per_leaf: dict[str, float] = {}
        worst = 1.0
        for link_id, cap, _ in links:
            scope = self.scope(link_id)
            if scope is not None and scope.leaf:
                per_leaf[scope.leaf] = per_leaf.get(scope.leaf, 0.0) + (1.0 - cap) / max(spines, 1)
            else:
                worst = min(worst, cap)
        for lost in per_leaf.values():
            worst = min(worst, 1.0 - lost)
        return min(1.0, max(worst, 0.01))

    def inputs(self, rec: JobRecord, now_s: float) -> JobInputs | None:
        if rec.status != JobStatus.RUNNING or rec.spec is None:
            return None
        return self.inputs_for(rec.spec, rec.nodes, self.gpu_ids(rec), now_s)

    def inputs_for(self, spec: JobSpec, nodes: tuple[str, ...], gpus: tuple[int, ...], now_s: float) -> JobInputs:
        """The inputs of ``spec`` on these GPUs under the conditions in force at ``now_s``."""
        node_idx = self.site.nodes_of_gpus(gpus) or {self.site.node_index[n] for n in nodes
                                                     if n in self.site.node_index}
        caps = [c for p in self.plans.values() if p.start_s <= now_s < p.end_s
                for c in (p.caps.get(g) for g in gpus) if c is not None]
        alerts: list[str] = []
        if self.thermal or self.rack_alerts or self.plans:
            racks = self.site.racks_of_gpus(gpus)
            alerts = sorted([f"thermal/{a.alert_id}/{a.throttle_at_s}" for a in self.thermal_alerts(gpus)]
                            + [f"power/{a.alert_id}" for a in self.rack_alerts.values()
                               if not self.alert_racks(a).isdisjoint(racks)]
                            + [f"plan/{p.plan_id}" for p in self.plans.values() if p.end_s > now_s
                               and (p.paused or p.caps.keys() & set(gpus))])
        return JobInputs(spec, tuple(nodes), tuple(gpus), self.crossed_links(node_idx, gpus),
                         min(caps) if caps else None,
                         self.settings.throttle_clock_fraction if self.throttled(gpus, now_s) else 1.0, tuple(alerts))

    def hot_gpus(self, inp: JobInputs) -> set[int]:
        """The job's GPUs on the nodes of the impaired links it crosses (their communicators are asked first)."""
        node_of = self.site.inventory.gpu_node
        return {g for link_id, _, _ in inp.links for g in inp.gpu_ids
                if (scope := self.scope(link_id)) is not None and int(node_of[g]) in scope.nodes}

    def thermal_alerts(self, gpus: tuple[int, ...]) -> list[ThermalAlert]:
        """Cooling alerts on these GPUs or their racks."""
        if not self.thermal:
            return []
        racks = self.site.racks_of_gpus(gpus)
        return [a for a in self.thermal.values() if a.entity_id in racks or a.gpu_ids.intersection(gpus)]

    def throttled(self, gpus: tuple[int, ...], now_s: float) -> bool:
        return any(a.throttle_at_s <= now_s for a in self.thermal_alerts(gpus))

    def stale(self, now_s: float) -> list[tuple[str, JobInputs]]:
        """Running jobs whose inputs changed since their last prediction (or whose communication came from the
        fallback while the fabric twin is reachable again).

        Only the jobs marked since (events, conditions in their scope, time-driven changes) and those waiting for
        the fabric twin are visited; a job stays marked until it is computed."""
        self._timed(now_s)
        cand = self._dirty | self._retry if self.fabric_up else set(self._dirty)
        out = []
        jobs, seq = self.book.jobs, self._seq
        for job_id in sorted((j for j in cand if j in seq), key=seq.__getitem__):
            rec = jobs.get(job_id)
            inp = self.inputs(rec, now_s) if rec is not None else None
            if inp is None:
                self._dirty.discard(job_id)
                self._retry.discard(job_id)
                continue
            live = self._live(job_id)
            retry = live.comm is not None and live.comm.retry and self.fabric_up
            if inp != live.inputs or live.prediction is None or retry:
                out.append((job_id, inp))
            else:
                self._dirty.discard(job_id)
        self._dirty.difference_update(j for j in cand if j not in seq)
        return out

    # -- prediction ---------------------------------------------------------------------------------
    def calls(self, inp: JobInputs) -> list[CollectiveCall]:
        """The collectives one step of the job runs (what the fabric twin is asked to time)."""
        seen: dict[CallKey, CollectiveCall] = {}

        def record(call: CollectiveCall) -> float:
            seen.setdefault(call_key(call), call)
            return 0.0

        predict_step(inp.spec, record, gpus_per_domain=self._gpd(inp))
        return list(seen.values())

    def _gpd(self, inp: JobInputs) -> int:
        dom = gpu_spec(inp.spec.gpu).nvlink_domain
        return max(1, min(dom, self.site.gpus_per_domain(inp.gpu_ids)))

    def gpus_per_domain(self, inp: JobInputs) -> int:
        """The job's GPUs per NVLink domain as the step model takes it (``calls`` depends on it and the spec)."""
        return self._gpd(inp)

    def _timer(self, inp: JobInputs, comm: CommAnswer | None, degrade: float) -> Callable[[CollectiveCall], float]:
        local = LinkModel.for_gpu(gpu_spec(inp.spec.gpu), self.settings.nic_gbps, degrade=degrade).time_s
        table = comm.table if comm is not None else {}

        def timer(call: CollectiveCall) -> float:
            t = table.get(call_key(call))
            return local(call) if t is None else t

        return timer

    def _predict(self, inp: JobInputs, comm: CommAnswer | None, *, cap: float | None, thermal: float,
                 degrade: float = 1.0) -> StepPrediction:
        return predict_step(inp.spec, self._timer(inp, comm, degrade),
                            Conditions(power_cap_w=cap, thermal_clock_fraction=thermal), gpus_per_domain=self._gpd(inp))

    def compute(self, job_id: str, inp: JobInputs, comm: CommAnswer, now_s: float) -> JobLive:
        rec = self.book.jobs[job_id]
        live = self._live(job_id)
        s = self.settings
        self.accrue(now_s, only=job_id)
        own = comm.source != "fabric"
        degrade = self.network_fraction(inp.links) if own else 1.0
        pred = self._predict(inp, comm, cap=inp.cap_w, thermal=inp.thermal_fraction, degrade=degrade)
        if not own and not inp.links:
            live.healthy_comm = comm
        flags: list[Flag] = []
        recs: list[Recommendation] = []
        gpus = inp.gpu_ids
        racks = sorted(self.site.racks_of_gpus(gpus))

        # degraded links: the same job on healthy links (their last answer, or the own estimate's ratio)
        if inp.links:
            if not own and live.healthy_comm is not None:
                healthy = self._predict(inp, live.healthy_comm, cap=inp.cap_w, thermal=inp.thermal_fraction)
                slow = pred.step_time_s / healthy.step_time_s - 1.0
            else:
                frac = self.network_fraction(inp.links)
                a = self._predict(inp, None, cap=inp.cap_w, thermal=inp.thermal_fraction, degrade=frac)
                b = self._predict(inp, None, cap=inp.cap_w, thermal=inp.thermal_fraction)
                slow = a.step_time_s / b.step_time_s - 1.0
            by_entity: dict[str, list[str]] = {}
            for link_id, _, _ in inp.links:
                scope = self.scope(link_id)
                by_entity.setdefault(scope.leaf if scope is not None and scope.leaf else link_id, []).append(link_id)
            worst_kind = max(pred.exposed_comm_s, key=lambda k: pred.exposed_comm_s[k])
            for entity, ids in sorted(by_entity.items()):
                shown = ", ".join(f"{i} ({self.links[i].capacity:.0%})" for i in ids[:3] if i in self.links)
                flags.append(Flag(DEGRADED_LINK, entity, max(slow, 0.0),
                                  f"crosses impaired link(s) {shown}{' ...' if len(ids) > 3 else ''}"))
            if slow > s.recommend_margin:
                entity = sorted(by_entity)[0]
                rid = _rid(job_id, MOVE_JOB, entity, ",".join(i for i, _, _ in inp.links))
                recs.append(Recommendation(rid, job_id, MOVE_JOB, entity,
                                           f"move this job off {entity}: its {worst_kind} traffic crosses a degraded "
                                           f"link ({by_entity[entity][0]}), +{slow:.0%} step time",
                                           gain=slow / (1.0 + slow)))
        # power cap from a curtailment plan in force
        if inp.cap_w is not None:
            free = self._predict(inp, comm, cap=None, thermal=inp.thermal_fraction, degrade=degrade)
            slow = pred.step_time_s / free.step_time_s - 1.0
            flags.append(Flag(POWER_CAP, racks[0] if racks else "", max(slow, 0.0),
                              f"curtailment plan caps its GPUs at {inp.cap_w:.0f} W"))
        for plan in self.plans.values():
            if job_id in plan.paused and plan.end_s > now_s:
                rid = _rid(job_id, CHECKPOINT_NOW, plan.plan_id)
                wait = max(plan.start_s - now_s, 0.0)
                recs.append(Recommendation(rid, job_id, CHECKPOINT_NOW, plan.key or plan.plan_id,
                                           f"checkpoint now: curtailment plan {plan.plan_id} pauses this job in "
                                           f"{_duration(wait)}", deadline_s=wait))
        # thermal: predicted (or present) throttling on its GPUs / racks
        for alert in self.thermal.values():
            if not (alert.entity_id in racks or alert.gpu_ids.intersection(gpus)):
                continue
            hot = self._predict(inp, comm, cap=inp.cap_w, thermal=s.throttle_clock_fraction, degrade=degrade)
            cool = self._predict(inp, comm, cap=inp.cap_w, thermal=1.0, degrade=degrade)
            slow = hot.step_time_s / cool.step_time_s - 1.0
            ttt = alert.throttle_at_s - now_s
            where = f"rack {alert.entity_id}" if alert.entity_id in racks else alert.entity_id
            detail = f"{where} is throttling" if ttt <= 0 else f"{where} is predicted to throttle in {_duration(ttt)}"
            flags.append(Flag(THERMAL, alert.entity_id, max(slow, 0.0), detail))
            if ttt > 0:
                recs.append(Recommendation(_rid(job_id, CHECKPOINT_NOW, alert.alert_id), job_id, CHECKPOINT_NOW,
                                           alert.entity_id, f"checkpoint now: {detail}", deadline_s=ttt,
                                           gain=slow / (1.0 + slow)))
        for alert in self.rack_alerts.values():
            if alert.scope == "rack":
                if alert.entity_id in racks:
                    flags.append(Flag(POWER_CAP, alert.entity_id, 0.0, f"power alert {alert.kind}: {alert.message}"))
                    if alert.critical:
                        recs.append(Recommendation(_rid(job_id, CHECKPOINT_NOW, alert.alert_id), job_id,
                                                   CHECKPOINT_NOW, alert.entity_id, f"checkpoint now: rack "
                                                   f"{alert.entity_id} has a critical power alert ({alert.kind})"))
                continue
            # a PDU / UPS / transformer / feed above some of its racks: their power path is capped or at risk
            path = self.power_path(alert.entity_id)
            under = sorted(path.racks.intersection(racks)) if path is not None else []
            if not under:
                continue
            sole = [r for r in under if r in path.sole]
            shown = ", ".join(under[:3]) + (" ..." if len(under) > 3 else "")
            around = f"no path around it for {', '.join(sole[:3])}" if sole else "a redundant path remains"
            flags.append(Flag(POWER_CAP, alert.entity_id, 0.0,
                              f"power alert {alert.kind} on {alert.scope.replace('_', ' ')} {alert.entity_id} "
                              f"feeding its rack(s) {shown} ({around}): {alert.message}"))
            if alert.critical and sole:
                recs.append(Recommendation(_rid(job_id, CHECKPOINT_NOW, alert.alert_id), job_id, CHECKPOINT_NOW,
                                           alert.entity_id, f"checkpoint now: {alert.scope.replace('_', ' ')} "
                                           f"{alert.entity_id} has a critical power alert ({alert.kind}) and rack "
                                           f"{sole[0]} has no power path around it"))
        # where the communication came from is the prediction's provenance (``JobLive.comm_source``), not a flag
        detail = comm.detail or ("fabric twin unreachable" if own else "")
        if self.links_truncated:
            detail += ("; " if detail else "") + "fabric state truncated: some impaired links unseen"
        live.comm_detail = detail

        # goodput and checkpoint interval
        attrs = rec.attributes
        n = max(inp.spec.n_gpus, 1)
        mtbf = float(job_mtbf_s(n, s.gpu_mtbf_h))
        ckpt = attr_float(attrs, "checkpoint_s", s.checkpoint_s)
        restart = attr_float(attrs, "restart_s", s.restart_s)
        optimal = float(daly_interval_s(ckpt, mtbf))
        interval = attr_float(attrs, "checkpoint_interval_s", 0.0) or optimal
        live.goodput = float(goodput_fraction(interval, ckpt, restart, mtbf))
        live.optimal_interval_s = optimal
        live.failures_per_day = float(failures_per_day(n, s.gpu_mtbf_h))
        best = float(goodput_fraction(optimal, ckpt, restart, mtbf))
        if best - live.goodput > 0.01:
            recs.append(Recommendation(_rid(job_id, CHANGE_INTERVAL, f"{optimal:.0f}"), job_id, CHANGE_INTERVAL, job_id,
                                       f"checkpoint every {_duration(optimal)} instead of {_duration(interval)}: "
                                       f"goodput {live.goodput:.1%} -> {best:.1%}", gain=best - live.goodput))

        live.inputs, live.prediction, live.comm = inp, pred, comm
        self._accrue_new = True
        live.flags = tuple(flags)
        live.recommendations = tuple(recs)
        self._measure(rec, live)
        self._dirty.discard(job_id)
        if comm.retry:
            self._retry.add(job_id)
        else:
            self._retry.discard(job_id)
        self._touched.add(job_id)
        return live

    def _measure(self, rec: JobRecord, live: JobLive) -> bool:
        """Fold a new progress report into the running error and flag a job slower than predicted; True when a
        flag was raised or cleared (its kinds and entities changed; not when only a slowdown moved)."""
        pred = live.prediction
        if pred is None:
            return False
        if rec.step != live.counted_step and (rec.measured_step_time_s or rec.measured_tokens_per_s):
            ratio = (rec.measured_step_time_s / pred.step_time_s if rec.measured_step_time_s
                     else pred.tokens_per_s / rec.measured_tokens_per_s)
            live.error_sum += ratio
            live.error_n += 1
            live.last_ratio = ratio
            live.counted_step = rec.step
        flags0 = live.flags
        if not live.health and (not flags0 or (len(flags0) == 1 and flags0[0].kind == SLOWER)):
            # no flag but this one: the general form below with nothing to name as the cause (the common case)
            r = live.last_ratio
            if r > 1.0 + self.settings.margin:
                live.flags = (Flag(SLOWER, rec.job_id, r - 1.0, f"measured {r:.2f}x the predicted step time; "
                                                                f"{_NO_CAUSE}"),)
                return not flags0 or flags0[0].entity_id != rec.job_id
            if flags0:
                live.flags = ()
                return True
            return False
        flags = [f for f in live.flags if f.kind not in (SLOWER, GPU_ERRORS, STRAGGLER)] + list(live.health)
        if live.last_ratio > 1.0 + self.settings.margin:
            # what telemetry sees on the job's own GPUs first (errors, then a lagging node), else the largest
            # slowdown the twin predicts from a cause (cap, throttling, a degraded link)
            seen = [f for f in flags if f.kind == GPU_ERRORS] or [f for f in flags if f.kind == STRAGGLER]
            causes = [f for f in flags if f.kind not in (UNSPECIFIED, SLOWER) and f.slowdown > 0]
            cause = seen[0] if seen else (max(causes, key=lambda f: f.slowdown) if causes else None)
            why = (f"likeliest cause: {cause.kind.replace('_', ' ')} on {cause.entity_id} ({cause.detail})" if cause
                   else _NO_CAUSE)
            flags.append(Flag(SLOWER, cause.entity_id if cause else rec.job_id, live.last_ratio - 1.0,
                              f"measured {live.last_ratio:.2f}x the predicted step time; {why}"))
        old, live.flags = flags0, tuple(flags)
        return len(old) != len(flags) or any(
            (a.kind, a.entity_id) != (b.kind, b.entity_id) for a, b in zip(old, flags, strict=True))

    def progress(self, job_id: str) -> None:
        """After a PROGRESS event: update the running error against the current prediction."""
        self.progress_many((job_id,))

    def progress_many(self, job_ids) -> list[tuple[str, JobLive, int]]:
        """``progress`` of each job (the events handler's call after a batch, once per job that reported);
        returns (job, its live record, reports in its running error before) for each job (the handler records
        ``last_ratio`` as a metric for those whose count grew by the end of its refresh: a job whose prediction
        comes in that refresh counts its report then)."""
        book, jobs, touched = self.book.jobs, self.jobs, self._touched
        out = []
        for job_id in job_ids:
            rec = book.get(job_id)
            live = jobs.get(job_id)
            if rec is None or live is None:
                continue
            out.append((job_id, live, live.error_n))
            if self._measure(rec, live):
                touched.add(job_id)  # a flag raised or cleared: published at once
            else:
                self._progress_due(job_id, live)
        return out

    # -- telemetry: measured energy, GPU errors, stragglers ------------------------------------------------------
    def apply_telemetry(self, time_s: float, gpu: np.ndarray, power_w: np.ndarray, sm_active: np.ndarray,
                        xid: np.ndarray, ecc_dbe: np.ndarray, bounds: np.ndarray | None = None,
                        rack_pdu_w: np.ndarray | None = None, rack_gpus: np.ndarray | None = None,
                        util_gpu_pct: np.ndarray | None = None, *, now_s: float | None = None) -> int:
        """One batch of GPU samples (global ids; NaN = not reported): only the GPUs of running jobs are kept.
        Adds each job's measured energy: its GPUs' energy and their node platform share over the same seconds
        (measured from the rack's PDU power where ``bounds``, ``rack_pdu_w``, ``rack_gpus`` give a usable figure,
        see ``domain.overhead.rack_platform_w``; else the facility spec's), times the overhead factor in force at
        ``now_s`` (default ``time_s``). Marks its health check due. Returns the GPUs used."""
        gpu = np.asarray(gpu, np.int64)
        slot = self._gpu_slot[gpu]
        sel = slot >= 0
        if not sel.any():
            return 0
        g, s = gpu[sel], slot[sel]
        e, dt, changed = self.meter.update(time_s, g, np.asarray(power_w, float)[sel],
                                           np.asarray(sm_active, float)[sel], np.asarray(xid)[sel],
                                           np.asarray(ecc_dbe, float)[sel],
                                           None if util_gpu_pct is None else np.asarray(util_gpu_pct, float)[sel])
        n = len(self._slot_job)
        plat_w = self.site._platform_array()[self.site.inventory.gpu_node[g]]
        if bounds is not None and rack_pdu_w is not None and rack_gpus is not None:
            measured = rack_platform_w(bounds, power_w, rack_pdu_w, rack_gpus)[sel]
            use = np.isfinite(measured)
            plat_w = np.where(use, measured, plat_w)
            k_meas = int(use.sum())
            self.platform_gpu_samples[0] += k_meas
            self.platform_gpu_samples[1] += len(g) - k_meas
        else:
            self.platform_gpu_samples[1] += len(g)
        gpu_j = np.bincount(s, weights=e, minlength=n)
        plat_j = np.bincount(s, weights=plat_w * dt, minlength=n)
        factor, source = self.overhead.current(time_s if now_s is None else now_s)
        jobs, names = self.jobs, self._slot_job
        for k in np.flatnonzero((gpu_j > 0) | (plat_j > 0)):
            live = jobs.get(names[k])
            if live is not None:
                live.measured_gpu_j += float(gpu_j[k])
                live.measured_platform_j += float(plat_j[k])
                live.measured_j += float(gpu_j[k] + plat_j[k]) * factor
                self._overhead_applied(names[k], live, factor, source)
        for k in np.unique(s).tolist():
            if names[k] is not None:
                self._health_due.add(names[k])
        if changed.any():
            for k in np.unique(s[changed]).tolist():
                if names[k] is not None:
                    self._health_now.add(names[k])
        return int(sel.sum())

    def _overhead_applied(self, job_id: str, live: JobLive, factor: float, source: str) -> None:
        """The overhead factor just applied to the job's energy; a new source is published at once (touched)."""
        if source != live.overhead_source:
            self._touched.add(job_id)
        live.overhead_factor, live.overhead_source = factor, source

    def set_site_power(self, state_time_s: float, produced_s: float, facility_w: float, it_w: float) -> bool:
        """The power twin's site state (facility and IT power): the overhead factor from now on (raises
        ``domain.overhead.OverheadRefused`` when implausible; False when older than the one held)."""
        return self.overhead.update(state_time_s, produced_s, facility_w, it_w)

    def runs_on_rack(self, rack_id: str) -> bool:
        """Whether a running job holds GPUs of this rack (telemetry of other racks is not read)."""
        return rack_id in self._by_rack

    def check_health(self, now_s: float) -> list[str]:
        """GPU error and straggler flags of the jobs telemetry came for (an error change: at once; else at most
        every ``health_interval_s``) and of the jobs flagged (so a flag clears when its cause is gone). Returns the
        jobs whose flags changed (touched: published at once)."""
        every = self.settings.health_interval_s
        out = []
        for job_id in self._health_now | self._health_due | self._health_flagged:
            live = self.jobs.get(job_id)
            rec = self.book.jobs.get(job_id)
            if live is None or rec is None:
                continue
            first = live.health_checked_s == -math.inf
            if job_id not in self._health_now and now_s - live.health_checked_s < every:
                continue
            self._health_due.discard(job_id)
            before = live.health
            live.health = self._health_flags(job_id, now_s) if rec.status == JobStatus.RUNNING else ()
            if live.health:
                self._health_flagged.add(job_id)
            else:
                self._health_flagged.discard(job_id)
            # after a job's first check, its next ones are spread over the interval (not every job in one second)
            live.health_checked_s = now_s - (every * (zlib.crc32(job_id.encode()) % 1000) / 1000.0 if first else 0.0)
            if [(f.kind, f.entity_id) for f in before] != [(f.kind, f.entity_id) for f in live.health]:
                self._measure(rec, live)
                self._touched.add(job_id)
                out.append(job_id)
        self._health_now = set()
        return out

    def _health_flags(self, job_id: str, now_s: float) -> tuple[Flag, ...]:
        place = self._place.get(job_id)
        if place is None or not place[3]:
            return ()
        gpus = np.fromiter(place[3], np.int64)
        inv, node_ids = self.site.inventory, self.site.node_ids
        flags = []
        errors = self.meter.errors(gpus, now_s)
        if errors:
            node = node_ids[int(inv.gpu_node[errors[0][0]])]
            shown = "; ".join(f"GPU {g} ({node_ids[int(inv.gpu_node[g])]}): {what}" for g, what in errors[:3])
            flags.append(Flag(GPU_ERRORS, node, 0.0, shown + (" ..." if len(errors) > 3 else "")))
        lag = stragglers(self.meter, gpus, inv.gpu_node[gpus], now_s)
        if lag is not None:
            why = ("waits outside its GPUs: host, input or network" if lag.kind == "idle"
                   else "busy longer at less power: a lower clock (power cap or brake, thermal slowdown)")
            util = "" if math.isnan(lag.util_ratio) else f", GPU utilization {lag.util_ratio:.0%}"
            flags.append(Flag(STRAGGLER, node_ids[lag.node], 0.0,
                              f"node {node_ids[lag.node]}: GPU power {lag.power_ratio:.0%}, SM activity "
                              f"{lag.activity_ratio:.0%}{util} of the job's median node ({why})"))
        return tuple(flags)

    # -- energy and outputs -------------------------------------------------------------------------------
    def accrue(self, now_s: float, only: str | None = None) -> None:
        if only is None:  # the running jobs and those still integrating (no other job's accrued_s changes)
            if now_s == self._accrued_all_s and not self._accrue_new:
                return  # already integrated to this instant (several refreshes within one clock reading)
            self._accrued_all_s = now_s
            self._accrue_new = False
            ids = [j for j in self.book.running_ids() if j not in self._accruing]
            ids.extend(self._accruing)
        else:
            ids = [only]
        jobs, book, cache = self.jobs, self.book.jobs, self._watts
        factor, source = self.overhead.current(now_s)
        running_status, accruing, touched = JobStatus.RUNNING, self._accruing, self._touched
        for job_id in ids:
            live = jobs.get(job_id)
            if live is None:
                continue
            rec = book.get(job_id)
            p = live.prediction
            running = rec is not None and rec.status == running_status and p is not None
            if running:
                then = live.accrued_s
                if then is not None and now_s > then:
                    inp = live.inputs
                    hit = cache.get(job_id)
                    if hit is not None and hit[0] is p and hit[1] is inp:
                        watts = hit[2]
                    else:  # per prediction and placement (hashing the GPU tuple on every refresh costs)
                        platform = self.site.platform_w(inp.gpu_ids) if inp else 0.0
                        watts = p.mean_power_w * p.n_gpus + platform  # at the racks
                        cache[job_id] = (p, inp, watts)
                    live.energy_j += watts * factor * (now_s - then)
                if source != live.overhead_source:  # ``_overhead_applied``: a new source is published at once
                    touched.add(job_id)
                live.overhead_factor, live.overhead_source = factor, source
                live.accrued_s = now_s
                accruing.add(job_id)
            else:
                live.accrued_s = None
                self._accruing.discard(job_id)
                cache.pop(job_id, None)

    def view(self, job_id: str) -> JobView | None:
        rec = self.book.jobs.get(job_id)
        if rec is None:
            return None
        live = self._live(job_id)
        return JobView(rec, live, self.gpu_ids(rec))

    def views(self) -> list[JobView]:
        return [v for v in (self.view(j) for j in sorted(self.book.jobs)) if v is not None]

    def changed(self, job_id: str, now_s: float, republish_s: float) -> bool:
        """Whether the job's published state is out of date (then marks it published): what it shows changed
        (status, spec, placement, prediction, a flag raised or cleared, goodput, the communication or energy
        overhead source: at once; progress alone --
        measured step time and tokens/s, running error, a flag's slowdown -- at most every
        ``progress_publish_s``, the first measurement at once), or the periodic republish is due (energy grows)."""
        rec = self.book.jobs.get(job_id)
        if rec is None:
            return False
        live = self.jobs.get(job_id) or self._live(job_id)
        running = rec.status == JobStatus.RUNNING
        p = live.prediction if running else None
        if p is None:
            sig = 0.0
        elif live.sig_of is p:  # the prediction's step time to 6 significant digits, once per prediction
            sig = live.sig
        else:
            sig = live.sig = _sig(p.step_time_s)
            live.sig_of = p
        flags = live.flags
        gpus = live.gpu_override or self.site.gpu_ids(rec.nodes, rec.n_gpus)  # ``gpu_ids(rec)``
        key = (rec.status, rec.spec, rec.attributes, rec.nodes, rec.n_gpus, gpus, sig,
               tuple([(f.kind, f.entity_id) for f in flags]) if flags else (), round(live.goodput, 4),
               live.comm.source if running and live.comm is not None and p is not None else "",  # ``comm_source``
               live.overhead_source)
        # a flag's slowdown moves with the prediction (in the key) or with the measurement (progress)
        progress = (rec.measured_step_time_s, rec.measured_tokens_per_s,
                    round(live.error_sum / live.error_n if live.error_n else 0.0, 4),  # ``error_ratio``
                    tuple([round(f.slowdown, 3) for f in flags]) if flags else ())
        since = now_s - live.published_s
        old = live.published_progress
        if key == live.published_key and not (running and since >= republish_s):
            if progress == old:
                if running:
                    self._schedule(job_id, live.published_s + republish_s)
                return False
            first = old is None or not (old[0] or old[1])
            wait = self.settings.progress_publish_s
            if not first and since < wait:
                self._schedule(job_id, live.published_s + wait)  # coalesced: published then with the latest
                return False
        live.published_key, live.published_progress, live.published_s = key, progress, now_s
        if running:
            self._schedule(job_id, now_s + republish_s)
        return True

    def _schedule(self, job_id: str, at_s: float) -> None:
        if self._due_at.get(job_id) != at_s:
            self._due_at[job_id] = at_s
            heapq.heappush(self._due, (at_s, job_id))

    def new_recommendations(self, job_id: str) -> list[Recommendation]:
        live = self.jobs.get(job_id)
        if live is None:
            return []
        if not live.recommendations:
            return []
        out = [r for r in live.recommendations if r.recommendation_id not in live.published_recs]
        if out:
            live.published_recs.update(r.recommendation_id for r in out)
        return out

    def forget_ended(self, job_id: str) -> None:
        """An ended job keeps its record and accounts (what its state shows); its live prediction goes, with
        everything kept to make or compare one: the communication answers, the prediction the published key's
        step time was read from, the answer's detail. An ended job is never predicted again (the book refuses
        to restart it), and its state shows no communication source (``JobLive.comm_source``)."""
        rec = self.book.jobs.get(job_id)
        live = self.jobs.get(job_id)
        if rec is not None and live is not None and rec.status in ENDED:
            live.prediction = None
            live.inputs = None
            live.flags = ()
            live.recommendations = ()
            live.comm = live.healthy_comm = live.sig_of = None
            live.comm_detail = ""

    # -- what-ifs ------------------------------------------------------------------------------------
    def predict_what_if(self, inp: JobInputs, comm: CommAnswer | None, *, cap: float | None = None,
                        thermal: float | None = None, links: tuple[tuple[str, float, bool], ...] | None = None
                        ) -> StepPrediction:
        """The job's step under changed conditions (communication: its last answer, scaled by the own estimate
        where the links change)."""
        inp2 = inp if links is None else replace(inp, links=links)
        base_thermal = inp.thermal_fraction if thermal is None else thermal
        if links is None:
            degrade = 1.0 if comm is not None and comm.source == "fabric" else self.network_fraction(inp.links)
            return self._predict(inp, comm, cap=cap, thermal=base_thermal, degrade=degrade)
        frac_new = self.network_fraction(inp2.links)
        frac_old = self.network_fraction(inp.links)
        before_own = self._predict(inp, None, cap=cap, thermal=base_thermal, degrade=frac_old)
        after_own = self._predict(inp, None, cap=cap, thermal=base_thermal, degrade=frac_new)
        now = self.predict_what_if(inp, comm, cap=cap, thermal=thermal)
        ratio = after_own.step_time_s / before_own.step_time_s
        return replace(now, step_time_s=now.step_time_s * ratio, tokens_per_s=now.tokens_per_s / ratio,
                       tokens_per_s_per_gpu=now.tokens_per_s_per_gpu / ratio, mfu=now.mfu / ratio)


def attr_float(attrs, key: str, default: float) -> float:
    try:
        v = float(attrs.get(key, ""))
    except (TypeError, ValueError):
        return default
    return v if v > 0 and math.isfinite(v) else default


def _rid(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join(parts)))


def _sig(x: float) -> float:
    return float(f"{x:.6g}")


def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


__all__ = ["CapPlan", "CommAnswer", "EventRejected", "Flag", "JobInputs", "JobLive", "JobTwin", "JobView",
           "LinkHealth", "RackAlert", "RackClear", "Recommendation", "ThermalAlert", "ThermalClear", "TwinSettings",
           "call_key"]
