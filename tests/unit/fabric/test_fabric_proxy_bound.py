"""One proxy thread per rank (NCCL src/proxy.cc progressOps) handles every network message of all its channels, at
NCCL's proxy overhead each (tuning.cc getNetOverhead), so a multi-node LL/LL128 ring cannot end before
base latency + max(1, 2 x channels / g) x messages per connection x overhead (``RING_STEP_DATA_BYTES``).

The expected values are rebuilt from NCCL's constants (base latency, proxy overhead, step sizes) and the model's
channel count, not from measurements.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from twin.fabric.domain import estimate, placement_packed, preset
from twin.fabric.domain.collectives import (
    BASE_LAT_US,
    CHANNEL_MIN_BYTES,
    LL128,
    NET_OVERHEAD_US_BY_CPU,
    RING,
    RING_STEP_DATA_BYTES,
    _topo_constants,
)

MIB = 2.0**20


def _ring_us(topo, n_ranks: int, size: float, collective: str = "all_reduce", protocol: str = "LL128") -> float:
    est = estimate(topo, collective, size, placement_packed(topo, n_ranks), algorithms=("ring",),
                   protocols=(protocol,))
    assert est.algorithm_names() == "ring" and est.protocol_names() == protocol
    return float(est.time_s) * 1e6


def _proxy_bound_us(topo, n_ranks: int, size: float, steps: float, bytes_factor: float) -> float:
    channels = min(max(size / CHANNEL_MIN_BYTES[LL128], 1.0), _topo_constants(topo).n_channels)
    messages = max(steps, size * bytes_factor / (channels * RING_STEP_DATA_BYTES[LL128]))
    connections = max(1.0, 2.0 * channels / topo.gpus_per_node)
    return (BASE_LAT_US[RING][LL128] * topo.scale_up.gpu_latency_scale
            + connections * messages * NET_OVERHEAD_US_BY_CPU[topo.host_cpu])


@pytest.mark.parametrize("size", [1 * MIB, 2 * MIB, 4 * MIB])
def test_two_node_ring_is_bound_by_its_proxy(size):
    """16 ranks on 2 H100 + IB nodes, ring LL128 all-reduce: 30 steps per connection, 2 x 18 / 8 connections per
    proxy -- 135 us of proxy work, more than the ring's modelled latency and transfer at these sizes."""
    topo = preset("dgx-h100")
    bound = _proxy_bound_us(topo, 16, size, steps=30.0, bytes_factor=2.0 * 15 / 16)
    assert _ring_us(topo, 16, size) == pytest.approx(bound, rel=1e-12)


def test_bound_follows_the_host_cpu_overhead():
    """The same ring on an AMD host (2 us per proxy operation instead of 1) takes the bound with the doubled cost."""
    topo = preset("dgx-h100")
    amd = replace(topo, name="dgx-h100-amd", host_cpu="amd")
    size = 2 * MIB
    assert _ring_us(amd, 16, size) == pytest.approx(_proxy_bound_us(amd, 16, size, 30.0, 2.0 * 15 / 16), rel=1e-12)
    assert _ring_us(amd, 16, size) > _ring_us(topo, 16, size)


def test_no_proxy_inside_one_node_and_large_messages_stay_bandwidth_bound():
    topo = preset("dgx-h100")
    # one node: no network messages, the ring is far below the 2-node bound
    assert _ring_us(topo, 8, 2 * MIB) < 0.5 * _proxy_bound_us(topo, 16, 2 * MIB, 30.0, 2.0 * 15 / 16)
    # 1 GiB across 2 nodes: the transfer, not the proxy, sets the time
    big = 2.0**30
    assert _ring_us(topo, 16, big) > 1.5 * _proxy_bound_us(topo, 16, big, 30.0, 2.0 * 15 / 16)


def test_broadcast_chain_pays_each_chunk_once_per_connection():
    """A broadcast ring is a chain: a connection carries each chunk once, not once per rank step."""
    topo = preset("dgx-h100")
    size = 2 * MIB
    chain = _ring_us(topo, 16, size, collective="broadcast")
    assert chain < _proxy_bound_us(topo, 16, size, steps=15.0, bytes_factor=1.0)


def test_values_the_bound_does_not_set_stay_bit_identical_in_a_mixed_batch():
    """A one-node placement batched with a multi-node one (for which the bound is computed) gets exactly the values
    it gets alone: the latency is rebuilt from the bound only where the bound binds (EstimatePlacements ==
    EstimateBatch). Compared on its LL/LL128 choices: a batch mixing one- and multi-node placements adds a Simple
    latency's terms in another order, which is older than the bound."""
    topo = preset("dgx-h100")
    sizes = np.array([2.0**k for k in range(3, 34)])
    mixed = estimate(topo, "all_gather", sizes[:, None], placement_packed(topo, np.array([8, 16])))
    alone = estimate(topo, "all_gather", sizes, placement_packed(topo, np.array([8])))
    not_simple = alone.protocol_names() != "Simple"
    assert not_simple.sum() >= 10
    for field in ("time_s", "latency_s", "bandwidth_s"):
        assert (getattr(mixed, field)[:, 0] == getattr(alone, field))[not_simple].all(), field
