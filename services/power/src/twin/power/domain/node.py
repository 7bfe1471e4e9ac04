"""Node and rack power: GPUs + CPUs, memory, NICs, storage, fans/platform, then the node's stages
(PSU, DC-DC), then the rack's own loads (switches) and stages (rectifiers, power shelves).

Node DC power = sum of its GPUs' board power + CPUs (idle + util x (max - idle)) + fixed parts.
Where the facility spec gives only ``cpu_and_platform_w`` (power at load), the non-GPU part is
``NON_GPU_IDLE_SHARE`` of it at idle, rising linearly with CPU utilization.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conversion import Stage, apply_grouped

#: idle share of non-GPU node power when the spec has no breakdown: Frontier's CPU idles at 90 W of
#: 280 W (ExaDigiT RAPS config/frontier.yaml, shared/validation README).
NON_GPU_IDLE_SHARE = 90.0 / 280.0


@dataclass(frozen=True)
class RackLayout:
    """GPU -> node -> rack indices and the per-type constants, one entry per node / rack."""

    gpu_node: np.ndarray
    node_rack: np.ndarray
    node_cpu_idle_w: np.ndarray      # all CPUs of the node together
    node_cpu_max_w: np.ndarray
    node_fixed_w: np.ndarray         # memory + NICs + storage + fans/platform
    node_type: np.ndarray            # index into node_chains
    node_chains: tuple[tuple[Stage, ...], ...]
    rack_other_w: np.ndarray         # switches etc., before rack stages
    rack_type: np.ndarray            # index into rack_chains
    rack_chains: tuple[tuple[Stage, ...], ...]

    @property
    def n_nodes(self) -> int:
        return len(self.node_rack)

    @property
    def n_racks(self) -> int:
        return len(self.rack_other_w)


@dataclass(frozen=True)
class RackPower:
    """Watts at every boundary. Energy closes per stage: input = output + loss, loss >= 0."""

    node_gpu_w: np.ndarray
    node_dc_w: np.ndarray            # node components before the node stages
    node_input_w: np.ndarray         # after node stages (PSU / DC-DC)
    node_loss_w: np.ndarray
    rack_dc_w: np.ndarray            # sum of node inputs + rack loads, before rack stages
    rack_input_w: np.ndarray         # after rack stages (rectifiers / power shelves)
    rack_loss_w: np.ndarray


def rack_power(layout: RackLayout, gpu_w: np.ndarray, cpu_util: np.ndarray | float = 1.0,
               node_input_override_w: np.ndarray | None = None) -> RackPower:
    """Node and rack power from per-GPU board power and per-node CPU utilization (0..1).
    ``node_input_override_w`` (NaN = none) replaces modelled node input with a measured value."""
    n_nodes, n_racks = layout.n_nodes, layout.n_racks
    gpu_sum = np.bincount(layout.gpu_node, weights=np.asarray(gpu_w, dtype=np.float64), minlength=n_nodes)
    u = np.clip(np.broadcast_to(np.asarray(cpu_util, dtype=np.float64), (n_nodes,)), 0.0, 1.0)
    dc = gpu_sum + layout.node_cpu_idle_w + u * (layout.node_cpu_max_w - layout.node_cpu_idle_w) + layout.node_fixed_w
    node_in, node_loss = apply_grouped(dc, layout.node_type, layout.node_chains)
    if node_input_override_w is not None:
        meas = np.asarray(node_input_override_w, dtype=np.float64)
        node_in = np.where(np.isnan(meas), node_in, meas)
        node_loss = np.where(np.isnan(meas), node_loss, 0.0)
    rack_dc = np.bincount(layout.node_rack, weights=node_in, minlength=n_racks) + layout.rack_other_w
    rack_in, rack_loss = apply_grouped(rack_dc, layout.rack_type, layout.rack_chains)
    return RackPower(node_gpu_w=gpu_sum, node_dc_w=dc, node_input_w=node_in, node_loss_w=node_loss,
                     rack_dc_w=rack_dc, rack_input_w=rack_in, rack_loss_w=rack_loss)


def gpus_of_racks(layout: RackLayout, racks: np.ndarray) -> np.ndarray:
    """Global GPU indices of the given racks (for rack-level what-ifs)."""
    return np.flatnonzero(np.isin(layout.node_rack[layout.gpu_node], np.asarray(racks, dtype=np.int64)))
