"""Pure fabric/collectives domain model (numpy + frozen dataclasses, no I/O)."""

from .collectives import (
    ALGORITHMS,
    COLLECTIVES,
    PROTOCOLS,
    Estimate,
    bus_factor,
    collective_codes,
    estimate,
)
from .moe import MOE_KERNELS, MoeEstimate, moe_errors, moe_times
from .placement import Placement, packed_gpu_ids, placement_arrays, placement_from_gpu_ids, placement_packed
from .state import LinkState
from .systems import GPUS, SYSTEMS, place_row
from .topology import (
    PRESETS,
    FabricTopology,
    ScaleOut,
    ScaleUp,
    efa,
    hgx_cluster,
    infiniband,
    nvl72_cluster,
    nvlink,
    preset,
    roce,
)
from .training import CommOp, ModelSpec, Parallelism, StepCommEstimate, training_step_comm

__all__ = [
    "ALGORITHMS", "COLLECTIVES", "MOE_KERNELS", "MoeEstimate", "moe_errors", "moe_times", "GPUS", "SYSTEMS", "place_row", "CommOp", "ModelSpec", "Parallelism", "StepCommEstimate", "training_step_comm", "PROTOCOLS", "PRESETS", "Estimate", "FabricTopology", "LinkState", "Placement",
    "ScaleOut", "ScaleUp", "bus_factor", "collective_codes", "efa", "estimate", "hgx_cluster", "infiniband",
    "nvl72_cluster", "nvlink", "packed_gpu_ids", "placement_arrays", "placement_from_gpu_ids", "placement_packed",
    "preset", "roce",
]
