"""Power alerts from one evaluation of the chain (pure; the live service publishes them).

* ``over_threshold``  a component's output above ``threshold`` x its rating (critical above 1.0)
* ``redundancy_lost`` a component would exceed its rating if its worst partner failed, or a
                      redundant partner is already down (a UPS bus member, a rack's A or B PDU)
* ``ramp_too_fast``   site import's minute average moving faster than the feeds' ramp limits allow
* ``suspect_sensor``  a measured rack power disagreeing with the model beyond a tolerance
* ``unpowered``       a rack or component without a healthy path
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import KINDS, ChainState, PowerNetwork

#: default share of a rating that raises a warning: continuous load at most 80 % of a breaker's or
#: feeder's rating (NEC 210.19(A)(1), 215.2(A)(1): sized at 125 % of the continuous load)
DEFAULT_THRESHOLD = 0.8

#: the period of a ramp limit in MW/min: the import's change from one minute to the next, each minute's value its
#: average (PLEXOS "Ramp": Generation(t) - Generation(t-1) over the simulation's periods, in MW/min; grid codes state
#: load and generation ramp limits per minute, e.g. "+-10 %/min", "+-2 MW/min", beside separate per-second limits
#: where they want one: EPJ Photovoltaics 15 (2024) 5, table 1). A training site's second-scale swings (its
#: synchronous steps) move no minute's average, so they are no ramp; a sustained climb of R W/s moves it by 60 R.
RAMP_WINDOW_S = 60.0


@dataclass(frozen=True)
class Alert:
    entity_id: str
    scope: str                       # "rack", "site" or a KINDS entry
    kind: str
    severity: str                    # "warning" | "critical"
    value: float
    threshold: float
    message: str


def power_alerts(net: PowerNetwork, state: ChainState, *, threshold: float = DEFAULT_THRESHOLD,
                 minute_change_w: float | None = None,
                 rack_measured_w: np.ndarray | None = None, rack_modelled_w: np.ndarray | None = None,
                 sensor_tolerance: float = 0.15) -> list[Alert]:
    alerts: list[Alert] = []
    rating = net.comp_rating_w
    out = state.comp_output_w
    for i in np.flatnonzero(state.comp_alive & (rating > 0) & (out > threshold * rating)):
        crit = out[i] > rating[i]
        alerts.append(Alert(net.comp_ids[i], KINDS[net.comp_kind[i]], "over_threshold", "critical" if crit else "warning",
                            float(out[i]), float(threshold * rating[i]),
                            f"{net.comp_ids[i]} carries {out[i] / 1e3:.1f} kW, {out[i] / rating[i]:.0%} of its "
                            f"{rating[i] / 1e3:.1f} kW rating"))
    lor = state.load_if_partner_fails_w
    for i in np.flatnonzero(state.comp_alive & (rating > 0) & (lor > rating) & (lor > out)):
        alerts.append(Alert(net.comp_ids[i], KINDS[net.comp_kind[i]], "redundancy_lost", "warning", float(lor[i]),
                            float(rating[i]), f"{net.comp_ids[i]} would carry {lor[i] / 1e3:.1f} kW if its redundant "
                            f"partner failed (rating {rating[i] / 1e3:.1f} kW)"))
    # a partner already down: a live child that lost some but not all of its inputs
    dead_parent = ~state.comp_alive[net.edge_parent] & state.comp_alive[net.edge_child]
    for c in np.unique(net.edge_child[dead_parent]):
        alerts.append(Alert(net.comp_ids[c], KINDS[net.comp_kind[c]], "redundancy_lost", "critical", 0.0, 0.0,
                            f"{net.comp_ids[c]} runs without a redundant input "
                            f"({', '.join(net.comp_ids[p] for p in net.edge_parent[dead_parent & (net.edge_child == c)])} down)"))
    dead_pdu = ~state.comp_alive[net.rack_edge_comp] & state.rack_powered[net.rack_edge_rack]
    for r in np.unique(net.rack_edge_rack[dead_pdu]):
        alerts.append(Alert(net.rack_ids[r], "rack", "redundancy_lost", "critical", 0.0, 0.0,
                            f"rack {net.rack_ids[r]} runs on one feed (its other PDU is down)"))
    for r in np.flatnonzero(~state.rack_powered):
        alerts.append(Alert(net.rack_ids[r], "rack", "unpowered", "critical", 0.0, 0.0,
                            f"rack {net.rack_ids[r]} has no healthy power path"))
    for i in np.flatnonzero(~state.comp_alive):
        alerts.append(Alert(net.comp_ids[i], KINDS[net.comp_kind[i]], "unpowered", "critical", 0.0, 0.0,
                            f"{net.comp_ids[i]} is down or has no healthy input"))
    if minute_change_w is not None:
        # the trailing minute's average import minus the minute's before (the caller's), against the feeds' limit
        limit = float(np.sum(net.feed_max_ramp_w_per_s)) if len(net.feed_max_ramp_w_per_s) else np.inf
        allowed = limit * RAMP_WINDOW_S
        if np.isfinite(allowed) and abs(minute_change_w) > allowed:
            alerts.append(Alert(net.site_id, "site", "ramp_too_fast", "warning", float(minute_change_w), allowed,
                                f"site import ramps {minute_change_w / 1e6:+.3f} MW/min (the last minute's average "
                                f"against the minute's before), feeds allow {allowed / 1e6:.3f} MW/min"))
    if rack_measured_w is not None and rack_modelled_w is not None:
        meas = np.asarray(rack_measured_w, dtype=np.float64)
        model = np.asarray(rack_modelled_w, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            rel = np.abs(meas - model) / np.maximum(model, 1.0)
        for r in np.flatnonzero(~np.isnan(meas) & (rel > sensor_tolerance)):
            alerts.append(Alert(net.rack_ids[r], "rack", "suspect_sensor", "warning", float(meas[r]), float(model[r]),
                                f"rack {net.rack_ids[r]} PDU reads {meas[r] / 1e3:.1f} kW, the model expects "
                                f"{model[r] / 1e3:.1f} kW (±{sensor_tolerance:.0%})"))
    return alerts
