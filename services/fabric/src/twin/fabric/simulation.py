"""The fabric simulation use cases behind the gRPC API (no protobuf, no gRPC here).

Requests arrive as small dataclasses (built by adapters/codec.py), are validated with errors that
name the offending request field, resolved to GPU ids (rank count + packing policy, explicit ids,
or a registered job), combined with the live link state, and estimated by the numpy core in
chunks. Between chunks the deadline is checked, so a huge batch or sweep stops with
DeadlineExceeded instead of overrunning the caller's deadline.

Job registry: the jobs twin does not exist yet, so job ids are registered from a file
(FABRIC_JOBS_FILE, JSON or YAML mapping `job_id: [gpu ids or "a-b" ranges]`) or by code
(`JobRegistry.register`); unknown job ids are NotFound.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from twin.core.rpc import Deadline, DeadlineExceeded, InvalidArgument, NotFound, RequestError
from twin.fabric.domain import (
    COLLECTIVES,
    Estimate,
    FabricTopology,
    LinkState,
    ModelSpec,
    MoeEstimate,
    Parallelism,
    Placement,
    estimate,
    moe_times,
    packed_gpu_ids,
    placement_from_gpu_ids,
    training_step_comm,
)
from twin.fabric.domain.moe import moe_checks

MAX_BATCH_ENTRIES = 100_000
MAX_PLACEMENT_ENTRIES = 10_000  # EstimatePlacements: entries (placements) per request
MAX_PLACEMENT_RANKS = 2_000_000  # EstimatePlacements: ranks summed over the entries
MAX_SWEEP_POINTS = 10_000
MAX_SIZE_BYTES = 2**50
CHUNK_ENTRIES = 8_192
POLICIES = ("pack", "spread")


# -- errors: shared with every service (twin.core.rpc) ---------------------------------------------

__all__ = ["Deadline", "DeadlineExceeded", "InvalidArgument", "NotFound", "RequestError"]


# -- requests -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlacementRequest:
    """Exactly one of n_ranks / gpu_ids / job_id (codec fills `field` names for errors)."""

    n_ranks: int | None = None
    policy: str = "pack"
    gpu_ids: tuple[int, ...] | None = None
    job_id: str | None = None
    field: str = "placement"


@dataclass(frozen=True)
class ModelRequest:
    parameters: float
    layers: int = 0
    hidden_size: int = 0
    sequence_length: int = 0
    micro_batch_size: int = 1
    bytes_per_value: int = 2
    moe_layers: int = 0
    micro_batches_per_step: int = 1
    grad_bytes: int = 4
    moe_top_k: int = 1


@dataclass(frozen=True)
class ParallelRequest:
    data: int = 1
    tensor: int = 1
    pipeline: int = 1
    expert: int = 1
    sequence_parallel: bool = False
    distributed_optimizer: bool = False


@dataclass(frozen=True)
class EstimateTable:
    """Columnar answer: one entry per (collective code, size) in request order."""

    collective: np.ndarray  # int codes into COLLECTIVES
    size_bytes: np.ndarray  # uint64
    result: Estimate
    n_ranks: int
    n_nodes: int
    state_version: int

    def __len__(self) -> int:
        return int(self.size_bytes.shape[0])


class OneEstimate(NamedTuple):
    """One (collective, size) answer as Python scalars: EstimateCollective's per-RPC path
    (`FabricSimulator.estimate_one`), the same numbers as the matching `EstimateTable` entry."""

    collective: int  # code into COLLECTIVES
    size_bytes: int
    time_s: float
    latency_s: float
    bandwidth_s: float
    algorithm: int  # code into ALGORITHMS (-1 = nothing to do)
    protocol: int
    algbw_GBps: float
    busbw_GBps: float
    n_ranks: int
    n_nodes: int
    state_version: int


@dataclass(frozen=True)
class PlacementQuestion:
    """One EstimatePlacements entry: an EstimateBatch's (collective codes, sizes) on one placement
    (`field` names the entry in errors, e.g. "entries[3]")."""

    collective: np.ndarray  # int codes into COLLECTIVES
    size_bytes: np.ndarray  # uint64
    placement: PlacementRequest
    field: str = "entries[0]"


@dataclass(frozen=True)
class MoeRequest:
    """Columns of MoE cases (one entry per case; codec fills them from MoeCase messages)."""

    kernel: np.ndarray  # str: one of MOE_KERNELS (or anything else: invalid)
    tokens_per_rank: np.ndarray
    hidden_size: np.ndarray
    top_k: np.ndarray
    num_experts: np.ndarray
    dispatch: np.ndarray  # "fp8" | "bf16"
    combine: np.ndarray
    max_nodes_per_token: np.ndarray

    def __len__(self) -> int:
        return int(np.asarray(self.tokens_per_rank).shape[0])


@dataclass(frozen=True)
class MoeAnswer:
    result: MoeEstimate
    ep_ranks: int
    n_nodes: int
    n_domains: int
    state_version: int


@dataclass(frozen=True)
class CommItem:
    kind: str  # tp | dp | pp | ep
    collective: int  # code into COLLECTIVES
    time_s: float
    bytes_per_step: int
    calls: int
    size_bytes: int
    time_per_call_s: float
    group_ranks: int
    algorithm: str
    protocol: str


@dataclass(frozen=True)
class TrainingStepAnswer:
    comm_time_s: float
    breakdown: tuple[CommItem, ...]
    n_ranks: int
    n_nodes: int


# -- job registry ---------------------------------------------------------------------------------


def parse_gpu_spec(items: Iterable[int | str]) -> list[int]:
    """[0, 1, "8-15"] -> ids (ranges inclusive)."""
    out: list[int] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"not a GPU id: {item!r}")
        if isinstance(item, int):
            out.append(item)
            continue
        text = str(item).strip()
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            if hi < lo:
                raise ValueError(f"range {text!r} is inverted")
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(text))
    return out


class JobRegistry:
    """job id → GPU ids, validated against the facility when registered."""

    def __init__(self, n_gpus: int) -> None:
        self.n_gpus = n_gpus
        self._jobs: dict[str, np.ndarray] = {}

    def register(self, job_id: str, gpu_ids: Iterable[int | str]) -> None:
        if not job_id:
            raise ValueError("job id must not be empty")
        ids = np.asarray(parse_gpu_spec(gpu_ids), dtype=np.int64)
        problem = gpu_ids_problem(ids, self.n_gpus)
        if problem:
            raise ValueError(f"job {job_id!r}: {problem}")
        ids.flags.writeable = False
        self._jobs[job_id] = ids

    def remove(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)

    def get(self, job_id: str) -> np.ndarray | None:
        return self._jobs.get(job_id)

    def __len__(self) -> int:
        return len(self._jobs)

    def load_mapping(self, mapping: Mapping[str, Iterable[int | str]]) -> None:
        if not isinstance(mapping, Mapping):
            raise ValueError("jobs file must hold a mapping {job_id: [gpu ids]}")
        for job_id, ids in mapping.items():
            self.register(str(job_id), ids)

    def load_file(self, path: str | Path) -> None:
        text = Path(path).read_text(encoding="utf-8")
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        self.load_mapping(data)


def gpu_ids_problem(ids: np.ndarray, n_gpus: int) -> str | None:
    if ids.size == 0:
        return "no GPU ids (an empty group)"
    bad = ids[(ids < 0) | (ids >= n_gpus)]
    if bad.size:
        return f"unknown GPU id {int(bad[0])} (the facility has GPUs 0..{n_gpus - 1})"
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        return f"duplicate GPU id {int(uniq[counts > 1][0])}"
    return None


# -- the simulator --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveView:
    version: int
    link_state: LinkState


class FabricSimulator:
    def __init__(self, topology: FabricTopology, live: Callable[[], LiveView], jobs: JobRegistry, *,
                 chunk_entries: int = CHUNK_ENTRIES, cache_size: int = 256,
                 answer_cache_size: int = 4096) -> None:
        self.topology = topology
        self.live = live
        self.jobs = jobs
        self.chunk_entries = chunk_entries
        self.entries_estimated = 0  # running total (tests and metrics read it)
        self._ids_cache: dict[tuple[int, str], np.ndarray] = {}
        self._placements: OrderedDict[tuple, Placement] = OrderedDict()
        self._cache_size = cache_size
        self._answers: OrderedDict[tuple, OneEstimate] = OrderedDict()
        self._answer_cache_size = answer_cache_size
        self.cache_hits = 0

    # -- placement ------------------------------------------------------------------------------
    def gpu_ids(self, req: PlacementRequest) -> tuple[tuple, np.ndarray]:
        """(cache key, GPU ids) for a placement request; raises InvalidArgument / NotFound."""
        f = req.field
        chosen = [x is not None for x in (req.n_ranks, req.gpu_ids, req.job_id)]
        if sum(chosen) != 1:
            raise InvalidArgument(f, "set exactly one of ranks, gpus or job_id")
        n_gpus = self.topology.n_gpus
        if req.n_ranks is not None:
            n = int(req.n_ranks)
            if n < 1:
                raise InvalidArgument(f"{f}.ranks.n_ranks", "must be >= 1")
            if n > n_gpus:
                raise InvalidArgument(f"{f}.ranks.n_ranks", f"{n} exceeds the {n_gpus} GPUs of the facility")
            if req.policy not in POLICIES:
                raise InvalidArgument(f"{f}.ranks.policy", f"unknown policy {req.policy!r}")
            key = (n, req.policy)
            ids = self._ids_cache.get(key)
            if ids is None:
                ids = packed_gpu_ids(self.topology, n, req.policy)
                ids.flags.writeable = False
                if len(self._ids_cache) > 4096:
                    self._ids_cache.clear()
                self._ids_cache[key] = ids
            return ("ranks", n, req.policy), ids
        if req.gpu_ids is not None:
            ids = np.asarray(req.gpu_ids, dtype=np.int64)
            problem = gpu_ids_problem(ids, n_gpus)
            if problem:
                raise InvalidArgument(f"{f}.gpus.gpu_ids", problem)
            return ("gpus", ids.tobytes()), ids
        job_id = str(req.job_id)
        if not job_id:
            raise InvalidArgument(f"{f}.job_id", "must not be empty")
        ids = self.jobs.get(job_id)
        if ids is None:
            raise NotFound(f"{f}.job_id", f"unknown job {job_id!r} (register jobs via FABRIC_JOBS_FILE)")
        return ("job", job_id, id(ids)), ids

    def placement(self, req: PlacementRequest, view: LiveView | None = None) -> tuple[Placement, LiveView]:
        view = view or self.live()
        key, ids = self.gpu_ids(req)
        return self._placement(view, key, ids), view

    def _placement(self, view: LiveView, key: tuple, ids: np.ndarray) -> Placement:
        """The placement of `ids` (cache key `key`) under the live link state of `view`: cached per
        (state version, key), since the live state enters the placement (failed NICs/uplinks, load)."""
        ck = (view.version, key)
        hit = self._placements.get(ck)
        if hit is not None:
            self._placements.move_to_end(ck)
            return hit
        pl = placement_from_gpu_ids(self.topology, ids, view.link_state)
        self._placements[ck] = pl
        if len(self._placements) > self._cache_size:
            self._placements.popitem(last=False)
        return pl

    # -- collectives ----------------------------------------------------------------------------
    @staticmethod
    def check_size(size: int, field: str) -> int:
        """One size (EstimateCollective's `size_bytes`), rejected like a batch entry."""
        if size <= 0:
            raise InvalidArgument(field, "must be > 0")
        if size > MAX_SIZE_BYTES:
            raise InvalidArgument(field, f"{size} exceeds the limit of 2^50 bytes")
        return size

    @staticmethod
    def check_sizes(sizes: np.ndarray, field: str) -> np.ndarray:
        sizes = np.asarray(sizes, dtype=np.uint64)
        if sizes.size == 1:  # one size: Python int compares, not 4 array reductions
            FabricSimulator.check_size(int(sizes.reshape(-1)[0]), field)
            return sizes
        if sizes.size and (sizes == 0).any():
            i = int(np.flatnonzero(sizes == 0)[0])
            raise InvalidArgument(field if sizes.size == 1 else f"{field}[{i}]", "must be > 0")
        if sizes.size and (sizes > MAX_SIZE_BYTES).any():
            i = int(np.flatnonzero(sizes > MAX_SIZE_BYTES)[0])
            raise InvalidArgument(field if sizes.size == 1 else f"{field}[{i}]",
                                  f"{int(sizes[i])} exceeds the limit of 2^50 bytes")
        return sizes

    def estimate(self, collective: np.ndarray, size_bytes: np.ndarray, req: PlacementRequest,
                 deadline: Deadline | None = None, nccl_version: tuple[int, int, int] | None = None) -> EstimateTable:
        """Estimate every (collective, size) entry for one placement, in chunks, checking the deadline.
        `nccl_version`, when known, selects the algorithms that version has (see the core's docs)."""
        deadline = deadline or Deadline(None)
        coll = np.asarray(collective, dtype=np.int64)
        sizes = np.asarray(size_bytes, dtype=np.uint64)
        if sizes.size == 1 and coll.size == 1:  # one entry: the scalar path and its answer cache
            one = self.estimate_one(int(coll.reshape(-1)[0]), int(sizes.reshape(-1)[0]), req, deadline, nccl_version)
            f64 = np.float64
            result = Estimate(np.array([one.time_s], f64), np.array([one.latency_s], f64),
                              np.array([one.bandwidth_s], f64), np.array([one.algorithm], np.int8),
                              np.array([one.protocol], np.int8), np.array([one.algbw_GBps], f64),
                              np.array([one.busbw_GBps], f64))
            return EstimateTable(coll.reshape(1), sizes.reshape(1), result, one.n_ranks, one.n_nodes,
                                 one.state_version)
        placement, view = self.placement(req)
        deadline.check()
        parts: list[Estimate] = []
        for start in range(0, max(1, sizes.size), self.chunk_entries):
            if start:
                deadline.check()
            stop = min(sizes.size, start + self.chunk_entries)
            # one collective goes to the core as an int (an array is validated element-wise there)
            c = int(coll.reshape(-1)[0]) if coll.size == 1 else coll[start:stop]
            parts.append(estimate(self.topology, c, sizes[start:stop].astype(np.float64), placement,
                                  nccl_version=nccl_version))
            self.entries_estimated += stop - start
        result = parts[0] if len(parts) == 1 else Estimate(*(
            np.concatenate([getattr(p, f) for p in parts]) for f in Estimate.__dataclass_fields__))
        coll_full = coll if coll.shape == sizes.shape else np.broadcast_to(coll, sizes.shape)
        return EstimateTable(coll_full, sizes, result, int(placement.n_ranks), int(placement.n_nodes), view.version)

    def estimate_placements(self, entries: list[PlacementQuestion], deadline: Deadline | None = None,
                            nccl_version: tuple[int, int, int] | None = None) -> list[EstimateTable]:
        """Many EstimateBatch questions, each on its own placement, under one live-state snapshot.

        Every entry's answer equals `estimate` of that entry alone (same core, same placement summary,
        same live state): placements with equal rank counts are summarised together ([P, n] GPU ids in
        `placement_from_gpu_ids`) and all their (collective, size) pairs estimated in one vectorized
        call, in chunks of about `chunk_entries` pairs with the deadline checked between chunks."""
        deadline = deadline or Deadline(None)
        if not entries:
            raise InvalidArgument("entries", "no entries")
        if len(entries) > MAX_PLACEMENT_ENTRIES:
            raise InvalidArgument("entries", f"{len(entries)} entries exceed the limit of {MAX_PLACEMENT_ENTRIES}")
        total = sum(int(e.size_bytes.size) for e in entries)
        if total > MAX_BATCH_ENTRIES:
            raise InvalidArgument("entries", f"{total} (collective, size) pairs over all entries exceed the "
                                  f"limit of {MAX_BATCH_ENTRIES}")
        view = self.live()
        sizes = [self.check_sizes(e.size_bytes, f"{e.field}.size_bytes") for e in entries]
        ids: list[np.ndarray] = []
        ranks = 0
        for e in entries:
            _, gids = self.gpu_ids(e.placement)
            ranks += int(gids.size)
            if ranks > MAX_PLACEMENT_RANKS:
                raise InvalidArgument(f"{e.placement.field}", f"the entries up to this one hold {ranks} ranks; "
                                      f"the limit is {MAX_PLACEMENT_RANKS}")
            ids.append(gids)
        deadline.check()
        out: list[EstimateTable | None] = [None] * len(entries)
        by_n: dict[int, list[int]] = {}
        for i, g in enumerate(ids):
            by_n.setdefault(int(g.size), []).append(i)
        for n, members in by_n.items():
            # chunks of placements holding about chunk_entries pairs (and ranks): bounded memory, deadline checks
            start = 0
            while start < len(members):
                stop, pairs = start, 0
                while stop < len(members) and (stop == start or (
                        pairs + sizes[members[stop]].size <= self.chunk_entries
                        and (stop - start + 1) * n <= 16 * self.chunk_entries)):
                    pairs += sizes[members[stop]].size
                    stop += 1
                deadline.check()
                chunk = members[start:stop]
                start = stop
                pl = placement_from_gpu_ids(self.topology, np.stack([ids[i] for i in chunk]), view.link_state)
                counts = np.array([sizes[i].size for i in chunk])
                row = np.repeat(np.arange(len(chunk)), counts)
                coll = np.concatenate([np.broadcast_to(np.asarray(entries[i].collective, np.int64).reshape(-1),
                                                       sizes[i].shape) for i in chunk])
                flat = np.concatenate([sizes[i] for i in chunk])
                # (one pair on one placement takes the core's scalar path, bit-identical to the vectorized one)
                r = estimate(self.topology, coll, flat.astype(np.float64), pl[row], nccl_version=nccl_version)
                self.entries_estimated += int(flat.size)
                bounds = np.concatenate([[0], np.cumsum(counts)])
                for k, i in enumerate(chunk):
                    sl = slice(int(bounds[k]), int(bounds[k + 1]))
                    out[i] = EstimateTable(coll[sl], flat[sl], Estimate(*(
                        getattr(r, f)[sl] for f in Estimate.__dataclass_fields__)), n, int(pl.n_nodes[k]),
                        view.version)
        return [t for t in out if t is not None]

    def estimate_one(self, collective: int, size_bytes: int, req: PlacementRequest, deadline: Deadline | None = None,
                     nccl_version: tuple[int, int, int] | None = None) -> OneEstimate:
        """One (collective code, size) on one placement: the core's scalar path (Python floats, no
        arrays), and an exact answer cache for repeated queries (dashboards, ops scripts) -- the core is
        deterministic in (topology, live state version, placement, collective, size, NCCL version), and
        the live state version changes whenever the link state the placement carries changes."""
        view = self.live()
        key, ids = self.gpu_ids(req)
        answer_key = (view.version, key, collective, size_bytes, nccl_version)
        hit = self._answers.get(answer_key)
        if hit is not None:
            self.cache_hits += 1
            return hit
        placement = self._placement(view, key, ids)
        if deadline is not None:
            deadline.check()
        r = estimate(self.topology, collective, float(size_bytes), placement, nccl_version=nccl_version)
        self.entries_estimated += 1
        one = OneEstimate(collective, size_bytes, r.time_s.item(), r.latency_s.item(), r.bandwidth_s.item(),
                          r.algorithm.item(), r.protocol.item(), r.algbw_GBps.item(), r.busbw_GBps.item(),
                          placement.n_ranks.item(), placement.n_nodes.item(), view.version)
        self._answers[answer_key] = one
        if len(self._answers) > self._answer_cache_size:
            self._answers.popitem(last=False)
        return one

    def moe(self, req: MoeRequest, placement_req: PlacementRequest, deadline: Deadline | None = None,
            field: str = "cases") -> MoeAnswer:
        """Dispatch/combine times of every MoE case on one EP group (the placement), with the live link state."""
        deadline = deadline or Deadline(None)
        n = len(req)
        if n == 0:
            raise InvalidArgument(field, "no cases")
        if n > MAX_BATCH_ENTRIES:
            raise InvalidArgument(field, f"{n} cases exceed the limit of {MAX_BATCH_ENTRIES}")
        placement, view = self.placement(placement_req)
        ep = int(placement.n_ranks)
        cols = (req.kernel, req.tokens_per_rank, req.hidden_size, req.top_k, req.num_experts, ep, req.dispatch,
                req.combine, req.max_nodes_per_token)
        checks = moe_checks(*cols)
        if checks:  # the first offending case, named like the proto field
            first = min(checks, key=lambda c: int(np.flatnonzero(np.broadcast_to(c[2], (n,)))[0]))
            name, why, bad = first
            i = int(np.flatnonzero(np.broadcast_to(bad, (n,)))[0])
            value = {"kernel": req.kernel, "dispatch_precision": req.dispatch, "combine_precision": req.combine}
            shown = f"{np.asarray(value[name])[i]!r}: " if name in value else ""
            raise InvalidArgument(f"{field}[{i}].{name}", shown + why)
        deadline.check()
        parts: list[MoeEstimate] = []
        for start in range(0, n, self.chunk_entries):
            if start:
                deadline.check()
            sl = slice(start, min(n, start + self.chunk_entries))
            parts.append(moe_times(self.topology, req.kernel[sl], req.tokens_per_rank[sl], req.hidden_size[sl],
                                   req.top_k[sl], req.num_experts[sl], dispatch=req.dispatch[sl],
                                   combine=req.combine[sl], max_nodes_per_token=req.max_nodes_per_token[sl],
                                   placement=placement))
            self.entries_estimated += sl.stop - sl.start
        result = parts[0] if len(parts) == 1 else MoeEstimate(*(
            np.concatenate([getattr(p, f) for p in parts]) for f in MoeEstimate.__dataclass_fields__))
        return MoeAnswer(result, ep, int(placement.n_nodes), int(placement.n_domains), view.version)

    @staticmethod
    def sweep_sizes(min_bytes: int, max_bytes: int, steps_per_doubling: int, field: str = "") -> np.ndarray:
        """Geometric sizes min..max with `steps_per_doubling` points per factor of two (rounded to bytes)."""
        p = f"{field}." if field else ""
        if min_bytes < 1:
            raise InvalidArgument(f"{p}min_bytes", "must be >= 1")
        if max_bytes < 1:
            raise InvalidArgument(f"{p}max_bytes", "must be >= 1")
        if max_bytes > MAX_SIZE_BYTES:
            raise InvalidArgument(f"{p}max_bytes", f"{max_bytes} exceeds the limit of 2^50 bytes")
        if min_bytes > max_bytes:
            raise InvalidArgument(f"{p}max_bytes", f"sweep range inverted: max_bytes {max_bytes} < min_bytes {min_bytes}")
        steps = steps_per_doubling or 1
        n_points = int(math.floor(math.log2(max_bytes / min_bytes) * steps + 1e-9)) + 1
        if n_points > MAX_SWEEP_POINTS:
            raise InvalidArgument(f"{p}steps_per_doubling",
                                  f"the sweep would have {n_points} points; the limit is {MAX_SWEEP_POINTS}")
        sizes = np.round(min_bytes * np.exp2(np.arange(n_points) / steps)).astype(np.uint64)
        sizes = np.unique(np.clip(sizes, min_bytes, max_bytes))  # small sizes may round together
        return sizes

    # -- training step --------------------------------------------------------------------------
    def training_step(self, model: ModelRequest, par: ParallelRequest, req: PlacementRequest | None,
                      deadline: Deadline | None = None) -> TrainingStepAnswer:
        """Communication time of one training step.

        The op plan (which collectives, bytes and calls per step) is the core's
        `training_step_comm`; each op is then estimated on the request's real GPUs: ranks are laid out
        Megatron-style over the placement's sorted GPU ids and one representative group per kind
        (tp: ranks 0..TP-1, dp/ep: stride TP, pp: the first stage boundary) is placed with the live
        link state. With the default packed placement this is exactly the core's own answer.
        """
        deadline = deadline or Deadline(None)
        core_model, core_par = _check_training(model, par, self.topology.n_gpus)
        if req is None:
            req = PlacementRequest(n_ranks=core_par.world, policy="pack")
        _, ids = self.gpu_ids(req)
        if ids.size != core_par.world:
            raise InvalidArgument(req.field, f"placement has {ids.size} GPUs but data*tensor*pipeline = {core_par.world}")
        view = self.live()
        whole, _ = self.placement(req, view)
        deadline.check()
        try:
            plan = training_step_comm(self.topology, core_model, core_par, view.link_state)
        except ValueError as exc:
            raise InvalidArgument("parallelism", str(exc)) from exc
        ranks = np.sort(ids)
        items: list[CommItem] = []
        group_placements: dict[str, Placement] = {}
        for op in plan.ops:
            deadline.check()
            if op.kind not in group_placements:
                group_placements[op.kind] = placement_from_gpu_ids(
                    self.topology, ranks[_group_ranks(core_par, op.kind)], view.link_state)
            pl = group_placements[op.kind]
            code = COLLECTIVES.index(op.collective)
            est = estimate(self.topology, code, float(op.size_bytes), pl)
            per_call = float(est.time_s)
            items.append(CommItem(op.kind, code, per_call * op.calls, int(round(op.size_bytes * op.calls)),
                                  op.calls, int(round(op.size_bytes)), per_call, int(pl.n_ranks),
                                  str(est.algorithm_names()), str(est.protocol_names())))
        total = float(sum(i.time_s for i in items))
        return TrainingStepAnswer(total, tuple(items), int(whole.n_ranks), int(whole.n_nodes))


def _group_ranks(par: Parallelism, kind: str) -> np.ndarray:
    """Rank indices of the representative group of `kind` (rank = tp + TP * (dp + DP * pp))."""
    if kind == "tp":
        return np.arange(par.tp)
    if kind == "dp":
        return np.arange(par.dp) * par.tp
    if kind == "ep":
        return np.arange(par.ep) * par.tp
    if kind == "pp":
        return np.array([0, par.tp * par.dp])
    raise ValueError(f"unknown comm kind {kind!r}")


def _check_training(model: ModelRequest, par: ParallelRequest, n_gpus: int) -> tuple[ModelSpec, Parallelism]:
    """Validate with proto field names, then build the core's ModelSpec / Parallelism."""
    if not math.isfinite(model.parameters) or not model.parameters > 0:
        raise InvalidArgument("model.parameters", "must be > 0")
    if model.parameters > 1e15:
        raise InvalidArgument("model.parameters", "absurd parameter count (> 1e15)")
    for name in ("layers", "hidden_size", "sequence_length"):
        if getattr(model, name) < 1:
            raise InvalidArgument(f"model.{name}", "must be >= 1")
    if not 1 <= model.bytes_per_value <= 8:
        raise InvalidArgument("model.bytes_per_value", "must be 1..8")
    if not 1 <= model.grad_bytes <= 8:
        raise InvalidArgument("model.grad_bytes", "must be 1..8")
    if model.moe_layers > model.layers:
        raise InvalidArgument("model.moe_layers", f"{model.moe_layers} exceeds layers = {model.layers}")
    for name in ("data", "tensor", "pipeline", "expert"):
        if getattr(par, name) < 1:
            raise InvalidArgument(f"parallelism.{name}_parallel", "must be >= 1")
    world = par.data * par.tensor * par.pipeline
    if world > n_gpus:
        raise InvalidArgument("parallelism", f"data*tensor*pipeline = {world} exceeds the {n_gpus} GPUs of the facility")
    if par.data % par.expert:
        raise InvalidArgument("parallelism.expert_parallel", f"{par.expert} must divide data_parallel = {par.data}")
    if model.layers % par.pipeline:
        raise InvalidArgument("parallelism.pipeline_parallel",
                              f"{par.pipeline} must divide model.layers = {model.layers}")
    try:
        core_model = ModelSpec(params=model.parameters, layers=model.layers, hidden=model.hidden_size,
                               seq_len=model.sequence_length, micro_batch=model.micro_batch_size,
                               precision_bytes=model.bytes_per_value, grad_bytes=model.grad_bytes,
                               micro_batches_per_step=model.micro_batches_per_step, moe_layers=model.moe_layers,
                               moe_top_k=model.moe_top_k)
        core_par = Parallelism(dp=par.data, tp=par.tensor, pp=par.pipeline, ep=par.expert,
                               sequence_parallel=par.sequence_parallel,
                               distributed_optimizer=par.distributed_optimizer)
    except ValueError as exc:
        raise InvalidArgument("model", str(exc)) from exc
    return core_model, core_par
