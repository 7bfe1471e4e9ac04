"""Behaviour at 1k-100k GPUs: physical invariants the collective model must keep at any scale.

* tree depth: NCCL's double binary tree adds one level per doubling of the NVLink domains, so the small-message
  all-reduce time grows by the same step per doubling (log2 of the domains), and no collective gets faster when
  the same job spans more domains (except where NCCL's p2p byte threshold switches an alltoall between LL and Simple);
* bus bandwidth is bounded by what the domains' NICs can move: a domain taking part in an all-reduce / all-gather
  / reduce-scatter must send or receive S (d-1)/d bytes (2x for all-reduce, counted in the bus factor), so
  busbw <= g B_nic d (n-1) / (n (d-1)); an alltoall rank sends S (n-g)/n through its NICs, so
  busbw <= B_nic (n-1) / (n-g);
* oversubscribed spines: once the spine is the bottleneck of an alltoall crossing leaf groups, doubling the
  oversubscription doubles its bandwidth time, and rings / trees (one flow per rail leaf) do not notice it.
"""

from __future__ import annotations

import numpy as np
import pytest

from twin.fabric.domain import estimate, placement_arrays
from twin.fabric.domain.collectives import PAIRWISE
from twin.fabric.domain.topology import efa, hgx_cluster, infiniband, nvl72_cluster, roce

N_MAX = 131_072
TOPOLOGIES = {
    "hgx-h100-ndr": hgx_cluster(N_MAX),
    "gb200-nvl72-ndr": nvl72_cluster(N_MAX - N_MAX % 72),
    "p5-efa": hgx_cluster(N_MAX, scale_out=efa(100.0, 4.0)),
    "a100-roce": hgx_cluster(N_MAX, nvlink_generation=3, scale_out=roce(100.0, 2.0)),
}
SIZES = np.logspace(0, 34, 35, base=2.0)
DOMAINS = np.array([1, 2, 3, 4, 8, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384])


def _placements(topo):
    d = DOMAINS[DOMAINS * topo.scale_up.gpus_per_domain <= topo.n_gpus]
    return d, placement_arrays(topo, d * topo.scale_up.gpus_per_domain)


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
@pytest.mark.parametrize("collective", ["all_reduce", "all_gather", "reduce_scatter", "alltoall", "broadcast"])
def test_no_collective_gets_faster_on_more_domains(name, collective):
    topo = TOPOLOGIES[name]
    _, pl = _placements(topo)
    est = estimate(topo, collective, SIZES[None, :], pl.reshape(-1, 1))
    down = np.diff(est.time_s, axis=0) < 0
    # the one exception: NCCL's p2p protocol is a byte threshold per peer (enqueue.cc; see test_fabric_fast_path),
    # and a job on more domains has fewer bytes per peer and a different threshold, so an alltoall may switch
    # between LL and Simple and take less time; nothing else may get faster
    pairwise = (est.algorithm[:-1] == PAIRWISE) & (est.algorithm[1:] == PAIRWISE)
    switch = (est.protocol[:-1] != est.protocol[1:]) & pairwise
    assert not (down & ~switch).any()


@pytest.mark.parametrize("name", ["hgx-h100-ndr", "p5-efa", "a100-roce"])
def test_tree_depth_is_log2_of_the_domains(name):
    topo = TOPOLOGIES[name]
    d = np.array([256, 512, 1024, 2048, 4096, 8192, 16384])  # 2k to 131k GPUs
    est = estimate(topo, "all_reduce", 8.0, placement_arrays(topo, d * 8))
    assert set(est.algorithm_names().tolist()) == {"tree"}
    step = np.diff(est.time_s)  # one more tree level per doubling: the same latency step each time
    assert step == pytest.approx(np.full(step.shape, step[0]), rel=1e-9) and step[0] > 0


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
@pytest.mark.parametrize("collective", ["all_reduce", "all_gather", "reduce_scatter", "alltoall"])
def test_bus_bandwidth_bounded_by_the_nics(name, collective):
    topo = TOPOLOGIES[name]
    d, pl = _placements(topo)
    multi = d > 1
    d, g = d[multi].astype(float), float(topo.scale_up.gpus_per_domain)
    n = d * g
    busbw = estimate(topo, collective, SIZES[None, :], pl[multi].reshape(-1, 1)).busbw_GBps
    b_nic = topo.scale_out.bw_GBps_per_gpu
    bound = b_nic * (n - 1) / (n - g) if collective == "alltoall" else g * b_nic * d * (n - 1) / (n * (d - 1))
    assert (busbw <= bound[:, None] * (1 + 1e-9)).all()


@pytest.mark.parametrize("oversubscription", [2.0, 4.0, 8.0])
def test_oversubscription_divides_spine_bound_bandwidth_by_its_ratio(oversubscription):
    def topo(ov):
        return hgx_cluster(4096, scale_out=infiniband(400.0, nodes_per_leaf=32, n_spines=16, oversubscription=ov))

    # 2,048 ranks filling 8 leaf groups of 32 nodes: every NIC's alltoall traffic mostly leaves its leaf group
    pl = placement_arrays(topo(1.0), 2048, n_leaf_groups=8, max_nodes_per_leaf_group=32)
    lo = estimate(topo(oversubscription), "alltoall", float(1 << 30), pl)
    hi = estimate(topo(2 * oversubscription), "alltoall", float(1 << 30), pl)
    assert float(hi.bandwidth_s) / float(lo.bandwidth_s) == pytest.approx(2.0, rel=1e-12)
    flat = estimate(topo(1.0), "alltoall", float(1 << 30), pl)
    assert float(lo.bandwidth_s) > float(flat.bandwidth_s)  # spine-bound only once oversubscribed
    # rings and trees put one flow per rail leaf on the uplinks: 32 nodes / 8 still carry it
    for c in ("all_reduce", "all_gather"):
        a = estimate(topo(1.0), c, float(1 << 30), pl)
        b = estimate(topo(2 * oversubscription), c, float(1 << 30), pl)
        assert float(a.time_s) == float(b.time_s)


def test_a_live_spine_loss_is_the_same_as_the_oversubscription_it_implies():
    def topo(ov):
        return hgx_cluster(4096, scale_out=infiniband(400.0, nodes_per_leaf=32, n_spines=16, oversubscription=ov))

    half = placement_arrays(topo(4.0), 2048, n_leaf_groups=8, max_nodes_per_leaf_group=32, spine_fraction=0.5)
    full = placement_arrays(topo(8.0), 2048, n_leaf_groups=8, max_nodes_per_leaf_group=32)
    a = estimate(topo(4.0), "alltoall", float(1 << 30), half)
    b = estimate(topo(8.0), "alltoall", float(1 << 30), full)
    assert float(a.time_s) == pytest.approx(float(b.time_s), rel=1e-12)
