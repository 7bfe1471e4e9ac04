"""Cooling alerts from a state and a forecast (pure): predicted throttling per rack with the GPUs
affected, loops and air groups beyond what their healthy members give, N+1 groups that would not
survive one more failure, racks beyond their air limit, and suspect sensors (heat removed reported
by a CDU against ṁ·c_p·ΔT from its own flow and temperatures)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .coolant import Coolant, heat_w
from .network import CoolingNetwork, CoolingState
from .whatif import GpuLayout, ThrottleForecast

THROTTLE_PREDICTED, CAPACITY_EXCEEDED, REDUNDANCY_AT_RISK, AIR_LIMIT, SUSPECT_SENSOR = (
    "throttle_predicted",
    "capacity_exceeded",
    "redundancy_at_risk",
    "air_limit",
    "suspect_sensor",
)
INFO, WARNING, CRITICAL = "info", "warning", "critical"
#: Time-to-throttle below which an alert is critical: 5 min (assumption: the time an operator needs to
#: act on a cooling fault, "minutes, not hours", issue 10); warning within the forecast horizon.
CRITICAL_TTT_S = 300.0
#: Suspect sensor: reported heat vs ṁ c_p ΔT beyond 10 % + 2 kW (assumption, stated: flow meters
#: ±2-5 %, RTD pairs ±0.3 K on a 5-10 K ΔT -> ~3-6 %; doubled for installation effects).
SENSOR_REL_TOL, SENSOR_ABS_TOL_W = 0.10, 2000.0


@dataclass(frozen=True)
class CoolingAlert:
    kind: str
    severity: str
    entity_id: str
    message: str
    time_to_throttle_s: float = float("inf")
    gpus: tuple[int, ...] = ()
    value: float = float("nan")


def suspect_heat_sensors(
    coolant: Coolant,
    reported_heat_w: np.ndarray,
    flow_lpm: np.ndarray,
    supply_c: np.ndarray,
    return_c: np.ndarray,
    rel_tol: float = SENSOR_REL_TOL,
    abs_tol_w: float = SENSOR_ABS_TOL_W,
) -> tuple[np.ndarray, np.ndarray]:
    """(suspect mask, ṁ c_p ΔT in W) per reading; NaN readings are never suspect (missing, not wrong)."""
    q = heat_w(coolant, flow_lpm, supply_c, return_c)
    rep = np.asarray(reported_heat_w, float)
    ok = np.isfinite(q) & np.isfinite(rep)
    bad = ok & (np.abs(rep - q) > rel_tol * np.maximum(np.abs(q), np.abs(rep)) + abs_tol_w)
    return bad, q


def cooling_alerts(
    net: CoolingNetwork,
    state: CoolingState,
    gpus: GpuLayout | None = None,
    fc: ThrottleForecast | None = None,
) -> list[CoolingAlert]:
    """Alerts for one state; with a forecast, one throttle alert per rack with GPUs throttling within
    its horizon (``gpus`` is accepted for callers that pass the layout; the forecast carries it)."""
    out: list[CoolingAlert] = []
    if fc is not None:
        for r in np.flatnonzero(fc.rack_gpus_affected > 0):
            ids = fc.gpus_of_rack(int(r))
            t = float(fc.rack_time_s[r])
            out.append(
                CoolingAlert(
                    THROTTLE_PREDICTED,
                    CRITICAL if t <= CRITICAL_TTT_S else WARNING,
                    net.rack_ids[r],
                    f"{len(ids)} GPUs reach their slowdown temperature in {t:.0f} s",
                    time_to_throttle_s=t,
                    gpus=tuple(int(i) for i in ids),
                    value=t,
                )
            )
    for i, gid in enumerate(net.loop_ids):
        if not state.loop_carries[i]:
            out.append(
                CoolingAlert(
                    CAPACITY_EXCEEDED,
                    CRITICAL,
                    gid,
                    f"loop needs {state.loop_heat_w[i] / 1e3:.0f} kW and {state.loop_flow_demand_lpm[i]:.0f} "
                    f"L/min; healthy CDUs give {state.loop_capacity_w[i] / 1e3:.0f} kW",
                    value=float(state.loop_heat_w[i]),
                )
            )
        elif net.loop_n_plus_1[i] and not state.loop_survives_one_more[i]:
            out.append(
                CoolingAlert(
                    REDUNDANCY_AT_RISK,
                    WARNING,
                    gid,
                    f"N+1 loop would not carry {state.loop_heat_w[i] / 1e3:.0f} kW if its largest healthy "
                    f"CDU failed ({state.loop_capacity_if_one_fails_w[i] / 1e3:.0f} kW left)",
                    value=float(state.loop_heat_w[i]),
                )
            )
    for i, gid in enumerate(net.air_group_ids):
        if not state.air_carries[i]:
            out.append(
                CoolingAlert(
                    CAPACITY_EXCEEDED,
                    CRITICAL,
                    gid,
                    f"air group needs {state.air_heat_w[i] / 1e3:.0f} kW; healthy CRAHs give "
                    f"{state.air_capacity_w[i] / 1e3:.0f} kW (inlet +{state.air_inlet_rise_k[i]:.1f} K)",
                    value=float(state.air_heat_w[i]),
                )
            )
        elif net.air_group_n_plus_1[i] and not state.air_survives_one_more[i]:
            out.append(
                CoolingAlert(
                    REDUNDANCY_AT_RISK,
                    WARNING,
                    gid,
                    f"N+1 air group would not carry {state.air_heat_w[i] / 1e3:.0f} kW if its largest "
                    f"healthy CRAH failed",
                    value=float(state.air_heat_w[i]),
                )
            )
    for r in np.flatnonzero(state.rack_air_over_limit):
        out.append(
            CoolingAlert(
                AIR_LIMIT,
                WARNING,
                net.rack_ids[r],
                f"{state.rack_air_w[r] / 1e3:.1f} kW to air, above the rack's "
                f"{net.rack_air_limit_w[r] / 1e3:.1f} kW air limit",
                value=float(state.rack_air_w[r]),
            )
        )
    return out


def sensor_alerts(
    net: CoolingNetwork,
    reported_heat_w: np.ndarray,
    flow_lpm: np.ndarray,
    supply_c: np.ndarray,
    return_c: np.ndarray,
    model_heat_w: np.ndarray | None = None,
) -> list[CoolingAlert]:
    """Per CDU reading (arrays in ``net.cdu_ids`` order): suspect when the reported heat contradicts
    ṁ c_p ΔT from the same CDU's flow and temperatures, or (``model_heat_w``, e.g. the state's
    ``cdu_heat_w`` from IT power) the model, beyond the same tolerance."""
    bad, q = suspect_heat_sensors(net.secondary_coolant, reported_heat_w, flow_lpm, supply_c, return_c)
    rep = np.asarray(reported_heat_w, float)
    out = [
        CoolingAlert(
            SUSPECT_SENSOR,
            WARNING,
            net.cdu_ids[i],
            f"reports {rep[i] / 1e3:.1f} kW removed; its flow and temperatures give {q[i] / 1e3:.1f} kW",
            value=float(rep[i]),
        )
        for i in np.flatnonzero(bad)
    ]
    if model_heat_w is not None:
        m = np.asarray(model_heat_w, float)
        ok = np.isfinite(m) & np.isfinite(rep) & ~bad
        off = ok & (np.abs(rep - m) > SENSOR_REL_TOL * np.maximum(np.abs(m), np.abs(rep)) + SENSOR_ABS_TOL_W)
        out += [
            CoolingAlert(
                SUSPECT_SENSOR,
                WARNING,
                net.cdu_ids[i],
                f"reports {rep[i] / 1e3:.1f} kW removed; the IT power of its racks gives {m[i] / 1e3:.1f} kW",
                value=float(rep[i]),
            )
            for i in np.flatnonzero(off)
        ]
    return out
