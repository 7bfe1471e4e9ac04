"""Collective-communication time model in the spirit of NCCL's own cost model (src/graph/tuning.cc).

For every (algorithm, protocol) the time is ``latency + size * seconds_per_byte`` and, as NCCL does,
the fastest candidate is chosen per call and reported. Everything is vectorized over numpy arrays:
collectives x sizes x placements broadcast against each other; the only Python loop is over the
small fixed set of candidate (algorithm, protocol) pairs.

Size convention (nccl-tests): ``size_bytes`` is the buffer nccl-tests prints in its "size" column:
the all-reduce buffer, the *total* all-gather output / reduce-scatter input (n x per-rank chunk),
the per-rank alltoall buffer, the broadcast/reduce buffer, the bytes one rank sends in send/recv.
Bus bandwidth: algbw x 2(n-1)/n (all_reduce), x (n-1)/n (all_gather, reduce_scatter, alltoall),
x 1 otherwise; algbw = size / time.

Bandwidth physics per GPU (B_nvl = usable NVLink bandwidth, B_nic = usable NIC bandwidth per GPU,
g = ranks per NVLink domain, d = domains, n = ranks):

* Ring: every channel's ring enters/leaves each domain once, and a domain's g GPUs each own their
  NICs (rail-optimized), so ring bus bandwidth = min(B_nvl, g x B_nic) (x 0.92 LL128, x 0.5 LL capped
  by NCCL's llMaxBw). Steps: 2(n-1) for all-reduce, n-1 for all-gather / reduce-scatter, of which
  2(d-1) resp. d-1 cross the network.
* Tree (all-reduce): bus bandwidth x 0.92, algbw = bus/2, latency 2 x ((g-1) intra + log2(d) inter)
  steps (NCCL's double binary tree).
* NVLS (all-reduce inside one domain with NVLink SHARP): each GPU pushes its buffer into the switch
  once (multimem reduce-load of its 1/n slice, multicast store of the result): S (1 + 1/n) bytes per
  direction -> algbw = B_nvl x eff_nvls x n/(n+1).
* NVLS-tree (hierarchical all-reduce across domains): NVLS reduce-scatter inside the domain, each
  GPU's NIC carries only its 1/g slice across the network (tree: S/g each way for d <= 2, twice that
  for d > 2), then NVLS all-gather; the stages are pipelined, so time = max(NVLink stage, NIC stage).
* Alltoall / send-recv (pairwise p2p): a rank sends S (g-1)/n over NVLink and S (n-g)/n over its
  NICs concurrently; bandwidth = the slower of the two (p2p reaches ``P2P_EFFICIENCY`` of NVLink).
* Spine: traffic between leaf groups crosses the leaf->spine uplinks of each rail leaf, whose
  capacity is nodes_per_leaf x B_nic / oversubscription x (available fraction from live state);
  rings/trees put 1-2 flows per rail leaf on them, alltoall puts k x phi (k = job nodes under the
  leaf, phi = share of NIC traffic leaving the leaf group).

Latencies use NCCL's published per-(algorithm, protocol) base and per-hop constants (NVLink and
network), NCCL's 1 us per network-step proxy overhead, the transport's extra per-message latency
(EFA) and switch hop latencies (1 switch inside a leaf group, 3 across the spine).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .placement import Placement
from .topology import FabricTopology

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "alltoall", "send_recv")
ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, BROADCAST, REDUCE, ALLTOALL, SEND_RECV = range(7)
ALGORITHMS = ("ring", "tree", "nvls", "nvls_tree", "pairwise")
RING, TREE, NVLS, NVLS_TREE, PAIRWISE = range(5)
NO_ALGORITHM = -1  # single-rank or zero-byte calls: nothing to communicate
PROTOCOLS = ("LL", "LL128", "Simple")
LL, LL128, SIMPLE = range(3)

_ALIASES = {"allreduce": "all_reduce", "allgather": "all_gather", "reducescatter": "reduce_scatter",
            "all_to_all": "alltoall", "alltoallv": "alltoall", "sendrecv": "send_recv", "send": "send_recv",
            "recv": "send_recv", "p2p": "send_recv", "bcast": "broadcast"}

# --- NCCL cost-model constants (microseconds; from NCCL's tuning.cc, NCCL 2.19-2.27) --------------
# index [protocol] = (LL, LL128, Simple)
BASE_LAT_US = {RING: (6.6, 14.0, 8.4), TREE: (6.8, 14.0, 8.4), NVLS: (0.0, 0.0, 0.0), NVLS_TREE: (0.0, 0.0, 0.0)}
NVLINK_LAT_US = {RING: (0.6, 1.9, 3.4), TREE: (0.6, 1.25, 4.0), NVLS: (0.0, 0.0, 25.0), NVLS_TREE: (0.0, 0.0, 25.0)}
NET_LAT_US = {RING: (2.7, 4.0, 14.0), TREE: (5.0, 8.5, 14.0), NVLS: (0.0, 0.0, 18.0), NVLS_TREE: (0.0, 0.0, 14.0)}
#: NCCL proxy post overhead per network step (x86), x3 for the Simple protocol
NET_OVERHEAD_US = 1.0
#: LL protocol bus-bandwidth caps (GB/s): single domain by GPU arch, multi-domain by #domains (x86 host)
LL_MAX_BW_SINGLE = {"ampere": 87.7, "hopper": 141.0, "blackwell": 282.0}
LL_MAX_BW_MULTI = (39.0, 20.4)  # 2 domains, >2 domains
#: protocol bandwidth factors: LL carries 8 B data per 16 B line (NCCL models 1/2 for rings and 1/3.8
#: for trees), LL128 120 of 128 B (NCCL uses 0.92 on rings), tree Simple 0.92.
LL128_RING_FACTOR = 0.92
TREE_FACTOR = 0.92
TREE_LL_FACTOR = 1.0 / 3.8
#: point-to-point (alltoall / send-recv) runs with fewer channels per peer than rings; it reaches
#: ~85 % of the usable NVLink bandwidth.
P2P_EFFICIENCY = 0.85


def collective_codes(collective: np.ndarray | str | int | Iterable) -> np.ndarray:
    """Collective names or codes -> int8 codes (raises ValueError on unknown names/codes)."""
    arr = np.asarray(collective)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() >= len(COLLECTIVES)):
            raise ValueError(f"unknown collective code; valid codes 0..{len(COLLECTIVES) - 1} = {COLLECTIVES}")
        return arr.astype(np.int8)
    if arr.dtype.kind not in "USO":
        raise ValueError(f"collective must be names or integer codes, got dtype {arr.dtype}")
    uniq, inv = np.unique(arr.astype(str), return_inverse=True)
    codes = []
    for name in uniq:
        key = str(name).strip().lower().replace("-", "_")
        key = _ALIASES.get(key, key)
        if key not in COLLECTIVES:
            raise ValueError(f"unknown collective {str(name)!r}; known: {', '.join(COLLECTIVES)}")
        codes.append(COLLECTIVES.index(key))
    return np.asarray(codes, dtype=np.int8)[inv].reshape(arr.shape)


def bus_factor(collective: np.ndarray, n_ranks: np.ndarray) -> np.ndarray:
    """nccl-tests busbw / algbw ratio."""
    c = np.asarray(collective)
    n = np.asarray(n_ranks, dtype=np.float64)
    frac = (n - 1.0) / n
    return np.where(c == ALL_REDUCE, 2.0 * frac,
                    np.where((c == ALL_GATHER) | (c == REDUCE_SCATTER) | (c == ALLTOALL), frac, 1.0))


@dataclass(frozen=True, eq=False)
class Estimate:
    """Per-call results, arrays of the broadcast shape. ``algorithm``/``protocol`` are codes into
    ``ALGORITHMS``/``PROTOCOLS`` (-1 = nothing to do)."""

    time_s: np.ndarray
    latency_s: np.ndarray
    bandwidth_s: np.ndarray
    algorithm: np.ndarray
    protocol: np.ndarray
    algbw_GBps: np.ndarray
    busbw_GBps: np.ndarray

    def algorithm_names(self) -> np.ndarray:
        return np.asarray(ALGORITHMS + ("none",))[self.algorithm]

    def protocol_names(self) -> np.ndarray:
        return np.asarray(PROTOCOLS + ("none",))[self.protocol]


def _safe_inv(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(x > 0, 1.0 / np.maximum(x, 1e-300), np.inf)


def _log2i(x: np.ndarray) -> np.ndarray:
    return np.floor(np.log2(np.maximum(x, 1))).astype(np.float64)


def estimate(topology: FabricTopology, collective: np.ndarray | str | int, size_bytes: np.ndarray | float,
             placement: Placement, *, algorithms: Iterable[str] | None = None,
             protocols: Iterable[str] | None = None) -> Estimate:
    """Time of ``collective`` on ``size_bytes`` for ``placement`` (all broadcast together).

    ``algorithms`` / ``protocols`` restrict the candidates like NCCL_ALGO / NCCL_PROTO
    (e.g. ``algorithms=("ring", "tree", "pairwise")`` for NCCL_NVLS_ENABLE=0).
    Live state (failed NICs/uplinks, background utilization) is carried by the placement
    (see ``placement_from_gpu_ids(..., link_state)``).
    """
    coll = collective_codes(collective)
    size = np.asarray(size_bytes, dtype=np.float64)
    if np.isnan(size).any() or (size < 0).any():
        raise ValueError("size_bytes must be >= 0 (got a negative or NaN size)")
    if not isinstance(placement, Placement):
        raise ValueError("placement must be a Placement (see placement_from_gpu_ids / placement_packed)")
    if (placement.n_ranks > topology.n_gpus).any():
        raise ValueError(f"placement has more ranks than the {topology.n_gpus} GPUs of topology {topology.name!r}")
    allowed_a = _allowed(algorithms, ALGORITHMS, "algorithm")
    allowed_p = _allowed(protocols, PROTOCOLS, "protocol")

    coll, size, n_i, d_i, g_i, lg_i, k_i, nicf, spf = np.broadcast_arrays(
        coll, size, placement.n_ranks, placement.n_domains, placement.ranks_per_domain,
        placement.n_leaf_groups, placement.max_nodes_per_leaf_group, placement.nic_fraction,
        placement.spine_fraction)
    n = n_i.astype(np.float64)
    d = d_i.astype(np.float64)
    g = g_i.astype(np.float64)
    k = k_i.astype(np.float64)
    multi = d_i > 1
    crossing = lg_i > 1
    if topology.scale_out is None and multi.any():
        raise ValueError("placement spans several NVLink domains but the topology has no scale-out network")

    su, so = topology.scale_up, topology.scale_out
    b_nvl = su.nvlink_bw_GBps_per_gpu
    b_nic_nom = so.bw_GBps_per_gpu if so is not None else 0.0
    b_nic = b_nic_nom * nicf
    # available uplink bandwidth of one rail leaf, GB/s
    uplink = (so.nodes_per_leaf / so.oversubscription if so is not None else 1.0) * b_nic_nom * spf
    inf = np.inf
    nvl_if_used = np.where(g > 1, b_nvl, inf)

    def net_per_gpu(flows_per_leaf: float) -> np.ndarray:
        return np.where(crossing, np.minimum(b_nic, uplink / flows_per_leaf), b_nic)

    ring_net = net_per_gpu(1.0)
    tree_net = net_per_gpu(2.0)
    ring_bus = np.minimum(nvl_if_used, np.where(multi, g * ring_net, inf))
    tree_bus = TREE_FACTOR * np.minimum(nvl_if_used, np.where(multi, g * tree_net, inf))

    # latency ingredients
    hop_us = 0.0
    net_extra_us = 0.0
    if so is not None:
        hop_us = so.per_hop_latency_s * 1e6
        net_extra_us = so.base_latency_s * 1e6
    hops = np.where(crossing, 3.0, 1.0)
    llmax = np.where(multi, np.where(d_i <= 2, LL_MAX_BW_MULTI[0], LL_MAX_BW_MULTI[1]), LL_MAX_BW_SINGLE[su.arch])
    nvl_hop_us = su.hop_latency_s * 1e6

    is_ar = coll == ALL_REDUCE
    is_agrs = (coll == ALL_GATHER) | (coll == REDUCE_SCATTER)
    is_chain = (coll == BROADCAST) | (coll == REDUCE)
    is_p2p = (coll == ALLTOALL) | (coll == SEND_RECV)
    frac = (n - 1.0) / n
    bf = np.where(is_ar, 2.0 * frac, np.where(is_agrs, frac, 1.0))  # ring bytes/size per rank
    nsteps = np.where(is_ar, 2.0 * (n - 1.0), n - 1.0)
    ninter = np.where(is_ar, 2.0 * (d - 1.0), d - 1.0)

    best_t = np.full(coll.shape, inf)
    best_lat = np.zeros(coll.shape)
    best_c = np.zeros(coll.shape)
    best_a = np.full(coll.shape, NO_ALGORITHM, dtype=np.int8)
    best_p = np.full(coll.shape, NO_ALGORITHM, dtype=np.int8)

    def consider(a: int, p: int, valid: np.ndarray, lat_us: np.ndarray, sec_per_GB: np.ndarray,
                 pipe_us: np.ndarray | float = 0.0) -> None:
        if a not in allowed_a or p not in allowed_p:
            return
        bw_s = size * 1e-9 * sec_per_GB
        if p == SIMPLE:  # pipeline fill of the chunked Simple protocol, optimal chunking
            lat_us = lat_us + pipe_us + 2.0 * np.sqrt(bw_s * 1e6 * pipe_us)
        t = lat_us * 1e-6 + bw_s
        better = valid & (t < best_t)
        np.copyto(best_t, t, where=better)
        np.copyto(best_lat, np.broadcast_to(lat_us * 1e-6, t.shape), where=better)  # incl. pipeline fill
        np.copyto(best_c, np.broadcast_to(sec_per_GB, t.shape), where=better)
        best_a[better] = a
        best_p[better] = p

    def net_lat(a: int, p: int) -> np.ndarray:
        table = NET_LAT_US[a] if a != RING else np.where(g > 1, NET_LAT_US[RING][p], NET_LAT_US[TREE][p])
        base = table[p] if a != RING else table
        return base + net_extra_us * (2.0 if p == SIMPLE else 1.0) + hops * hop_us

    ring_valid = is_ar | is_agrs | is_chain
    for p in (LL, LL128, SIMPLE):
        # --- ring (all collectives except alltoall / send-recv) ----------------------------------
        bus = ring_bus if p == SIMPLE else (LL128_RING_FACTOR * ring_bus if p == LL128 else np.minimum(llmax, 0.5 * ring_bus))
        intra = NVLINK_LAT_US[RING][p] + nvl_hop_us
        intra = np.where(multi, max(intra, NET_OVERHEAD_US * (3.0 if p == SIMPLE else 1.0)), intra)
        steps_us = (nsteps - ninter) * intra + ninter * net_lat(RING, p)
        lat = BASE_LAT_US[RING][p] + steps_us
        pipe = np.maximum(steps_us - intra, 0.0)  # all steps but the first
        consider(RING, p, ring_valid, lat, bf * _safe_inv(bus), pipe)
        # --- tree (all-reduce) --------------------------------------------------------------------
        tbus = tree_bus if p == SIMPLE else (
            tree_bus * np.where(multi, 120.0 / 128.0, 7.0 / 9.0) if p == LL128 else np.minimum(tree_bus * TREE_LL_FACTOR, llmax))
        steps_us = 2.0 * ((g - 1.0) * (NVLINK_LAT_US[TREE][p] + nvl_hop_us) + _log2i(d) * net_lat(TREE, p))
        consider(TREE, p, is_ar & (n > 1), BASE_LAT_US[TREE][p] + steps_us, 2.0 * _safe_inv(tbus), steps_us)

    # --- NVLS (single domain) and NVLS-tree (across domains) ------------------------------------
    if su.nvls:
        b_nvls = b_nvl * su.nvls_efficiency
        nvls_ok = (g >= 2) & ~multi
        lat = np.full(coll.shape, NVLINK_LAT_US[NVLS][SIMPLE] + nvl_hop_us)
        nvl_step = NVLINK_LAT_US[RING][SIMPLE] + nvl_hop_us  # reduce stage -> multicast stage
        consider(NVLS, SIMPLE, is_ar & nvls_ok, lat, (n + 1.0) / n / b_nvls, nvl_step)
        consider(NVLS, SIMPLE, is_agrs & nvls_ok, lat, frac / b_nvls, nvl_step)
        if so is not None:
            net_share = np.where(d_i <= 2, 1.0, 2.0) / np.maximum(g * tree_net, 1e-300)
            c = np.maximum((g + 1.0) / g / b_nvls, np.where(tree_net > 0, net_share, inf))
            net_steps = 2.0 * _log2i(d) * net_lat(NVLS_TREE, SIMPLE)
            lat = NVLINK_LAT_US[NVLS_TREE][SIMPLE] + nvl_hop_us + net_steps
            consider(NVLS_TREE, SIMPLE, is_ar & (g >= 2) & multi, lat, c, net_steps + nvl_step)

    # --- pairwise p2p: alltoall and send/recv ---------------------------------------------------
    is_a2a = coll == ALLTOALL
    nvl_bytes = np.where(is_a2a, (g - 1.0) / n, np.where(multi, 0.0, 1.0))
    net_bytes = np.where(is_a2a, (n - g) / n, np.where(multi, 1.0, 0.0))
    # share of NIC traffic that leaves the leaf group, and job NICs per rail leaf sending it
    ranks_in_group = np.minimum(k * topology.gpus_per_node, n)
    phi = np.clip((n - ranks_in_group) / np.maximum(n - g, 1.0), 0.0, 1.0)
    # bytes one rail leaf pushes up per byte of a rank's NIC traffic: k NICs x share phi leaving the group
    up_load = np.where(is_a2a, k * phi, 1.0)
    c_nvl = nvl_bytes / (b_nvl * P2P_EFFICIENCY)
    c_net = np.where(net_bytes > 0, net_bytes * _safe_inv(b_nic), 0.0)
    c_spine = np.where(crossing & (net_bytes > 0) & (up_load > 0), net_bytes * up_load * _safe_inv(uplink), 0.0)
    c_p2p = np.maximum(np.maximum(c_nvl, c_net), c_spine)
    for p in (LL, SIMPLE):
        lat = (BASE_LAT_US[RING][p] + NVLINK_LAT_US[RING][p] + nvl_hop_us
               + np.where(multi, net_lat(RING, p) + (n - g) * NET_OVERHEAD_US * is_a2a, 0.0))
        consider(PAIRWISE, p, is_p2p & (n > 1), lat, c_p2p * (2.0 if p == LL else 1.0),
                 NVLINK_LAT_US[RING][SIMPLE] + nvl_hop_us)

    # nothing to communicate: one rank or zero bytes
    idle = (n_i <= 1) | (size == 0)
    best_t = np.where(idle, 0.0, best_t)
    best_lat = np.where(idle, 0.0, best_lat)
    best_c = np.where(idle, 0.0, best_c)
    best_a = np.where(idle, NO_ALGORITHM, best_a).astype(np.int8)
    best_p = np.where(idle, NO_ALGORITHM, best_p).astype(np.int8)
    if (~idle & ~np.isfinite(best_t) & (best_a == NO_ALGORITHM)).any() and (allowed_a != set(range(len(ALGORITHMS)))):
        raise ValueError("no allowed algorithm/protocol can run some of the requested collectives")
    with np.errstate(divide="ignore", invalid="ignore"):
        algbw = np.where(best_t > 0, size / best_t * 1e-9, 0.0)
    busbw = algbw * np.where(idle, 0.0, bus_factor(coll, np.maximum(n, 1.0)))
    return Estimate(best_t, best_lat, size * 1e-9 * best_c, best_a, best_p, algbw, busbw)


def _allowed(names: Iterable[str] | None, table: tuple[str, ...], what: str) -> set[int]:
    if names is None:
        return set(range(len(table)))
    lower = [t.lower() for t in table]
    out = set()
    for name in names:
        if name.lower() not in lower:
            raise ValueError(f"unknown {what} {name!r}; known: {', '.join(table)}")
        out.add(lower.index(name.lower()))
    return out
