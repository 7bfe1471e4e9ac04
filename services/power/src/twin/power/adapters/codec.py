"""Protobuf ↔ power objects: the one place twin.power.v1 / twin.telemetry.v1 messages meet the domain
and the live stages. Decoding problems raise ``CodecError`` (a ValueError) whose message starts with
the offending proto field; the stream handlers dead-letter the record with that reason and the gRPC
servicer answers INVALID_ARGUMENT naming the field.

Scopes of PowerState and what its fields mean per scope:
- RACK: input = the rack's input power used (PDU reading when present, else the model), output =
  input - rack stage losses (rectifiers / power shelves), rating 0 (racks have none in the spec).
- PDU, UPS group, UPS, transformer, feed: ``ChainState`` per component (output includes loads
  attached to it, loss >= 0, rating, headroom = rating - output, load if its worst partner fails).
- SITE: input = site import from the grid, output = IT power delivered to racks, rating = sum of the
  utility feed caps, headroom = rating - input (the import is what counts against the feeds).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from twin.core.facility import Inventory
from twin.power.domain.alerts import Alert
from twin.power.domain.grid import GridEvent, GridInterval
from twin.power.domain.network import FailureImpact, PowerNetwork
from twin.power.domain.planner import CurtailmentPlan, Sources
from twin.power.domain.tick import PowerCapImpact
from twin.power.live import MEASURED, MIXED, MODELLED, RackReading, RackResult, RackUpdate, SiteResult
from twin.power.v1 import power_pb2 as pb
from twin.telemetry.v1 import telemetry_pb2 as tpb

_NS = uuid.UUID("0f6c3b8e-2a55-4d1e-9b1c-7e4f0a9d6c21")


class CodecError(ValueError):
    """A message the power twin cannot take; ``field`` names the proto field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


_SOURCE = {MEASURED: pb.VALUE_SOURCE_MEASURED, MODELLED: pb.VALUE_SOURCE_MODELLED, MIXED: pb.VALUE_SOURCE_MIXED}
_SOURCE_BACK = {v: k for k, v in _SOURCE.items()}
#: twin.power.domain.network.KINDS order -> PowerScope
KIND_SCOPE = (pb.POWER_SCOPE_PDU, pb.POWER_SCOPE_UPS_GROUP, pb.POWER_SCOPE_UPS, pb.POWER_SCOPE_TRANSFORMER,
              pb.POWER_SCOPE_FEED)
_SCOPE_NAME = {"rack": pb.POWER_SCOPE_RACK, "site": pb.POWER_SCOPE_SITE, "pdu": pb.POWER_SCOPE_PDU,
               "ups_group": pb.POWER_SCOPE_UPS_GROUP, "ups": pb.POWER_SCOPE_UPS,
               "transformer": pb.POWER_SCOPE_TRANSFORMER, "feed": pb.POWER_SCOPE_FEED}
_ALERT_KIND = {"over_threshold": pb.ALERT_KIND_OVER_THRESHOLD, "redundancy_lost": pb.ALERT_KIND_REDUNDANCY_LOST,
               "ramp_too_fast": pb.ALERT_KIND_RAMP_TOO_FAST, "suspect_sensor": pb.ALERT_KIND_SUSPECT_SENSOR,
               "unpowered": pb.ALERT_KIND_UNPOWERED}
_SEVERITY = {"info": pb.SEVERITY_INFO, "warning": pb.SEVERITY_WARNING, "critical": pb.SEVERITY_CRITICAL}


def timestamp(time_s: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(round(time_s * 1e9)))
    return ts


def seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def _f(x: float) -> float:
    """Finite float for the wire (NaN/inf -> 0)."""
    x = float(x)
    return x if math.isfinite(x) else 0.0


# -- telemetry in --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteIndex:
    """Id lookups of one facility, built once (rack id -> index, node id -> global node)."""

    site_id: str
    rack_index: dict[str, int]
    node_index: dict[str, int]
    node_rack: np.ndarray
    node_first_gpu: np.ndarray
    node_gpus: np.ndarray

    @classmethod
    def of(cls, inv: Inventory, site_id: str | None = None) -> SiteIndex:
        return cls(site_id or inv.spec.site_id, dict(inv.rack_index), dict(inv.node_index), inv.node_rack,
                   inv.node_first_gpu, inv.node_gpus)


def _column(values, n: int, field: str) -> np.ndarray:
    if len(values) == 0:
        return np.full(n, np.nan)
    if len(values) != n:
        raise CodecError(field, f"{len(values)} values for {n} GPUs (parallel with gpu_index)")
    return np.asarray(values, dtype=np.float64)


def rack_reading(msg: tpb.TelemetrySamples, index: SiteIndex) -> RackReading:
    """One telemetry batch -> the rack's reading; unknown racks/nodes/GPUs raise CodecError."""
    b = msg.batch
    if b.site_id and b.site_id != index.site_id:
        raise CodecError("batch.site_id", f"{b.site_id!r} is not this twin's site {index.site_id!r}")
    rack = index.rack_index.get(b.rack_id)
    if rack is None:
        raise CodecError("batch.rack_id", f"unknown rack {b.rack_id!r}")
    if not b.HasField("sample_time"):
        raise CodecError("batch.sample_time", "required")
    gpus, cols = [], ([], [], [], [])
    for i, node in enumerate(b.nodes):
        n_ix = index.node_index.get(node.node_id)
        if n_ix is None or index.node_rack[n_ix] != rack:
            raise CodecError(f"batch.nodes[{i}].node_id", f"{node.node_id!r} is not a node of rack {b.rack_id}")
        g = node.gpus
        local = np.asarray(g.gpu_index, dtype=np.int64)
        n = len(local)
        if n and (local.max() >= index.node_gpus[n_ix]):
            raise CodecError(f"batch.nodes[{i}].gpus.gpu_index", f"node {node.node_id} has {index.node_gpus[n_ix]} GPUs")
        gpus.append(index.node_first_gpu[n_ix] + local)
        for col, (vals, name) in zip(cols, ((g.power_w, "power_w"), (g.tensor_active, "tensor_active"),
                                            (g.sm_active, "sm_active"), (g.dram_active, "dram_active")), strict=True):
            col.append(_column(vals, n, f"batch.nodes[{i}].gpus.{name}"))
    empty = np.zeros(0)
    cat = [np.concatenate(c) if c else empty for c in cols]
    pdu = np.asarray(b.rack.pdu_input_power_w, dtype=np.float64) if b.HasField("rack") else empty
    pdu_w = float(pdu.sum()) if len(pdu) and np.isfinite(pdu).all() else float("nan")
    return RackReading(site_id=index.site_id, rack=rack, time_s=seconds(b.sample_time),
                       gpu=np.concatenate(gpus) if gpus else np.zeros(0, dtype=np.int64),
                       power_w=cat[0], tensor_active=cat[1], sm_active=cat[2], dram_active=cat[3], pdu_w=pdu_w)


# -- states out ----------------------------------------------------------------------------------


def rack_state(r: RackResult) -> pb.PowerState:
    return pb.PowerState(
        site_id=r.site_id, entity_id=r.rack_id, scope=pb.POWER_SCOPE_RACK, state_time=timestamp(r.time_s),
        input_power_w=_f(r.input_w), output_power_w=_f(r.output_w), loss_w=_f(r.loss_w), powered=True,
        source=_SOURCE[r.source],
        rack=pb.RackPowerDetail(gpu_power_w=_f(r.gpu_w), node_dc_power_w=_f(r.node_dc_w), node_loss_w=_f(r.node_loss_w),
                                rack_loss_w=_f(r.loss_w), modelled_input_power_w=_f(r.modelled_input_w),
                                measured_gpus=r.measured_gpus, modelled_gpus=r.modelled_gpus,
                                mean_sm_clock_mhz=_f(r.mean_sm_clock_mhz), power_capped_gpus=r.power_capped_gpus))


def rack_update(msg: pb.PowerState, rack_index: dict[str, int]) -> RackUpdate:
    """A rack PowerState (stage 1's output) -> stage 2's update."""
    if msg.scope != pb.POWER_SCOPE_RACK:
        raise CodecError("scope", f"stage 2 takes rack states, got {pb.PowerScope.Name(msg.scope)}")
    rack = rack_index.get(msg.entity_id)
    if rack is None:
        raise CodecError("entity_id", f"unknown rack {msg.entity_id!r}")
    if not math.isfinite(msg.input_power_w) or msg.input_power_w < 0:
        raise CodecError("input_power_w", "must be a finite number >= 0")
    return RackUpdate(rack=rack, time_s=seconds(msg.state_time), input_w=msg.input_power_w,
                      source=_SOURCE_BACK.get(msg.source, MODELLED))


def rack_w_of(states: list[pb.PowerState], rack_index: dict[str, int], n_racks: int) -> np.ndarray:
    """Stored rack states -> input power per rack (NaN where a rack has none)."""
    out = np.full(n_racks, np.nan)
    for s in states:
        i = rack_index.get(s.entity_id)
        if i is not None and s.scope == pb.POWER_SCOPE_RACK:
            out[i] = s.input_power_w
    return out


def component_states(net: PowerNetwork, res: SiteResult) -> list[pb.PowerState]:
    c = res.chain
    ts = timestamp(res.time_s)
    out = []
    for i, cid in enumerate(net.comp_ids):
        out.append(pb.PowerState(
            site_id=net.site_id, entity_id=cid, scope=KIND_SCOPE[net.comp_kind[i]], state_time=ts,
            input_power_w=_f(c.comp_input_w[i]), output_power_w=_f(c.comp_output_w[i]), loss_w=_f(c.comp_loss_w[i]),
            rating_w=_f(net.comp_rating_w[i]), headroom_w=_f(c.comp_headroom_w[i]),
            utilization=_f(c.comp_utilization[i]), load_if_partner_fails_w=_f(c.load_if_partner_fails_w[i]),
            powered=bool(c.comp_alive[i]), source=_SOURCE[int(res.comp_source[i])]))
    return out


def site_state(net: PowerNetwork, res: SiteResult) -> pb.PowerState:
    c = res.chain
    feeds = net.comp_kind == KIND_SCOPE.index(pb.POWER_SCOPE_FEED)
    rating = float(net.comp_rating_w[feeds].sum())
    chain_loss = float(c.comp_loss_w[c.comp_alive].sum()) + c.facility_loss_w
    return pb.PowerState(
        site_id=net.site_id, entity_id=net.site_id, scope=pb.POWER_SCOPE_SITE, state_time=timestamp(res.time_s),
        input_power_w=_f(c.site_w), output_power_w=_f(c.it_w), loss_w=_f(max(c.site_w - c.it_w, 0.0)),
        rating_w=_f(rating), headroom_w=_f(rating - c.site_w), utilization=_f(c.site_w / rating if rating else 0.0),
        powered=bool(c.rack_powered.any()), source=_SOURCE[res.site_source],
        site=pb.SitePowerDetail(it_power_w=_f(c.it_w), facility_power_w=_f(c.site_w), cooling_power_w=_f(res.cooling_w),
                                pue=_f(c.pue), feeds_power_w=_f(c.feeds_w), on_site_power_w=0.0,
                                chain_loss_w=_f(chain_loss), ramp_w_per_s=_f(res.ramp_w_per_s),
                                cooling_source=_SOURCE.get(res.cooling_source, pb.VALUE_SOURCE_UNSPECIFIED),
                                minute_ramp_w=None if res.minute_ramp_w is None else _f(res.minute_ramp_w)))


def alert(a: Alert, site_id: str, time_s: float) -> pb.PowerAlert:
    """``alert_id`` is derived from (site, entity, kind, time): a replay repeats it."""
    return pb.PowerAlert(
        alert_id=str(uuid.uuid5(_NS, f"{site_id}/{a.entity_id}/{a.kind}/{time_s:.6f}")), site_id=site_id,
        entity_id=a.entity_id, scope=_SCOPE_NAME[a.scope], kind=_ALERT_KIND[a.kind], severity=_SEVERITY[a.severity],
        alert_time=timestamp(time_s), value=_f(a.value), threshold=_f(a.threshold), message=a.message)


def cleared_alert(a: Alert, site_id: str, time_s: float) -> pb.PowerAlert:
    """The clear of alert ``a`` (its condition ended at ``time_s``): same entity, scope, kind and severity,
    ``cleared`` set, value 0; deterministic id like ``alert``'s, distinct from the raise at the same time."""
    return pb.PowerAlert(
        alert_id=str(uuid.uuid5(_NS, f"{site_id}/{a.entity_id}/{a.kind}/{time_s:.6f}/cleared")), site_id=site_id,
        entity_id=a.entity_id, scope=_SCOPE_NAME[a.scope], kind=_ALERT_KIND[a.kind], severity=_SEVERITY[a.severity],
        alert_time=timestamp(time_s), threshold=_f(a.threshold),
        message=f"{a.kind.replace('_', ' ')} on {a.entity_id} cleared", cleared=True)


# -- plans ---------------------------------------------------------------------------------------


def plan(p: CurtailmentPlan, sources: Sources, *, site_id: str, created_s: float, event_id: str = "") -> pb.CurtailmentPlan:
    capped = np.flatnonzero(~np.isnan(p.gpu_cap_w))
    key = f"{site_id}/{event_id}/{created_s:.6f}/{p.limit_w:.3f}/{p.deadline_s:.3f}/{p.duration_s:.3f}"
    msg = pb.CurtailmentPlan(
        plan_id=str(uuid.uuid5(_NS, key)), site_id=site_id, event_id=event_id, created_time=timestamp(created_s),
        limit_w=_f(p.limit_w), deadline_offset_s=_f(p.deadline_s), duration_s=_f(p.duration_s),
        baseline_site_power_w=_f(p.baseline_site_w), capped_gpu_ids=capped.tolist(),
        cap_w=p.gpu_cap_w[capped].tolist(), paused_job_ids=list(p.paused_jobs), lost_work_gpu_s=_f(p.lost_work_gpu_s),
        throughput_cost=_f(p.throughput_cost), timeline_offset_s=np.asarray(p.times_s, dtype=float).tolist(),
        timeline_site_import_w=np.asarray(p.site_import_w, dtype=float).tolist(), meets_limit=p.meets_limit,
        shortfall_w=_f(p.shortfall_w), steps=list(p.steps))
    if p.meets_at_s is not None:
        msg.meets_at_offset_s = _f(p.meets_at_s)
    for i in np.flatnonzero(p.battery_w > 0):
        msg.sources.add(source_id=sources.battery_ids[i], kind=pb.SOURCE_KIND_BATTERY, power_w=_f(p.battery_w[i]),
                        start_offset_s=_f(p.deadline_s))
    for i in np.flatnonzero(p.genset_w > 0):
        msg.sources.add(source_id=sources.genset_ids[i], kind=pb.SOURCE_KIND_GENSET, power_w=_f(p.genset_w[i]),
                        start_offset_s=_f(p.genset_start_s[i]))
    return msg


# -- grid events ---------------------------------------------------------------------------------


def _dt(ts: Timestamp) -> datetime:
    return datetime.fromtimestamp(seconds(ts), UTC)


def grid_event_to_proto(e: GridEvent, *, origin: int = pb.GRID_EVENT_ORIGIN_OPENADR3,
                        cancelled: bool = False) -> pb.GridEvent:
    msg = pb.GridEvent(event_id=e.event_id, program_id=e.program_id, event_name=e.event_name, origin=origin,
                       cancelled=cancelled)
    if e.created is not None:
        msg.created_time.CopyFrom(timestamp(e.created.timestamp()))
    if e.modified is not None:
        msg.modified_time.CopyFrom(timestamp(e.modified.timestamp()))
    for iv in e.intervals:
        out = msg.intervals.add(interval_id=iv.interval_id, start_time=timestamp(iv.start.timestamp()),
                                duration_s=iv.duration_s if math.isfinite(iv.duration_s) else 0.0)
        if iv.import_limit_kw is not None:
            out.import_limit_kw = iv.import_limit_kw
        if iv.simple_level is not None:
            out.simple_level = iv.simple_level
    return msg


def grid_event(msg: pb.GridEvent) -> GridEvent:
    """grid.events.v1 -> the domain's event (duration 0 on the wire = until further notice)."""
    if not msg.event_id:
        raise CodecError("event_id", "required")
    intervals = []
    for i, iv in enumerate(msg.intervals):
        if not iv.HasField("start_time"):
            raise CodecError(f"intervals[{i}].start_time", "required")
        if not math.isfinite(iv.duration_s) or iv.duration_s < 0:
            raise CodecError(f"intervals[{i}].duration_s", "must be >= 0 (0 = until further notice)")
        limit = iv.import_limit_kw if iv.HasField("import_limit_kw") else None
        if limit is not None and not (math.isfinite(limit) and limit >= 0):
            raise CodecError(f"intervals[{i}].import_limit_kw", "must be a finite number >= 0")
        level = iv.simple_level if iv.HasField("simple_level") else None
        if level is not None and not 0 <= level <= 3:
            raise CodecError(f"intervals[{i}].simple_level", "must be 0..3")
        intervals.append(GridInterval(interval_id=iv.interval_id, start=_dt(iv.start_time),
                                      duration_s=iv.duration_s or math.inf, import_limit_kw=limit,
                                      simple_level=level))
    return GridEvent(event_id=msg.event_id, program_id=msg.program_id, event_name=msg.event_name,
                     intervals=tuple(intervals),
                     created=_dt(msg.created_time) if msg.HasField("created_time") else None,
                     modified=_dt(msg.modified_time) if msg.HasField("modified_time") else None)


# -- what-ifs ------------------------------------------------------------------------------------


def power_cap_response(impact: PowerCapImpact) -> pb.WhatIfPowerCapResponse:
    return pb.WhatIfPowerCapResponse(
        gpus=len(impact.gpus), gpu_power_saved_w=_f(impact.gpu_saved_w), site_power_saved_w=_f(impact.site_saved_w),
        mean_sm_clock_before_mhz=_f(impact.clock_before_mhz.mean()) if len(impact.gpus) else 0.0,
        mean_sm_clock_after_mhz=_f(impact.clock_after_mhz.mean()) if len(impact.gpus) else 0.0,
        throughput_cost=_f(impact.throughput_cost))


def failure_response(net: PowerNetwork, f: FailureImpact) -> pb.WhatIfComponentFailureResponse:
    resp = pb.WhatIfComponentFailureResponse(site_power_before_w=_f(f.before.site_w), site_power_after_w=_f(f.after.site_w))
    for i in np.flatnonzero(np.abs(f.moved_w) > 1e-6):
        resp.moved.add(component_id=net.comp_ids[i], scope=KIND_SCOPE[net.comp_kind[i]],
                       before_w=_f(f.before.comp_output_w[i]), after_w=_f(f.after.comp_output_w[i]),
                       rating_w=_f(net.comp_rating_w[i]))
    resp.over_rating_ids.extend(net.comp_ids[i] for i in f.over_rating)
    resp.unpowered_rack_ids.extend(net.rack_ids[i] for i in f.racks_lost)
    return resp
