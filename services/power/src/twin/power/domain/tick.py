"""One twin tick over the whole site, and the power-cap what-if.

Measured values win where present (GPU board power from DCGM, rack input power from the PDU); the
model fills the rest, and the result says which values are modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gpu import GpuPower, GpuPowerParams, gpu_power
from .network import ChainState, PowerNetwork, evaluate
from .node import RackLayout, RackPower, rack_power


@dataclass(frozen=True)
class SiteTick:
    gpu: GpuPower                    # modelled
    gpu_w: np.ndarray                # used: measured where given, else modelled
    gpu_modelled: np.ndarray         # bool per GPU
    racks: RackPower                 # modelled from gpu_w
    rack_w: np.ndarray               # used: measured PDU reading where given, else modelled
    rack_modelled: np.ndarray        # bool per rack
    chain: ChainState

    def suspect_racks(self, tolerance: float) -> np.ndarray:
        """Racks whose measured power differs from the model by more than ``tolerance`` (fraction)."""
        model = self.racks.rack_input_w
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(self.rack_w - model) / np.maximum(model, 1.0)
        return np.flatnonzero(~self.rack_modelled & (rel > tolerance))


def site_tick(params: GpuPowerParams, layout: RackLayout, net: PowerNetwork, *, tensor_active: np.ndarray,
              sm_active: np.ndarray, dram_active: np.ndarray, power_limit_w: np.ndarray | None = None,
              cpu_util: np.ndarray | float = 1.0, measured_gpu_w: np.ndarray | None = None,
              measured_rack_w: np.ndarray | None = None, cooling_w: float = 0.0,
              failed: np.ndarray | None = None) -> SiteTick:
    g = gpu_power(params, tensor_active=tensor_active, sm_active=sm_active, dram_active=dram_active,
                  power_limit_w=power_limit_w)
    if measured_gpu_w is None:
        gpu_w, gpu_mod = g.power_w, np.ones(len(g.power_w), dtype=bool)
    else:
        m = np.asarray(measured_gpu_w, dtype=np.float64)
        gpu_mod = np.isnan(m)
        gpu_w = np.where(gpu_mod, g.power_w, m)
    racks = rack_power(layout, gpu_w, cpu_util)
    if measured_rack_w is None:
        rack_w, rack_mod = racks.rack_input_w, np.ones(layout.n_racks, dtype=bool)
    else:
        m = np.asarray(measured_rack_w, dtype=np.float64)
        rack_mod = np.isnan(m)
        rack_w = np.where(rack_mod, racks.rack_input_w, m)
    chain = evaluate(net, rack_w, failed=failed, site_extra_w=cooling_w)
    return SiteTick(gpu=g, gpu_w=gpu_w, gpu_modelled=gpu_mod, racks=racks, rack_w=rack_w, rack_modelled=rack_mod,
                    chain=chain)


def site_power_function(layout: RackLayout, net: PowerNetwork, *, cpu_util: np.ndarray | float = 1.0,
                        cooling_w: float = 0.0, rack_bias_w: np.ndarray | None = None):
    """(GPU watts, optional mask of idle nodes) -> site import watts (for the planner and what-ifs).
    Idle nodes (their jobs paused) run their CPUs at idle. ``rack_bias_w`` (per rack, added to the
    modelled rack input, floored at 0) calibrates the model to measured rack power: measured minus
    modelled now, assumed to persist under caps and pauses."""
    bias = None if rack_bias_w is None else np.nan_to_num(np.asarray(rack_bias_w, dtype=np.float64))

    def site_w(gpu_w: np.ndarray, idle_nodes: np.ndarray | None = None) -> float:
        util = cpu_util if idle_nodes is None else np.where(idle_nodes, 0.0, cpu_util)
        rack_w = rack_power(layout, gpu_w, util).rack_input_w
        if bias is not None:
            rack_w = np.maximum(rack_w + bias, 0.0)
        return evaluate(net, rack_w, site_extra_w=cooling_w).site_w
    return site_w


@dataclass(frozen=True)
class PowerCapImpact:
    gpus: np.ndarray                 # GPU indices capped
    cap_w: float
    gpu_saved_w: float               # board power saved
    site_saved_w: float              # at the grid, through every conversion stage
    clock_before_mhz: np.ndarray
    clock_after_mhz: np.ndarray
    throughput_cost: float           # mean share of the capped GPUs' throughput lost


def what_if_power_cap(params: GpuPowerParams, layout: RackLayout, net: PowerNetwork, gpus: np.ndarray, cap_w: float, *,
                      tensor_active: np.ndarray, sm_active: np.ndarray, dram_active: np.ndarray,
                      power_limit_w: np.ndarray | None = None, cpu_util: np.ndarray | float = 1.0) -> PowerCapImpact:
    """Cap the given GPUs at ``cap_w`` (raised to each GPU's minimum cap): power saved, clock and
    throughput cost."""
    n = len(layout.gpu_node)
    gpus = np.unique(np.asarray(gpus, dtype=np.int64))
    if gpus.size and (gpus[0] < 0 or gpus[-1] >= n):
        raise ValueError(f"GPU index out of range 0..{n - 1}")
    if not np.isfinite(cap_w) or cap_w <= 0:
        raise ValueError("cap_w must be a positive number")
    limit = params.default_limit_w if power_limit_w is None else np.asarray(power_limit_w, dtype=np.float64)
    limit = np.broadcast_to(limit, (n,)).astype(np.float64)
    new_limit = limit.copy()
    new_limit[gpus] = np.minimum(limit[gpus], np.maximum(cap_w, params.min_cap_w[gpus]))
    kw = {"tensor_active": tensor_active, "sm_active": sm_active, "dram_active": dram_active}
    before = gpu_power(params, power_limit_w=limit, **kw)
    after = gpu_power(params, power_limit_w=new_limit, **kw)
    site = site_power_function(layout, net, cpu_util=cpu_util)
    with np.errstate(divide="ignore", invalid="ignore"):
        lost = 1.0 - after.throughput_fraction[gpus] / np.maximum(before.throughput_fraction[gpus], 1e-12)
    return PowerCapImpact(gpus=gpus, cap_w=float(cap_w), gpu_saved_w=float((before.power_w - after.power_w).sum()),
                          site_saved_w=site(before.power_w) - site(after.power_w),
                          clock_before_mhz=before.sm_clock_mhz[gpus], clock_after_mhz=after.sm_clock_mhz[gpus],
                          throughput_cost=float(lost.mean()) if gpus.size else 0.0)
