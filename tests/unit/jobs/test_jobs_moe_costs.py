"""Mechanisms of the issue-11 validation pass (step model): GEMM tile quantization; MoE costs beyond the all-to-all
(expert GEMMs as Transformer Engine's GroupedLinear runs them, the FP8 cast of every routed copy, the router's FP32
softmax/top-k traffic, Megatron's re-sort by local expert, expert optimizer sharding); the causal flash-attention
backward; LLM Foundry's varlen copies and its FlashAttention-1 tables; FP8 current scaling's separate amax pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from twin.jobs.domain import JobSpec, ModelShape, Parallelism, TrainingSetup, gpu_spec, predict_step
from twin.jobs.domain.hardware import HBM_EFFICIENCY
from twin.jobs.domain.step import (
    FP8_CAST_BYTES,
    GEMM_TILE,
    GROUPED_GEMM_STREAMS,
    ROUTER_BYTES_PER_LOGIT,
    gemm_time_s,
)

H100 = gpu_spec("H100-SXM")
QWEN_MOE = ModelShape(layers=48, hidden=2048, ffn_hidden=768, heads=32, kv_heads=4, vocab=151936, seq_len=4096,
                      head_dim=128, moe_experts=128, moe_topk=8, gated_ffn=True)


def _t(m, n, k, groups=1.0, fp8=False) -> float:
    return float(gemm_time_s(H100, np.array([m]), np.array([n]), np.array([k]), np.array([fp8]), 1.0,
                             np.array([groups]))[0])


def test_a_partial_tile_costs_a_whole_tile() -> None:
    # compute-bound shapes (K x N weights far smaller in time than the math): one row past a tile boundary
    # costs the next whole tile, and every M inside the same tiles costs the same
    rows = GEMM_TILE[0]
    assert _t(8 * rows + 1, 8192, 8192) == pytest.approx(_t(9 * rows, 8192, 8192), rel=1e-12)
    assert _t(8 * rows + 1, 8192, 8192) > _t(8 * rows, 8192, 8192) * 1.05
    # and the same along N
    cols = GEMM_TILE[1]
    assert _t(4096, 16 * cols + 1, 8192) == pytest.approx(_t(4096, 17 * cols, 8192), rel=1e-12)


def test_one_group_is_the_plain_gemm() -> None:
    m, n, k = np.array([4096.0, 300.0]), np.array([12288.0, 5000.0]), np.array([4096.0, 2048.0])
    fp8 = np.array([False, True])
    plain = gemm_time_s(H100, m, n, k, fp8, 0.8)
    assert np.allclose(plain, gemm_time_s(H100, m, n, k, fp8, 0.8, np.ones(2)))


def test_small_experts_cost_more_than_one_gemm_of_all_their_rows() -> None:
    # 16 local experts of 64 rows: each rounds to a 128-row tile and at most GROUPED_GEMM_STREAMS share a wave,
    # so the grouped GEMM is slower than a single GEMM over the 1024 rows; large experts cost about the same
    small = _t(64, 1536, 2048, groups=16)
    assert small > 1.5 * _t(16 * 64, 1536, 2048)
    large = _t(8192, 1536, 2048, groups=16)
    assert large == pytest.approx(_t(16 * 8192, 1536, 2048), rel=0.05)


def test_grouped_gemm_time_is_monotone_in_experts_and_rows() -> None:
    # 512 x 1536 is 24 tiles: up to 4 concurrent experts fit one wave of 132 SMs (same time), a 5th needs a
    # second round
    per_expert = [_t(512, 1536, 2048, groups=g) for g in (1, 2, 4, 5, 8, 16, 32)]
    assert all(b >= a * (1 - 1e-12) for a, b in zip(per_expert, per_expert[1:], strict=False))
    assert per_expert[0] == pytest.approx(per_expert[2], rel=1e-12)
    assert per_expert[3] > 1.5 * per_expert[2]
    assert per_expert[-1] == pytest.approx(4 * per_expert[3], rel=1e-12)  # 8 rounds vs 2
    rows = [_t(m, 1536, 2048, groups=16) for m in (128, 256, 1024, 4096)]
    # 128 and 256 rows: 4 concurrent experts fill under one wave either way (an underfilled GPU)
    assert all(b >= a * (1 - 1e-12) for a, b in zip(rows, rows[1:], strict=False))
    assert rows[-1] > 4 * rows[0]
    assert GROUPED_GEMM_STREAMS >= 1


def _moe_job(precision: str = "bf16", experts: int = 128, tp: int = 1, gpu: str = "H100-SXM") -> JobSpec:
    shape = dataclasses.replace(QWEN_MOE, moe_experts=experts)
    return JobSpec(shape, Parallelism(tp=tp, pp=1, dp=16 // tp, ep=8),
                   TrainingSetup(micro_batch=1, global_batch=64, precision=precision), gpu=gpu)


@pytest.mark.parametrize("gpu", ["H100-SXM", "B200"])
@pytest.mark.parametrize("tp", [1, 2])
def test_fp8_casts_every_routed_copy_of_the_expert_input(tp: int, gpu: str) -> None:
    """The memory-bound difference between an FP8 and a BF16 MoE job is exactly the casts of each FP8 GEMM's
    input: QKV (h), projection (q), expert up-projection on every routed copy (top-k x h) and down-projection
    (top-k x f), forward and twice in backward; on Hopper each cast also writes the column-wise copy its TN-only
    FP8 GEMMs need."""
    from twin.jobs.domain.step import FP8_TRANSPOSE_BYTES

    bf16, fp8 = predict_step(_moe_job("bf16", tp=tp, gpu=gpu)), predict_step(_moe_job("fp8", tp=tp, gpu=gpu))
    job = _moe_job("fp8", tp=tp, gpu=gpu)
    spec = gpu_spec(gpu)
    m = job.model
    tok = job.training.micro_batch * m.seq_len
    moe_tok = tok / tp  # sequence parallel: the MoE layer sees the shard
    cast = FP8_CAST_BYTES + (1.0 if spec.arch == "hopper" else 0.0)
    assert FP8_TRANSPOSE_BYTES.get(spec.arch, 0.0) == cast - FP8_CAST_BYTES
    per_layer = cast * (tok * (m.hidden + m.q_dim / tp + m.moe_topk * m.ffn_hidden / tp)
                        + moe_tok * m.moe_topk * m.hidden)
    hbm = spec.hbm_TBps * 1e12 * HBM_EFFICIENCY
    expected = job.micro_batches * m.layers * 3.0 * per_layer / hbm
    assert fp8.memory_s - bf16.memory_s == pytest.approx(expected, rel=1e-9)


def test_router_softmax_and_top_k_stream_fp32_scores_per_expert() -> None:
    a, b = predict_step(_moe_job(experts=128)), predict_step(_moe_job(experts=256))
    job = _moe_job()
    tok = job.training.micro_batch * job.model.seq_len
    hbm = H100.hbm_TBps * 1e12 * HBM_EFFICIENCY
    expected = job.micro_batches * job.model.layers * 3.0 * ROUTER_BYTES_PER_LOGIT * tok * 128 / hbm
    assert b.memory_s - a.memory_s == pytest.approx(expected, rel=1e-9)


def test_causal_backward_pays_the_forwards_causal_penalty() -> None:
    """FA3's backward figures are non-causal: the causal fwd+bwd mix takes the backward at the forward's
    causal/non-causal ratio, so it lands below the plain causal-fwd / non-causal-bwd mix and above the causal
    forward's share alone."""
    from twin.jobs.domain.step import _FA3_H100, ATTENTION_EFFICIENCY

    for kernel in ("flash2", "cudnn"):
        fwd_c, fwd_full, bwd_full = _FA3_H100[kernel]
        naive = 3.5 / (1.0 / fwd_c + 2.5 / bwd_full) / 989.4
        eff = ATTENTION_EFFICIENCY[("hopper", kernel)]
        ratio = fwd_c / fwd_full
        assert 0.8 < ratio < 0.95
        assert eff < naive
        # the whole slowdown sits in the backward's 2.5/3.5 share of the work
        assert 1.0 / eff - 1.0 / naive == pytest.approx(2.5 / 3.5 * 989.4 / bwd_full * (1.0 / ratio - 1.0),
                                                        rel=1e-9)
    assert ATTENTION_EFFICIENCY[("hopper", "cudnn")] > ATTENTION_EFFICIENCY[("hopper", "flash2")]


@pytest.mark.parametrize("recompute", ["none", "full"])
def test_varlen_attention_adds_its_unpad_and_pad_copies(recompute: str) -> None:
    """LLM Foundry's MPT flash path gathers q, k, v into unpadded rows and scatters the output back into a zeroed
    tensor: 5 q + 4 kv elements per token forward, streamed again by the backward and a full recomputation."""
    from twin.jobs.domain.step import ACT_BYTES, VARLEN_COPY_ELEMENTS

    shape = ModelShape(layers=32, hidden=4096, ffn_hidden=16384, heads=32, kv_heads=8, vocab=50368, seq_len=2048)

    def job(kernels: str) -> JobSpec:
        return JobSpec(shape, Parallelism(tp=1, pp=1, dp=8, data_parallel="fsdp"),
                       TrainingSetup(micro_batch=6, global_batch=48, kernels=kernels, attention_kernel="flash2",
                                     recompute=recompute), gpu="H100-SXM")

    eager, varlen = predict_step(job("eager")), predict_step(job("eager_varlen"))
    tok = 6 * 2048
    passes = 3.0 + (1.0 if recompute == "full" else 0.0)
    per_layer = ACT_BYTES * tok * (VARLEN_COPY_ELEMENTS[0] * shape.q_dim + VARLEN_COPY_ELEMENTS[1] * shape.kv_dim)
    expected = shape.layers * passes * per_layer / (H100.hbm_TBps * 1e12 * HBM_EFFICIENCY)
    assert varlen.memory_s - eager.memory_s == pytest.approx(expected, rel=1e-9)
    assert varlen.gemm_s == pytest.approx(eager.gemm_s) and varlen.attention_s == pytest.approx(eager.attention_s)


def test_expert_optimizer_state_is_sharded_over_the_expert_data_parallel_group() -> None:
    """ZeRO-1 shards expert parameters over DP x CP / EP ranks (where their gradients are reduced), not over all
    DP x CP ranks: doubling EP at fixed DP doubles each GPU's expert optimizer work per expert parameter."""
    from twin.jobs.domain.step import OPTIMIZER_BYTES_PER_PARAM

    job = _moe_job()  # dp 16, ep 8 -> expert DP 2
    m = job.model
    pred = predict_step(job)
    mats = 3
    expert_local = mats * m.hidden * m.ffn_hidden * m.moe_experts * m.layers / 8
    dense_local = m.params - mats * m.hidden * m.ffn_hidden * m.moe_experts * m.layers
    hbm = H100.hbm_TBps * 1e12 * HBM_EFFICIENCY
    expected = OPTIMIZER_BYTES_PER_PARAM * (dense_local / 16 + expert_local / 2) / hbm
    assert pred.optimizer_s == pytest.approx(expected, rel=1e-9)


def test_megatron_all_to_all_dispatcher_sorts_tokens_by_local_expert() -> None:
    """With several local experts, Megatron-Core's all-to-all dispatcher re-sorts the received tokens by local
    expert and back (a read and a write each way per routed copy); DeepEP's dispatcher is not charged for it."""
    from twin.jobs.domain.step import ACT_BYTES, MOE_SORT_CHUNKS_ELEMENTS

    def job(kernel: str, ep: int) -> JobSpec:
        return JobSpec(QWEN_MOE, Parallelism(tp=1, pp=1, dp=16, ep=ep),
                       TrainingSetup(micro_batch=1, global_batch=64, moe_kernel=kernel), gpu="H100-SXM")

    a2a, deepep = predict_step(job("nccl_alltoall", 8)), predict_step(job("deepep_normal", 8))
    m = QWEN_MOE
    tok = m.seq_len
    hbm = H100.hbm_TBps * 1e12 * HBM_EFFICIENCY
    expected = job("nccl_alltoall", 8).micro_batches * m.layers * 3.0 * ACT_BYTES * MOE_SORT_CHUNKS_ELEMENTS \
        * tok * m.moe_topk * m.hidden / hbm
    assert a2a.memory_s - deepep.memory_s == pytest.approx(expected, rel=1e-9)


def test_flash_attention_1_runs_at_half_fa2_on_ampere_and_is_not_guessed_elsewhere() -> None:
    shape = ModelShape(layers=24, hidden=2048, ffn_hidden=8192, heads=16, kv_heads=16, vocab=50368, seq_len=16384)

    def attn(kernel: str, gpu: str) -> float:
        job = JobSpec(shape, Parallelism(tp=1, pp=1, dp=8, data_parallel="fsdp"),
                      TrainingSetup(micro_batch=1, global_batch=8, attention_kernel=kernel, kernels="eager_varlen"),
                      gpu=gpu)
        return predict_step(job).attention_s

    assert attn("flash1", "A100-80GB") == pytest.approx(2.0 * attn("flash2", "A100-80GB"), rel=1e-12)
    assert attn("flash1", "H100-SXM") == pytest.approx(attn("flash2", "H100-SXM"), rel=1e-12)


def test_validate_reads_llm_foundrys_flash_attention_version_from_the_table() -> None:
    from twin.jobs.validate import row_job

    base = {"model": "MPT-7b", "params_b": "6.659", "layers": "32", "hidden": "4096", "ffn_hidden": "16384",
            "heads": "32", "seq_len": "2048", "vocab": "50368", "precision": "bf16", "gpu": "A100-80GB",
            "n_gpus": "8", "tp": "1", "pp": "1", "dp": "8", "cp": "1", "micro_batch": "6", "global_batch": "48",
            "tokens_per_s_per_gpu": "4641", "framework": "LLM Foundry / Composer (PyTorch FSDP)"}
    old, _ = row_job(base | {"note": "section 'A100 80GB with 1600 Gbps node-node interconnect (RoCE)'"})
    new, why = row_job(base | {"gpu": "H100-SXM", "n_gpus": "128", "dp": "128", "global_batch": "768",
                             "note": "section 'H100 80GB BF16 (Large Scale, >= 128 GPUs)'"})
    unknown, _ = row_job(base | {"note": "no table named"})
    assert old["job"].training.attention_kernel == "flash1"
    assert any("FlashAttention-1" in a for a in old["assumptions"])
    assert new is not None, why
    assert new["job"].training.attention_kernel == "flash2"
    assert unknown["job"].training.attention_kernel == "flash2"


def test_overlapped_ep_traffic_hides_behind_both_expert_gemms() -> None:
    """With EP overlap allowed, the dispatch/combine hides behind the expert up- AND down-projections (forward and
    backward: dgrad and wgrad at their own shapes), no more."""
    from twin.jobs.domain import Overlap
    from twin.jobs.domain.comm import LinkModel

    m = QWEN_MOE
    job = JobSpec(m, Parallelism(tp=1, pp=1, dp=16, ep=16),
                  TrainingSetup(micro_batch=1, global_batch=16, overlap=Overlap(ep=1.0)), gpu="H100-SXM")
    slow = LinkModel.for_gpu(H100, 400.0, degrade=0.02).time_s  # a crawling network: the window is the limit
    pred = predict_step(job, slow)
    tok, le = m.seq_len, m.moe_experts / 16
    m_e = tok * m.moe_topk * 16 / m.moe_experts
    rows, n, k = np.array([m_e, m_e]), np.array([2 * m.ffn_hidden, m.hidden]), np.array([m.hidden, m.ffn_hidden])
    no_fp8, groups = np.array([False, False]), np.array([le, le])
    t = sum(gemm_time_s(H100, a, b, c, no_fp8, pred.clock_fraction, groups)
            for a, b, c in ((rows, n, k), (rows, k, n), (k, n, rows)))  # forward, dgrad, wgrad
    window = m.layers * float(t.sum())
    assert pred.raw_comm_s["ep"] > window
    assert pred.raw_comm_s["ep"] - pred.exposed_comm_s["ep"] == pytest.approx(window, rel=1e-9)


@pytest.mark.parametrize("moe", [True, False])
@pytest.mark.parametrize("tp", [1, 2])
def test_fp8_current_scaling_reads_each_unfused_cast_input_once_more(moe: bool, tp: int) -> None:
    """Transformer Engine's current scaling computes a tensor's amax in its own pass before the cast: one more BF16
    read of the GEMM inputs no TE norm/activation kernel writes -- the attention output, and in a MoE layer every
    routed copy of the expert input and of the SwiGLU output -- forward and twice in backward. Delayed scaling
    (the default) is unchanged."""
    from twin.jobs.domain.step import FP8_CURRENT_SCALING_AMAX_BYTES

    shape = QWEN_MOE if moe else dataclasses.replace(QWEN_MOE, moe_experts=0, moe_topk=0, ffn_hidden=6144)
    par = Parallelism(tp=tp, pp=1, dp=16 // tp, ep=8 if moe else 1)

    def job(**kw) -> JobSpec:
        return JobSpec(shape, par, TrainingSetup(micro_batch=1, global_batch=64, precision="fp8", **kw),
                       gpu="H100-SXM")

    default, delayed, current = (predict_step(job()), predict_step(job(fp8_recipe="delayed")),
                                 predict_step(job(fp8_recipe="current")))
    assert default.step_time_s == delayed.step_time_s
    m = shape
    tok = float(m.seq_len)
    moe_tok = tok / tp
    separate = tok * m.q_dim / tp
    if moe:
        separate += moe_tok * m.moe_topk * m.hidden + tok * m.moe_topk * m.ffn_hidden / tp
    hbm = H100.hbm_TBps * 1e12 * HBM_EFFICIENCY
    expected = job().micro_batches * m.layers * 3.0 * FP8_CURRENT_SCALING_AMAX_BYTES * separate / hbm
    assert current.memory_s - delayed.memory_s == pytest.approx(expected, rel=1e-9)
    assert current.gemm_s == delayed.gemm_s and current.attention_s == delayed.attention_s


def test_fp8_recipe_is_checked_and_a_bf16_job_ignores_it() -> None:
    from twin.jobs.domain import JobSpecError

    with pytest.raises(JobSpecError) as err:
        TrainingSetup(micro_batch=1, global_batch=8, precision="fp8", fp8_recipe="mxfp8")
    assert err.value.field == "fp8_recipe"
    bf16 = [predict_step(JobSpec(QWEN_MOE, Parallelism(dp=16, ep=8),
                                 TrainingSetup(micro_batch=1, global_batch=64, fp8_recipe=r), gpu="H100-SXM"))
            for r in ("delayed", "current")]
    assert bf16[0].step_time_s == bf16[1].step_time_s


def test_validate_reads_the_fp8_recipe_only_where_a_megatron_row_states_it() -> None:
    from twin.jobs.validate import row_job

    base = {"model": "Qwen3-30B-A3B", "params_b": "30", "layers": "48", "hidden": "2048", "ffn_hidden": "768",
            "heads": "32", "kv_heads": "4", "seq_len": "4096", "vocab": "151936", "moe_experts": "128",
            "moe_topk": "8", "precision": "fp8", "gpu": "H100-SXM", "n_gpus": "16", "tp": "1", "pp": "1",
            "dp": "16", "ep": "8", "micro_batch": "1", "global_batch": "64", "tokens_per_s_per_gpu": "5000",
            "framework": "Megatron-Bridge (NeMo 25.11 container)"}
    cs, _ = row_job(base | {"note": "25.11 container, DGX-H100, FP8-CS (current scaling)"})
    cs_short, _ = row_job(base | {"note": "DGX-H100, FP8-CS, GA 4"})
    plain, _ = row_job(base | {"note": "26.04.01 container, DGX-H100, FP8"})
    bf16, _ = row_job(base | {"precision": "bf16", "note": "BF16"})
    assert cs["job"].training.fp8_recipe == "current" == cs_short["job"].training.fp8_recipe
    assert not any("FP8 recipe" in a for a in cs["assumptions"])
    assert plain["job"].training.fp8_recipe == "delayed"
    assert any("FP8 recipe not stated: delayed" in a for a in plain["assumptions"])
    assert bf16["job"].training.fp8_recipe == "delayed"
    assert not any("FP8 recipe" in a for a in bf16["assumptions"])
