"""Protobuf ↔ fabric objects: the one place twin.fabric.v1 / twin.telemetry.v1 messages meet the
domain and the simulation service. Structural problems (an UNSPECIFIED enum, a missing oneof,
mismatched parallel arrays) raise InvalidArgument naming the proto field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from twin.fabric.domain import ALGORITHMS, COLLECTIVES, PROTOCOLS
from twin.fabric.domain import link_health as lh
from twin.fabric.simulation import (
    EstimateTable,
    InvalidArgument,
    ModelRequest,
    MoeAnswer,
    MoeRequest,
    OneEstimate,
    ParallelRequest,
    PlacementQuestion,
    PlacementRequest,
    TrainingStepAnswer,
)
from twin.fabric.v1 import fabric_pb2 as pb
from twin.telemetry.v1 import telemetry_pb2 as tpb

# -- enums ---------------------------------------------------------------------------------------

_COLLECTIVE_TO_CODE = {
    pb.COLLECTIVE_ALL_REDUCE: COLLECTIVES.index("all_reduce"),
    pb.COLLECTIVE_ALL_GATHER: COLLECTIVES.index("all_gather"),
    pb.COLLECTIVE_REDUCE_SCATTER: COLLECTIVES.index("reduce_scatter"),
    pb.COLLECTIVE_BROADCAST: COLLECTIVES.index("broadcast"),
    pb.COLLECTIVE_REDUCE: COLLECTIVES.index("reduce"),
    pb.COLLECTIVE_ALLTOALL: COLLECTIVES.index("alltoall"),
    pb.COLLECTIVE_SEND_RECV: COLLECTIVES.index("send_recv"),
}
_CODE_TO_COLLECTIVE = {v: k for k, v in _COLLECTIVE_TO_CODE.items()}
# enum value -> core code, as a lookup table (index = enum number; -1 = invalid)
_COLLECTIVE_LUT = np.full(max(_COLLECTIVE_TO_CODE) + 1, -1, dtype=np.int64)
for _k, _v in _COLLECTIVE_TO_CODE.items():
    _COLLECTIVE_LUT[_k] = _v
_CODE_LUT = np.array([_CODE_TO_COLLECTIVE[i] for i in range(len(COLLECTIVES))], dtype=np.int64)
# names by code as Estimate.algorithm_names()/protocol_names() give them (NO_ALGORITHM = -1 -> "none")
_ALGORITHM_NAMES = (*ALGORITHMS, "none")
_PROTOCOL_NAMES = (*PROTOCOLS, "none")

_POLICY = {pb.PACKING_POLICY_UNSPECIFIED: "pack", pb.PACKING_POLICY_PACK: "pack", pb.PACKING_POLICY_SPREAD: "spread"}

_EVENT_KIND = {
    pb.LINK_EVENT_KIND_DOWN: lh.KIND_DOWN,
    pb.LINK_EVENT_KIND_UP: lh.KIND_UP,
    pb.LINK_EVENT_KIND_FLAPPING: lh.KIND_FLAPPING,
    pb.LINK_EVENT_KIND_DEGRADED: lh.KIND_DEGRADED,
}

def collective_code(value: int, field: str = "collective") -> int:
    if value not in _COLLECTIVE_TO_CODE:
        name = pb.Collective.Name(value) if value in pb.Collective.values() else str(value)
        raise InvalidArgument(field, f"{name} is not a collective (UNSPECIFIED or unknown)")
    return _COLLECTIVE_TO_CODE[value]


def collective_codes(values, field: str = "collectives") -> np.ndarray:
    arr = np.asarray(values, dtype=np.int64)
    bad = (arr < 0) | (arr >= _COLLECTIVE_LUT.size)
    codes = np.where(bad, -1, _COLLECTIVE_LUT[np.clip(arr, 0, _COLLECTIVE_LUT.size - 1)])
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        collective_code(int(arr[i]), f"{field}[{i}]")
    return codes


def collective_enum(code: int) -> int:
    return _CODE_TO_COLLECTIVE[int(code)]


# -- time ----------------------------------------------------------------------------------------


def timestamp_seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos * 1e-9


def set_timestamp(ts: Timestamp, seconds: float) -> None:
    whole = int(np.floor(seconds))
    ts.seconds = whole
    ts.nanos = int(round((seconds - whole) * 1e9)) % 1_000_000_000


# -- requests ------------------------------------------------------------------------------------


def placement_request(msg: pb.Placement, field: str = "placement", required: bool = True) -> PlacementRequest | None:
    which = msg.WhichOneof("selector")
    if which is None:
        if not required:
            return None
        raise InvalidArgument(field, "set one of ranks, gpus or job_id")
    if which == "ranks":
        policy = _POLICY.get(msg.ranks.policy)
        if policy is None:
            raise InvalidArgument(f"{field}.ranks.policy", f"unknown packing policy {msg.ranks.policy}")
        return PlacementRequest(n_ranks=msg.ranks.n_ranks, policy=policy, field=field)
    if which == "gpus":
        return PlacementRequest(gpu_ids=tuple(msg.gpus.gpu_ids), field=field)
    return PlacementRequest(job_id=msg.job_id, field=field)


_NCCL_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:-\d+)?")


def nccl_version(text: str) -> tuple[int, int, int] | None:
    """The request's `nccl_version` ("2.27.3", "v2.19.3-1"; empty = unknown) or InvalidArgument."""
    text = text.strip()
    if not text:
        return None
    m = _NCCL_VERSION.fullmatch(text)
    if m is None or int(m.group(1)) != 2:
        raise InvalidArgument("nccl_version", f"{text[:40]!r} is not an NCCL 2.x version like 2.27.3")
    return 2, int(m.group(2)), int(m.group(3) or 0)


def estimate_collective_one(req: pb.EstimateCollectiveRequest) -> tuple[int, int, PlacementRequest]:
    """(collective code, size, placement) of one EstimateCollective as Python scalars (the per-RPC path;
    the size is checked by `FabricSimulator.check_size`)."""
    return collective_code(req.collective), req.size_bytes, placement_request(req.placement)


def estimate_batch_request(req: pb.EstimateBatchRequest, max_entries: int):
    n_c, n_s = len(req.collectives), len(req.size_bytes)
    if n_s == 0:
        raise InvalidArgument("size_bytes", "empty batch")
    if n_c != n_s:
        raise InvalidArgument("collectives", f"{n_c} collectives for {n_s} size_bytes (must be parallel)")
    if n_s > max_entries:
        raise InvalidArgument("size_bytes", f"{n_s} entries exceed the batch limit of {max_entries}")
    codes = collective_codes(np.fromiter(req.collectives, dtype=np.int64, count=n_c))
    sizes = np.fromiter(req.size_bytes, dtype=np.uint64, count=n_s)
    return codes, sizes, placement_request(req.placement)


def estimate_placements_request(req: pb.EstimatePlacementsRequest, max_entries: int) -> list[PlacementQuestion]:
    """The entries of an EstimatePlacements request (structure checked here with entries[i].<field> names; sizes,
    placements and the request limits by `FabricSimulator.estimate_placements`)."""
    out: list[PlacementQuestion] = []
    total = 0
    for i, e in enumerate(req.entries):
        f = f"entries[{i}]"
        n_c, n_s = len(e.collectives), len(e.size_bytes)
        if n_s == 0:
            raise InvalidArgument(f"{f}.size_bytes", "empty entry")
        if n_c != n_s:
            raise InvalidArgument(f"{f}.collectives", f"{n_c} collectives for {n_s} size_bytes (must be parallel)")
        total += n_s
        if total > max_entries:
            raise InvalidArgument(f"{f}.size_bytes", f"the entries up to this one hold {total} (collective, size) "
                                  f"pairs; the limit is {max_entries}")
        codes = collective_codes(np.fromiter(e.collectives, dtype=np.int64, count=n_c), f"{f}.collectives")
        sizes = np.fromiter(e.size_bytes, dtype=np.uint64, count=n_s)
        out.append(PlacementQuestion(codes, sizes, placement_request(e.placement, f"{f}.placement"), f))
    return out


def estimate_placements_response(tables: list[EstimateTable]) -> pb.EstimatePlacementsResponse:
    resp = pb.EstimatePlacementsResponse()
    for table in tables:
        entry = resp.entries.add(n_ranks=table.n_ranks, n_nodes=table.n_nodes)
        estimates_to_proto(table, entry.estimates)
    return resp


_MOE_KERNEL = {pb.MOE_KERNEL_NCCL_ALLTOALL: "nccl_alltoall", pb.MOE_KERNEL_DEEPEP_NORMAL: "deepep_normal",
               pb.MOE_KERNEL_DEEPEP_LOW_LATENCY: "deepep_low_latency"}
_MOE_PRECISION = {pb.MOE_PRECISION_UNSPECIFIED: "bf16", pb.MOE_PRECISION_FP8: "fp8", pb.MOE_PRECISION_BF16: "bf16"}


def moe_request(req: pb.EstimateMoeRequest) -> tuple[MoeRequest, PlacementRequest]:
    """Columns of the request's cases (values checked by the simulator: errors name cases[i].<field>)."""
    cases = req.cases
    for i, c in enumerate(cases):
        if c.kernel not in _MOE_KERNEL:
            raise InvalidArgument(f"cases[{i}].kernel", f"{c.kernel} is not a MoE kernel (UNSPECIFIED or unknown)")
        for name in ("dispatch_precision", "combine_precision"):
            if getattr(c, name) not in _MOE_PRECISION:
                raise InvalidArgument(f"cases[{i}].{name}", f"unknown precision {getattr(c, name)}")
    moe = MoeRequest(
        kernel=np.array([_MOE_KERNEL[c.kernel] for c in cases], dtype=object),
        tokens_per_rank=np.array([c.tokens_per_rank for c in cases], dtype=np.int64),
        hidden_size=np.array([c.hidden_size for c in cases], dtype=np.int64),
        top_k=np.array([c.top_k for c in cases], dtype=np.int64),
        num_experts=np.array([c.num_experts for c in cases], dtype=np.int64),
        dispatch=np.array([_MOE_PRECISION[c.dispatch_precision] for c in cases], dtype=object),
        combine=np.array([_MOE_PRECISION[c.combine_precision] for c in cases], dtype=object),
        max_nodes_per_token=np.array([c.max_nodes_per_token for c in cases], dtype=np.int64),
    )
    return moe, placement_request(req.placement)


def moe_response(ans: MoeAnswer) -> pb.EstimateMoeResponse:
    resp = pb.EstimateMoeResponse(ep_ranks=ans.ep_ranks, n_nodes=ans.n_nodes, n_domains=ans.n_domains)
    r = ans.result
    cols = (r.dispatch_s, r.combine_s, r.dispatch_nvlink_bytes, r.dispatch_network_bytes, r.combine_nvlink_bytes,
            r.combine_network_bytes, r.domains_per_token, r.ranks_per_token)
    add = resp.estimates.add
    for d, c, dn, dw, cn, cw, dom, rk in zip(*(np.asarray(x).reshape(-1).tolist() for x in cols), strict=True):
        add(dispatch_time_s=d, combine_time_s=c, dispatch_nvlink_bytes=round(dn), dispatch_network_bytes=round(dw),
            combine_nvlink_bytes=round(cn), combine_network_bytes=round(cw), domains_per_token=dom,
            ranks_per_token=rk)
    return resp


def model_request(m: pb.ModelSpec) -> ModelRequest:
    # proto3 zero = not set: the documented defaults
    return ModelRequest(parameters=m.parameters, layers=m.layers, hidden_size=m.hidden_size,
                        sequence_length=m.sequence_length, micro_batch_size=m.micro_batch_size or 1,
                        bytes_per_value=m.bytes_per_value or 2, moe_layers=m.moe_layers,
                        micro_batches_per_step=m.micro_batches_per_step or 1, grad_bytes=m.grad_bytes or 4,
                        moe_top_k=m.moe_top_k or 1)


def parallel_request(p: pb.Parallelism) -> ParallelRequest:
    # proto3 zero = not set = 1 (no parallelism in that dimension)
    return ParallelRequest(data=p.data_parallel or 1, tensor=p.tensor_parallel or 1,
                           pipeline=p.pipeline_parallel or 1, expert=p.expert_parallel or 1,
                           sequence_parallel=p.sequence_parallel, distributed_optimizer=p.distributed_optimizer)


# -- responses -----------------------------------------------------------------------------------


def estimates_to_proto(table: EstimateTable, out) -> None:
    """Append one CollectiveEstimate per table entry to the repeated field `out`."""
    r = table.result
    algos = r.algorithm_names().tolist()
    protos = r.protocol_names().tolist()
    enums = _CODE_LUT[table.collective].tolist()
    sizes = table.size_bytes.tolist()
    cols = (r.time_s.tolist(), r.algbw_GBps.tolist(), r.busbw_GBps.tolist(), r.latency_s.tolist(),
            r.bandwidth_s.tolist())
    add = out.add
    for i, (t, algbw, busbw, lat, bw) in enumerate(zip(*cols, strict=True)):
        add(collective=enums[i], size_bytes=sizes[i], time_s=t, algorithm=algos[i], protocol=protos[i],
            algbw_gbps=algbw, busbw_gbps=busbw, latency_s=lat, bandwidth_s=bw)


def one_estimate_response(one: OneEstimate) -> pb.EstimateCollectiveResponse:
    """EstimateCollectiveResponse of `FabricSimulator.estimate_one`'s answer (Python scalars already)."""
    return pb.EstimateCollectiveResponse(n_ranks=one.n_ranks, n_nodes=one.n_nodes, estimate=pb.CollectiveEstimate(
        collective=_CODE_TO_COLLECTIVE[one.collective], size_bytes=one.size_bytes, time_s=one.time_s,
        algorithm=_ALGORITHM_NAMES[one.algorithm], protocol=_PROTOCOL_NAMES[one.protocol],
        algbw_gbps=one.algbw_GBps, busbw_gbps=one.busbw_GBps, latency_s=one.latency_s,
        bandwidth_s=one.bandwidth_s))


def training_step_response(ans: TrainingStepAnswer) -> pb.EstimateTrainingStepResponse:
    resp = pb.EstimateTrainingStepResponse(comm_time_s=ans.comm_time_s, n_ranks=ans.n_ranks, n_nodes=ans.n_nodes)
    for item in ans.breakdown:
        resp.breakdown.add(kind=item.kind, collective=collective_enum(item.collective), time_s=item.time_s,
                           bytes_per_step=item.bytes_per_step, calls=item.calls, size_bytes=item.size_bytes,
                           time_per_call_s=item.time_per_call_s, group_ranks=item.group_ranks,
                           algorithm=item.algorithm, protocol=item.protocol)
    return resp


# -- fabric state --------------------------------------------------------------------------------


def fabric_state(site_id: str, state_time_s: float, health: lh.LinkHealth, link_id, *, include_healthy: bool = False,
                 max_links: int = 10_000) -> pb.FabricState:
    """FabricState snapshot: down/degraded/flapping links first, then the busiest, at most max_links
    (all links when include_healthy, still capped)."""
    cap, flap, util = health.capacity_fraction, health.flapping, health.utilization
    msg = pb.FabricState(site_id=site_id, links_down=int((cap <= 0).sum()),
                         links_degraded=int(((cap > 0) & (cap < 1)).sum()), links_flapping=int(flap.sum()))
    set_timestamp(msg.state_time, state_time_s)
    bad = np.flatnonzero((cap < 1) | flap)
    busy = np.flatnonzero((cap >= 1) & ~flap & (util > 0))
    busy = busy[np.argsort(-util[busy], kind="stable")]
    chosen = np.concatenate([bad, busy])
    if include_healthy:
        rest = np.flatnonzero((cap >= 1) & ~flap & (util <= 0))
        chosen = np.concatenate([chosen, rest])
    total_listable = chosen.size
    chosen = chosen[:max_links]
    msg.truncated = bool(total_listable > chosen.size)
    changed = health.changed_time_s
    for s in chosen.tolist():
        item = msg.links.add(link_id=link_id(s), capacity_fraction=float(cap[s]), utilization=float(util[s]),
                             flapping=bool(flap[s]))
        if np.isfinite(changed[s]):
            set_timestamp(item.changed_time, float(changed[s]))
    return msg


# -- events and telemetry ------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkEventData:
    link_id: str
    kind: int  # link_health.KIND_* (0 = unspecified/unknown)
    capacity_fraction: float
    time_s: float


def link_event(msg: pb.LinkEvent, fallback_time: datetime | None = None) -> LinkEventData:
    """Domain view of a LinkEvent; a missing event_time falls back to the envelope's ce_time."""
    if msg.HasField("event_time"):
        t = timestamp_seconds(msg.event_time)
    elif fallback_time is not None:
        t = fallback_time.timestamp()
    else:
        t = 0.0
    return LinkEventData(msg.link_id, _EVENT_KIND.get(msg.kind, 0), float(msg.capacity_fraction), t)


def link_event_proto(link_id: str, kind: int, capacity_fraction: float = 0.0, time_s: float | None = None,
                     reason: str = "") -> pb.LinkEvent:
    inverse = {v: k for k, v in _EVENT_KIND.items()}
    msg = pb.LinkEvent(link_id=link_id, kind=inverse.get(kind, kind), capacity_fraction=capacity_fraction,
                       reason=reason)
    if time_s is not None:
        set_timestamp(msg.event_time, time_s)
    return msg


@dataclass(frozen=True)
class PortSamples:
    port_ids: list[str]
    tx_bytes: np.ndarray
    rx_bytes: np.ndarray
    time_s: float


def port_samples(msg: tpb.TelemetrySamples, fallback_time: datetime | None = None) -> PortSamples:
    """Link counters of one telemetry batch; raises InvalidArgument when the parallel arrays disagree."""
    links = msg.batch.links
    n = len(links.port_id)
    if len(links.tx_bytes) != n or len(links.rx_bytes) != n:
        raise InvalidArgument("batch.links", f"{n} port_id but {len(links.tx_bytes)} tx_bytes and "
                                             f"{len(links.rx_bytes)} rx_bytes (parallel arrays)")
    if msg.batch.HasField("sample_time"):
        t = timestamp_seconds(msg.batch.sample_time)
    elif fallback_time is not None:
        t = fallback_time.timestamp()
    else:
        raise InvalidArgument("batch.sample_time", "missing (needed to turn counters into rates)")
    return PortSamples(list(links.port_id), np.fromiter(links.tx_bytes, dtype=np.float64, count=n),
                       np.fromiter(links.rx_bytes, dtype=np.float64, count=n), t)
