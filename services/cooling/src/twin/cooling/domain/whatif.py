"""Time-to-throttle per GPU and rack under the present or a what-if condition.

A what-if edits the ``Conditions`` (a CDU or CRAH down, a pump slowed, a rack valve closing, the
facility supply or supply air raised, a hotter day), the network is evaluated before and after, and
each GPU's coolant (liquid racks: the mean of its rack's secondary supply and return; air racks: the
inlet) moves from its present value to the new steady value at the pace of its loop or room. When a
liquid rack loses all flow there is no new steady state: its coolant heats as a ramp (the rack's
liquid heat into the coolant it holds); when an air group loses all its CRAHs, the inlet ramps at
the room's heat capacity; when the plant loses every unit, both happen to every rack. The GPU thermal model (thermal.py) answers in closed form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .network import Conditions, CoolingNetwork, CoolingState, evaluate
from .thermal import CoolantPath, GpuThermal, ThermalState, time_to_throttle

#: Secondary loops respond in minutes, silicon in seconds (DESIGN §8): loop time constant 60 s
#: (assumption, stated: a CDU loop's coolant volume over its flow plus its control response).
LOOP_TAU_S = 60.0
#: A room's air responds in minutes too: 120 s (assumption, stated).
ROOM_TAU_S = 120.0
#: Heat capacity per rack of the air space and what warms with it when every CRAH is lost: 1 MJ/K
#: (assumption, stated: a 40 kW rack then warms its inlet ~2.4 K/min, within the 1-5 K/min reported
#: for data halls after a total cooling loss).
ROOM_J_PER_K_PER_RACK = 1.0e6
#: Default forecast horizon: one hour.
HORIZON_S = 3600.0


@dataclass(frozen=True)
class GpuLayout:
    """Per-GPU facts from the spec (arrays of one length)."""

    gpu_rack: np.ndarray  # rack index
    gpu_liquid: np.ndarray  # bool: cold plate on the rack's secondary loop
    slowdown_c: np.ndarray  # the GPU model's slowdown temperature
    hbm_max_c: np.ndarray
    hbm_peak_TBps: np.ndarray


@dataclass(frozen=True)
class ThrottleForecast:
    before: CoolingState
    after: CoolingState
    gpu_time_s: np.ndarray  # +inf: not within the horizon
    gpu_which: np.ndarray  # thermal.THROTTLE_*
    rack_time_s: np.ndarray  # earliest GPU of the rack
    rack_gpus_affected: np.ndarray  # GPUs of the rack throttling within the horizon
    horizon_s: float
    gpu_rack: np.ndarray  # rack index per GPU

    def gpus_of_rack(self, rack: int) -> np.ndarray:
        """GPUs of a rack throttling within the horizon (ascending ids)."""
        order, start = self._affected_by_rack
        return order[start[rack] : start[rack + 1]]

    @cached_property
    def _affected_by_rack(self) -> tuple[np.ndarray, np.ndarray]:
        """The affected GPUs sorted by rack (stable: ids ascend within a rack) and each rack's start in it: one
        sort for every rack asked, instead of a scan of every GPU per rack."""
        aff = np.flatnonzero(np.isfinite(self.gpu_time_s))
        order = aff[np.argsort(self.gpu_rack[aff], kind="stable")]
        n = len(self.rack_time_s)
        start = np.concatenate([[0], np.cumsum(np.bincount(self.gpu_rack[aff], minlength=n))])
        return order, start

    @property
    def gpus_affected(self) -> np.ndarray:
        return np.flatnonzero(np.isfinite(self.gpu_time_s))

    @property
    def racks_affected(self) -> np.ndarray:
        return np.flatnonzero(self.rack_gpus_affected > 0)


def what_if(
    net: CoolingNetwork,
    cond: Conditions,
    *,
    cdus_down: Iterable[str] = (),
    crahs_down: Iterable[str] = (),
    plant_down: Iterable[str] = (),
    cdu_flow_factor: Mapping[str, float] | None = None,
    rack_flow_factor: Mapping[str, float] | None = None,
    facility_supply_rise_k: float = 0.0,
    supply_air_rise_k: float = 0.0,
    dry_bulb_c: float | None = None,
    wet_bulb_c: float | None = None,
) -> Conditions:
    """The conditions after a change; unknown ids raise KeyError naming the id."""

    def index(ids: tuple[str, ...], wanted: Iterable[str], what: str) -> list[int]:
        pos = {x: i for i, x in enumerate(ids)}
        out = []
        for w in wanted:
            if w not in pos:
                raise KeyError(f"unknown {what} {w!r}")
            out.append(pos[w])
        return out

    cdu_up, crah_up, plant_up = cond.cdu_up.copy(), cond.crah_up.copy(), cond.plant_up.copy()
    cdu_up[index(net.cdu_ids, cdus_down, "CDU")] = False
    crah_up[index(net.crah_ids, crahs_down, "CRAH")] = False
    plant_up[index(net.plant_ids, plant_down, "plant unit")] = False
    cff, rff = cond.cdu_flow_factor.copy(), cond.rack_flow_factor.copy()
    for cid, f in (cdu_flow_factor or {}).items():
        cff[index(net.cdu_ids, [cid], "CDU")] = min(max(f, 0.0), 1.0)
    for rid, f in (rack_flow_factor or {}).items():
        rff[index(net.rack_ids, [rid], "rack")] = min(max(f, 0.0), 1.0)
    return cond.with_(
        cdu_up=cdu_up,
        crah_up=crah_up,
        plant_up=plant_up,
        cdu_flow_factor=cff,
        rack_flow_factor=rff,
        facility_supply_c=cond.facility_supply_c + facility_supply_rise_k,
        crah_supply_c=cond.crah_supply_c + supply_air_rise_k,
        dry_bulb_c=cond.dry_bulb_c if dry_bulb_c is None else dry_bulb_c,
        wet_bulb_c=cond.wet_bulb_c if wet_bulb_c is None else wet_bulb_c,
    )


def coolant_paths(
    net: CoolingNetwork, gpus: GpuLayout, before: CoolingState, after: CoolingState
) -> CoolantPath:
    """Each GPU's coolant (or inlet) path from the state before to the state after a change."""
    r = gpus.gpu_rack
    now = before.rack_coolant_c[r]
    final = after.rack_coolant_c[r]
    liquid = gpus.gpu_liquid
    # liquid racks that lost every litre of flow: the coolant they hold takes the rack's liquid heat (the
    # coolant's properties per rack, then indexed: they vary per rack, not per GPU)
    # a plant with no healthy unit left rejects nothing (facility supply +inf, no steady state): every liquid
    # rack's coolant takes its liquid heat as if it had no flow (only the rack's own coolant is counted, the
    # loops' water is not in the spec: a bound, the earliest time) and the air racks' rooms heat as with no CRAH
    plant_lost = not np.isfinite(after.facility_supply_c) and after.plant_load_w > 0
    no_flow = liquid & ((after.rack_flow_lpm[r] <= 0) | plant_lost) & (after.rack_liquid_w[r] > 0)
    rack_now = np.nan_to_num(before.rack_coolant_c)
    cap = (
        net.rack_coolant_l
        / 1000.0
        * net.secondary_coolant.density(rack_now)
        * net.secondary_coolant.cp(rack_now)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ramp_liquid = np.where(cap > 0, after.rack_liquid_w / np.where(cap > 0, cap, 1.0), np.inf)[r]
    # air groups left with no healthy CRAH: the room heats
    ag = net.rack_air_group[r]
    lost_air = (
        ~liquid
        & (ag >= 0)
        & ((np.append(after.air_capacity_w, 1.0)[ag] <= 0) | plant_lost)
        & (after.rack_air_w[r] > 0)
    )
    ramp_air = after.rack_air_w[r] / ROOM_J_PER_K_PER_RACK
    ramp = np.where(no_flow, ramp_liquid, np.where(lost_air, ramp_air, 0.0))
    final = np.where(no_flow | lost_air, now, final)
    tau = np.where(liquid, LOOP_TAU_S, ROOM_TAU_S)
    return CoolantPath(now_c=now, final_c=final, tau_s=tau, ramp_k_per_s=np.nan_to_num(ramp, posinf=1e3))


def forecast(
    net: CoolingNetwork,
    gpus: GpuLayout,
    params: GpuThermal,
    state: ThermalState,
    core_w: np.ndarray,
    hbm_w: np.ndarray,
    rack_it_w: np.ndarray,
    cond_now: Conditions,
    cond_after: Conditions | None = None,
    horizon_s: float = HORIZON_S,
) -> ThrottleForecast:
    """Time-to-throttle of every GPU with its power held: under the present conditions (cond_after
    None) or after a what-if change. ``state`` is each GPU's thermal state now, referenced to its
    present coolant (``steady_state`` of the present power and coolant when no telemetry is at hand)."""
    before = evaluate(net, rack_it_w, cond_now)
    after = before if cond_after is None else evaluate(net, rack_it_w, cond_after)
    path = coolant_paths(net, gpus, before, after)
    t, which = time_to_throttle(
        params, state, core_w, hbm_w, path, gpus.slowdown_c, gpus.hbm_max_c, horizon_s
    )
    n_racks = net.n_racks
    rack_t = np.full(n_racks, np.inf)
    np.minimum.at(rack_t, gpus.gpu_rack, t)
    affected = np.bincount(gpus.gpu_rack, weights=np.isfinite(t), minlength=n_racks).astype(np.int64)
    return ThrottleForecast(
        before=before,
        after=after,
        gpu_time_s=t,
        gpu_which=which,
        rack_time_s=rack_t,
        rack_gpus_affected=affected,
        horizon_s=horizon_s,
        gpu_rack=gpus.gpu_rack,
    )
