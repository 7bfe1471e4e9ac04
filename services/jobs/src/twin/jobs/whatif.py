"""What-if questions on the live job twin (JobService): placement candidates, failures, power caps.

Placement: a candidate's nodes (given, or a rack's nodes) in order; whole free nodes are taken until the job's
GPUs fit (a node holding another running job's GPUs is skipped). The job is predicted on them under the
conditions in force (impaired links it would cross, caps, throttling) with each candidate's communication from the
fabric twin (``prepare`` lists the candidates' inputs, the caller asks the fabric twin for all of them at once --
``FabricComm.answer_many``, the live path's communicators per candidate -- and ``rank`` predicts and ranks them);
a candidate the fabric twin could not answer for is predicted with the job twin's own estimate (the network
bandwidth scaled by the crossed links' capacity), as the live path does, and its outcome says so
(``Outcome.comm_source`` "local" with the reason in ``comm_detail``). ``placement`` is the own estimate for
every candidate (no fabric twin). Risks: thermal = 1 when a rack of the candidate throttles now, else
1 - time to throttle / ``THERMAL_HORIZON_S`` for a predicted throttle (0 without an alert); network = 1 - the
bandwidth share left on the worst crossed path (at least 0.5 while a crossed link flaps). Ranked: candidates
that fit first, by predicted step time x (1 + thermal risk x the throttle slowdown), then by network risk.

Failures: NODE -> its running jobs stop; LINK (an uplink, leaf, spine or NIC id) -> the jobs crossing it slow: each
one's step after is predicted as the live path predicts it once the link is really down (``failure_asking``: every
crossing job's communicators asked of the fabric twin in one exchange with the link assumed at capacity 0, then
``JobTwin.predict_what_if`` with that answer); without a fabric answer (``failure``, or the fabric twin failed) the
link at capacity 0 scales the job's current step like the own estimate (a leaf keeps the mean capacity of its
uplinks); CDU -> without redundancy left in its cooling group its racks
throttle (``throttle_clock_fraction``); UPS -> without a redundant partner or a second PDU input its racks lose
power and their jobs stop. Goodput lost: a stopped job loses its expected work since the last checkpoint (half
an interval), its restart and the failure's duration (it waits for the repair) on all its GPUs; a slowed job
loses duration x (1 - before / after) on all its GPUs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

from twin.core.rpc import InvalidArgument, NotFound
from twin.jobs.domain.comm import CollectiveCall
from twin.jobs.domain.spec import JobSpec
from twin.jobs.domain.step import StepPrediction
from twin.jobs.live import CommAnswer, JobInputs, JobTwin, attr_float

THERMAL_HORIZON_S = 3600.0


@dataclass(frozen=True)
class Outcome:
    candidate_id: str
    rank: int
    step_time_s: float
    tokens_per_s: float
    power_w: float
    thermal_risk: float
    network_risk: float
    detail: str
    comm_source: str = ""   # "fabric" | "local" (own estimate) for a candidate that fits, "" for one that does not
    comm_detail: str = ""   # what the fabric twin timed, or why the own estimate was used


@dataclass(frozen=True)
class Impact:
    job_id: str
    stops: bool
    before_s: float
    after_s: float
    slowdown: float
    lost_gpu_h: float
    comm_source: str = ""   # LINK: "fabric" (the fabric twin's answer with the link down) | "local" (own estimate)
    comm_detail: str = ""   # what the fabric twin timed, or why the own estimate was used


@dataclass(frozen=True)
class CapAnswer:
    before: StepPrediction
    after: StepPrediction


def candidate_nodes(site, rack_ids: list[str], node_ids: list[str], field: str) -> list[str]:
    if not rack_ids and not node_ids:
        raise InvalidArgument(field, "give rack_ids or node_ids")
    nodes: list[str] = []
    for j, r in enumerate(rack_ids):
        if r not in site.inventory.rack_index:
            raise InvalidArgument(f"{field}.rack_ids[{j}]", f"unknown rack {r!r}")
        nodes += site.nodes_of_rack(r)
    for j, n in enumerate(node_ids):
        if n not in site.node_index:
            raise InvalidArgument(f"{field}.node_ids[{j}]", f"unknown node {n!r}")
        if n not in nodes:
            nodes.append(n)
    return nodes


@dataclass(frozen=True)
class Prepared:
    """A candidate's nodes taken for the job and its inputs under the conditions in force (None: it does not fit,
    ``detail`` says why)."""

    candidate_id: str
    chosen: tuple[str, ...]
    inputs: JobInputs | None
    detail: str = ""


def prepare(twin: JobTwin, spec: JobSpec, candidates: list[tuple[str, list[str]]], now_s: float,
            check: Callable[[], None] = lambda: None) -> list[Prepared]:
    """Each candidate's whole free nodes (in order, until the job's GPUs fit) and the job's inputs on them."""
    site = twin.site
    held = twin.book.holders
    out: list[Prepared] = []
    for cid, nodes in candidates:
        check()
        chosen: list[str] = []
        have = 0
        for n in nodes:
            if have >= spec.n_gpus:
                break
            if held.get(n):
                continue
            chosen.append(n)
            have += int(site.inventory.node_gpus[site.node_index[n]])
        if have < spec.n_gpus:
            out.append(Prepared(cid, tuple(chosen), None,
                                f"does not fit: {spec.n_gpus} GPUs needed, {have} free on the candidate's nodes"))
            continue
        gpus = site.gpu_ids(chosen, spec.n_gpus)
        out.append(Prepared(cid, tuple(chosen), twin.inputs_for(spec, tuple(chosen), gpus, now_s)))
    return out


def rank(twin: JobTwin, prepared: list[Prepared], comms: list[CommAnswer | None], now_s: float,
         check: Callable[[], None] = lambda: None) -> list[Outcome]:
    """Predict each fitting candidate with its communication answer (None or a "local" answer: the own estimate)
    and rank them (see the module docstring)."""
    site = twin.site
    scored: list[tuple[tuple, Outcome]] = []
    for p, comm in zip(prepared, comms, strict=True):
        check()
        inp = p.inputs
        if inp is None:
            scored.append(((1, 0.0, 0.0), Outcome(p.candidate_id, 0, 0.0, 0.0, 0.0, 0.0, 0.0, p.detail)))
            continue
        fabric = comm is not None and comm.source == "fabric"
        pred = twin.predict_what_if(inp, comm)
        frac = twin.network_fraction(inp.links)
        net = 1.0 - frac
        if any(flap for _, _, flap in inp.links):
            net = max(net, 0.5)
        thermal, throttle_slow = 0.0, 0.0
        alerts = twin.thermal_alerts(inp.gpu_ids)
        if alerts:
            ttt = min(a.throttle_at_s for a in alerts) - now_s
            thermal = 1.0 if ttt <= 0 else max(0.0, 1.0 - ttt / THERMAL_HORIZON_S)
            hot = twin.predict_what_if(inp, comm, thermal=twin.settings.throttle_clock_fraction)
            throttle_slow = max(hot.step_time_s / pred.step_time_s - 1.0, 0.0)
        racks = sorted(site.racks_of_gpus(inp.gpu_ids))
        said = comm.detail if comm is not None else "no fabric twin asked"
        source = "fabric" if fabric else "local"
        why = f"the fabric twin ({said})" if fabric else f"the job twin's own estimate ({said})"
        detail = (f"{len(p.chosen)} node(s) on rack(s) {', '.join(racks[:4])}{' ...' if len(racks) > 4 else ''}; "
                  f"{len(inp.links)} impaired link(s) crossed; communication: {why}")
        if inp.cap_w is not None:
            detail += f"; capped at {inp.cap_w:.0f} W by a curtailment plan"
        out = Outcome(p.candidate_id, 0, pred.step_time_s, pred.tokens_per_s, pred.mean_power_w * pred.n_gpus,
                      thermal, net, detail, source, said)
        scored.append(((0, pred.step_time_s * (1.0 + thermal * throttle_slow), net), out))
    scored.sort(key=lambda x: x[0])
    return [replace(o, rank=i + 1) for i, (_, o) in enumerate(scored)]


def placement(twin: JobTwin, spec: JobSpec, candidates: list[tuple[str, list[str]]], now_s: float,
              check: Callable[[], None] = lambda: None) -> list[Outcome]:
    """The placement what-if with the job twin's own communication estimate for every candidate."""
    prepared = prepare(twin, spec, candidates, now_s, check)
    return rank(twin, prepared, [None] * len(prepared), now_s, check)


#: asks the fabric twin for many jobs' communication at once: [(inputs, calls, hot GPUs)] -> answers in order
#: (``FabricComm.answer_many``)
AskFabric = Callable[[list[tuple[JobInputs, list[CollectiveCall], set[int]]]], Awaitable[list[CommAnswer]]]
#: the same under assumed link states: (jobs, ((link id, capacity fraction), ...)) -> answers in order
AskFabricAssuming = Callable[[list[tuple[JobInputs, list[CollectiveCall], set[int]]], tuple[tuple[str, float], ...]],
                             Awaitable[list[CommAnswer]]]


async def placement_asking(twin: JobTwin, spec: JobSpec, candidates: list[tuple[str, list[str]]], now_s: float,
                           ask: AskFabric, check: Callable[[], None] = lambda: None) -> list[Outcome]:
    """The placement what-if with every fitting candidate's communication asked of the fabric twin in one
    exchange (``ask``), then ranked; a candidate without a fabric answer falls back to the own estimate."""
    prepared = prepare(twin, spec, candidates, now_s, check)
    fits = [p.inputs for p in prepared if p.inputs is not None]
    calls: dict[int, list[CollectiveCall]] = {}  # the step's collectives depend on the spec and GPUs per domain
    jobs = []
    for inp in fits:
        gpd = twin.gpus_per_domain(inp)
        if gpd not in calls:
            calls[gpd] = twin.calls(inp)
        jobs.append((inp, calls[gpd], twin.hot_gpus(inp)))
    answers = iter(await ask(jobs) if jobs else [])
    comms = [next(answers) if p.inputs is not None else None for p in prepared]
    return rank(twin, prepared, comms, now_s, check)


def _running(twin: JobTwin, now_s: float):
    for rec in twin.book.running():
        inp = twin.inputs(rec, now_s)
        live = twin.jobs.get(rec.job_id)
        if inp is not None:
            yield rec, inp, live


def _lost_stop(twin: JobTwin, rec, inp, duration_s: float) -> float:
    s = twin.settings
    live = twin.jobs.get(rec.job_id)
    interval = attr_float(rec.attributes, "checkpoint_interval_s", 0.0) or (live.optimal_interval_s if live else 0.0)
    restart = attr_float(rec.attributes, "restart_s", s.restart_s)
    return inp.spec.n_gpus * (interval / 2.0 + restart + duration_s) / 3600.0


def link_down(inp: JobInputs, link_id: str) -> JobInputs:
    """The job's inputs with ``link_id`` down (capacity 0) in place of its live state (the live path's inputs once
    the link's DOWN event has reached the twin)."""
    return replace(inp, links=tuple(sorted({lk for lk in inp.links if lk[0] != link_id} | {(link_id, 0.0, False)})))


async def failure_asking(twin: JobTwin, kind: str, target_id: str, duration_s: float, now_s: float,
                         ask: AskFabricAssuming) -> list[Impact]:
    """``failure`` with a LINK target's crossing jobs predicted from the fabric twin's answer under the link down
    (one exchange, ``ask``); other kinds (and an unknown link) as ``failure``."""
    scope = twin.scope(target_id) if kind == "link" else None
    if scope is None:
        return failure(twin, kind, target_id, duration_s, now_s)
    site = twin.site
    ids: list[str] = []
    jobs = []
    for rec, inp, _ in _running(twin, now_s):
        if site.crosses(scope, site.nodes_of_gpus(inp.gpu_ids), inp.gpu_ids):
            down = link_down(inp, target_id)
            ids.append(rec.job_id)
            jobs.append((down, twin.calls(down), twin.hot_gpus(down)))
    answers = await ask(jobs, ((target_id, 0.0),)) if jobs else []
    return failure(twin, kind, target_id, duration_s, now_s, dict(zip(ids, answers, strict=True)))


def failure(twin: JobTwin, kind: str, target_id: str, duration_s: float, now_s: float,
            comms: Mapping[str, CommAnswer] | None = None) -> list[Impact]:
    """The failure's impact on the running jobs (module docstring); ``comms``: per job id, its communication with
    a LINK target down (a "fabric" answer is predicted as the live path does, anything else falls back to the own
    estimate)."""
    site = twin.site
    stop_racks: set[str] = set()
    hot_racks: set[str] = set()
    stop_node: int | None = None
    scope = None
    if kind == "node":
        if target_id not in site.node_index:
            raise NotFound("target_id", f"unknown node {target_id!r}")
        stop_node = site.node_index[target_id]
    elif kind == "link":
        scope = twin.scope(target_id)
        if scope is None:
            raise NotFound("target_id", f"unknown link {target_id!r} (uplink, leaf, spine or NIC id)")
    elif kind == "cdu":
        group = site.cdu_group.get(target_id)
        if group is None:
            raise NotFound("target_id", f"unknown CDU or CRAH {target_id!r}")
        members = sum(1 for g in site.cdu_group.values() if g == group)
        redundancy = next((r for g, r, _ in site.cooling_group_of_rack.values() if g == group), "N")
        if not (redundancy == "N+1" and members > 1):
            hot_racks = set(site.cooling_group_racks.get(group, []))
    else:
        entry = site.ups_racks.get(target_id)
        if entry is None:
            raise NotFound("target_id", f"unknown UPS {target_id!r}")
        racks, redundant = entry
        if not redundant:
            stop_racks = set(racks)
    out: list[Impact] = []
    for rec, inp, live in _running(twin, now_s):
        before = live.prediction if live is not None and live.prediction is not None else \
            twin.predict_what_if(inp, None)
        b = before.step_time_s
        racks = site.racks_of_gpus(inp.gpu_ids)
        if (stop_node is not None and stop_node in site.nodes_of_gpus(inp.gpu_ids)) or racks & stop_racks:
            out.append(Impact(rec.job_id, True, b, 0.0, 0.0, _lost_stop(twin, rec, inp, duration_s)))
            continue
        comm = live.comm if live is not None else None
        source = detail = ""
        if scope is not None:
            if not site.crosses(scope, site.nodes_of_gpus(inp.gpu_ids), inp.gpu_ids):
                continue
            down = link_down(inp, target_id)
            answer = comms.get(rec.job_id) if comms is not None else None
            if answer is not None and answer.source == "fabric":  # as the live path predicts it with the link down
                after = twin.predict_what_if(down, answer, cap=inp.cap_w).step_time_s
                source, detail = "fabric", answer.detail
            else:
                after = twin.predict_what_if(inp, comm, cap=inp.cap_w, links=down.links).step_time_s
                source, detail = "local", answer.detail if answer is not None else "no fabric twin asked"
        elif racks & hot_racks:
            after = twin.predict_what_if(inp, comm, cap=inp.cap_w,
                                         thermal=twin.settings.throttle_clock_fraction).step_time_s
        else:
            continue
        slow = after / b - 1.0
        lost = inp.spec.n_gpus * duration_s * max(0.0, 1.0 - b / after) / 3600.0
        out.append(Impact(rec.job_id, False, b, after, slow, lost, source, detail))
    return sorted(out, key=lambda i: (-i.lost_gpu_h, i.job_id))


def power_cap(twin: JobTwin, job_id: str, cap_w: float, now_s: float) -> CapAnswer | None:
    rec = twin.book.jobs[job_id]
    inp = twin.inputs(rec, now_s)
    if inp is None:
        return None
    live = twin.jobs.get(job_id)
    comm = live.comm if live is not None else None
    before = twin.predict_what_if(inp, comm, cap=inp.cap_w)
    cap = cap_w if inp.cap_w is None else min(cap_w, inp.cap_w)
    return CapAnswer(before, twin.predict_what_if(inp, comm, cap=cap))
