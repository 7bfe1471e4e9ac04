"""MoE expert-parallel traffic: token dispatch and combine times for an EP group (vectorized over cases).

An EP group of N ranks holds E routed experts (E/N per rank); each of a rank's T tokens picks its top-k experts.
Dispatch sends each token's hidden vector to the ranks of its experts, combine sends the experts' outputs back.
Three implementations, each from its published design:

* ``nccl_alltoall`` (e.g. Megatron's all-to-all token dispatcher): tokens are permuted per expert, so a rank sends
  T x k rows, split evenly over the N ranks (self included), through NCCL's pairwise all-to-all: NVLink inside the
  NVLink domain, NICs across. Timed by the NCCL collective model (``collectives.estimate``, alltoall of a per-rank
  buffer of T x k x bytes-per-token), so its channels, latencies and spine sharing are the collective model's.
* ``deepep_normal`` (DeepEP's high-throughput kernels [DEEPEP]: "NVLink forwarding + RDMA"): a token crosses the
  network once per *remote NVLink domain* holding one of its experts (to the GPU of the same rail), and that GPU
  forwards it over NVLink to the ranks in its domain that hold its experts. RDMA and NVLink stages run pipelined:
  time = the slower stage + a fixed latency. With node-limited routing (DeepSeek-V3: each token's experts lie on
  at most 4 nodes [DSV3]) fewer domains are hit.
* ``deepep_low_latency`` (DeepEP's low-latency kernels [DEEPEP]: pure RDMA through IBGDA, for decoding): every
  (token, expert) pair is its own message, no de-duplication and no forwarding; peers inside the NVLink domain are
  reached over NVLink (DeepEP V1's default ``allow_nvlink_for_low_latency_mode``), the others over the NICs.

Expected traffic with uniform routing (experts of a token are k distinct experts, each set equally likely, within
the ``max_nodes_per_token`` domains a token may use, those domains equally likely): the chance that a given rank /
domain holds none of a token's k experts is hypergeometric, prod_i (A - b - i) / (A - i) for b of the A eligible
experts on it. Byte counts are per rank (every rank sends as much as it receives, by symmetry), in bytes of the
hidden vector: BF16 = 2 B per element; FP8 = 1 B per element plus one FP32 scale per 128-element block (DeepSeek-V3
fine-grained quantization, 1x128 activation tiles [DSV3 3.3]; DeepEP passes FP8 as (data, scale factors) [DEEPEP]).

Fixed latency: DeepEP publishes no breakdown, so each DeepEP call pays NCCL's Simple-protocol latency of one p2p
step (kernel base + one NVLink step, + one network step with the transport's extra latency and 3 switch hops when
the group spans domains), the same constants the collective model uses. Bandwidths are the topology's usable
NVLink (x NCCL's p2p efficiency) and NIC bandwidth per GPU (x the live NIC fraction), and when the group spans leaf
groups each rail leaf's uplinks carry k x phi NIC streams as in the collective model's alltoall.

Sources: [DEEPEP] github.com/deepseek-ai/DeepEP, README and docs/legacy.md (V1 kernels, H800 + CX7 400 Gb/s IB).
[DSV3] DeepSeek-V3 Technical Report, arXiv 2412.19437: 256 routed experts, top-8, node-limited routing to at most
4 nodes (sec. 2.1.2 / 3.2.2), FP8 dispatch and BF16 combine (sec. 3.3.4), 1x128 activation quantization tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .collectives import NET_LAT_US, P2P_EFFICIENCY, RING, SIMPLE, _topo_constants, estimate
from .placement import Placement, placement_arrays
from .topology import FabricTopology

MOE_KERNELS = ("nccl_alltoall", "deepep_normal", "deepep_low_latency")
PRECISIONS = ("fp8", "bf16")
FP8_SCALE_BLOCK = 128  # elements per FP32 scale factor [DSV3 3.3: 1x128 tiles for activations]
FP8_SCALE_BYTES = 4.0  # one FP32 scale
MAX_TOP_K = 64  # the hypergeometric product loops over k; DeepSeek-V3 uses 8, Qwen3/Mixtral 8/2


def bytes_per_token(hidden: np.ndarray | int, precision: np.ndarray | str) -> np.ndarray:
    """Bytes of one token's hidden vector on the wire (FP8 carries its per-128-element FP32 scales)."""
    h = np.asarray(hidden, dtype=np.float64)
    fp8 = np.asarray(precision) == "fp8"
    return np.where(fp8, h + FP8_SCALE_BYTES * np.ceil(h / FP8_SCALE_BLOCK), 2.0 * h)


def _p_none(total: np.ndarray, on_it: np.ndarray, k: np.ndarray) -> np.ndarray:
    """P(none of k distinct picks among `total` items falls on the `on_it` given ones): hypergeometric."""
    out = np.ones(np.broadcast(total, on_it, k).shape)
    for i in range(int(np.max(k)) if np.size(k) else 0):
        step = np.clip((total - on_it - i) / np.maximum(total - i, 1.0), 0.0, 1.0)
        out = out * np.where(i < k, step, 1.0)
    return out


@dataclass(frozen=True)
class MoeEstimate:
    """Arrays, one element per case. Bytes are per rank and per call; times in seconds."""

    dispatch_s: np.ndarray
    combine_s: np.ndarray
    dispatch_nvlink_bytes: np.ndarray  # bytes a rank sends over NVLink (forwarding included)
    dispatch_network_bytes: np.ndarray  # bytes a rank sends through its NICs
    combine_nvlink_bytes: np.ndarray
    combine_network_bytes: np.ndarray
    dispatch_logical_bytes: np.ndarray  # T x k x bytes per token: what the experts receive for this rank's tokens
    combine_logical_bytes: np.ndarray
    domains_per_token: np.ndarray  # expected NVLink domains holding a token's experts (own included)
    ranks_per_token: np.ndarray  # expected ranks holding a token's experts (own included)


def moe_checks(kernel, tokens, hidden, top_k, n_experts, ep_ranks, dispatch, combine,
               max_nodes) -> list[tuple[str, str, np.ndarray]]:
    """(field, reason, mask of the offending cases) for every failed check (empty: valid). Inputs broadcast."""
    k_ = np.asarray(kernel)
    checks = [
        ("kernel", ~np.isin(k_, MOE_KERNELS), f"must be one of {', '.join(MOE_KERNELS)}"),
        ("tokens_per_rank", np.asarray(tokens) < 1, "must be >= 1"),
        ("tokens_per_rank", np.asarray(tokens) > 1 << 24, "must be <= 16,777,216"),
        ("hidden_size", np.asarray(hidden) < 1, "must be >= 1"),
        ("hidden_size", np.asarray(hidden) > 1 << 20, "must be <= 1,048,576"),
        ("top_k", np.asarray(top_k) < 1, "must be >= 1"),
        ("top_k", np.asarray(top_k) > MAX_TOP_K, f"must be <= {MAX_TOP_K}"),
        ("num_experts", np.asarray(n_experts) < np.asarray(top_k), "must be >= top_k"),
        ("num_experts", np.asarray(n_experts) % np.maximum(np.asarray(ep_ranks), 1) != 0,
         "must be a multiple of the EP group's ranks (experts are spread evenly)"),
        ("dispatch_precision", ~np.isin(np.asarray(dispatch), PRECISIONS), "must be fp8 or bf16"),
        ("combine_precision", ~np.isin(np.asarray(combine), PRECISIONS), "must be fp8 or bf16"),
        ("combine_precision", (np.asarray(combine) == "fp8") & (k_ != "nccl_alltoall"),
         "DeepEP combines in BF16 only"),
        ("max_nodes_per_token", np.asarray(max_nodes) < 0, "must be >= 0 (0 = no node limit)"),
    ]
    return [(f, why, np.asarray(bad)) for f, bad, why in checks if np.any(bad)]


def moe_errors(kernel, tokens, hidden, top_k, n_experts, ep_ranks, dispatch, combine, max_nodes) -> list[tuple[str, str]]:
    """(field, reason) of every failed check (empty: valid). Inputs broadcast together."""
    return [(f, why) for f, why, _ in moe_checks(kernel, tokens, hidden, top_k, n_experts, ep_ranks, dispatch,
                                                  combine, max_nodes)]


def moe_times(topology: FabricTopology, kernel, tokens, hidden, top_k, n_experts, ep_ranks=None, *,
              dispatch="fp8", combine="bf16", max_nodes_per_token=0, placement: Placement | None = None) -> MoeEstimate:
    """Dispatch and combine of every case (all inputs broadcast; ``placement`` defaults to ``ep_ranks`` ranks packed
    into full NVLink domains). Raises ValueError naming the first invalid input."""
    if placement is None:
        if ep_ranks is None:
            raise ValueError("ep_ranks: give the EP group size or a placement")
        placement = placement_arrays(topology, np.asarray(ep_ranks, dtype=np.int64))
    n_ranks = placement.n_ranks if ep_ranks is None else np.asarray(ep_ranks, dtype=np.int64)
    errs = moe_errors(kernel, tokens, hidden, top_k, n_experts, n_ranks, dispatch, combine, max_nodes_per_token)
    if errs:
        raise ValueError("; ".join(f"{f}: {why}" for f, why in errs))
    kern, t, h, k, e, n, disp, comb, mx, pl = np.broadcast_arrays(
        np.asarray(kernel), np.asarray(tokens, dtype=np.float64), np.asarray(hidden, dtype=np.float64),
        np.asarray(top_k, dtype=np.float64), np.asarray(n_experts, dtype=np.float64), n_ranks.astype(np.float64),
        np.asarray(dispatch), np.asarray(combine), np.asarray(max_nodes_per_token, dtype=np.float64),
        np.arange(int(np.prod(placement.shape)) or 1).reshape(placement.shape or ()))
    pl_flat = pl.astype(np.int64)

    def from_pl(a: np.ndarray) -> np.ndarray:
        return np.asarray(a, dtype=np.float64).reshape(-1)[pl_flat] if np.ndim(a) else np.full(pl.shape, float(a))

    d = from_pl(placement.n_domains)
    g = from_pl(placement.ranks_per_domain)
    nicf = from_pl(placement.nic_fraction)
    spf = from_pl(placement.spine_fraction)
    lg = from_pl(placement.n_leaf_groups)
    kk = from_pl(placement.max_nodes_per_leaf_group)

    # -- expected routing ---------------------------------------------------------------------------------
    per_rank = e / n
    per_dom = per_rank * g
    m = np.where(mx > 0, np.minimum(mx, d), d)  # domains a token may use
    pool = m * per_dom  # experts eligible for one token
    k_eff = np.minimum(k, pool)
    chosen = m / d  # chance a given domain is among a token's allowed ones
    p_dom = chosen * (1.0 - _p_none(pool, per_dom, k_eff))
    p_rank = chosen * (1.0 - _p_none(pool, per_rank, k_eff))

    c = _topo_constants(topology)
    b_nvl = c.b_nvl * P2P_EFFICIENCY
    b_nic = np.maximum(c.b_nic_nom * nicf, 1e-300)
    multi = d > 1
    crossing = lg > 1
    # NIC streams one rail leaf pushes up per byte a rank sends (the collective model's alltoall sharing)
    ranks_in_group = np.minimum(kk * topology.gpus_per_node, n)
    phi = np.clip((n - ranks_in_group) / np.maximum(n - g, 1.0), 0.0, 1.0)
    uplink = np.maximum(c.uplink_nom * spf, 1e-300)
    net_lat_s = (NET_LAT_US[RING][SIMPLE] + c.net_extra_us + 3.0 * c.hop_us) * 1e-6
    lat = (c.base_us[RING][SIMPLE] + c.nvl_step_us[RING][SIMPLE]) * 1e-6 + np.where(multi, net_lat_s, 0.0)

    def p2p_time(nvl_bytes: np.ndarray, net_bytes: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t_net = np.where(net_bytes > 0, net_bytes / (b_nic * 1e9), 0.0)
            t_up = np.where(crossing & (net_bytes > 0), net_bytes * kk * phi / (uplink * 1e9), 0.0)
            t_nvl = nvl_bytes / (b_nvl * 1e9)
        t_bw = np.maximum(np.maximum(t_nvl, t_net), t_up)
        return np.where(c.b_nic_nom * nicf > 0, t_bw, np.where(net_bytes > 0, np.inf, t_bw)) + lat

    out: dict[str, list[np.ndarray]] = {}
    is_nccl = kern == "nccl_alltoall"
    is_normal = kern == "deepep_normal"
    for phase, prec in (("dispatch", disp), ("combine", comb)):
        bpt = bytes_per_token(h, prec)
        logical = t * k * bpt
        # per-expert copies split evenly over ranks (NCCL alltoall, DeepEP low-latency)
        a2a_nvl = logical * (g - 1.0) / n
        a2a_net = logical * (n - g) / n
        # DeepEP normal: once per remote domain over RDMA, forwarded over NVLink to the hit ranks of each domain
        fwd_net = t * bpt * (d - 1.0) * p_dom
        fwd_nvl = t * bpt * (g - 1.0) * d * p_rank
        nvl = np.where(is_normal, fwd_nvl, a2a_nvl)
        net = np.where(is_normal, fwd_net, a2a_net)
        time_s = p2p_time(nvl, net)
        if is_nccl.any():
            sel = np.flatnonzero(is_nccl.reshape(-1))
            sub = placement[np.unravel_index(pl_flat.reshape(-1)[sel], placement.shape)] if placement.shape \
                else placement
            est = estimate(topology, "alltoall", np.maximum(logical.reshape(-1)[sel], 1.0), sub)
            flat = time_s.reshape(-1).copy()
            flat[sel] = np.broadcast_to(est.time_s, sel.shape)
            time_s = flat.reshape(time_s.shape)
        out[phase] = [time_s, nvl, net, logical]
    return MoeEstimate(
        dispatch_s=out["dispatch"][0], combine_s=out["combine"][0],
        dispatch_nvlink_bytes=out["dispatch"][1], dispatch_network_bytes=out["dispatch"][2],
        combine_nvlink_bytes=out["combine"][1], combine_network_bytes=out["combine"][2],
        dispatch_logical_bytes=out["dispatch"][3], combine_logical_bytes=out["combine"][3],
        domains_per_token=d * p_dom, ranks_per_token=n * p_rank)
