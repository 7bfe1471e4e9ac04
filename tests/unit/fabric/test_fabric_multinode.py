"""Multi-node physics from NCCL's design: transport protocol limits, host-CPU proxy overhead, 2-domain trees,
NCCL-version-dependent algorithm availability, and the system catalogue's topologies."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from twin.fabric.domain import COLLECTIVES, PRESETS, estimate, placement_arrays, placement_packed
from twin.fabric.domain.systems import GENERIC, GPUS, SYSTEMS, build_topology, place_row

H100 = PRESETS["dgx-h100"]
FIELDS = ("time_s", "latency_s", "bandwidth_s", "algorithm", "protocol", "algbw_GBps", "busbw_GBps")


def _p4d(n_nodes: int = 4):
    placed, reason = place_row("AWS p4d.24xlarge (8xA100)", "EFA", 8 * n_nodes, n_nodes)
    assert reason is None
    return placed.topology


def test_simple_only_transport_never_uses_ll_across_nodes():
    topo = _p4d()
    sizes = np.logspace(0, 10, 41)
    multi = estimate(topo, "all_reduce", sizes, placement_packed(topo, 32))
    assert set(multi.protocol_names()) == {"Simple"}
    inside = estimate(topo, "all_reduce", 1024.0, placement_packed(topo, 8))
    assert str(inside.protocol_names()) == "LL"  # NVLink inside the node is unaffected


def test_amd_host_pays_more_proxy_overhead_across_nodes_only():
    intel = replace(H100, name="intel")
    amd = replace(H100, name="amd", host_cpu="amd")
    for n, slower in ((64, True), (8, False)):
        pl = placement_packed(H100, n)
        t_i = float(estimate(intel, "all_gather", 2.0**22, pl).time_s)
        t_a = float(estimate(amd, "all_gather", 2.0**22, pl).time_s)
        assert (t_a > t_i) if slower else (t_a == t_i)


def test_two_domain_tree_crosses_the_network_once_per_direction():
    """A 2-node tree moves each byte over the NIC once per direction, so its bandwidth is twice a
    many-node tree's (NCCL: bwIntra for nNodes <= 2)."""
    slow_nic = replace(H100, name="slow-nic", scale_out=replace(H100.scale_out, nic_bw_Gbps=50.0))
    size = 2.0**34
    two = estimate(slow_nic, "all_reduce", size, placement_packed(slow_nic, 16), algorithms=("tree",))
    many = estimate(slow_nic, "all_reduce", size, placement_packed(slow_nic, 64), algorithms=("tree",))
    assert float(two.algbw_GBps) == pytest.approx(2.0 * float(many.algbw_GBps), rel=0.05)


def test_nccl_version_selects_available_algorithms():
    pl8, pl16 = placement_packed(H100, 8), placement_packed(H100, 16)
    size = 2.0**30
    assert str(estimate(H100, "all_reduce", size, pl8).algorithm_names()) == "nvls"
    assert str(estimate(H100, "all_reduce", size, pl8, nccl_version="2.16.5").algorithm_names()) != "nvls"
    new = estimate(H100, "all_reduce", size, pl16, nccl_version=(2, 27, 3))
    old = estimate(H100, "all_reduce", size, pl16, nccl_version="v2.17.1-1")
    assert str(new.algorithm_names()) == "nvls_tree" and str(old.algorithm_names()) != "nvls_tree"
    with pytest.raises(ValueError):
        estimate(H100, "all_reduce", size, pl8, nccl_version="latest")


@pytest.mark.parametrize("version", [None, "2.18.3", "2.27.3", "2.28.9"])
def test_scalar_path_bit_identical_with_catalogue_topologies_and_versions(version):
    gb300 = next(s for s in SYSTEMS if s.key == "dgx-gb300")
    topos = [_p4d(), build_topology(gb300, 36, gb300.network)]
    sizes = np.array([8.0, 4096.0, 2.0**20, 2.0**27, 2.0**33])
    for topo in topos:
        for n in (2, 8, 16, 64):
            if n > topo.n_gpus:
                continue
            pl = placement_packed(topo, n)
            live = placement_arrays(topo, n, n_nodes=int(pl.n_nodes), n_domains=int(pl.n_domains),
                                    ranks_per_domain=int(pl.ranks_per_domain))
            for c in range(len(COLLECTIVES)):
                vec = estimate(topo, c, sizes, live, nccl_version=version)
                for i, s in enumerate(sizes):
                    one = estimate(topo, COLLECTIVES[c], float(s), live, nccl_version=version)
                    for f in FIELDS:
                        assert getattr(one, f) == getattr(vec, f)[i], (topo.name, n, c, s, f)


def test_time_never_decreases_with_size_on_simple_only_efa():
    """Across p4d's EFA every candidate is Simple, so NCCL's coded drop (the p2p LL -> Simple threshold, see
    test_fabric_fast_path) cannot occur on a multi-node placement: each (algorithm, protocol) is monotone in size, and
    the chosen time drops only where NCCL's own estimate (the plugin's 75 us in every network step) switches from
    tree to ring (relaxed from "strictly monotone" with the ninth pass: the ring's time from NCCL's chunking can be
    below the tree's that NCCL's estimate keeps to a larger size). Without the plugin's latency (choice by the
    physical times) the chosen time is strictly monotone."""
    topo = _p4d(8)
    physical = replace(topo, name="phys", scale_out=replace(topo.scale_out, reported_latency_s=None))
    sizes = np.logspace(0, 11, 400)
    pl = placement_packed(topo, 64)
    for c in COLLECTIVES:
        est = estimate(topo, c, sizes, pl)
        down = np.diff(est.time_s) < 0
        switch = (est.algorithm[1:] != est.algorithm[:-1]) | (est.protocol[1:] != est.protocol[:-1])
        assert not (down & ~switch).any(), c
        assert (est.algorithm_names()[:-1][down] == "tree").all() and (est.algorithm_names()[1:][down] == "ring").all()
        for alg in ("ring", "tree", "pairwise"):
            try:
                one = estimate(topo, c, sizes, pl, algorithms=(alg,)).time_s
            except ValueError:
                continue
            assert np.all(np.diff(one) >= 0), (c, alg)
        assert np.all(np.diff(estimate(physical, c, sizes, pl).time_s) >= -1e-15), c


def test_catalogue_covers_every_family_and_names_sources():
    families = {s.gpu for s in SYSTEMS} | set(GENERIC)
    for gpu in ("a100", "h100", "h200", "h20", "h800", "b200", "gb200", "gb300"):
        assert gpu in families and GPUS[gpu].source
    for spec in SYSTEMS:
        assert spec.source and spec.network is not None and spec.network.source
        assert spec.host_cpu in ("intel", "amd", "arm", None)  # None: not published (NCCL default used)


def test_efa_choice_uses_the_plugins_reported_latency_but_times_physically():
    """NCCL picks by its own estimate (75 us per network step reported by aws-ofi-nccl on p5); the reported
    time is the physical one, so it can only be >= the physically best candidate's."""
    placed, _ = place_row("AWS p5.48xlarge", "EFAv2 32x100G", 128, 16)
    topo = placed.topology
    physical = replace(topo, name="phys", scale_out=replace(topo.scale_out, reported_latency_s=None))
    sizes = np.logspace(3, 10, 60)
    pl = placement_packed(topo, 128)
    chosen = estimate(topo, "all_reduce", sizes, pl).time_s
    best = estimate(physical, "all_reduce", sizes, pl).time_s
    assert np.all(chosen >= best) and np.any(chosen > best)


def test_gb200_nvls_tree_crosses_domains_on_nccl_inter_domain_nics_only():
    """NCCL uses 16 NICs per GB200 NVL72 domain between MNNVL domains (2.27.3 release notes): across > 2 domains the
    NVLS-tree's NIC stage carries 2 x size / 16 NICs per domain, whatever the domain's GPU count."""
    from twin.fabric.domain import nvl72_cluster
    from twin.fabric.domain.topology import MNNVL_GB200_INTER_DOMAIN_NICS

    topo = nvl72_cluster(72 * 4)
    assert topo.scale_up.inter_domain_nics == MNNVL_GB200_INTER_DOMAIN_NICS
    size = 2.0**34
    est = estimate(topo, "all_reduce", size, placement_packed(topo, 72 * 4), algorithms=("nvls_tree",))
    nic_bound = MNNVL_GB200_INTER_DOMAIN_NICS * topo.scale_out.bw_GBps_per_gpu / 2.0  # algbw, GB/s
    assert float(est.algbw_GBps) <= nic_bound * (1 + 1e-9)
    assert size / float(est.bandwidth_s) * 1e-9 == pytest.approx(nic_bound)  # the NIC stage binds at this size
    uncapped = replace(topo, scale_up=replace(topo.scale_up, inter_domain_nics=None))
    free = estimate(uncapped, "all_reduce", size, placement_packed(uncapped, 72 * 4), algorithms=("nvls_tree",))
    assert size / float(free.bandwidth_s) * 1e-9 > 1.2 * nic_bound  # 32 heads: the NVLink stage binds instead
    two = estimate(topo, "all_reduce", size, placement_packed(topo, 72 * 2), algorithms=("nvls_tree",))
    assert size / float(two.bandwidth_s) * 1e-9 > 1.2 * nic_bound  # 2 domains: each byte crosses once
    hgx, _ = place_row("4x HGX H100", "InfiniBand 8x400G", 32, 4)
    assert hgx.topology.scale_up.inter_domain_nics is None
    with pytest.raises(ValueError):
        replace(topo.scale_up, inter_domain_nics=0)


def test_nvls_in_one_domain_reduces_on_at_most_32_heads():
    """Only NVLS heads run the reduce stage, each on 1/heads of the data, and a domain has at most
    NCCL_MAX_NVLS_ARITY = 32 heads: a head moves S (1 + 1/heads), so beyond 32 GPUs the NVLS bandwidth term stops
    shrinking with the GPU count (2.28.7 all_reduce.h; search.cc)."""
    from twin.fabric.domain import nvl72_cluster

    topo = nvl72_cluster(72)
    size = 2.0**34

    def rel(n):  # bandwidth term relative to 32 GPUs' (whose 32 heads each move S (1 + 1/32))
        terms = [estimate(topo, "all_reduce", size, placement_packed(topo, m), algorithms=("nvls",)) for m in (n, 32)]
        assert all(str(t.algorithm_names()) == "nvls" for t in terms)
        return float(terms[0].bandwidth_s) / float(terms[1].bandwidth_s)

    assert rel(64) == pytest.approx(1.0, rel=1e-12) and rel(72) == pytest.approx(1.0, rel=1e-12)
    assert rel(8) == pytest.approx((9 / 8) / (33 / 32), rel=1e-12)
    assert rel(16) == pytest.approx((17 / 16) / (33 / 32), rel=1e-12)


def test_a_facility_of_gb200_racks_carries_nccl_inter_domain_nic_cap_and_an_hgx_facility_none():
    from twin.core.facility import build_inventory, load_facility_spec
    from twin.fabric.adapters.topology import fabric_topology
    from twin.fabric.domain.topology import MNNVL_GB200_INTER_DOMAIN_NICS

    gb200 = fabric_topology(build_inventory(load_facility_spec("gb200-nvl72-hall")))
    assert gb200.scale_up.inter_domain_nics == MNNVL_GB200_INTER_DOMAIN_NICS
    h100 = fabric_topology(build_inventory(load_facility_spec("dgx-h100-su")))
    assert h100.scale_up.inter_domain_nics is None


def test_tree_chain_latency_counts_nccl_ranks_per_node_not_the_smallest_domain():
    """NCCL's tree latency runs a chain of nRanks/nNodes - 1 NVLink hops through each domain (tuning.cc); a 128-rank
    job on two NVL72 domains filled 72 + 56 has the same chain as one filled 64 + 64, and a shorter one than 72 + 72."""
    from twin.fabric.domain import nvl72_cluster

    topo = nvl72_cluster(72 * 2)
    uneven = placement_arrays(topo, 128, n_nodes=32, n_domains=2, ranks_per_domain=56)
    even = placement_arrays(topo, 128, n_nodes=32, n_domains=2, ranks_per_domain=64)
    full = placement_arrays(topo, 144, n_nodes=36, n_domains=2, ranks_per_domain=72)
    lat = {name: float(estimate(topo, "all_reduce", 8.0, pl, algorithms=("tree",), protocols=("LL",)).latency_s)
           for name, pl in (("uneven", uneven), ("even", even), ("full", full))}
    assert lat["uneven"] == lat["even"] < lat["full"]
    # one more NVLink hop per direction per rank added to each domain's chain (NCCL's NVLink tree/LL step x Blackwell)
    hop = 2.0 * 0.6e-6 * topo.scale_up.gpu_latency_scale
    assert lat["full"] - lat["even"] == pytest.approx(8 * hop)


def test_simple_ring_across_nodes_is_timed_from_nccls_chunking():
    """A Simple ring across nodes runs NCCL's chunk loops (enqueue.cc calcCollChunking, all_reduce.h runRing): once
    its chunks take longer on the wire than a network step's round trip over the credit window, every step is
    bandwidth-bound and the ring's time is its base latency plus the bandwidth time -- no pipeline fill growing
    with size (the generic 2 sqrt(pipe x S/B) the model used before added 0.6-2.6 ms here at 256 MiB-8 GiB). Where
    the chunks are small (one loop, a few hundred KB per chunk) each step pays the network's round trip over the
    2-chunk credit window instead, so the same ring at 1 MiB is latency-bound: > 2(n-1) network step latencies."""
    topo = PRESETS["oci-a100-roce"]  # NIC-bound: 2 x 100G per GPU, well below NVLink
    pl = placement_packed(topo, 16)
    assert int(pl.n_domains) == 2
    kw = {"algorithms": ("ring",), "protocols": ("Simple",)}
    big = estimate(topo, "all_reduce", np.array([2.0**28, 2.0**30, 2.0**33]), pl, **kw)
    assert big.latency_s == pytest.approx(np.full(3, 8.4e-6), rel=1e-6)  # NCCL's ring Simple base latency only
    small = estimate(topo, "all_reduce", 2.0**20, pl, **kw)
    net_step_s = 14e-6  # NCCL's ring Simple network step latency (tuning.cc), the RoCE hops come on top
    assert float(small.time_s - small.bandwidth_s / 2) > 2 * 15 * net_step_s
