"""Per-training-step communication estimate (Megatron-style 3D/4D parallelism).

Rank order (Megatron default): tensor-parallel fastest, then data-parallel, then pipeline:
``rank = tp_i + TP * (dp_i + DP * pp_i)``; ranks are placed on GPU ids 0..N-1 (packed), so TP groups
sit inside an NVLink domain whenever TP <= gpus_per_domain. Expert parallelism (EP) groups are
EP consecutive data-parallel ranks (stride TP).

Formulas (bytes per call; counts per optimizer step, summed as if not overlapped with compute):

* activation A = micro_batch * seq_len * hidden * precision_bytes
* TP: 2 all-reduces of A per layer forward + 2 backward, for layers/PP layers per stage and every
  micro-batch: 4 * (layers/PP) * micro_batches calls (with sequence parallelism each all-reduce
  becomes a reduce-scatter + all-gather of the same A).
* DP: gradient bytes G = params / (TP * PP) * grad_bytes, one all-reduce per step over DP ranks
  (ZeRO/distributed optimizer: reduce-scatter G + all-gather of the updated parameters).
* PP: one send/recv of A forward and one of its gradient backward per micro-batch per stage
  boundary: 2 * micro_batches calls on the critical path of one stage.
* EP: alltoall of the routed tokens, micro_batch * seq_len * top_k * hidden * precision_bytes per
  rank, twice per MoE layer forward (dispatch + combine) and twice backward:
  4 * (moe_layers/PP) * micro_batches calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .collectives import ALL_GATHER, ALL_REDUCE, ALLTOALL, REDUCE_SCATTER, SEND_RECV, estimate
from .placement import placement_from_gpu_ids
from .state import LinkState
from .topology import FabricTopology


@dataclass(frozen=True)
class ModelSpec:
    params: float
    layers: int
    hidden: int
    seq_len: int
    micro_batch: int = 1
    precision_bytes: int = 2
    grad_bytes: int = 4
    micro_batches_per_step: int = 1
    moe_layers: int = 0
    moe_top_k: int = 1

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "seq_len", "micro_batch", "precision_bytes", "grad_bytes",
                     "micro_batches_per_step", "moe_top_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelSpec.{name} must be >= 1")
        if not self.params > 0:
            raise ValueError("ModelSpec.params must be > 0")
        if not 0 <= self.moe_layers <= self.layers:
            raise ValueError("ModelSpec.moe_layers must be in [0, layers]")


@dataclass(frozen=True)
class Parallelism:
    dp: int = 1
    tp: int = 1
    pp: int = 1
    ep: int = 1
    sequence_parallel: bool = False
    distributed_optimizer: bool = False

    def __post_init__(self) -> None:
        for name in ("dp", "tp", "pp", "ep"):
            if getattr(self, name) < 1:
                raise ValueError(f"Parallelism.{name} must be >= 1")
        if self.dp % self.ep:
            raise ValueError(f"ep={self.ep} must divide dp={self.dp}")

    @property
    def world(self) -> int:
        return self.dp * self.tp * self.pp


@dataclass(frozen=True)
class CommOp:
    kind: str  # "tp" | "dp" | "pp" | "ep"
    collective: str
    size_bytes: float
    calls: int
    group_ranks: int
    time_per_call_s: float
    algorithm: str
    protocol: str

    @property
    def time_s(self) -> float:
        return self.calls * self.time_per_call_s


@dataclass(frozen=True)
class StepCommEstimate:
    tp_s: float
    dp_s: float
    pp_s: float
    ep_s: float
    ops: tuple[CommOp, ...]

    @property
    def total_s(self) -> float:
        return self.tp_s + self.dp_s + self.pp_s + self.ep_s

    def by_type(self) -> dict[str, float]:
        return {"tp": self.tp_s, "dp": self.dp_s, "pp": self.pp_s, "ep": self.ep_s, "total": self.total_s}


def _group_ids(par: Parallelism, kind: str) -> np.ndarray:
    tp, dp = par.tp, par.dp
    if kind == "tp":
        return np.arange(tp)
    if kind == "dp":
        return np.arange(dp) * tp
    if kind == "ep":
        return np.arange(par.ep) * tp
    if kind == "pp":  # first boundary: stage 0 -> stage 1
        return np.array([0, tp * dp])
    raise ValueError(kind)


def training_step_comm(topology: FabricTopology, model: ModelSpec, parallel: Parallelism,
                       link_state: LinkState | None = None) -> StepCommEstimate:
    """Per-step communication time by type for ``model`` under ``parallel`` on ``topology``."""
    if parallel.world > topology.n_gpus:
        raise ValueError(f"dp*tp*pp = {parallel.world} exceeds the {topology.n_gpus} GPUs of topology {topology.name!r}")
    if model.layers % parallel.pp:
        raise ValueError(f"layers={model.layers} is not divisible by pp={parallel.pp}")
    act = float(model.micro_batch * model.seq_len * model.hidden * model.precision_bytes)
    mbs = model.micro_batches_per_step
    layers_per_stage = model.layers // parallel.pp
    grads = model.params / (parallel.tp * parallel.pp) * model.grad_bytes
    plans: list[tuple[str, int, float, int]] = []  # (kind, collective, size, calls)
    if parallel.tp > 1:
        calls = 4 * layers_per_stage * mbs
        if parallel.sequence_parallel:
            plans += [("tp", REDUCE_SCATTER, act, calls), ("tp", ALL_GATHER, act, calls)]
        else:
            plans.append(("tp", ALL_REDUCE, act, calls))
    if parallel.dp > 1:
        if parallel.distributed_optimizer:
            plans += [("dp", REDUCE_SCATTER, grads, 1),
                      ("dp", ALL_GATHER, model.params / (parallel.tp * parallel.pp) * model.precision_bytes, 1)]
        else:
            plans.append(("dp", ALL_REDUCE, grads, 1))
    if parallel.pp > 1:
        plans.append(("pp", SEND_RECV, act / parallel.tp if parallel.sequence_parallel else act, 2 * mbs))
    if parallel.ep > 1 and model.moe_layers > 0:
        moe_per_stage = -(-model.moe_layers // parallel.pp)
        plans.append(("ep", ALLTOALL, act * model.moe_top_k, 4 * moe_per_stage * mbs))

    names = {ALL_REDUCE: "all_reduce", REDUCE_SCATTER: "reduce_scatter", ALL_GATHER: "all_gather",
             SEND_RECV: "send_recv", ALLTOALL: "alltoall"}
    placements = {k: placement_from_gpu_ids(topology, _group_ids(parallel, k), link_state)
                  for k in {p[0] for p in plans}}
    ops = []
    totals = {"tp": 0.0, "dp": 0.0, "pp": 0.0, "ep": 0.0}
    for kind, coll, size, calls in plans:
        pl = placements[kind]
        est = estimate(topology, coll, size, pl)
        op = CommOp(kind, names[coll], size, calls, int(pl.n_ranks), float(est.time_s),
                    str(est.algorithm_names()), str(est.protocol_names()))
        ops.append(op)
        totals[kind] += op.time_s
    return StepCommEstimate(totals["tp"], totals["dp"], totals["pp"], totals["ep"], tuple(ops))
