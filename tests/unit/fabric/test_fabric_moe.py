"""MoE dispatch/combine core (twin.fabric.domain.moe): bytes conservation, physical invariants, validation."""

from __future__ import annotations

import numpy as np
import pytest

from twin.fabric.domain import PRESETS, placement_arrays
from twin.fabric.domain.moe import MOE_KERNELS, bytes_per_token, moe_errors, moe_times
from twin.fabric.domain.systems import SYSTEMS, build_topology

H800 = next(s for s in SYSTEMS if s.key == "deepseek-h800")
TOPO = build_topology(H800, 32, H800.network)  # 256 GPUs, 8 per node, 1x400G IB per GPU
NVL72 = PRESETS["gb200-nvl72"]


def test_bytes_per_token_fp8_carries_one_fp32_scale_per_128():
    assert float(bytes_per_token(7168, "fp8")) == 7168 + 4 * 56
    assert float(bytes_per_token(7168, "bf16")) == 2 * 7168
    assert float(bytes_per_token(100, "fp8")) == 100 + 4  # a partial block still has its scale


@pytest.mark.parametrize("kernel", ["nccl_alltoall", "deepep_low_latency"])
def test_per_expert_copies_conserve_bytes(kernel):
    ep = np.array([8, 16, 64, 256])
    r = moe_times(TOPO, kernel, 128, 7168, 8, 256, ep)
    logical = 128 * 8 * float(bytes_per_token(7168, "fp8"))
    # what a rank sends over NVLink + NICs + to itself (1/N) is exactly its T x k rows
    assert np.allclose(r.dispatch_nvlink_bytes + r.dispatch_network_bytes + logical / ep, logical)
    assert np.allclose(r.dispatch_logical_bytes, logical)
    assert np.allclose(r.combine_logical_bytes, 128 * 8 * 2 * 7168)


def test_deepep_normal_sends_each_token_once_per_remote_node():
    ep = np.array([16, 32, 64, 128, 256])
    r = moe_times(TOPO, "deepep_normal", 4096, 7168, 8, 256, ep, max_nodes_per_token=4)
    nodes = ep // 8
    bpt = float(bytes_per_token(7168, "fp8"))
    # never more nodes than the routing limit or than the top-k, and de-duplicated: fewer RDMA bytes than alltoall
    assert (r.domains_per_token <= np.minimum(4, nodes) + 1e-9).all()
    assert (r.dispatch_network_bytes <= 4096 * bpt * np.minimum(4, nodes - 1) + 1e-6).all()
    a2a = moe_times(TOPO, "deepep_low_latency", 4096, 7168, 8, 256, ep)
    assert (r.dispatch_network_bytes < a2a.dispatch_network_bytes).all()
    # ranks hit per token: at most top-k, and the expected count of k picks over N ranks without a node limit
    free = moe_times(TOPO, "deepep_normal", 4096, 7168, 8, 256, ep)
    assert (free.ranks_per_token <= 8 + 1e-9).all()
    assert free.ranks_per_token[-1] == pytest.approx(256 * (1 - np.prod([(255 - i) / (256 - i) for i in range(8)])))


@pytest.mark.parametrize("kernel", MOE_KERNELS)
def test_time_monotonic_in_tokens_and_hidden(kernel):
    tokens = np.array([1, 8, 64, 512, 4096, 32768])
    r = moe_times(TOPO, kernel, tokens, 7168, 8, 256, 64)
    assert (np.diff(r.dispatch_s) >= 0).all() and (np.diff(r.combine_s) >= 0).all()
    h = np.array([1024, 2048, 4096, 7168])
    r = moe_times(TOPO, kernel, 512, h, 8, 256, 64)
    assert (np.diff(r.dispatch_s) >= 0).all()


@pytest.mark.parametrize("kernel", MOE_KERNELS)
def test_fp8_dispatch_is_not_slower_and_combine_in_bf16_is_costlier(kernel):
    fp8 = moe_times(TOPO, kernel, 4096, 7168, 8, 256, 64, dispatch="fp8")
    bf16 = moe_times(TOPO, kernel, 4096, 7168, 8, 256, 64, dispatch="bf16")
    assert fp8.dispatch_s <= bf16.dispatch_s
    assert fp8.combine_s >= fp8.dispatch_s  # bf16 combine moves ~2x the fp8 dispatch bytes


def test_vectorized_equals_one_by_one():
    tokens = np.array([16, 128, 4096])
    kern = np.array(MOE_KERNELS)
    batch = moe_times(TOPO, kern[:, None], tokens[None, :], 7168, 8, 256, 32)
    for i, k in enumerate(MOE_KERNELS):
        for j, t in enumerate(tokens):
            one = moe_times(TOPO, k, int(t), 7168, 8, 256, 32)
            assert batch.dispatch_s[i, j] == pytest.approx(float(one.dispatch_s), rel=1e-12)
            assert batch.combine_s[i, j] == pytest.approx(float(one.combine_s), rel=1e-12)


def test_a_failed_nic_slows_the_network_bound_kernels():
    healthy = placement_arrays(TOPO, 64)
    half = placement_arrays(TOPO, 64, nic_fraction=0.5)
    for kernel in ("deepep_normal", "deepep_low_latency"):
        a = moe_times(TOPO, kernel, 4096, 7168, 8, 256, placement=healthy)
        b = moe_times(TOPO, kernel, 4096, 7168, 8, 256, placement=half)
        assert b.dispatch_s > a.dispatch_s


def test_one_nvl72_rack_stays_on_nvlink():
    r = moe_times(NVL72, "deepep_normal", 4096, 7168, 8, 288, 72)
    assert float(r.dispatch_network_bytes) == 0.0 and float(r.domains_per_token) == pytest.approx(1.0)
    two = moe_times(NVL72, "deepep_normal", 4096, 7168, 8, 288, 144)
    assert float(two.dispatch_network_bytes) > 0


def test_invalid_inputs_are_named():
    errs = dict(moe_errors("deepep_turbo", 0, 7168, 0, 256, 64, "fp4", "fp8", -1))
    assert set(errs) == {"kernel", "tokens_per_rank", "top_k", "dispatch_precision", "combine_precision",
                         "max_nodes_per_token"}
    assert "multiple" in dict(moe_errors("deepep_normal", 1, 1, 8, 100, 64, "fp8", "bf16", 0))["num_experts"]
    assert "BF16 only" in dict(moe_errors("deepep_normal", 1, 1, 8, 256, 64, "fp8", "fp8", 0))["combine_precision"]
    with pytest.raises(ValueError, match="top_k"):
        moe_times(TOPO, "nccl_alltoall", 128, 7168, 0, 256, 8)
