"""Questions over the live state: curtailment plans, power-cap and component-failure what-ifs.

Thin glue between the live stages (twin.power.live) and the domain's pure functions; the gRPC
servicer and the grid-event consumer both use it. GPU activity comes from this process's stage 1
(the racks it consumes; GPUs it has not seen count as idle); rack input power for the chain comes
from the caller (the stored latest rack states, which cover every process's racks).
"""

from __future__ import annotations

import numpy as np

from twin.power.domain.gpu import gpu_power
from twin.power.domain.network import FailureImpact, what_if_failure
from twin.power.domain.node import gpus_of_racks, rack_power
from twin.power.domain.planner import CurtailmentPlan, GpuLoad, Jobs, plan_curtailment
from twin.power.domain.tick import PowerCapImpact, site_power_function, what_if_power_cap
from twin.power.live import RackStage
from twin.power.site import SiteModel

NO_JOBS = Jobs(job_ids=(), priority=np.zeros(0), seconds_since_checkpoint=np.zeros(0), checkpoint_s=np.zeros(0))


def gpu_load(model: SiteModel, racks: RackStage, job: np.ndarray | None = None) -> GpuLoad:
    tensor, sm, dram, limit = racks.gpu_load()
    job = np.full(len(tensor), -1, dtype=np.int64) if job is None else job
    return GpuLoad(params=model.gpu, tensor_active=tensor, sm_active=sm, dram_active=dram, power_limit_w=limit,
                   job=job, gpu_node=model.layout.gpu_node)


def rack_bias_w(model: SiteModel, racks: RackStage, rack_w: np.ndarray | None) -> np.ndarray | None:
    """Measured (or stored) rack input minus the model from GPU activity alone, per rack (NaN -> 0)."""
    if rack_w is None:
        return None
    tensor, sm, dram, limit = racks.gpu_load()
    g = gpu_power(model.gpu, tensor_active=tensor, sm_active=sm, dram_active=dram, power_limit_w=limit)
    return np.nan_to_num(np.asarray(rack_w, dtype=np.float64) - rack_power(model.layout, g.power_w).rack_input_w)


def plan(model: SiteModel, racks: RackStage, *, limit_w: float, deadline_s: float, duration_s: float,
         rack_w: np.ndarray | None = None, jobs: tuple[Jobs, np.ndarray] | None = None,
         cooling_w: float = 0.0) -> CurtailmentPlan:
    """The curtailment plan for the site as this process sees it (raises ValueError on bad numbers).
    ``rack_w``: every rack's current input power (stored states; NaN = unknown): the model is
    calibrated to it, so the plan's baseline is the live site power, not the activity model's.
    ``jobs``: (Jobs, job index per GPU) of the running jobs (none: nothing can be paused).
    ``cooling_w``: cooling power on the site bus, held constant over the plan."""
    site_w = site_power_function(model.layout, model.network, rack_bias_w=rack_bias_w(model, racks, rack_w),
                                 cooling_w=cooling_w)
    book, job = jobs if jobs is not None else (NO_JOBS, None)
    return plan_curtailment(limit_w=limit_w, deadline_s=deadline_s, duration_s=duration_s,
                            load=gpu_load(model, racks, job), jobs=book, sources=model.sources, site_power=site_w)


def power_cap(model: SiteModel, racks: RackStage, gpus: np.ndarray, cap_w: float) -> PowerCapImpact:
    tensor, sm, dram, limit = racks.gpu_load()
    return what_if_power_cap(model.gpu, model.layout, model.network, gpus, cap_w, tensor_active=tensor,
                             sm_active=sm, dram_active=dram, power_limit_w=limit)


def gpus_of_rack_ids(model: SiteModel, rack_ids: list[str]) -> np.ndarray:
    """Raises KeyError naming the first unknown rack."""
    idx = []
    for rid in rack_ids:
        if rid not in model.inventory.rack_index:
            raise KeyError(rid)
        idx.append(model.inventory.rack_index[rid])
    return gpus_of_racks(model.layout, np.array(idx, dtype=np.int64))


def failure(model: SiteModel, rack_w: np.ndarray, component_ids: list[str]) -> FailureImpact:
    """Raises KeyError for an unknown component id."""
    return what_if_failure(model.network, rack_w, component_ids)
