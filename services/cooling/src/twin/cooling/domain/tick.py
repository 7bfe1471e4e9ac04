"""One cooling tick for the whole site (pure): heat and loops from the racks' IT power, every GPU's
temperature from its thermal model driven by its power and its coolant, time-to-throttle under the
present conditions, and the alerts. The live service calls this per tick and runs the calibration
(``thermal.calibrate_step``) at its own pace, passing the calibrated parameters in.

GPU power: the measured board power where telemetry has it; else the rack's IT power spread over its
GPUs at ``GPU_SHARE_OF_IT`` (the modelled GPUs are reported as such)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .alerts import CoolingAlert, cooling_alerts
from .network import Conditions, CoolingNetwork, CoolingState, evaluate
from .thermal import CoolantPath, GpuThermal, ThermalState, split_power, step, temperatures, time_to_throttle
from .whatif import HORIZON_S, GpuLayout, ThrottleForecast, coolant_paths

#: GPU board power as a share of a rack's IT power when a GPU reports none: DGX H100 8 x 700 W of its
#: 10.2 kW rating = 0.55; an NVL72 rack 72 x 1,200 W of ~120 kW = 0.72 (DESIGN §8 figures); 0.65
#: between them (assumption, stated; telemetry replaces it).
GPU_SHARE_OF_IT = 0.65


@dataclass(frozen=True)
class CoolingTick:
    state: CoolingState
    forecast: ThrottleForecast
    thermal: ThermalState  # advanced to this tick (pass it to the next one)
    gpu_temp_c: np.ndarray  # modelled die temperature
    hbm_temp_c: np.ndarray
    gpu_power_measured: np.ndarray  # bool: board power came from telemetry
    rack_max_gpu_c: np.ndarray
    rack_max_hbm_c: np.ndarray
    alerts: tuple[CoolingAlert, ...]


def gpu_power(
    gpus: GpuLayout, rack_it_w: np.ndarray, board_w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(board W per GPU, measured mask): telemetry where present, else the rack's share."""
    n = len(gpus.gpu_rack)
    per_rack = np.bincount(gpus.gpu_rack, minlength=len(rack_it_w)).astype(float)
    fill = (
        GPU_SHARE_OF_IT * np.nan_to_num(rack_it_w)[gpus.gpu_rack] / np.maximum(per_rack[gpus.gpu_rack], 1.0)
    )
    if board_w is None:
        return fill, np.zeros(n, bool)
    b = np.asarray(board_w, float)
    ok = np.isfinite(b) & (b >= 0)
    return np.where(ok, b, fill), ok


def cooling_tick(
    net: CoolingNetwork,
    gpus: GpuLayout,
    params: GpuThermal,
    thermal: ThermalState | None,
    cond: Conditions,
    rack_it_w: np.ndarray,
    dt_s: float,
    board_w: np.ndarray | None = None,
    mem_activity: np.ndarray | None = None,
    horizon_s: float = HORIZON_S,
) -> CoolingTick:
    """``thermal`` None: start every GPU at equilibrium with this tick's power and coolant."""
    st = evaluate(net, rack_it_w, cond)
    board, measured = gpu_power(gpus, st.rack_it_w, board_w)
    act = np.zeros(len(board)) if mem_activity is None else mem_activity
    core, hbm = split_power(board, act, gpus.hbm_peak_TBps)
    coolant = st.rack_coolant_c[gpus.gpu_rack]
    # no flow: the coolant's steady value is undefined; hold the GPU's last coolant (the forecast ramps)
    if thermal is None:
        th = ThermalState(
            z_slow=core + hbm,
            z_fast=core.copy(),
            z_hbm=hbm.copy(),
            coolant_c=np.where(np.isfinite(coolant), coolant, cond.facility_supply_c),
        )
    else:
        th = step(params, thermal, dt_s, core, hbm, np.where(np.isfinite(coolant), coolant, np.nan))
    gpu_t, hbm_t = temperatures(params, th)
    # present conditions: coolant held, except racks without flow, whose coolant ramps
    p0 = coolant_paths(net, gpus, st, st)
    now = np.where(np.isfinite(p0.now_c), p0.now_c, th.coolant_c)
    path = CoolantPath(
        now_c=now,
        final_c=np.where(np.isfinite(p0.final_c), p0.final_c, now),
        tau_s=p0.tau_s,
        ramp_k_per_s=p0.ramp_k_per_s,
    )
    t, which = time_to_throttle(params, th, core, hbm, path, gpus.slowdown_c, gpus.hbm_max_c, horizon_s)
    n_racks = net.n_racks
    rack_t = np.full(n_racks, np.inf)
    np.minimum.at(rack_t, gpus.gpu_rack, t)
    affected = np.bincount(gpus.gpu_rack, weights=np.isfinite(t), minlength=n_racks).astype(np.int64)
    fc = ThrottleForecast(
        before=st,
        after=st,
        gpu_time_s=t,
        gpu_which=which,
        rack_time_s=rack_t,
        rack_gpus_affected=affected,
        horizon_s=horizon_s,
        gpu_rack=gpus.gpu_rack,
    )
    rack_gpu = np.full(n_racks, -np.inf)
    rack_hbm = np.full(n_racks, -np.inf)
    np.maximum.at(rack_gpu, gpus.gpu_rack, gpu_t)
    np.maximum.at(rack_hbm, gpus.gpu_rack, hbm_t)
    return CoolingTick(
        state=st,
        forecast=fc,
        thermal=th,
        gpu_temp_c=gpu_t,
        hbm_temp_c=hbm_t,
        gpu_power_measured=measured,
        rack_max_gpu_c=rack_gpu,
        rack_max_hbm_c=rack_hbm,
        alerts=tuple(cooling_alerts(net, st, gpus, fc)),
    )
