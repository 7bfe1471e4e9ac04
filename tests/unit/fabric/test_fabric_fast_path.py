"""The single-estimate path runs the same formulas as the batch path, and small-message physics.

``estimate`` evaluates one (collective, size, placement) on Python floats and anything larger with
numpy, through one shared implementation; these tests pin that both give bit-identical answers, that
predicted time never decreases with size for one (algorithm, protocol) (the chosen time drops only at NCCL's coded p2p
protocol threshold or where NCCL's own estimate switches), and the channel-parallelism / tree-correction effects.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from twin.fabric.domain import COLLECTIVES, PRESETS, estimate, placement_arrays, placement_packed, preset
from twin.fabric.domain.collectives import (
    ALGORITHMS,
    CHANNEL_MIN_BYTES,
    LL,
    PROTOCOLS,
    TREE_CORRECTION,
    _topo_constants,
    p2p_ll_threshold_bytes,
)

FIELDS = ("time_s", "latency_s", "bandwidth_s", "algorithm", "protocol", "algbw_GBps", "busbw_GBps")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_scalar_path_is_bit_identical_to_vector_path(name):
    topo = preset(name)
    rng = np.random.default_rng(7)
    sizes = np.concatenate([[0.0, 1.0, 8.0, 4096.0, 65536.0, 2.0**20, 2.0**30], rng.integers(1, 2**40, 12)])
    for n in (1, 2, 4, 8, 24, 64, 256):
        for policy in ("pack", "spread"):
            pl = placement_packed(topo, n, policy)
            for nic, spine in ((1.0, 1.0), (0.5, 0.3), (0.0, 0.0)):
                live = placement_arrays(topo, n, n_nodes=int(pl.n_nodes), n_domains=int(pl.n_domains),
                                        ranks_per_domain=int(pl.ranks_per_domain),
                                        n_leaf_groups=int(pl.n_leaf_groups),
                                        max_nodes_per_leaf_group=int(pl.max_nodes_per_leaf_group),
                                        nic_fraction=nic, spine_fraction=spine)
                for c in range(len(COLLECTIVES)):
                    vec = estimate(topo, c, sizes, live)
                    for i, s in enumerate(sizes):
                        one = estimate(topo, COLLECTIVES[c], float(s), live)
                        for f in FIELDS:
                            a, b = getattr(one, f), getattr(vec, f)[i]
                            assert a.shape == ()
                            assert a == b or (np.isnan(a) and np.isnan(b)), (name, n, policy, c, s, f, a, b)


def test_scalar_path_honours_restrictions_and_errors():
    topo = PRESETS["dgx-h100"]
    pl = placement_packed(topo, 8)
    ring = estimate(topo, "all_reduce", 2**30, pl, algorithms=("ring",))
    assert ring.algorithm_names() == "ring"
    assert ring.time_s == estimate(topo, "all_reduce", np.array([2**30]), pl, algorithms=("ring",)).time_s[0]
    with pytest.raises(ValueError, match="unknown collective"):
        estimate(topo, "allfoo", 8, pl)
    with pytest.raises(ValueError, match="size_bytes"):
        estimate(topo, "all_reduce", -1, pl)
    with pytest.raises(ValueError, match="no allowed algorithm"):
        estimate(topo, "alltoall", 8, pl, algorithms=("ring",))


def _per_peer(c: int, sizes: np.ndarray, n: int) -> np.ndarray:
    return sizes / n if COLLECTIVES[c] == "alltoall" else sizes


def _chosen_by_nccl_estimate(topo, pl) -> bool:
    """Where the model picks (algorithm, protocol) by NCCL's own estimate instead of its physical times: across
    domains on a network whose plugin reports NCCL a latency other than the physical one (aws-ofi-nccl, 75 us)."""
    return _topo_constants(topo).sel_extra_us != 0.0 and int(pl.n_domains) > 1


CANDIDATES = [(a, p) for a in ("ring", "tree", "nvls", "nvls_tree") for p in PROTOCOLS]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_time_never_decreases_with_size_except_where_nccl_switches(name):
    """Predicted time never decreases with size for a fixed (algorithm, protocol). The chosen time may drop only
    where NCCL's choice switches: (1) at a hard threshold in its code, the p2p protocol rule (enqueue.cc
    addP2pToPlan, LL up to p2pnChannelsPerPeer x 16 KiB per peer, Simple above), which the measured GB300 alltoall
    sweeps show (512 KiB -> 1 MiB per peer: 236 -> 162 us on 64 GPUs); (2) where NCCL picks by its own estimate
    rather than by the physical times (``_chosen_by_nccl_estimate``) and that estimate switches algorithm or
    protocol: NCCL's estimate, not the time, decides, and measured runs show such drops (H100 + IB 4 nodes, 2 MiB
    191 us -> 4 MiB 151 us; validation README, eighth and ninth pass). Why relaxed from "only at the p2p
    threshold": with the Simple ring across nodes timed from NCCL's chunking, a ring that NCCL's estimate (75 us per
    network step on EFA) rejects can be physically faster than the tree it keeps, so where the estimate switches to
    it the time drops. Anywhere the model chooses by physical time a drop stays impossible, and is checked."""
    topo = preset(name)
    sizes = np.unique(np.round(np.exp2(np.arange(0, 40 * 8) / 8)))
    drops = 0
    for n in (2, 4, 8, 16, 64, 256):
        for policy in ("pack", "spread"):
            pl = placement_packed(topo, n, policy)
            thr = float(p2p_ll_threshold_bytes(topo, pl))
            by_estimate = _chosen_by_nccl_estimate(topo, pl)
            for c in range(len(COLLECTIVES)):
                est = estimate(topo, c, sizes, pl)
                t, a, p = est.time_s, est.algorithm, est.protocol
                same = (a[1:] == a[:-1]) & (p[1:] == p[:-1])
                down = np.diff(t) < 0
                assert not (down & same).any(), (name, n, policy, COLLECTIVES[c], "decrease within one regime")
                peer = _per_peer(c, sizes, n)
                for i in np.flatnonzero(down):
                    where = (name, n, policy, COLLECTIVES[c], sizes[i], sizes[i + 1])
                    if (ALGORITHMS[a[i]], PROTOCOLS[p[i]]) == ("pairwise", "LL"):
                        drops += 1
                        assert (ALGORITHMS[a[i + 1]], PROTOCOLS[p[i + 1]]) == ("pairwise", "Simple"), where
                        assert peer[i] <= thr < peer[i + 1], where
                    else:
                        assert by_estimate, where
                # every single candidate is monotone in size on its own
                for alg, proto in CANDIDATES:
                    try:
                        one = estimate(topo, c, sizes, pl, algorithms=(alg,), protocols=(proto,)).time_s
                    except ValueError:  # this candidate cannot run (some of) these calls
                        continue
                    ok = np.isfinite(one)
                    assert not (np.diff(one)[ok[1:] & ok[:-1]] < 0).any(), (name, n, policy, COLLECTIVES[c], alg, proto)
    assert drops <= 2 * 6 * 2  # at most one p2p threshold drop per p2p collective and placement


def test_p2p_protocol_follows_nccls_threshold_not_cost():
    """LL up to p2pnChannelsPerPeer x 16 KiB per peer (NCCL 2.22-2.28): 32 channels per NVLink peer on GB300 and
    H100 (pow2Up of ~18 channels) -> 512 KiB; a network peer gets max(local NICs, 2) channels (1 once 2 x nRanks >
    4 x p2pnChannels); from 2.29 the op's own channel count -> 16 KiB."""
    gb300 = PRESETS["gb200-nvl72"]  # GB300 has the same NVLink 5 channel count
    one = placement_packed(gb300, 8)
    assert float(p2p_ll_threshold_bytes(gb300, one)) == 512 * 1024
    assert float(p2p_ll_threshold_bytes(gb300, one, "2.29.2")) == 16 * 1024
    kib = 1024.0
    below = estimate(gb300, "alltoall", 8 * 512 * kib, one)
    above = estimate(gb300, "alltoall", 8 * 1024 * kib, one)
    assert below.protocol_names() == "LL" and above.protocol_names() == "Simple"
    assert estimate(gb300, "alltoall", 8 * 1024 * kib, one, nccl_version="2.29.2").protocol_names() == "Simple"
    assert estimate(gb300, "alltoall", 8 * 8 * kib, one, nccl_version="2.29.2").protocol_names() == "LL"
    h100 = preset("dgx-h100", 64)
    multi = placement_packed(h100, 16)
    assert int(multi.n_domains) == 2
    assert float(p2p_ll_threshold_bytes(h100, multi)) == 2 * 16 * kib  # 1 NIC per GPU -> 2 channels per peer
    assert estimate(h100, "alltoall", 16 * 64 * kib, multi).protocol_names() == "Simple"


def test_small_messages_run_on_few_channels():
    """Below one channel's minimum work (512 threads x 8 B x nRanks for ring LL) NCCL runs a single
    channel, which moves only 1/n_channels of the bus bandwidth: the bandwidth term of a 4 KiB
    ring-LL all-reduce is the same as that of a full channel's worth of bytes."""
    topo = PRESETS["dgx-h100"]
    pl = placement_packed(topo, 8)
    one_channel = CHANNEL_MIN_BYTES[LL] * 8
    n_channels = 18  # ~one ring channel per NVLink on H100
    kw = {"algorithms": ("ring",), "protocols": ("LL",)}
    small = estimate(topo, "all_reduce", 4096, pl, **kw)
    big = estimate(topo, "all_reduce", 2**30, pl, **kw)
    per_byte_all_channels = big.bandwidth_s / 2**30
    assert small.bandwidth_s == pytest.approx(4096 * per_byte_all_channels * n_channels, rel=1e-9)
    # between one channel's and all channels' worth of bytes, each channel carries ~one_channel bytes
    a = estimate(topo, "all_reduce", one_channel, pl, **kw)
    b = estimate(topo, "all_reduce", 4 * one_channel, pl, **kw)
    assert a.bandwidth_s == b.bandwidth_s
    assert big.busbw_GBps == pytest.approx(141.0, rel=0.02)  # NCCL's Hopper llMaxBw, all channels


def test_tree_correction_table_shape():
    assert all(len(row) == 23 for row in TREE_CORRECTION)
    assert all(0 < v <= 1 for row in TREE_CORRECTION for v in row)


def test_single_estimate_is_fast():
    topo = preset("dgx-h100", 256)
    pl = placement_packed(topo, 256, "spread")
    estimate(topo, "all_reduce", 2**30, pl)
    t0 = time.perf_counter()
    for i in range(200):
        estimate(topo, "all_reduce", 2**30 + i, pl)
    per_call = (time.perf_counter() - t0) / 200
    assert per_call < 300e-6  # ~35 us on a laptop core; the numpy path used to take ~400 us
