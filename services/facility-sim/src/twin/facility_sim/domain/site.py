"""The site as flat numpy arrays (per GPU, per node, per rack, per NIC), the model's only input shape.

Built from `twin.core.facility.Inventory` by `twin.facility_sim.layout`; the domain never sees YAML.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class SiteArrays:
    # per GPU (length n_gpus)
    gpu_node: np.ndarray            # int64, global node index (0-based within the simulated slice)
    gpu_local_index: np.ndarray     # uint32, index inside the node
    gpu_idle_w: np.ndarray
    gpu_max_w: np.ndarray           # default board power limit (TDP)
    gpu_cap_w: np.ndarray           # configured power cap (≤ max_w, ≥ min_cap_w)
    gpu_max_sm_clock_mhz: np.ndarray
    gpu_max_mem_clock_mhz: np.ndarray
    # per node (length n_nodes)
    node_rack: np.ndarray           # int64
    node_first_gpu: np.ndarray      # int64
    node_gpus: np.ndarray           # int64
    node_platform_w: np.ndarray     # CPU + platform power at full load
    node_max_w: np.ndarray          # node (PSU) rating
    node_first_nic: np.ndarray      # int64
    node_nics: np.ndarray           # int64
    # per rack (length n_racks)
    rack_first_node: np.ndarray     # int64
    rack_nodes: np.ndarray          # int64
    rack_liquid_fraction: np.ndarray
    rack_phases: np.ndarray         # int64, PDU phases (1..3)
    rack_coolant_flow_lpm: np.ndarray   # secondary-loop flow per rack (0 for air racks)
    rack_air_supply_c: np.ndarray       # cold-aisle supply air temperature
    rack_coolant_supply_c: np.ndarray   # secondary-loop supply temperature
    # per NIC (length n_nics)
    nic_node: np.ndarray            # int64
    nic_bytes_per_s: np.ndarray     # line rate in bytes/s

    @property
    def n_gpus(self) -> int:
        return int(self.gpu_node.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.node_rack.shape[0])

    @property
    def n_racks(self) -> int:
        return int(self.rack_first_node.shape[0])

    @property
    def n_nics(self) -> int:
        return int(self.nic_node.shape[0])

    @property
    def rack_first_gpu(self) -> np.ndarray:
        return self.node_first_gpu[self.rack_first_node]

    @property
    def rack_gpus(self) -> np.ndarray:
        return np.bincount(self.node_rack, weights=self.node_gpus, minlength=self.n_racks).astype(np.int64)
