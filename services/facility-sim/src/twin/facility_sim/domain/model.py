"""One simulation step over the whole site: state in, (new state, tick arrays) out.

Deterministic: tick k draws its randomness from `np.random.default_rng([seed, k])`, so the content
of every tick depends only on the seed, the site, the workload and the previous state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from twin.facility_sim.domain import gpu, rack
from twin.facility_sim.domain.faults import Faults
from twin.facility_sim.domain.site import SiteArrays
from twin.facility_sim.domain.workload import (
    PH_DENSE,
    PHASE_ACTIVITY,
    NodeWorkloads,
    WorkloadMix,
    assign_workloads,
    gpu_activity,
    node_phases,
)

P_ECC_SBE_PER_TICK = 2e-6        # per GPU
P_ECC_DBE_PER_TICK = 1e-9        # per GPU; a DBE also sets XID 48
XID_DBE = 48
P_LINK_ERROR_PER_TICK = 1e-5     # per NIC and direction
NIC_BACKGROUND_SHARE = 1e-5      # management traffic when nothing runs
LIQUID_COOLED_THRESHOLD = 0.5    # racks with ≥ this liquid fraction cool GPUs from the coolant


@dataclass(frozen=True, eq=False)
class SimState:
    tick: int                    # ticks done so far (the next tick's index)
    gpu_temp_c: np.ndarray
    mem_temp_c: np.ndarray
    ecc_sbe_total: np.ndarray    # uint64
    ecc_dbe_total: np.ndarray    # uint64
    xid_last: np.ndarray         # uint64
    tx_bytes: np.ndarray         # uint64 per NIC
    rx_bytes: np.ndarray
    tx_errors: np.ndarray
    rx_errors: np.ndarray


@dataclass(frozen=True, eq=False)
class Tick:
    """Everything one tick reports. Per-GPU arrays have length n_gpus, per-rack n_racks, per-NIC n_nics."""

    index: int
    t_s: float
    phase: np.ndarray            # per node
    power_w: np.ndarray
    gpu_temp_c: np.ndarray
    mem_temp_c: np.ndarray
    sm_clock_mhz: np.ndarray
    mem_clock_mhz: np.ndarray
    util_gpu_pct: np.ndarray
    util_mem_pct: np.ndarray
    sm_active: np.ndarray
    tensor_active: np.ndarray
    dram_active: np.ndarray
    xid_errors: np.ndarray
    ecc_sbe_total: np.ndarray
    ecc_dbe_total: np.ndarray
    node_it_w: np.ndarray        # node DC power (GPUs + platform)
    node_input_w: np.ndarray     # node AC input (after PSU losses)
    pdu_phase_w: np.ndarray      # (n_racks, 3)
    rack_it_w: np.ndarray
    rack_input_w: np.ndarray
    inlet_air_c: np.ndarray
    outlet_air_c: np.ndarray
    coolant_supply_c: np.ndarray
    coolant_return_c: np.ndarray
    coolant_flow_lpm: np.ndarray
    tx_bytes: np.ndarray
    rx_bytes: np.ndarray
    tx_errors: np.ndarray
    rx_errors: np.ndarray


class FacilityModel:
    """The site, its workload and constants; `step` is a pure function of (state, tick time)."""

    def __init__(self, site: SiteArrays, seed: int = 0, mix: WorkloadMix | None = None) -> None:
        self.site = site
        self.seed = seed
        self.mix = mix or WorkloadMix()
        setup = np.random.default_rng([seed, 0xFAC])
        self.workloads: NodeWorkloads = assign_workloads(site.n_nodes, self.mix, setup)
        liquid = site.rack_liquid_fraction >= LIQUID_COOLED_THRESHOLD
        # Cold-aisle inlet varies a little by rack position (recirculation): +0..2 K, fixed per rack.
        self.rack_inlet_c = site.rack_air_supply_c + setup.uniform(0.0, 2.0, site.n_racks)
        rack_ref = np.where(liquid, site.rack_coolant_supply_c, self.rack_inlet_c)
        gpu_rack = site.node_rack[site.gpu_node]
        # GPUs further back in the chassis run a little warmer: +0..3 K, fixed per GPU.
        self.gpu_ref_c = rack_ref[gpu_rack] + setup.uniform(0.0, 3.0, site.n_gpus)
        self.gpu_r = np.where(liquid[gpu_rack], gpu.LIQUID_RISE_AT_TDP_K / site.gpu_max_w, gpu.R_GPU_AIR_K_PER_W)
        self.gpu_efficiency = 1.0 + 0.02 * setup.standard_normal(site.n_gpus)   # silicon lottery ±2 %
        self.rack_rated_w = np.bincount(site.node_rack, weights=site.node_max_w, minlength=site.n_racks)
        self.faults = Faults()
        self._fault_cap_w: np.ndarray | None = None

    def set_faults(self, faults: Faults) -> None:
        """Play these requested faults from their start times (``domain.faults``). A power-limited straggler's
        GPUs get the power at which a dense phase runs at the clock its slowdown implies (the same P(f) as
        every GPU, so the lowered clock comes out of ``capped_clock_and_power``)."""
        self.faults = faults
        self._fault_cap_w = None
        ratio = faults.straggler_clock_ratio(self.workloads)
        if ratio is not None and faults.straggler is not None:
            s = self.site
            g = np.flatnonzero(s.gpu_node == faults.straggler.node)
            dense = PHASE_ACTIVITY[PH_DENSE]
            d = gpu.dynamic_activity(dense[0], dense[1], dense[2]) * self.gpu_efficiency[g]
            cap = s.gpu_cap_w.copy()
            cap[g] = np.minimum(cap[g], gpu.power_w(s.gpu_idle_w[g], s.gpu_max_w[g], d, np.full(len(g), ratio)))
            self._fault_cap_w = cap

    def initial_state(self) -> SimState:
        s = self.site
        die, hbm = gpu.steady_temps_c(self.gpu_ref_c, self.gpu_r, s.gpu_idle_w)
        z_gpu = np.zeros(s.n_gpus, dtype=np.uint64)
        z_nic = np.zeros(s.n_nics, dtype=np.uint64)
        return SimState(0, die, hbm, z_gpu, z_gpu.copy(), z_gpu.copy(), z_nic, z_nic.copy(), z_nic.copy(), z_nic.copy())

    def step(self, state: SimState, t_s: float, dt_s: float) -> tuple[SimState, Tick]:
        """Advance by `dt_s` to simulation time `t_s` (seconds since start) and report that instant."""
        s = self.site
        rng = np.random.default_rng([self.seed, state.tick + 1])
        faults = self.faults
        phase = node_phases(self.workloads, t_s)
        if faults:
            phase = faults.phases(self.workloads, phase, t_s)
        act = gpu_activity(phase, s.gpu_node, self.mix.activity_jitter, rng)
        fallen = faults.fallen_gpu(t_s)
        if fallen is not None:  # off the bus: no kernels run on it
            for arr in (act.tensor_active, act.sm_active, act.dram_active, act.util_gpu_pct):
                arr[fallen] = 0.0
            act.busy[fallen] = False
        activity = gpu.dynamic_activity(act.tensor_active, act.sm_active, act.dram_active) * self.gpu_efficiency
        straggling = self._fault_cap_w is not None and faults.straggler is not None and t_s >= faults.straggler.start_s
        cap_w = self._fault_cap_w if straggling else s.gpu_cap_w
        clock, power = gpu.capped_clock_and_power(
            s.gpu_idle_w, s.gpu_max_w, cap_w, s.gpu_max_sm_clock_mhz, activity, act.busy)
        die_ss, hbm_ss = gpu.steady_temps_c(self.gpu_ref_c, self.gpu_r, power)
        gpu_temp = gpu.rc_step(state.gpu_temp_c, die_ss, dt_s, gpu.TAU_GPU_S)
        mem_temp = gpu.rc_step(state.mem_temp_c, hbm_ss, dt_s, gpu.TAU_HBM_S)

        # Rare errors: single-bit ECC (corrected), double-bit ECC (+ XID 48).
        sbe = state.ecc_sbe_total + (rng.random(s.n_gpus) < P_ECC_SBE_PER_TICK).astype(np.uint64)
        dbe_new = rng.random(s.n_gpus) < P_ECC_DBE_PER_TICK
        dbe = state.ecc_dbe_total + dbe_new.astype(np.uint64)
        xid = np.where(dbe_new, np.uint64(XID_DBE), state.xid_last)
        if faults.sick is not None:
            sbe, dbe, xid = faults.gpu_errors(t_s, dt_s, sbe, dbe, xid)

        # Power chain.
        gpu_load = np.clip((power - s.gpu_idle_w) / (s.gpu_max_w - s.gpu_idle_w), 0.0, 1.0)
        node_it, node_in = rack.node_power(power, gpu_load, s.gpu_node, s.n_nodes, s.node_platform_w, s.node_max_w)
        rack_it = np.bincount(s.node_rack, weights=node_it, minlength=s.n_racks)
        rack_in = np.bincount(s.node_rack, weights=node_in, minlength=s.n_racks)
        phases_w = rack.pdu_phase_power(rack_in, s.rack_phases)

        # Heat removal.
        sup, ret = rack.coolant_temps(rack_in, s.rack_liquid_fraction, s.rack_coolant_flow_lpm, s.rack_coolant_supply_c)
        outlet = rack.air_temps(rack_in, s.rack_liquid_fraction, self.rack_rated_w, self.rack_inlet_c)
        flow = np.where(s.rack_liquid_fraction > 0, s.rack_coolant_flow_lpm, 0.0)

        # Scale-out links: cumulative byte counters grow with the node's communication activity.
        share = np.maximum(act.node_comm[s.nic_node], NIC_BACKGROUND_SHARE)
        tx_inc = s.nic_bytes_per_s * share * dt_s * rng.uniform(0.95, 1.05, s.n_nics)
        rx_inc = tx_inc * rng.uniform(0.97, 1.03, s.n_nics)
        tx = state.tx_bytes + tx_inc.astype(np.uint64)
        rx = state.rx_bytes + rx_inc.astype(np.uint64)
        tx_err = state.tx_errors + (rng.random(s.n_nics) < P_LINK_ERROR_PER_TICK).astype(np.uint64)
        rx_err = state.rx_errors + (rng.random(s.n_nics) < P_LINK_ERROR_PER_TICK).astype(np.uint64)

        new_state = replace(state, tick=state.tick + 1, gpu_temp_c=gpu_temp, mem_temp_c=mem_temp,
                            ecc_sbe_total=sbe, ecc_dbe_total=dbe, xid_last=xid,
                            tx_bytes=tx, rx_bytes=rx, tx_errors=tx_err, rx_errors=rx_err)
        tick = Tick(
            index=state.tick, t_s=t_s, phase=phase, power_w=power, gpu_temp_c=gpu_temp, mem_temp_c=mem_temp,
            sm_clock_mhz=clock, mem_clock_mhz=s.gpu_max_mem_clock_mhz,
            util_gpu_pct=act.util_gpu_pct, util_mem_pct=np.round(act.dram_active * 100.0),
            sm_active=act.sm_active, tensor_active=act.tensor_active, dram_active=act.dram_active,
            xid_errors=xid, ecc_sbe_total=sbe, ecc_dbe_total=dbe,
            node_it_w=node_it, node_input_w=node_in, pdu_phase_w=phases_w, rack_it_w=rack_it, rack_input_w=rack_in,
            inlet_air_c=self.rack_inlet_c, outlet_air_c=outlet, coolant_supply_c=sup, coolant_return_c=ret,
            coolant_flow_lpm=flow, tx_bytes=tx, rx_bytes=rx, tx_errors=tx_err, rx_errors=rx_err,
        )
        return new_state, tick
