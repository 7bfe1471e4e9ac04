"""Protobuf ↔ cooling domain objects: the one place twin.cooling.v1 messages meet the domain.
Decoding problems raise ``CodecError`` (a ValueError) whose message starts with the offending proto
field, so a stream can dead-letter the record with that reason and a gRPC servicer can answer
INVALID_ARGUMENT naming the field.

CoolingState per scope (entity_id): RACK (rack id) every tick, CDU, LOOP (CDU group), CRAH,
AIR_GROUP, PLANT (site id); see cooling.proto for the fields.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import fields

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from twin.cooling.domain.alerts import CoolingAlert
from twin.cooling.domain.events import KINDS as EVENT_KINDS
from twin.cooling.domain.events import EquipmentEvent
from twin.cooling.domain.network import Conditions, CoolingNetwork, CoolingState
from twin.cooling.domain.thermal import GpuThermal
from twin.cooling.domain.whatif import HORIZON_S, ThrottleForecast, what_if
from twin.cooling.live import EVENT, SPEC, GpuReading, RackGpus, Sources
from twin.cooling.v1 import cooling_pb2 as pb

_NS = uuid.UUID("5b7e2f0c-9a41-4c8e-8d2b-3f6a1c0e7d94")
MEASURED, MODELLED, MIXED = "measured", "modelled", "mixed"
_CONDITION_SOURCE = {
    SPEC: pb.CONDITION_SOURCE_SPEC,
    EVENT: pb.CONDITION_SOURCE_EVENT,
    MEASURED: pb.CONDITION_SOURCE_MEASURED,
}
_SOURCE = {
    MEASURED: pb.VALUE_SOURCE_MEASURED,
    MODELLED: pb.VALUE_SOURCE_MODELLED,
    MIXED: pb.VALUE_SOURCE_MIXED,
}
_ALERT_KIND = {
    "throttle_predicted": pb.ALERT_KIND_THROTTLE_PREDICTED,
    "capacity_exceeded": pb.ALERT_KIND_CAPACITY_EXCEEDED,
    "redundancy_at_risk": pb.ALERT_KIND_REDUNDANCY_AT_RISK,
    "air_limit": pb.ALERT_KIND_AIR_LIMIT,
    "suspect_sensor": pb.ALERT_KIND_SUSPECT_SENSOR,
}
_SEVERITY = {"info": pb.SEVERITY_INFO, "warning": pb.SEVERITY_WARNING, "critical": pb.SEVERITY_CRITICAL}
_EVENT_KIND = {k: getattr(pb, f"COOLING_EVENT_KIND_{k.upper()}") for k in EVENT_KINDS}
_EVENT_KIND_BACK = {v: k for k, v in _EVENT_KIND.items()}
_REDUNDANCY = {False: pb.REDUNDANCY_N, True: pb.REDUNDANCY_N_PLUS_1}


class CodecError(ValueError):
    """A message the cooling twin cannot take; ``field`` names the proto field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def timestamp(time_s: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(round(time_s * 1e9)))
    return ts


def seconds(ts: Timestamp) -> float:
    return ts.ToNanoseconds() / 1e9


def _f(x: float) -> float:
    return float(x)


def scope_of(net: CoolingNetwork, entity_id: str) -> int:
    for ids, scope in (
        (net.rack_ids, pb.COOLING_SCOPE_RACK),
        (net.cdu_ids, pb.COOLING_SCOPE_CDU),
        (net.loop_ids, pb.COOLING_SCOPE_LOOP),
        (net.crah_ids, pb.COOLING_SCOPE_CRAH),
        (net.air_group_ids, pb.COOLING_SCOPE_AIR_GROUP),
    ):
        if entity_id in ids:
            return scope
    return pb.COOLING_SCOPE_PLANT if entity_id == net.site_id else pb.COOLING_SCOPE_UNSPECIFIED


def states(
    net: CoolingNetwork,
    st: CoolingState,
    cond: Conditions,
    *,
    time_s: float,
    source: str = MODELLED,
    rack_max_gpu_c: np.ndarray | None = None,
    rack_max_hbm_c: np.ndarray | None = None,
    fc: ThrottleForecast | None = None,
    sources: Sources | None = None,
) -> list[pb.CoolingState]:
    """Every entity's state for one tick: racks, CDUs, loops, CRAHs, air groups, the plant. ``sources``: where
    the conditions came from (measured loop supply / flow, ambient, plant power); None: all modelled / spec."""
    srcs = Sources() if sources is None else sources
    n_loops = len(net.loop_ids)
    loop_sup_meas = srcs.loop_supply_measured if len(srcs.loop_supply_measured) else np.zeros(n_loops, bool)
    loop_flow_meas = srcs.loop_flow_measured if len(srcs.loop_flow_measured) else np.zeros(n_loops, bool)
    ts = timestamp(time_s)
    src = _SOURCE[source]
    out: list[pb.CoolingState] = []

    def head(entity: str, scope: int) -> pb.CoolingState:
        return pb.CoolingState(site_id=net.site_id, entity_id=entity, scope=scope, state_time=ts, source=src)

    nan = np.full(net.n_racks, np.nan)
    gmax = nan if rack_max_gpu_c is None else rack_max_gpu_c
    hmax = nan if rack_max_hbm_c is None else rack_max_hbm_c
    for r, rid in enumerate(net.rack_ids):
        m = head(rid, pb.COOLING_SCOPE_RACK)
        d = m.rack
        d.it_power_w, d.liquid_heat_w, d.air_heat_w = (
            _f(st.rack_it_w[r]),
            _f(st.rack_liquid_w[r]),
            _f(st.rack_air_w[r]),
        )
        d.coolant_flow_lpm, d.supply_temp_c = _f(st.rack_flow_lpm[r]), _f(st.rack_supply_c[r])
        d.return_temp_c, d.coolant_temp_c = _f(st.rack_return_c[r]), _f(st.rack_coolant_c[r])
        d.inlet_air_temp_c, d.air_limit_w = _f(st.rack_inlet_air_c[r]), _f(net.rack_air_limit_w[r])
        d.air_over_limit = bool(st.rack_air_over_limit[r])
        d.loop_id = net.loop_ids[net.rack_loop[r]] if net.rack_loop[r] >= 0 else ""
        d.air_group_id = net.air_group_ids[net.rack_air_group[r]] if net.rack_air_group[r] >= 0 else ""
        d.max_gpu_temp_c, d.max_hbm_temp_c = _f(gmax[r]), _f(hmax[r])
        if fc is not None:
            if math.isfinite(fc.rack_time_s[r]):
                d.time_to_throttle_s = _f(fc.rack_time_s[r])
            d.gpus_at_risk = int(fc.rack_gpus_affected[r])
        out.append(m)
    for i, cid in enumerate(net.cdu_ids):
        m = head(cid, pb.COOLING_SCOPE_CDU)
        d, li = m.cdu, int(net.cdu_loop[i])
        d.loop_id = net.loop_ids[li] if li >= 0 else ""
        d.up = bool(cond.cdu_up[i])
        d.heat_removed_w, d.load_fraction = _f(st.cdu_heat_w[i]), _f(st.cdu_load_fraction[i])
        d.flow_lpm = _f(st.cdu_flow_lpm[i])
        d.pump_speed_fraction = (
            _f(st.cdu_flow_lpm[i] / net.cdu_flow_lpm[i]) if net.cdu_flow_lpm[i] > 0 else 0.0
        )
        d.pump_power_w = _f(st.cdu_pump_w[i])
        d.supply_temp_c = _f(st.loop_supply_c[li]) if li >= 0 else math.nan
        d.return_temp_c = _f(st.loop_return_c[li]) if li >= 0 else math.nan
        out.append(m)
    for g, gid in enumerate(net.loop_ids):
        m = head(gid, pb.COOLING_SCOPE_LOOP)
        d = m.loop
        d.redundancy = _REDUNDANCY[bool(net.loop_n_plus_1[g])]
        d.cdu_ids.extend(net.cdu_ids[i] for i in np.flatnonzero(net.cdu_loop == g))
        d.heat_w, d.capacity_w = _f(st.loop_heat_w[g]), _f(st.loop_capacity_w[g])
        d.capacity_if_one_fails_w = _f(st.loop_capacity_if_one_fails_w[g])
        d.flow_lpm, d.flow_demand_lpm = _f(st.loop_flow_lpm[g]), _f(st.loop_flow_demand_lpm[g])
        d.supply_temp_c, d.return_temp_c = _f(st.loop_supply_c[g]), _f(st.loop_return_c[g])
        d.carries, d.survives_one_more = bool(st.loop_carries[g]), bool(st.loop_survives_one_more[g])
        d.supply_temp_source = pb.VALUE_SOURCE_MEASURED if loop_sup_meas[g] else pb.VALUE_SOURCE_MODELLED
        d.flow_source = pb.VALUE_SOURCE_MEASURED if loop_flow_meas[g] else pb.VALUE_SOURCE_MODELLED
        if loop_sup_meas[g] or loop_flow_meas[g]:
            m.source = pb.VALUE_SOURCE_MIXED
        out.append(m)
    for i, cid in enumerate(net.crah_ids):
        m = head(cid, pb.COOLING_SCOPE_CRAH)
        d, gi = m.crah, int(net.crah_group[i])
        d.air_group_id = net.air_group_ids[gi] if gi >= 0 else ""
        d.up = bool(cond.crah_up[i])
        d.heat_removed_w, d.load_fraction = _f(st.crah_heat_w[i]), _f(st.crah_load_fraction[i])
        d.fan_power_w, d.supply_air_temp_c = _f(st.crah_fan_w[i]), _f(st.crah_supply_c[i])
        d.return_air_temp_c = math.nan
        out.append(m)
    for g, gid in enumerate(net.air_group_ids):
        m = head(gid, pb.COOLING_SCOPE_AIR_GROUP)
        d = m.air_group
        d.redundancy = _REDUNDANCY[bool(net.air_group_n_plus_1[g])]
        d.crah_ids.extend(net.crah_ids[i] for i in np.flatnonzero(net.crah_group == g))
        d.heat_w, d.capacity_w = _f(st.air_heat_w[g]), _f(st.air_capacity_w[g])
        d.capacity_if_one_fails_w, d.inlet_rise_k = (
            _f(st.air_capacity_if_one_fails_w[g]),
            _f(st.air_inlet_rise_k[g]),
        )
        d.carries, d.survives_one_more = bool(st.air_carries[g]), bool(st.air_survives_one_more[g])
        out.append(m)
    m = head(net.site_id, pb.COOLING_SCOPE_PLANT)
    p = m.plant
    p.heat_load_w, p.capacity_w, p.plant_power_w = (
        _f(st.plant_load_w),
        _f(st.plant_capacity_w),
        _f(st.plant_power_w),
    )
    p.fan_power_w, p.compressor_power_w = _f(st.plant_fan_w.sum()), _f(st.plant_compressor_w.sum())
    p.facility_pump_power_w, p.cooling_power_w = _f(st.facility_pump_w), _f(st.cooling_power_w)
    p.it_power_w = _f(st.it_power_w)
    pue = st.pue_cooling_part
    if pue is not None:
        p.pue_cooling = pue
    p.facility_supply_temp_c, p.facility_supply_setpoint_c = (
        _f(st.facility_supply_c),
        _f(cond.facility_supply_c),
    )
    p.dry_bulb_temp_c, p.wet_bulb_temp_c = _f(cond.dry_bulb_c), _f(cond.wet_bulb_c)
    p.dry_bulb_source, p.wet_bulb_source = _CONDITION_SOURCE[srcs.dry_bulb], _CONDITION_SOURCE[srcs.wet_bulb]
    p.facility_supply_setpoint_source = _CONDITION_SOURCE[srcs.facility_setpoint]
    p.fan_power_source = pb.VALUE_SOURCE_MEASURED if srcs.fan_power_measured else pb.VALUE_SOURCE_MODELLED
    p.compressor_power_source = (
        pb.VALUE_SOURCE_MEASURED if srcs.compressor_power_measured else pb.VALUE_SOURCE_MODELLED
    )
    if (
        MEASURED in (srcs.dry_bulb, srcs.wet_bulb)
        or srcs.fan_power_measured
        or srcs.compressor_power_measured
    ):
        m.source = pb.VALUE_SOURCE_MIXED
    out.append(m)
    return out


def alert(net: CoolingNetwork, a: CoolingAlert, time_s: float) -> pb.CoolingAlert:
    """Deterministic alert id (site, entity, kind, time): a re-sent alert keeps its id."""
    aid = uuid.uuid5(_NS, f"{net.site_id}|{a.entity_id}|{a.kind}|{time_s:.3f}")
    m = pb.CoolingAlert(
        alert_id=str(aid),
        site_id=net.site_id,
        entity_id=a.entity_id,
        scope=scope_of(net, a.entity_id),
        kind=_ALERT_KIND[a.kind],
        severity=_SEVERITY[a.severity],
        alert_time=timestamp(time_s),
        value=_f(a.value),
        message=a.message,
    )
    if math.isfinite(a.time_to_throttle_s):
        m.time_to_throttle_s = a.time_to_throttle_s
    m.gpu_ids.extend(a.gpus)
    return m


def cleared_alert(
    net: CoolingNetwork, entity_id: str, kind: str, severity: str, time_s: float
) -> pb.CoolingAlert:
    """The clear of an alert whose condition ended (``cleared`` set; deterministic id like ``alert``)."""
    aid = uuid.uuid5(_NS, f"{net.site_id}|{entity_id}|{kind}|{time_s:.3f}|cleared")
    return pb.CoolingAlert(
        alert_id=str(aid),
        site_id=net.site_id,
        entity_id=entity_id,
        scope=scope_of(net, entity_id),
        kind=_ALERT_KIND[kind],
        severity=_SEVERITY[severity],
        alert_time=timestamp(time_s),
        value=math.nan,
        message=f"{kind.replace('_', ' ')} on {entity_id} cleared",
        cleared=True,
    )


def event(msg: pb.CoolingEvent) -> EquipmentEvent:
    """A cooling.events.v1 record as a domain event (ranges and ids are checked by ``apply_event``)."""
    if msg.kind not in _EVENT_KIND_BACK:
        raise CodecError("kind", f"unknown or unspecified event kind {msg.kind}")
    if not msg.entity_id:
        raise CodecError("entity_id", "empty")
    if not msg.HasField("event_time"):
        raise CodecError("event_time", "missing")
    try:
        time_s = seconds(msg.event_time)
    except ValueError as exc:  # protobuf's range check: nanos outside 0..1e9, seconds outside years 1..9999
        raise CodecError("event_time", str(exc)) from None

    def opt(name: str) -> float | None:
        return getattr(msg, name) if msg.HasField(name) else None

    return EquipmentEvent(
        kind=_EVENT_KIND_BACK[msg.kind],
        entity_id=msg.entity_id,
        time_s=time_s,
        flow_fraction=opt("flow_fraction"),
        facility_supply_temp_c=opt("facility_supply_temp_c"),
        supply_air_temp_c=opt("supply_air_temp_c"),
        dry_bulb_temp_c=opt("dry_bulb_temp_c"),
        wet_bulb_temp_c=opt("wet_bulb_temp_c"),
    )


def event_to_proto(e: EquipmentEvent, *, site_id: str, event_id: str = "") -> pb.CoolingEvent:
    m = pb.CoolingEvent(
        event_id=event_id or str(uuid.uuid5(_NS, f"{site_id}|{e.entity_id}|{e.kind}|{e.time_s:.6f}")),
        site_id=site_id,
        entity_id=e.entity_id,
        kind=_EVENT_KIND[e.kind],
        event_time=timestamp(e.time_s),
    )
    for name in (
        "flow_fraction",
        "facility_supply_temp_c",
        "supply_air_temp_c",
        "dry_bulb_temp_c",
        "wet_bulb_temp_c",
    ):
        v = getattr(e, name)
        if v is not None:
            setattr(m, name, v)
    return m


def _horizon(h: float) -> float:
    if not math.isfinite(h) or h < 0:
        raise CodecError("horizon_s", f"must be >= 0, got {h}")
    return h if h > 0 else HORIZON_S


def _fraction(field: str, v: float) -> float:
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise CodecError(field, f"must be within 0..1, got {v}")
    return v


def _known(field: str, ids: tuple[str, ...], wanted) -> list[str]:
    known = set(ids)
    for w in wanted:
        if w not in known:
            raise CodecError(field, f"unknown id {w!r}")
    return list(wanted)


def failure_request(
    net: CoolingNetwork, cond: Conditions, req: pb.WhatIfFailureRequest
) -> tuple[Conditions, float]:
    """The conditions a WhatIfFailure asks about, and its horizon (CodecError naming the field)."""
    pumps = {p.cdu_id: _fraction("pumps.flow_fraction", p.flow_fraction) for p in req.pumps}
    racks = {r.rack_id: _fraction("rack_flows.flow_fraction", r.flow_fraction) for r in req.rack_flows}
    after = what_if(
        net,
        cond,
        cdus_down=_known("cdu_ids", net.cdu_ids, req.cdu_ids),
        crahs_down=_known("crah_ids", net.crah_ids, req.crah_ids),
        plant_down=_known("plant_unit_ids", net.plant_ids, req.plant_unit_ids),
        cdu_flow_factor={k: pumps[k] for k in _known("pumps.cdu_id", net.cdu_ids, pumps)},
        rack_flow_factor={k: racks[k] for k in _known("rack_flows.rack_id", net.rack_ids, racks)},
    )
    return after, _horizon(req.horizon_s)


def setpoint_request(
    net: CoolingNetwork, cond: Conditions, req: pb.WhatIfSetpointRequest
) -> tuple[Conditions, float]:
    from twin.cooling.domain.events import DRY_BULB_RANGE_C, FACILITY_SUPPLY_RANGE_C, SUPPLY_AIR_RANGE_C

    def opt(name: str, rng: tuple[float, float]) -> float | None:
        if not req.HasField(name):
            return None
        v = getattr(req, name)
        if not (math.isfinite(v) and rng[0] <= v <= rng[1]):
            raise CodecError(name, f"{v} outside {rng[0]}..{rng[1]}")
        return v

    fac = opt("facility_supply_temp_c", FACILITY_SUPPLY_RANGE_C)
    air = opt("supply_air_temp_c", SUPPLY_AIR_RANGE_C)
    db = opt("dry_bulb_temp_c", DRY_BULB_RANGE_C)
    wb = opt("wet_bulb_temp_c", DRY_BULB_RANGE_C)
    if (wb if wb is not None else cond.wet_bulb_c) > (db if db is not None else cond.dry_bulb_c):
        raise CodecError("wet_bulb_temp_c", "above the dry bulb")
    after = what_if(
        net,
        cond,
        facility_supply_rise_k=0.0 if fac is None else fac - cond.facility_supply_c,
        dry_bulb_c=db,
        wet_bulb_c=wb,
    )
    if air is not None:
        after = after.with_(crah_supply_c=np.full_like(after.crah_supply_c, air))
    return after, _horizon(req.horizon_s)


def what_if_outcome(net: CoolingNetwork, fc: ThrottleForecast) -> pb.WhatIfOutcome:
    b, a = fc.before, fc.after
    out = pb.WhatIfOutcome(
        gpus_affected=int(fc.gpus_affected.size),
        horizon_s=fc.horizon_s,
        plant_power_before_w=b.plant_power_w,
        plant_power_after_w=a.plant_power_w,
        cooling_power_before_w=b.cooling_power_w,
        cooling_power_after_w=a.cooling_power_w,
        facility_supply_temp_after_c=a.facility_supply_c,
    )
    if b.pue_cooling_part is not None:
        out.pue_cooling_before = b.pue_cooling_part
    if a.pue_cooling_part is not None:
        out.pue_cooling_after = a.pue_cooling_part
    out.loops_not_carrying.extend(net.loop_ids[i] for i in np.flatnonzero(~a.loop_carries))
    out.air_groups_not_carrying.extend(net.air_group_ids[i] for i in np.flatnonzero(~a.air_carries))
    out.redundancy_carries = bool(a.loop_carries.all() and a.air_carries.all())
    for r in fc.racks_affected:
        rt = out.racks.add(
            rack_id=net.rack_ids[r],
            coolant_temp_before_c=_f(b.rack_coolant_c[r]),
            coolant_temp_after_c=_f(a.rack_coolant_c[r]),
        )
        rt.time_to_throttle_s = _f(fc.rack_time_s[r])
        rt.gpu_ids.extend(int(i) for i in fc.gpus_of_rack(int(r)))
    return out


# -- cooling.racks.v1: stage 1 -> stage 2 ------------------------------------------------------------


def heat_input(site_id: str, rack_id: str, time_s: float, it_power_w: float) -> pb.CoolingStageInput:
    return pb.CoolingStageInput(
        site_id=site_id,
        heat=pb.RackHeat(rack_id=rack_id, state_time=timestamp(time_s), it_power_w=it_power_w),
    )


def _required_time(m, name: str, field: str) -> float:
    if not m.HasField(name):
        raise CodecError(field, "required")
    try:
        return seconds(getattr(m, name))
    except ValueError as exc:  # protobuf's range check: nanos outside 0..1e9, seconds outside years 1..9999
        raise CodecError(field, str(exc)) from None


def rack_heat(m: pb.RackHeat, rack_index: dict[str, int]) -> tuple[int, float, float]:
    """A stage-1 RackHeat record -> (rack, state time s, IT W); CodecError naming the field."""
    rack = rack_index.get(m.rack_id)
    if rack is None:
        raise CodecError("heat.rack_id", f"unknown rack {m.rack_id!r}")
    time_s = _required_time(m, "state_time", "heat.state_time")
    if not math.isfinite(m.it_power_w) or m.it_power_w < 0:
        raise CodecError("heat.it_power_w", f"must be a finite number >= 0, got {m.it_power_w}")
    return rack, time_s, float(m.it_power_w)


def gpus_input(site_id: str, rack_ids: tuple[str, ...], rec: RackGpus) -> pb.CoolingStageInput:
    r = rec.reading
    m = pb.RackGpus(
        rack_id=rack_ids[r.rack],
        sample_time=timestamp(r.time_s),
        gpu_ids=r.gpu.tolist(),
        power_w=r.power_w.tolist(),
        dram_active=r.dram_active.tolist(),
        coolant_flow_lpm=r.coolant_flow_lpm,
        coolant_supply_temp_c=r.coolant_supply_c,
        coolant_return_temp_c=r.coolant_return_c,
    )
    if rec.params is not None and len(rec.gpus):
        m.calibrated_gpu_ids.extend(rec.gpus.tolist())
        for f in fields(rec.params):
            getattr(m.calibrated, f.name).extend(np.asarray(getattr(rec.params, f.name), dtype=float).tolist())
    return pb.CoolingStageInput(site_id=site_id, gpus=m)


_PARAMS = tuple(f.name for f in fields(GpuThermal))
# what thermal.calibrated gives: time constants and the die's resistances > 0, the HBM resistances >= 0
_PARAM_POSITIVE = np.array([n.startswith(("tau_", "r_")) for n in _PARAMS])
_PARAM_NONNEGATIVE = np.array([n.startswith("hbm_") and n.endswith("_k_per_w") for n in _PARAMS])


def rack_gpus(m: pb.RackGpus, rack_index: dict[str, int], gpu_rack: np.ndarray) -> RackGpus:
    """A stage-1 RackGpus record -> the domain's (CodecError naming the field: unknown rack, a GPU of another
    rack, parallel lists of different lengths, a parameter not finite or of the wrong sign). Whole arrays at
    once: stage 2 decodes one record per rack and telemetry batch."""
    rack = rack_index.get(m.rack_id)
    if rack is None:
        raise CodecError("gpus.rack_id", f"unknown rack {m.rack_id!r}")
    time_s = _required_time(m, "sample_time", "gpus.sample_time")
    n, k = len(m.gpu_ids), len(m.calibrated_gpu_ids)
    for name in ("power_w", "dram_active"):
        if len(getattr(m, name)) != n:
            raise CodecError(f"gpus.{name}", f"{len(getattr(m, name))} values for {n} GPUs (parallel with gpu_ids)")
    ids = np.empty(n + k, dtype=np.int64)  # fromiter: protobuf's repeated fields to numpy at half np.array's cost
    ids[:n] = np.fromiter(m.gpu_ids, np.int64, n)
    ids[n:] = np.fromiter(m.calibrated_gpu_ids, np.int64, k)
    if len(ids) and (ids.max() >= len(gpu_rack) or (gpu_rack[ids] != rack).any()):
        bad = ids[(ids >= len(gpu_rack)) | (gpu_rack[np.minimum(ids, len(gpu_rack) - 1)] != rack)][0]
        name = "gpu_ids" if bad in ids[:n] else "calibrated_gpu_ids"
        raise CodecError(f"gpus.{name}", f"GPU {bad} is not in rack {m.rack_id}")
    cols = np.empty((2, n))
    cols[0], cols[1] = np.fromiter(m.power_w, float, n), np.fromiter(m.dram_active, float, n)
    nan = np.full(n, np.nan)
    reading = GpuReading(
        rack=rack,
        time_s=time_s,
        gpu=ids[:n],
        power_w=cols[0],
        gpu_temp_c=nan,
        hbm_temp_c=nan,
        dram_active=cols[1],
        coolant_flow_lpm=m.coolant_flow_lpm,
        coolant_supply_c=m.coolant_supply_temp_c,
        coolant_return_c=m.coolant_return_temp_c,
    )
    if not k:
        return RackGpus(reading, ids[n:], None)
    c = m.calibrated
    for name in _PARAMS:
        if len(getattr(c, name)) != k:
            raise CodecError(f"gpus.calibrated.{name}", f"needs {k} finite values")
    v = np.empty((len(_PARAMS), k))
    for i, name in enumerate(_PARAMS):
        v[i] = np.fromiter(getattr(c, name), float, k)
    bad = ~np.isfinite(v).all(1) | (_PARAM_POSITIVE & (v <= 0).any(1)) | (_PARAM_NONNEGATIVE & (v < 0).any(1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        why = (f"needs {k} finite values" if not np.isfinite(v[i]).all()
               else "must be > 0" if _PARAM_POSITIVE[i] else "must be >= 0")
        raise CodecError(f"gpus.calibrated.{_PARAMS[i]}", why)
    return RackGpus(reading, ids[n:], GpuThermal(**dict(zip(_PARAMS, v, strict=True))))
