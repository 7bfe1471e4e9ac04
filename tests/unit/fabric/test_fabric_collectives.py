"""Physics checks of the collective cost model (twin.fabric.domain)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from twin.fabric.domain import (
    ALGORITHMS,
    PRESETS,
    LinkState,
    ModelSpec,
    Parallelism,
    estimate,
    infiniband,
    placement_arrays,
    placement_from_gpu_ids,
    placement_packed,
    preset,
    training_step_comm,
)

H100 = PRESETS["dgx-h100"]


def test_ring_allreduce_large_message_approaches_bandwidth_term():
    pl = placement_packed(H100, 8)
    size = 32 * 2**30
    est = estimate(H100, "all_reduce", size, pl, algorithms=("ring",))
    n = 8
    ideal = 2 * (n - 1) / n * size / (H100.scale_up.nvlink_bw_GBps_per_gpu * 1e9)
    assert est.algorithm_names() == "ring"
    assert est.time_s == pytest.approx(ideal, rel=0.05)
    assert est.time_s >= ideal  # never faster than the wire allows


def test_latency_floor_for_tiny_messages():
    pl = placement_packed(H100, 8)
    sizes = np.array([8, 64, 512, 2048])
    t = estimate(H100, "all_reduce", sizes, pl).time_s
    assert t.min() > 5e-6
    assert t.max() / t.min() < 1.2  # roughly constant in size below a few KiB


def test_blackwell_small_messages_pay_higher_gpu_latency_large_ones_more_bandwidth():
    b200, h200 = PRESETS["hgx-b200"], PRESETS["hgx-h200"]
    assert b200.scale_up.gpu_latency_scale == pytest.approx(3.0 / 2.3)
    assert h200.scale_up.gpu_latency_scale == 1.0
    tiny = [estimate(t, "all_reduce", 8, placement_packed(t, 8)) for t in (b200, h200)]
    assert tiny[0].time_s == pytest.approx(tiny[1].time_s * 3.0 / 2.3, rel=1e-3)  # latency-bound: GPU-side
    huge = [estimate(t, "all_reduce", 2**34, placement_packed(t, 8)).time_s for t in (b200, h200)]
    assert huge[0] < 0.7 * huge[1]  # NVLink5 doubles the link rate
    with pytest.raises(ValueError, match="gpu_latency_scale"):
        replace(b200.scale_up, gpu_latency_scale=0.0)


def test_doubling_nic_bandwidth_roughly_halves_cross_node_time():
    slow = replace(H100, scale_out=infiniband(100.0))
    fast = replace(H100, scale_out=infiniband(200.0))
    ids = np.arange(32) * 8  # one GPU per node: pure network ring
    size = 4 * 2**30
    t_slow = estimate(slow, "all_reduce", size, placement_from_gpu_ids(slow, ids)).time_s
    t_fast = estimate(fast, "all_reduce", size, placement_from_gpu_ids(fast, ids)).time_s
    assert t_slow / t_fast == pytest.approx(2.0, rel=0.1)


def test_failures_and_utilization_never_make_things_faster():
    topo = preset("dgx-h100", 1024)
    rng = np.random.default_rng(7)
    ids = np.sort(rng.choice(topo.n_gpus, size=256, replace=False))
    healthy = LinkState.healthy(topo)
    sizes = np.array([1e3, 1e6, 1e8, 4e9])
    colls = np.array(["all_reduce", "all_gather", "alltoall", "reduce_scatter"])[:, None]
    base = estimate(topo, colls, sizes, placement_from_gpu_ids(topo, ids, healthy)).time_s
    for _ in range(10):
        cap = np.where(rng.random(healthy.uplink_capacity.shape) < 0.2, rng.random(healthy.uplink_capacity.shape), 1.0)
        util = rng.random(cap.shape) * 0.9
        nic = np.where(rng.random(topo.n_gpus) < 0.05, 0.5, 1.0)
        state = LinkState(cap, util, nic)
        worse = estimate(topo, colls, sizes, placement_from_gpu_ids(topo, ids, state)).time_s
        assert (worse >= base * (1 - 1e-12)).all()
        # degrading further from that state is monotone too
        state2 = state.with_failed_spine(0).with_utilization(np.minimum(util + 0.05, 1.0))
        worse2 = estimate(topo, colls, sizes, placement_from_gpu_ids(topo, ids, state2)).time_s
        assert (worse2 >= worse * (1 - 1e-12)).all()


def test_background_utilization_slows_spine_crossing_alltoall():
    topo = preset("dgx-h100", 1024)
    ids = np.arange(512)  # spans 2 leaf groups
    quiet = LinkState.healthy(topo)
    busy = quiet.with_utilization(0.8)
    t_quiet = estimate(topo, "alltoall", 2**30, placement_from_gpu_ids(topo, ids, quiet)).time_s
    t_busy = estimate(topo, "alltoall", 2**30, placement_from_gpu_ids(topo, ids, busy)).time_s
    assert t_busy > 1.5 * t_quiet


def test_alltoall_across_racks_slower_than_inside_nvl72():
    topo = preset("gb200-nvl72", 72 * 4)
    size = 8 * 2**30
    inside = estimate(topo, "alltoall", size, placement_packed(topo, 64))
    across = estimate(topo, "alltoall", size, placement_packed(topo, 128))
    assert across.busbw_GBps < inside.busbw_GBps / 4
    assert across.time_s > inside.time_s


def test_algorithm_choice_reported():
    pl = placement_packed(H100, 8)
    est = estimate(H100, "all_reduce", np.array([8, 8 * 2**30]), pl)
    names = est.algorithm_names()
    assert set(names) <= set(ALGORITHMS)
    assert names[1] == "nvls"  # NVLink SHARP wins for large single-node all-reduce on H100
    assert est.protocol_names()[0] in ("LL", "LL128")
    ring = estimate(H100, "all_reduce", 8 * 2**30, pl, algorithms=("ring", "tree"))
    assert ring.algorithm_names() == "ring" and ring.time_s > est.time_s[1]


def test_vectorized_matches_per_element_calls():
    topo = preset("dgx-h100", 512)
    sizes = np.logspace(0, 10, 7)
    colls = np.array(["all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "alltoall", "send_recv"])
    pls = placement_packed(topo, np.array([2, 8, 16, 64, 256]))
    c3 = colls[:, None, None]
    s3 = sizes[None, :, None]
    p3 = pls.reshape(1, 1, -1)
    est = estimate(topo, c3, s3, p3)
    assert est.time_s.shape == (7, 7, 5)
    for i in range(7):
        for j in range(7):
            for k in range(5):
                one = estimate(topo, colls[i], sizes[j], pls[k])
                assert one.time_s == pytest.approx(est.time_s[i, j, k], rel=1e-12)
                assert one.algorithm == est.algorithm[i, j, k] and one.protocol == est.protocol[i, j, k]


def test_busbw_definitions():
    pl = placement_packed(H100, 8)
    est = estimate(H100, np.array(["all_reduce", "all_gather", "broadcast"]), 2**30, pl)
    algbw = 2**30 / est.time_s / 1e9
    np.testing.assert_allclose(est.algbw_GBps, algbw)
    np.testing.assert_allclose(est.busbw_GBps, algbw * np.array([2 * 7 / 8, 7 / 8, 1.0]))


def test_placement_matters_domain_vs_nodes_vs_leaves():
    topo = preset("dgx-h100", 1024)
    size = 2**28
    in_domain = estimate(topo, "all_gather", size, placement_from_gpu_ids(topo, np.arange(8))).time_s
    over_nodes = estimate(topo, "all_gather", size, placement_from_gpu_ids(topo, np.arange(8) * 8)).time_s
    assert over_nodes > 3 * in_domain
    same_leaf = placement_from_gpu_ids(topo, np.arange(16) * 8)
    cross_leaf = placement_from_gpu_ids(topo, np.arange(16) * 64)
    assert int(same_leaf.n_leaf_groups) == 1 and int(cross_leaf.n_leaf_groups) > 1
    assert estimate(topo, "all_reduce", 8, cross_leaf).time_s > estimate(topo, "all_reduce", 8, same_leaf).time_s


def test_training_step_splits_by_type_and_tp_beyond_domain_costs_more():
    topo = preset("dgx-h100", 1024)
    model = ModelSpec(params=70e9, layers=80, hidden=8192, seq_len=4096, micro_batch=1, micro_batches_per_step=8,
                      moe_layers=40, moe_top_k=2)
    inside = training_step_comm(topo, model, Parallelism(dp=8, tp=8, pp=4, ep=4))
    beyond = training_step_comm(topo, model, Parallelism(dp=8, tp=16, pp=4, ep=4))
    for r in (inside, beyond):
        parts = r.by_type()
        assert all(parts[k] > 0 for k in ("tp", "dp", "pp", "ep"))
        assert parts["total"] == pytest.approx(parts["tp"] + parts["dp"] + parts["pp"] + parts["ep"])
        assert {op.kind for op in r.ops} == {"tp", "dp", "pp", "ep"}
    assert beyond.tp_s > inside.tp_s
    tp_op = next(op for op in inside.ops if op.kind == "tp")
    assert tp_op.calls == 4 * (80 // 4) * 8 and tp_op.size_bytes == 1 * 4096 * 8192 * 2


def test_input_validation():
    pl = placement_packed(H100, 8)
    with pytest.raises(ValueError, match="size_bytes"):
        estimate(H100, "all_reduce", -1, pl)
    with pytest.raises(ValueError, match="unknown collective"):
        estimate(H100, "all_scatter", 8, pl)
    with pytest.raises(ValueError, match="zero ranks|>= 1"):
        placement_packed(H100, 0)
    with pytest.raises(ValueError, match="exceeds"):
        placement_packed(H100, H100.n_gpus + 1)
    with pytest.raises(ValueError, match=">= 1"):
        placement_arrays(H100, 0)
    with pytest.raises(ValueError, match="exceeds"):
        placement_arrays(H100, H100.n_gpus + 8)
    with pytest.raises(ValueError, match="gpu ids"):
        placement_from_gpu_ids(H100, [0, H100.n_gpus])
    with pytest.raises(ValueError, match="unique"):
        placement_from_gpu_ids(H100, [1, 1])
    with pytest.raises(ValueError, match="exceeds"):
        training_step_comm(H100, ModelSpec(params=1e9, layers=4, hidden=1024, seq_len=128),
                           Parallelism(dp=64, tp=8, pp=1))
    with pytest.raises(ValueError, match="unknown algorithm"):
        estimate(H100, "all_reduce", 8, pl, algorithms=("butterfly",))


def test_single_rank_and_zero_bytes_cost_nothing():
    est = estimate(H100, "all_reduce", np.array([0, 1024]), placement_packed(H100, np.array([8, 1])))
    assert (est.time_s == 0).all()


def test_100k_gpu_placement_summary():
    topo = preset("dgx-h100", 100_000)
    pl = placement_from_gpu_ids(topo, np.arange(topo.n_gpus))
    assert int(pl.n_ranks) == topo.n_gpus and int(pl.n_domains) == topo.n_gpus // 8
    assert int(pl.n_leaf_groups) == topo.n_leaf_groups
    assert np.isfinite(estimate(topo, "all_reduce", 2**30, pl).time_s)


def test_leaf_uplink_available_is_computed_once_per_state_and_read_only():
    topo = preset("dgx-h100", n_gpus=256)
    cap = np.ones((topo.n_leaves, topo.n_spines))
    cap[0, :2] = 0.0
    util = np.full_like(cap, 0.25)
    state = LinkState(cap, util, np.ones(topo.n_gpus))
    first = state.leaf_uplink_available()
    np.testing.assert_allclose(first, (cap * 0.75).mean(axis=1))
    assert state.leaf_uplink_available() is first  # the same array: computed once
    with pytest.raises(ValueError):
        first[0] = 1.0  # read-only, like the state's own arrays, so the cache cannot be changed under a caller
    # a what-if state is a new object with its own answer
    assert state.with_failed_spine(3).leaf_uplink_available()[1] < first[1]
