"""Communication of a training step: which collectives on which groups, and a small built-in time estimate.

The step model asks a ``CommTimer`` -- any callable ``CollectiveCall -> seconds`` -- for the time of each
collective. The live service plugs in the fabric twin's ``FabricSimulationService`` (the job's real GPU ids and
live link health); ``link_model_timer`` is the built-in bandwidth/latency estimate used by validation and
tests. (Services never import each other, so the jobs twin cannot call the fabric twin's numpy core directly:
``twin.core.importrules`` forbids it in every module of a service, validate.py included.)

Group geometry (Megatron-Core rank order, TP fastest, then CP, then DP, then PP; EP groups are ``ep``
consecutive ranks of the CP x DP dimension): a group of ``n`` ranks whose members are ``stride`` ranks apart
has ``min(n, domain // stride)`` members (at least 1) in each NVLink domain it touches, ranks packed densely
onto GPUs in rank order (what schedulers and torchrun do with whole nodes).

Built-in estimate (``LinkModel``), per GPU and direction, NCCL's algorithms reduced to their bandwidth terms
(NCCL docs / nccl-tests PERFORMANCE.md bus-bandwidth conventions):

* inside one NVLink domain: ring all-gather / reduce-scatter move (n-1)/n of the buffer at the NVLink bandwidth;
  all-reduce uses NVLink SHARP where the switches have it (Hopper, Blackwell: each GPU sends its buffer once,
  S (n+1)/n bytes, at ``NVLS_EFFICIENCY`` of NVLink), else a ring (2(n-1)/n);
* across domains: a ring's bus bandwidth is min(NVLink, r x NIC), r = the group's ranks per domain (each GPU
  owns its rail NIC; rail-optimized fabric); all-to-all sends (r-1)/n of the buffer over NVLink and (n-r)/n over
  the NIC concurrently (the slower side wins, point-to-point at ``P2P_EFFICIENCY``); send/recv one buffer over
  NVLink or the NIC;
* latency: NCCL's Simple-protocol base (8.4 us, tuning.cc) plus, across domains, 2 log2(domains) network steps
  of 14 us (NCCL tree/NVLS-tree network latency, tuning.cc hwLat NET Simple).

MoE expert-parallel traffic (``moe_dispatch`` / ``moe_combine`` calls, each carrying its ``MoeTraffic``): the live
service asks the fabric twin's ``EstimateMoe`` for the job's EP group (NCCL all-to-all, DeepEP normal or
low-latency kernels, node-limited routing). The built-in fallback times every kernel as NCCL's all-to-all of the
per-(token, expert) copies, ``size_bytes`` = tokens x top-k x bytes per token (what Megatron's all-to-all
dispatcher and DeepEP's low-latency kernels send; DeepEP's normal kernels send a token once per remote NVLink
domain, so for them the fallback is an upper bound -- the fabric twin models the de-duplication, the job twin's
own estimate does not).

``degrade`` (0..1] scales the network bandwidth: a failed or congested uplink on the job's path, as the fabric
twin reports it; 1 = healthy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .hardware import GpuSpec
from .spec import MOE_KERNELS

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "alltoall", "send_recv", "moe_dispatch", "moe_combine")
MOE_COLLECTIVES = ("moe_dispatch", "moe_combine")
KINDS = ("tp", "cp", "dp", "ep", "pp")
#: FP8 activations carry one FP32 scale per 128-element block (DeepSeek-V3 technical report, arXiv 2412.19437,
#: sec. 3.3: 1x128 activation tiles; DeepEP passes FP8 as data + scale factors)
FP8_SCALE_BLOCK = 128
FP8_SCALE_BYTES = 4.0

#: NCCL Simple-protocol base latency, us (src/graph/tuning.cc baseLat, ring/tree Simple)
BASE_LATENCY_US = 8.4
#: NCCL network step latency, Simple protocol, us (tuning.cc hwLat[NET] tree/NVLS-tree Simple)
NET_STEP_LATENCY_US = 14.0
#: NVLink SHARP reaches 85 % of NVLink bandwidth on Hopper, 74 % on Blackwell (NCCL tuning.cc nvlsEfficiency)
NVLS_EFFICIENCY = {"hopper": 0.85, "blackwell": 0.74}
#: point-to-point (alltoall, send/recv) reaches ~85 % of NVLink (fewer channels per peer; fabric twin's value)
P2P_EFFICIENCY = 0.85


@dataclass(frozen=True)
class CommGroup:
    """A communicator: ``n_ranks`` ranks, ``ranks_per_domain`` of them per NVLink domain."""

    n_ranks: int
    ranks_per_domain: int

    def __post_init__(self) -> None:
        if self.n_ranks < 1 or not 1 <= self.ranks_per_domain <= self.n_ranks:
            raise ValueError(f"bad group: n_ranks={self.n_ranks}, ranks_per_domain={self.ranks_per_domain}")

    @property
    def n_domains(self) -> int:
        return -(-self.n_ranks // self.ranks_per_domain)


def moe_bytes_per_token(hidden: int, precision: str) -> float:
    """Bytes of one token's hidden vector on the wire: BF16 2 per element; FP8 1 per element + its scales."""
    if precision == "fp8":
        return float(hidden) + FP8_SCALE_BYTES * math.ceil(hidden / FP8_SCALE_BLOCK)
    return 2.0 * hidden


@dataclass(frozen=True)
class MoeTraffic:
    """One MoE dispatch or combine of an EP group: ``tokens`` per rank, hidden size, top-k of ``experts`` routed
    experts over the group, wire precision, kernel, and node-limited routing (``max_nodes`` per token, 0 = none)."""

    kernel: str
    tokens: int
    hidden: int
    top_k: int
    experts: int
    precision: str = "bf16"
    max_nodes: int = 0

    def __post_init__(self) -> None:
        if self.kernel not in MOE_KERNELS:
            raise ValueError(f"kernel must be one of {MOE_KERNELS}, got {self.kernel!r}")
        if self.precision not in ("bf16", "fp8"):
            raise ValueError(f"precision must be bf16 or fp8, got {self.precision!r}")
        for name in ("tokens", "hidden", "top_k", "experts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.top_k > self.experts:
            raise ValueError(f"top_k={self.top_k} exceeds experts={self.experts}")
        if self.max_nodes < 0:
            raise ValueError("max_nodes must be >= 0")

    @property
    def logical_bytes(self) -> float:
        """tokens x top-k x bytes per token: the per-(token, expert) copies a rank sends."""
        return float(self.tokens) * self.top_k * moe_bytes_per_token(self.hidden, self.precision)


@dataclass(frozen=True)
class CollectiveCall:
    """One collective of a step: ``kind`` (tp/cp/dp/ep/pp), NCCL collective, buffer bytes (nccl-tests "size"
    convention: all-reduce buffer, total all-gather output / reduce-scatter input, per-rank all-to-all buffer,
    bytes one rank sends in send/recv) and the group."""

    kind: str
    collective: str
    size_bytes: float
    group: CommGroup
    moe: MoeTraffic | None = None  # set exactly for moe_dispatch / moe_combine

    def __post_init__(self) -> None:
        if (self.moe is not None) != (self.collective in MOE_COLLECTIVES):
            raise ValueError(f"{self.collective}: a MoeTraffic is required for, and only for, {MOE_COLLECTIVES}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.collective not in COLLECTIVES:
            raise ValueError(f"collective must be one of {COLLECTIVES}, got {self.collective!r}")
        if not self.size_bytes >= 0:
            raise ValueError("size_bytes must be >= 0")


CommTimer = Callable[[CollectiveCall], float]


def group_for(n_ranks: int, stride: int, domain: int) -> CommGroup:
    """Geometry of a group of ``n_ranks`` ranks ``stride`` apart on GPUs packed ``domain`` per NVLink domain."""
    per = 1 if stride >= domain else max(1, domain // stride)
    return CommGroup(n_ranks, min(n_ranks, per))


@dataclass(frozen=True)
class LinkModel:
    """Per-GPU bandwidths (GB/s, one direction) and NVLink SHARP availability of one cluster."""

    nvlink_GBps: float
    nic_GBps: float
    nvls_efficiency: float = 0.0  # 0 = no NVLink SHARP
    degrade: float = 1.0

    def __post_init__(self) -> None:
        if not self.nvlink_GBps > 0 or not self.nic_GBps > 0:
            raise ValueError("nvlink_GBps and nic_GBps must be > 0")
        if not 0.0 < self.degrade <= 1.0:
            raise ValueError(f"degrade must be in (0, 1], got {self.degrade}")

    @classmethod
    def for_gpu(cls, gpu: GpuSpec, nic_Gbps: float | None = None, degrade: float = 1.0) -> LinkModel:
        from .hardware import NIC_PAYLOAD_EFFICIENCY

        nic = gpu.nic_GBps if nic_Gbps is None else nic_Gbps / 8.0 * NIC_PAYLOAD_EFFICIENCY
        return cls(gpu.nvlink_GBps, nic, NVLS_EFFICIENCY.get(gpu.arch, 0.0), degrade)

    def time_s(self, call: CollectiveCall) -> float:
        g = call.group
        n, r, s = float(g.n_ranks), float(g.ranks_per_domain), float(call.size_bytes)
        if g.n_ranks <= 1 or s == 0.0:
            return 0.0
        nvl = self.nvlink_GBps * 1e9
        nic = self.nic_GBps * 1e9 * self.degrade
        multi = g.n_domains > 1
        lat = BASE_LATENCY_US * 1e-6
        if multi:
            lat += 2.0 * math.ceil(math.log2(g.n_domains)) * NET_STEP_LATENCY_US * 1e-6
        c = call.collective
        if c in ("all_reduce", "all_gather", "reduce_scatter"):
            frac = (n - 1.0) / n
            if multi:
                bus = min(nvl, r * nic)
                bw_s = (2.0 if c == "all_reduce" else 1.0) * frac * s / bus
            elif c == "all_reduce" and self.nvls_efficiency > 0 and n > 2:
                bw_s = min(s * (n + 1.0) / n / (nvl * self.nvls_efficiency), 2.0 * frac * s / nvl)
            else:
                bw_s = (2.0 if c == "all_reduce" else 1.0) * frac * s / nvl
        elif c in ("alltoall", "moe_dispatch", "moe_combine"):
            bw_s = max(s * (r - 1.0) / n / (nvl * P2P_EFFICIENCY), s * (n - r) / n / nic if multi else 0.0)
            if multi:
                lat += (n - r) * 1e-6  # NCCL proxy post per remote peer (tuning.cc getNetOverhead, 1 us)
        else:  # send_recv
            bw_s = s / (nic if multi else nvl * P2P_EFFICIENCY)
        return lat + bw_s


def link_model_timer(model: LinkModel) -> CommTimer:
    """The built-in estimate as a ``CommTimer``."""
    return model.time_s
