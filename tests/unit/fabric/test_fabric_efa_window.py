"""Credit window of a network connection (``CREDIT_WINDOW_STEPS``): a multi-node LL/LL128 ring cannot turn its
steps over faster than NCCL_STEPS per network round trip, so on EFA (20 us more per message than verbs) every ring
step costs at least 2 x the per-step network latency / 8, while on InfiniBand the window stays below the
NVLink step and NCCL's proxy floor and changes nothing. And the GPU-direct flush of a Simple receive (a second
transport latency per Simple network step) only where NCCL flushes.

The expected values are rebuilt from the published constants (NCCL tuning.cc latencies, the topology's transport
latency and switch hop), not from measurements.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from twin.fabric.domain import FabricTopology, efa, estimate, nvlink, placement_packed, preset
from twin.fabric.domain.collectives import (
    CREDIT_WINDOW_STEPS,
    LL,
    LL128,
    NET_LAT_US,
    NET_OVERHEAD_US_BY_CPU,
    NVLINK_LAT_US,
    RING,
)

SIZE = 8192.0  # small: the ring's latency term is what is read (latency_s), bandwidth is separate


def _ring_latency_us(topo, n_ranks: int, protocol: str) -> float:
    est = estimate(topo, "all_gather", SIZE, placement_packed(topo, n_ranks), algorithms=("ring",),
                   protocols=(protocol,))
    assert est.algorithm_names() == "ring" and est.protocol_names() == protocol
    return float(est.latency_s) * 1e6


def _net_step_us(topo, p: int) -> float:
    so = topo.scale_out
    # one leaf group (32 nodes per leaf): one switch hop per network step
    return NET_LAT_US[RING][p] + so.base_latency_s * 1e6 + so.per_hop_latency_s * 1e6


def _delta_us(topo, protocol: str) -> float:
    """Latency added by going from 16 to 32 nodes (128 -> 256 ranks): 112 NVLink steps and 16 network steps."""
    return _ring_latency_us(topo, 256, protocol) - _ring_latency_us(topo, 128, protocol)


def test_efa_ring_steps_are_floored_by_the_credit_window():
    topo = preset("aws-p5-efa")
    net = _net_step_us(topo, LL128)
    window = 2.0 * net / CREDIT_WINDOW_STEPS
    # the window, not the NVLink hop or NCCL's proxy floor, sets the NVLink steps of a multi-node ring on EFA
    assert window > NVLINK_LAT_US[RING][LL128]
    assert window > NET_OVERHEAD_US_BY_CPU[topo.host_cpu]
    assert _delta_us(topo, "LL128") == pytest.approx(112 * window + 16 * net, rel=1e-9)


def test_window_changes_nothing_on_infiniband():
    topo = preset("dgx-h100")
    for p, name in ((LL128, "LL128"), (LL, "LL")):
        net = _net_step_us(topo, p)
        nccl_intra = max(NVLINK_LAT_US[RING][p], NET_OVERHEAD_US_BY_CPU[topo.host_cpu])
        assert 2.0 * net / CREDIT_WINDOW_STEPS <= nccl_intra
        assert _delta_us(topo, name) == pytest.approx(112 * nccl_intra + 16 * net, rel=1e-9)


def test_window_floor_grows_with_the_transport_latency():
    """Same hardware, slower transport: the per-step floor follows the message latency (physics, not a constant)."""
    topo = preset("aws-p5-efa")
    slow = replace(topo, scale_out=replace(topo.scale_out, base_latency_s=2 * topo.scale_out.base_latency_s))
    assert _delta_us(slow, "LL128") > _delta_us(topo, "LL128")
    net = _net_step_us(slow, LL128)
    assert _delta_us(slow, "LL128") == pytest.approx(112 * 2.0 * net / CREDIT_WINDOW_STEPS + 16 * net, rel=1e-9)


def _a2a_simple_latency_us(topo) -> float:
    est = estimate(topo, "alltoall", 2.0**20, placement_packed(topo, 16), algorithms=("pairwise",),
                   protocols=("Simple",))
    return float(est.latency_s) * 1e6


def _slower_transport(topo, extra_s: float):
    return replace(topo, scale_out=replace(topo.scale_out, base_latency_s=topo.scale_out.base_latency_s + extra_s))


@pytest.mark.parametrize(("arch_gen", "host_cpu", "times"), [(4, "amd", 1), (5, "intel", 1), (3, "intel", 2), (4, "arm", 2)])
def test_simple_network_step_pays_the_flush_only_where_nccl_flushes(arch_gen, host_cpu, times):
    """NCCL flushes GPU-direct Simple receives on Ampere and earlier and on C2C (Grace) hosts, not on Hopper/Blackwell
    with x86 hosts (graph/paths.cc ncclTopoNeedFlush): the transport's per-message latency counts twice or once."""
    topo = FabricTopology(f"efa-nvl{arch_gen}-{host_cpu}", 8 * 4, 8, nvlink(arch_gen, 8), efa(100.0, 4.0),
                          host_cpu=host_cpu)
    extra_us = 10.0
    delta = _a2a_simple_latency_us(_slower_transport(topo, extra_us * 1e-6)) - _a2a_simple_latency_us(topo)
    assert delta == pytest.approx(times * extra_us, rel=1e-9)
