"""What the power, cooling and jobs twins must have converged to after a chaos run, computed without faults.

Each check reads the twin's inputs as they are on the broker (the records it consumed) and computes the answer
in-process with the service's own domain code, once, in order (a run without faults), then compares it with
what the processes stored:

    power    every rack row in power_state has the input power a fresh RackStage computes from that rack's
             telemetry.samples.v1 batch (wrong: different values); every rack's LATEST tick has its row (lost:
             racks without it); the site's latest state is the latest tick, its total the power chain evaluated
             on those racks (plus the cooling power the row says it used). Stage 1 keeps the latest reading per
             rack of each batch it consumes (a twin catching up skips intermediate ticks by design): rack ticks
             without a row are reported as "ticks_skipped", not as lost
    cooling  the site's latest plant state carries, as IT heat, the sum of every rack's newest power row (the
             heat a run without faults ends with: e2e test_cooling_e2e's identity, on the final state)
    jobs     job_state_latest holds, for every job on jobs.events.v1, what a fault-free replay of the topic
             through the service's EventsHandler holds: status, placement, GPUs, measured step time

Duplicates: the state tables are keyed (entity, time), so a replay can only rewrite a row; "duplicated" counts
the replays that wrote a DIFFERENT value for the same entity and time on the output topic (a twin that is not
deterministic under redelivery), and "redelivered" the identical repeats (at-least-once, expected after kills).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

import numpy as np
from e2e_support import rows

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.core import topics
from twin.core.facility import load_facility_spec
from twin.core.kafka import Record
from twin.jobs.adapters import codec as jcodec
from twin.jobs.adapters.fabric_client import FabricComm
from twin.jobs.adapters.repository import InMemoryJobStore
from twin.jobs.adapters.stream import Engine, EventsHandler
from twin.jobs.live import JobTwin
from twin.jobs.site import build_site_map
from twin.jobs.v1 import jobs_pb2 as jpb
from twin.power.adapters import codec as pcodec
from twin.power.adapters.codec import CodecError, SiteIndex
from twin.power.domain.network import evaluate
from twin.power.live import RackStage
from twin.power.site import build_site_model
from twin.power.v1 import power_pb2 as ppb
from twin.telemetry.v1 import telemetry_pb2 as tpb


@dataclass
class TwinCheck:
    converged: bool = False
    lost: int = 0
    duplicated: int = 0
    redelivered: int = 0
    wrong: int = 0
    diff: str = ""
    detail: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"converged": self.converged, "lost": self.lost, "duplicated": self.duplicated,
                "redelivered": self.redelivered, "wrong": self.wrong, "diff": self.diff[:600], **self.detail}


def _duplicates(records, key, value) -> tuple[int, int]:
    """(conflicting, identical) repeats of the same key on a topic."""
    seen: dict = {}
    conflicting = identical = 0
    for rec in records:
        k, v = key(rec), value(rec)
        if k is None:
            continue
        if k in seen:
            if seen[k] == v:
                identical += 1
            else:
                conflicting += 1
        seen[k] = v
    return conflicting, identical


# -- power ------------------------------------------------------------------------------------------


def power_reference(facility: str, samples: list) -> tuple[dict[tuple[str, float], float], str]:
    """(rack id, tick) -> rack input W, computed from telemetry.samples.v1 in sample-time order by one fresh
    RackStage (the records a fault-free power twin consumes); and the site id."""
    model = build_site_model(load_facility_spec(facility))
    index = SiteIndex.of(model.inventory, model.network.site_id)
    stage = RackStage(model)
    readings = {}
    for rec in samples:
        msg = tpb.TelemetrySamples.FromString(rec.value)
        if msg.batch.HasField("equipment"):
            continue
        try:
            r = pcodec.rack_reading(msg, index)
        except CodecError:
            continue
        readings[(r.rack, r.time_s)] = r   # a redelivered batch is the same batch
    out = {}
    for key in sorted(readings, key=lambda k: (k[1], k[0])):
        for res in stage.apply([readings[key]]):
            out[(res.rack_id, round(res.time_s, 6))] = pcodec.rack_state(res).input_power_w
    return out, index.site_id


def check_power(db: str, facility: str, samples: list, power_states: list) -> TwinCheck:
    c = TwinCheck()
    want, site_id = power_reference(facility, samples)
    have = {(e, round(t, 6)): w for e, t, w in rows(
        db, "SELECT entity_id, extract(epoch FROM time)::float8, input_power_w FROM power_state WHERE scope = %s",
        (ppb.POWER_SCOPE_RACK,))}
    last_of: dict[str, float] = {}
    for rack_id, t in want:
        last_of[rack_id] = max(last_of.get(rack_id, -math.inf), t)
    missing = sorted((r, t) for r, t in last_of.items() if (r, t) not in have)
    wrong = sorted(k for k in set(want) & set(have) if not math.isclose(want[k], have[k], rel_tol=1e-9))
    unexpected = sorted(set(have) - set(want))
    c.lost, c.wrong = len(missing), len(wrong) + len(unexpected)
    c.detail.update(rack_rows=len(have), ticks_skipped=len(set(want) - set(have)))

    def state_key(rec):
        s = ppb.PowerState.FromString(rec.value)
        return s.entity_id, s.state_time.ToNanoseconds()

    rack_states = [r for r in power_states if ppb.PowerState.FromString(r.value).scope == ppb.POWER_SCOPE_RACK]
    c.duplicated, c.redelivered = _duplicates(
        rack_states, state_key, lambda rec: round(ppb.PowerState.FromString(rec.value).input_power_w, 6))
    c.detail["rack_ticks"] = len(want)
    latest = rows(db, "SELECT message FROM power_state_latest WHERE entity_id = %s", (site_id,))
    if not want or not latest:
        c.diff = f"no site state (reference rack ticks: {len(want)})"
        return c
    site = ppb.PowerState.FromString(bytes(latest[0][0]))
    model = build_site_model(load_facility_spec(facility))
    last_t = max(t for _, t in want)
    rack_w = [0.0] * model.network.n_racks
    newest: dict[str, float] = {}
    for (rack_id, t), w in want.items():
        if t >= newest.get(rack_id, -math.inf):
            newest[rack_id] = t
            rack_w[model.inventory.rack_index[rack_id]] = w
    expected = evaluate(model.network, np.asarray(rack_w), site_extra_w=site.site.cooling_power_w).site_w
    site_t = round(site.state_time.ToNanoseconds() / 1e9, 6)
    c.detail.update({"site_time": site_t, "last_tick": last_t, "site_w": site.input_power_w,
                     "expected_site_w": expected})
    problems = []
    if missing:
        problems.append(f"{len(missing)} racks without a row for their latest tick, e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} rack rows of no telemetry batch, e.g. {unexpected[:3]}")
    if wrong:
        problems.append(f"{len(wrong)} rack rows differ, e.g. {[(k, have[k], want[k]) for k in wrong[:3]]}")
    if site_t != last_t:
        problems.append(f"site state at {site_t}, last tick {last_t}")
    # the site is republished when its total moved by POWER_MIN_CHANGE_W (1 W): closer than that it may stand
    if not math.isclose(site.input_power_w, expected, rel_tol=1e-9, abs_tol=1.0):
        problems.append(f"site total {site.input_power_w} W, domain {expected} W")
    if c.duplicated:
        problems.append(f"{c.duplicated} conflicting rack states for one tick on power.state.v1")
    c.diff = "; ".join(problems)
    c.converged = not problems
    return c


# -- cooling ----------------------------------------------------------------------------------------


def check_cooling(db: str, site_id: str, n_racks: int, cooling_states: list) -> TwinCheck:
    """The plant's latest state carries, as IT heat, every rack's newest power row (the power twin's final
    answer; the chaos run sets COOLING_MIN_CHANGE_W so any change of it is published)."""
    c = TwinCheck()
    newest = rows(db, "SELECT DISTINCT ON (entity_id) entity_id, extract(epoch FROM time)::float8, input_power_w "
                      "FROM power_state WHERE scope = %s ORDER BY entity_id, time DESC", (ppb.POWER_SCOPE_RACK,))
    if len(newest) < n_racks:
        c.diff = f"power rows for {len(newest)} of {n_racks} racks"
        return c
    last_t = round(max(t for _, t, _ in newest), 6)
    it_w = sum(w for _, _, w in newest)
    plant = {round(t, 6): bytes(m) for t, m in rows(
        db, "SELECT extract(epoch FROM time)::float8, message FROM cooling_state WHERE entity_id = %s", (site_id,))}
    ticks = rows(db, "SELECT extract(epoch FROM time)::float8 FROM power_state WHERE scope = %s GROUP BY time "
                     "HAVING count(*) = %s", (ppb.POWER_SCOPE_RACK, n_racks))
    c.detail.update({"last_tick": last_t, "plant_rows": len(plant), "complete_ticks": len(ticks),
                     "complete_ticks_without_plant_row": sum(1 for (t,) in ticks if round(t, 6) not in plant)})

    def key(rec):
        s = cpb.CoolingState.FromString(rec.value)
        return (s.entity_id, s.state_time.ToNanoseconds()) if s.entity_id == site_id else None

    c.duplicated, c.redelivered = _duplicates(
        cooling_states, key, lambda rec: round(cpb.CoolingState.FromString(rec.value).plant.it_power_w, 3))
    if not plant:
        c.lost = 1
        c.diff = "no plant state"
        return c
    t_plant = max(plant)
    got = cpb.CoolingState.FromString(plant[t_plant]).plant.it_power_w
    c.detail.update({"plant_time": t_plant, "it_power_w": got, "power_racks_w": it_w})
    if t_plant > last_t + 1e-6 or not math.isclose(got, it_w, rel_tol=1e-9, abs_tol=1e-3):
        c.wrong = 1
        c.diff = f"plant IT heat {got} W at {t_plant}, the power twin's newest racks {it_w} W (last tick {last_t})"
        return c
    if c.duplicated:
        c.diff = f"{c.duplicated} conflicting plant states for one tick on cooling.state.v1"
        return c
    c.converged = True
    return c


# -- jobs -------------------------------------------------------------------------------------------


def jobs_reference(facility: str, events: list) -> dict[str, tuple]:
    """job id -> (status, node ids, n GPUs, measured step time) after replaying jobs.events.v1 in order through
    the service's EventsHandler (no Kafka, no store, no fabric twin: the book does not depend on them)."""
    twin = JobTwin(build_site_map(load_facility_spec(facility)))
    engine = Engine(twin, FabricComm(None), None, InMemoryJobStore(), state_topic=topics.JOBS_STATE,
                    recommendations_topic=topics.JOBS_RECOMMENDATIONS)
    handler = EventsHandler(engine)
    recs = []
    for r in sorted(events, key=lambda r: (r.partition, r.offset)):
        recs.append(Record(topic=r.topic, partition=r.partition, offset=r.offset,
                           key=r.key.decode() if r.key else None, value=r.value, headers=list(r.headers or []),
                           timestamp_ms=r.timestamp, message=jpb.JobEvent.FromString(r.value), envelope=None,
                           raw=r))

    async def run():
        for i in range(0, len(recs), 100):
            await handler(recs[i:i + 100])

    asyncio.run(run())
    out = {}
    for job_id, rec in twin.book.jobs.items():
        state = jcodec.state_to_proto(rec, None, 0.0)
        out[job_id] = _job_key(state)
    return out


def _job_key(s: jpb.JobState) -> tuple:
    return (jpb.JobStatus.Name(s.status), tuple(s.placement.node_ids), s.placement.n_gpus,
            round(s.measured_step_time_s, 9))


def check_jobs(db: str, facility: str, events: list) -> TwinCheck:
    c = TwinCheck()
    want = jobs_reference(facility, events)
    have = {}
    for job_id, blob in rows(db, "SELECT job_id, message FROM job_state_latest"):
        have[job_id] = _job_key(jpb.JobState.FromString(bytes(blob)))
    c.lost = len(set(want) - set(have))
    c.wrong = sum(1 for j in set(want) & set(have) if want[j] != have[j])
    c.detail["jobs"] = len(want)
    if not want:
        c.diff = "no job on jobs.events.v1"
        return c
    if want != have:
        c.diff = f"have {sorted(have.items())[:4]}, want {sorted(want.items())[:4]}"
        return c
    c.converged = True
    return c
