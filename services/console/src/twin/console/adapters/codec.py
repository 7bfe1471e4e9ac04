"""Protobuf → the JSON the page reads: the one place the console touches twin.*.v1 messages.

Every state becomes a flat dict with short keys ("id", "t" in epoch seconds, values with their unit
in the name, to 6 significant digits); every event a dict with "type" (alert, plan, recommendation), "src" and "t". Numbers
that JSON cannot carry (NaN, ±inf) become null, and an absent `optional` field stays null, so "no
time-to-throttle within the horizon" reads as null, not 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.jobs.v1 import jobs_pb2 as jpb
from twin.power.v1 import power_pb2 as ppb


def num(x: float) -> float | None:
    """A finite number to 6 significant digits (1 W in 100 kW: plenty for a page, and a third less JSON
    at 100,000 GPUs), else None."""
    x = float(x)
    return float(f"{x:.6g}") if math.isfinite(x) else None


def _t(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


def _enum(enum, value: int, prefix: str) -> str:
    try:
        return enum.Name(value).removeprefix(prefix).lower()
    except ValueError:
        return str(value)


def _opt(msg: Message, name: str) -> float | None:
    return num(getattr(msg, name)) if msg.HasField(name) else None


# -- power -------------------------------------------------------------------------------------------


def power_state(m: ppb.PowerState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.entity_id, "t": _t(m.state_time), "scope": _enum(ppb.PowerScope, m.scope, "POWER_SCOPE_"),
        "in_w": num(m.input_power_w), "out_w": num(m.output_power_w), "loss_w": num(m.loss_w),
        "rating_w": num(m.rating_w), "headroom_w": num(m.headroom_w), "util": num(m.utilization),
        "partner_fail_w": num(m.load_if_partner_fails_w), "powered": m.powered,
        "source": _enum(ppb.ValueSource, m.source, "VALUE_SOURCE_"),
    }
    if m.HasField("rack"):
        r = m.rack
        out.update(gpu_w=num(r.gpu_power_w), capped_gpus=r.power_capped_gpus, sm_clock_mhz=num(r.mean_sm_clock_mhz))
    if m.HasField("site"):
        s = m.site
        out.update(it_w=num(s.it_power_w), facility_w=num(s.facility_power_w), cooling_w=num(s.cooling_power_w),
                   pue=num(s.pue), on_site_w=num(s.on_site_power_w), ramp_w_per_s=num(s.ramp_w_per_s))
    return out


def power_alert(m: ppb.PowerAlert) -> dict[str, Any]:
    return {"type": "alert", "src": "power", "id": m.alert_id, "t": _t(m.alert_time), "entity": m.entity_id,
            "scope": _enum(ppb.PowerScope, m.scope, "POWER_SCOPE_"), "kind": _enum(ppb.AlertKind, m.kind, "ALERT_KIND_"),
            "severity": _enum(ppb.Severity, m.severity, "SEVERITY_"), "value": num(m.value),
            "threshold": num(m.threshold), "message": m.message, "cleared": bool(m.cleared)}


def power_plan(m: ppb.CurtailmentPlan) -> dict[str, Any]:
    return {"type": "plan", "src": "power", "id": m.plan_id, "t": _t(m.created_time), "entity": m.site_id,
            "event_id": m.event_id, "limit_w": num(m.limit_w), "baseline_w": num(m.baseline_site_power_w),
            "deadline_s": num(m.deadline_offset_s), "meets": m.meets_limit, "meets_at_s": _opt(m, "meets_at_offset_s"),
            "shortfall_w": num(m.shortfall_w), "throughput_cost": num(m.throughput_cost),
            "capped_gpus": len(m.capped_gpu_ids), "paused_jobs": list(m.paused_job_ids), "steps": list(m.steps),
            "severity": "info" if m.meets_limit else "critical",
            "message": f"limit {m.limit_w / 1e6:.3f} MW: " + ("; ".join(m.steps[:3]) or "no action needed")}


# -- cooling -----------------------------------------------------------------------------------------


def cooling_state(m: cpb.CoolingState) -> dict[str, Any]:
    out: dict[str, Any] = {"id": m.entity_id, "t": _t(m.state_time),
                           "scope": _enum(cpb.CoolingScope, m.scope, "COOLING_SCOPE_"),
                           "source": _enum(cpb.ValueSource, m.source, "VALUE_SOURCE_")}
    which = m.WhichOneof("detail")
    if which == "rack":
        r = m.rack
        out.update(it_w=num(r.it_power_w), liquid_w=num(r.liquid_heat_w), air_w=num(r.air_heat_w),
                   flow_lpm=num(r.coolant_flow_lpm), coolant_c=num(r.coolant_temp_c), inlet_c=num(r.inlet_air_temp_c),
                   gpu_c=num(r.max_gpu_temp_c), hbm_c=num(r.max_hbm_temp_c), ttt_s=_opt(r, "time_to_throttle_s"),
                   at_risk=r.gpus_at_risk, loop=r.loop_id, air_group=r.air_group_id, air_over=r.air_over_limit)
    elif which == "cdu":
        c = m.cdu
        out.update(loop=c.loop_id, up=c.up, heat_w=num(c.heat_removed_w), load=num(c.load_fraction),
                   flow_lpm=num(c.flow_lpm), pump=num(c.pump_speed_fraction), pump_w=num(c.pump_power_w),
                   supply_c=num(c.supply_temp_c), return_c=num(c.return_temp_c))
    elif which == "loop":
        lp = m.loop
        out.update(redundancy=_enum(cpb.Redundancy, lp.redundancy, "REDUNDANCY_"), cdus=list(lp.cdu_ids),
                   heat_w=num(lp.heat_w), capacity_w=num(lp.capacity_w),
                   capacity_n1_w=num(lp.capacity_if_one_fails_w), flow_lpm=num(lp.flow_lpm),
                   flow_demand_lpm=num(lp.flow_demand_lpm), supply_c=num(lp.supply_temp_c),
                   return_c=num(lp.return_temp_c), carries=lp.carries, survives_one_more=lp.survives_one_more)
    elif which == "crah":
        c = m.crah
        out.update(air_group=c.air_group_id, up=c.up, heat_w=num(c.heat_removed_w), load=num(c.load_fraction),
                   fan_w=num(c.fan_power_w), supply_c=num(c.supply_air_temp_c), return_c=num(c.return_air_temp_c))
    elif which == "air_group":
        a = m.air_group
        out.update(redundancy=_enum(cpb.Redundancy, a.redundancy, "REDUNDANCY_"), crahs=list(a.crah_ids),
                   heat_w=num(a.heat_w), capacity_w=num(a.capacity_w), capacity_n1_w=num(a.capacity_if_one_fails_w),
                   inlet_rise_k=num(a.inlet_rise_k), carries=a.carries, survives_one_more=a.survives_one_more)
    elif which == "plant":
        p = m.plant
        out.update(heat_w=num(p.heat_load_w), capacity_w=num(p.capacity_w), plant_w=num(p.plant_power_w),
                   cooling_w=num(p.cooling_power_w), it_w=num(p.it_power_w), pue_cooling=_opt(p, "pue_cooling"),
                   supply_c=num(p.facility_supply_temp_c), setpoint_c=num(p.facility_supply_setpoint_c),
                   dry_bulb_c=num(p.dry_bulb_temp_c), wet_bulb_c=num(p.wet_bulb_temp_c))
    return out


def cooling_alert(m: cpb.CoolingAlert) -> dict[str, Any]:
    return {"type": "alert", "src": "cooling", "id": m.alert_id, "t": _t(m.alert_time), "entity": m.entity_id,
            "scope": _enum(cpb.CoolingScope, m.scope, "COOLING_SCOPE_"),
            "kind": _enum(cpb.AlertKind, m.kind, "ALERT_KIND_"), "severity": _enum(cpb.Severity, m.severity, "SEVERITY_"),
            "ttt_s": _opt(m, "time_to_throttle_s"), "gpus": len(m.gpu_ids), "value": num(m.value),
            "threshold": num(m.threshold), "message": m.message, "cleared": bool(m.cleared)}


# -- jobs --------------------------------------------------------------------------------------------


def rack_of_node(node_id: str) -> str:
    """Node ids are `<rack>-nNN` (twin.core.facility.inventory)."""
    rack, sep, _ = node_id.rpartition("-n")
    return rack if sep else node_id


def job_state(m: jpb.JobState) -> dict[str, Any]:
    """A job's row; ``own`` (the reason) only when its communication came from the job twin's own estimate."""
    racks = sorted({rack_of_node(n) for n in m.placement.node_ids})
    row = {"id": m.job_id, "t": _t(m.state_time), "status": _enum(jpb.JobStatus, m.status, "JOB_STATUS_"),
            "gpus": m.placement.n_gpus or m.spec.n_gpus or len(m.placement.gpu_ids), "racks": racks,
            "owner": m.spec.owner, "gpu_model": m.spec.gpu_model,
            "step_s": num(m.measured_step_time_s) or None, "pred_step_s": num(m.predicted_step_time_s),
            "mfu": num(m.mfu), "goodput": num(m.goodput_fraction), "power_w": num(m.power_w),
            "clock": num(m.clock_fraction), "tokens_per_s": num(m.measured_tokens_per_s or m.predicted_tokens_per_s),
            "risks": [{"kind": _enum(jpb.RiskKind, f.kind, "RISK_KIND_"), "entity": f.entity_id,
                       "slowdown": num(f.slowdown_fraction)} for f in m.risk_flags]}
    if m.comm_source == jpb.COMM_SOURCE_OWN_ESTIMATE:
        row["own"] = m.comm_source_detail or "fabric twin unreachable"
    return row


def job_recommendation(m: jpb.JobRecommendation) -> dict[str, Any]:
    return {"type": "recommendation", "src": "jobs", "id": m.recommendation_id, "t": _t(m.recommendation_time),
            "entity": m.entity_id, "job": m.job_id,
            "kind": _enum(jpb.RecommendationKind, m.kind, "RECOMMENDATION_KIND_"),
            "severity": "warning", "deadline_s": num(m.deadline_s), "gain": num(m.expected_gain_fraction),
            "message": m.message}


# -- what each topic's messages become ---------------------------------------------------------------

#: message full name → (section for states / None for events, converter)
CONVERTERS: dict[str, tuple[str | None, Callable[[Any], dict[str, Any]]]] = {
    ppb.PowerState.DESCRIPTOR.full_name: ("power", power_state),
    ppb.PowerAlert.DESCRIPTOR.full_name: (None, power_alert),
    ppb.CurtailmentPlan.DESCRIPTOR.full_name: (None, power_plan),
    cpb.CoolingState.DESCRIPTOR.full_name: ("cooling", cooling_state),
    cpb.CoolingAlert.DESCRIPTOR.full_name: (None, cooling_alert),
    jpb.JobState.DESCRIPTOR.full_name: ("jobs", job_state),
    jpb.JobRecommendation.DESCRIPTOR.full_name: (None, job_recommendation),
}


def converter_for(message_type: type[Message]) -> tuple[str | None, Callable[[Any], dict[str, Any]]]:
    """(section or None for events, converter) for a topic's message type; KeyError if the console has none."""
    return CONVERTERS[message_type.DESCRIPTOR.full_name]
