"""Live fabric state as numpy arrays over the topology's links (filled from telemetry by adapters).

* ``uplink_capacity`` [n_leaves, n_spines]: fraction of each leaf->spine uplink bundle that is up
  (1 = all cables up, 0.5 = half the cables down, 0 = link or spine down).
* ``uplink_utilization`` [n_leaves, n_spines]: fraction of the bundle's bandwidth used by other traffic.
* ``nic_health`` [n_gpus]: usable fraction of each GPU's scale-out NICs (0 = all its NICs down).

A leaf switch failure is all of its uplinks at 0 plus the NICs attached to it at 0; a spine failure
is a zero column. Defaults are all-healthy and idle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .topology import FabricTopology


@dataclass(frozen=True, eq=False)
class LinkState:
    uplink_capacity: np.ndarray
    uplink_utilization: np.ndarray
    nic_health: np.ndarray

    def __post_init__(self) -> None:
        for name in ("uplink_capacity", "uplink_utilization", "nic_health"):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.size and (np.isnan(a).any() or a.min() < 0 or a.max() > 1):
                raise ValueError(f"{name} must be fractions in [0, 1]")
            a = a.copy()
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        if self.uplink_capacity.shape != self.uplink_utilization.shape:
            raise ValueError("uplink_capacity and uplink_utilization must have the same shape")

    @classmethod
    def healthy(cls, topology: FabricTopology) -> LinkState:
        shape = (topology.n_leaves, topology.n_spines)
        return cls(np.ones(shape), np.zeros(shape), np.ones(topology.n_gpus))

    def check(self, topology: FabricTopology) -> None:
        shape = (topology.n_leaves, topology.n_spines)
        if self.uplink_capacity.shape != shape:
            raise ValueError(f"uplink arrays must have shape {shape} for {topology.name}, got {self.uplink_capacity.shape}")
        if self.nic_health.shape != (topology.n_gpus,):
            raise ValueError(f"nic_health must have shape ({topology.n_gpus},), got {self.nic_health.shape}")

    # --- derived, per leaf ----------------------------------------------------------------------
    def leaf_uplink_available(self) -> np.ndarray:
        """[n_leaves] available fraction of each leaf's nominal uplink bandwidth (capacity x idle share).

        Computed once per state (its arrays are read-only, so it cannot go stale): every estimate on a new
        placement asks for it, and over a 100k-GPU site's uplinks it costs milliseconds.
        """
        cached = self.__dict__.get("_leaf_uplink_available")
        if cached is None:
            if self.uplink_capacity.size == 0:
                cached = np.ones(self.uplink_capacity.shape[0])
            else:
                cached = (self.uplink_capacity * (1.0 - self.uplink_utilization)).mean(axis=1)
            cached.setflags(write=False)
            object.__setattr__(self, "_leaf_uplink_available", cached)
        return cached

    # --- what-if helpers (return new states) ----------------------------------------------------
    def with_failed_spine(self, spine: int) -> LinkState:
        cap = self.uplink_capacity.copy()
        cap[:, spine] = 0.0
        return LinkState(cap, self.uplink_utilization, self.nic_health)

    def with_failed_leaf(self, topology: FabricTopology, leaf: int) -> LinkState:
        cap = self.uplink_capacity.copy()
        cap[leaf, :] = 0.0
        nic = self.nic_health.copy()
        nic[topology.leaf_of(np.arange(topology.n_gpus)) == leaf] = 0.0
        return LinkState(cap, self.uplink_utilization, nic)

    def with_failed_nic(self, gpu: int, fraction_lost: float = 1.0) -> LinkState:
        nic = self.nic_health.copy()
        nic[gpu] = max(0.0, nic[gpu] - fraction_lost)
        return LinkState(self.uplink_capacity, self.uplink_utilization, nic)

    def with_utilization(self, utilization: np.ndarray | float) -> LinkState:
        util = np.broadcast_to(np.asarray(utilization, dtype=np.float64), self.uplink_capacity.shape)
        return LinkState(self.uplink_capacity, util, self.nic_health)
