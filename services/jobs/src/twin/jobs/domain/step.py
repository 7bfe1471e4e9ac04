"""Step time of a training job: compute + exposed communication + pipeline bubble + optimizer, under live
conditions (power cap, thermal throttling, network health). Pure (numpy + frozen dataclasses).

One optimizer step on the slowest pipeline stage (the one holding the LM head):

    step = (m + (pp - 1) / vp) * t_mb + exposed_pp + exposed_dp + t_optimizer
    t_mb = t_fwd + t_bwd + exposed_tp + exposed_cp + exposed_ep          (one micro-batch)

with m = micro-batches per pipeline per step. Compute per micro-batch on one GPU:

* GEMMs (projections, FFN / experts, router, logits) with M = tokens of the micro-batch on this GPU
  (micro_batch x seq_len / cp), N split by TP: time = max(FLOPs / (peak x gemm_fraction x wave efficiency x
  clock), bytes / HBM). ``gemm_fraction`` is the sustained large-GEMM throughput of the GPU and precision
  (``hardware``); wave efficiency = tiles / (waves x SMs) for 128 x 256 output tiles (CUTLASS/cuBLAS Hopper
  and Blackwell default tile; also used on Ampere) times the tile quantization (a partial tile costs a whole
  one), the GPU-side cost of small or ragged GEMMs. MoE experts: one GEMM per local expert with its own tile
  rounding, ``GROUPED_GEMM_STREAMS`` of them sharing waves (Transformer Engine's GroupedLinear). Backward =
  the two GEMMs at their own shapes: dgrad dX = dY W^T (M = tokens, N and K of the forward swapped) and wgrad
  dW = X^T dY (M x N = the weight, K = the tokens, or an expert's rows -- a short reduction at small micro-batches
  costs ``GEMM_K0`` per tile like any other). FP8 jobs run their linear layers in FP8 except the LM head and router
  (Transformer Engine and torchao float8 keep those in BF16).
* Attention core: flash attention executes the causal half of QK^T/AV (context seq_len/2, or the window on
  sliding-window layers); its backward costs 2.5 forwards (5 GEMMs vs 2, the recomputation of S included:
  Dao 2023, FlashAttention-2, sec. 3.1). Throughput = BF16 peak x ``ATTENTION_EFFICIENCY`` (causal forward and
  backward) x s/(s + 256) x clock (attention stays in BF16 in both FP8 recipes).
* Memory-bound element-wise work (norms, residuals, rotary, activation function, FP8 casts -- of every routed
  copy for MoE experts --, MoE permutation and router softmax/top-k, cross-entropy) from the bytes it streams
  (``ELEMENTWISE_*`` and the MoE terms) at the achieved HBM bandwidth; unaffected by SM clock. FP8 current
  scaling adds the separate amax read of each cast input no fused norm/activation kernel wrote.
* Activation recomputation: "full" repeats the forward of every layer (GEMMs, attention, element-wise, TP
  communication); "op" (torchtitan per-op selective AC: every second matmul output is not saved) repeats half
  the forward GEMMs; "selective" (Megatron: core attention only) costs nothing extra with flash attention,
  which recomputes attention in its backward anyway.

Communication: the collectives of ``comm`` per micro-batch (TP all-gather/reduce-scatter or all-reduce per
layer, CP key/value exchange, EP dispatch + combine per MoE layer (``moe_calls``: forward pair, repeated by
the backward and a full recomputation; tokens per rank, precision and kernel as stated there), PP send/recv) and per step (DP gradient
reduce-scatter / all-reduce and parameter all-gather; FSDP gathers parameters for forward and backward of
every micro-batch), each timed by the injected ``CommTimer``. Exposed = raw - min(raw x overlap, window),
where ``overlap`` is the framework's stated overlap fraction (``spec.Overlap``) and the window is the compute
it can hide behind (GEMMs for TP, attention for CP, expert GEMMs for EP, the last micro-batch's backward for
gradient reduction, the first forward for the parameter all-gather, the same micro-batch's forward/backward
for FSDP).

Optimizer: Adam with FP32 master weights streams ~30 bytes per local parameter (read param/grad/m/v, write
param/m/v and the BF16 copy: 4 x 4 + 3 x 4 + 2), over the DP x CP shard for zero1/FSDP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .comm import CollectiveCall, CommTimer, LinkModel, MoeTraffic, group_for
from .flops import model_flops_per_token
from .hardware import (
    HBM_EFFICIENCY,
    MEMORY_BOUND_ACTIVITY,
    SUSTAINED_FRACTION,
    GpuSpec,
    clock_fraction_at_cap,
    gpu_spec,
    run_power_limit_w,
)
from .spec import JobSpec

#: flash-attention forward+backward throughput / dense BF16 peak at long sequences, head dim 128, causal, as
#: 3.5 / (1/fwd + 2.5/bwd) (backward = 2.5 forward FLOPs). Hopper, from the H100 SXM5 benchmarks of Shah et al.
#: 2024, FlashAttention-3 (4k-8k tokens): the causal forward (fig. "attention forward speed, head dim 128, causal")
#: FA2 ~325, cuDNN ~523 TFLOP/s; the backward is published without the causal mask only (fig. "attention backward
#: speed, head dim 128": FA2 ~314, cuDNN ~508), so the causal backward is taken at the forward's causal/non-causal
#: ratio at the same lengths (non-causal forward FA2 368/370, cuDNN 609/600 at 4k/8k: 0.88 and 0.87 -- the
#: diagonal blocks and the uneven work per query block are the same in both passes): FA2 -> 290 TFLOP/s = 0.293,
#: cuDNN -> 461 = 0.465 of 989.4. Those are burst benchmarks: under sustained load at the power limit the tensor
#: throughput scales by the architecture's ``SUSTAINED_FRACTION`` ([CAPTURE] Hopper, [HPL] Ampere in
#: ``hardware``), applied as for GEMMs in ``predict_step``. Ampere: FA2 on A100 fwd ~195, bwd ~175 of 312 (Dao
#: 2023, FlashAttention-2, figs. 4-5) -> 0.58. Blackwell assumed at the Hopper fractions of its own peak (no
#: published fwd+bwd figure read). Head dim 64 runs at ``HEAD_DIM_64_FACTOR`` of that (FA3 paper hdim-64 vs
#: hdim-128 panels: cuDNN fwd 408 vs ~600, bwd ~395 vs ~465; FA2 fwd 321 vs 370).
_FA3_H100 = {  # (causal fwd, non-causal fwd, non-causal bwd), TFLOP/s at 4k-8k tokens, head dim 128
    "flash2": (325.0, (368.0 + 370.0) / 2.0, (310.0 + 318.0) / 2.0),
    "cudnn": (523.0, (609.0 + 600.0) / 2.0, (499.0 + 518.0) / 2.0),
}


def _causal_fwd_bwd_fraction(fwd_causal: float, fwd_full: float, bwd_full: float, peak: float = 989.4) -> float:
    bwd_causal = bwd_full * fwd_causal / fwd_full
    return 3.5 / (1.0 / fwd_causal + 2.5 / bwd_causal) / peak


#: FlashAttention-1 (flash-attn 1.0.x): on Ampere half of FlashAttention-2 (Dao 2023, FlashAttention-2, abstract:
#: "around 2x speedup compared to FlashAttention", which reached "only 25-40% of the theoretical maximum FLOPs/s"
#: on A100 -- 0.29 is inside that range). No Hopper or Blackwell FlashAttention-1 figure was read: there it is
#: taken at FlashAttention-2's efficiency (an assumption; validation states it on the rows it touches).
FLASH1_VS_FLASH2_AMPERE = 0.5
ATTENTION_EFFICIENCY: dict[tuple[str, str], float] = {
    ("ampere", "flash2"): 0.58, ("ampere", "cudnn"): 0.58,
    ("ampere", "flash1"): 0.58 * FLASH1_VS_FLASH2_AMPERE,
    ("hopper", "flash1"): _causal_fwd_bwd_fraction(*_FA3_H100["flash2"]),
    ("blackwell", "flash1"): _causal_fwd_bwd_fraction(*_FA3_H100["flash2"]),
    ("hopper", "flash2"): _causal_fwd_bwd_fraction(*_FA3_H100["flash2"]),
    ("hopper", "cudnn"): _causal_fwd_bwd_fraction(*_FA3_H100["cudnn"]),
    ("blackwell", "flash2"): _causal_fwd_bwd_fraction(*_FA3_H100["flash2"]),
    ("blackwell", "cudnn"): _causal_fwd_bwd_fraction(*_FA3_H100["cudnn"]),
}
HEAD_DIM_64_FACTOR = 0.75
#: "unfused" attention (Megatron-LM before flash attention, 2021): QK^T and AV as batched GEMMs over the full
#: (masked) s x s scores at the GEMM throughput, backward 2 forwards, plus the scores streamed through the fused
#: scale-mask-softmax: written, read and written forward, read twice and written backward, dropout mask read and
#: written = ``UNFUSED_SCORE_PASSES`` passes of 2-byte elements.
UNFUSED_SCORE_PASSES = 8.0
#: attention throughput ramps with sequence length as s / (s + 256) (FA3 paper, causal forward, FA2 on H100:
#: 191 / 298 / 319 / 333 TFLOP/s at 512 / 2k / 4k / 8k = 0.57 / 0.89 / 0.96 / 1.0 of the plateau)
ATTENTION_RAMP_TOKENS = 256.0
#: output tile of the tensor-core GEMM kernels (M x N), for wave quantization
GEMM_TILE = (128, 256)
#: MoE expert GEMMs: Transformer Engine's GroupedLinear (what Megatron-Core's ``--moe-grouped-gemm`` uses: "launch
#: multiple local GEMM kernels in multiple streams", megatron/core/transformer/moe/README.md) runs one cuBLAS GEMM
#: per local expert on TE's compute streams, 4 of them (transformer_engine/common/util/multi_stream:
#: ``num_compute_streams = 4``): at most 4 experts' tiles share a wave, and each expert's M is rounded to whole
#: tiles on its own.
GROUPED_GEMM_STREAMS = 4.0
#: GEMM throughput vs the reduction length K as K / (K + K0): XLA's measured sm_90 BF16 table
#: (openxla xla/service/gpu/model/matmul_interpolator_data.h: 4096 x 4096 at K = 256 / 512 / 1024 / 4096 runs at
#: 504 / 620 / 680 / 783 TFLOP/s) gives K0 ~ 144 (prologue/epilogue of each output tile); normalised to the
#: K = 8192 of the sustained anchor ([CAPTURE] in ``hardware``).
GEMM_K0 = 144.0
GEMM_ANCHOR_K = 8192.0
#: NCCL kernels run on SMs: ~2 channels per NIC x 8 rails = 16 CTAs of an H100's 132 SMs while a collective is
#: in flight (NCCL's default channel count on DGX H100 inter-node rings; one CTA per channel per SM). Compute
#: overlapped with communication loses that share for the hidden time.
NCCL_CHANNELS = 16
#: element-wise traffic per token and layer, forward, in bytes per h-sized / f-sized element (BF16 = 2 bytes
#: per read or write):
#: * "fused" (Transformer Engine, torch.compile, Megatron's fused kernels): norm fused into the next GEMM or with
#:   the residual add (read 2, write 1, twice = 6) plus the layout copy (2) = 8 accesses = 16 bytes; f-sized:
#:   SwiGLU reads gate and up and writes 1 (3 accesses = 6 bytes), GeLU reads and writes (4 bytes);
#: * "eager" (one kernel per op, BF16): 2 norms read+write (4), 2 residual adds (6), QKV split/transpose to the
#:   attention layout and back (8) = 18 accesses = 36 bytes; f-sized as fused;
#: * "eager_fp32" (eager with FP32 upcasts in the norms and rotary embedding, as torchtitan's Llama code:
#:   RMSNorm on x.float() -- upcast, square, mean, scale, downcast, weight: ~36 bytes per element, twice = 72;
#:   complex rotary on q and k upcast to FP32 -- ~20 bytes per element on h + kv ~ 25; residual adds 12; output
#:   layout copy 4) = 113 bytes; SiLU then multiply in separate kernels: 10 bytes per f element.
#: * "eager_varlen" (eager, attention through flash-attn's varlen API as LLM Foundry's MPT does at the benchmark
#:   commit: llmfoundry/models/layers/attention.py ``flash_attn_fn`` gathers q, k and v into unpadded rows with
#:   ``bert_padding.index_first_axis`` and scatters the output back with ``pad_input``): eager plus
#:   ``VARLEN_COPY_ELEMENTS`` per token.
#: Backward streams twice the forward (gradient and saved input read, gradient written).
ELEMENTWISE_H_BYTES = {"fused": 16.0, "eager": 36.0, "eager_fp32": 113.0}
ELEMENTWISE_F_BYTES = {("fused", True): 6.0, ("fused", False): 4.0, ("eager", True): 6.0, ("eager", False): 4.0,
                       ("eager_fp32", True): 10.0, ("eager_fp32", False): 6.0}
#: varlen attention copies per token, forward, in elements of the q and kv widths: gather q (read, write: 2 q), k and
#: v (2 kv each), output scattered into a zero-filled tensor (write zeros, read, write: 3 q) -> 5 q + 4 kv
VARLEN_COPY_ELEMENTS = (5.0, 4.0)
#: activation element size, bytes (BF16)
ACT_BYTES = 2.0
#: MoE token permutation per token-expert pair, forward, in h-sized elements: permute before dispatch (read,
#: write), un-permute after combine (read, write), probability-weighted sum (read) = 5 (Megatron-Core
#: moe_utils permute/unpermute); backward streams twice that
MOE_PERMUTE_ELEMENTS = 5.0
#: Megatron-Core's all-to-all dispatcher with more than one local expert also sorts the received tokens by local
#: expert after the dispatch ("permutation 2") and back before the combine ("unpermutation 2"),
#: ``sort_chunks_by_idxs`` in megatron/core/transformer/moe/token_dispatcher.py: a read and a write each, per
#: token-expert pair, in h-sized elements
MOE_SORT_CHUNKS_ELEMENTS = 4.0
#: MoE router after its GEMM, per token and routed expert logit, forward: the scores in FP32 (Megatron-Core
#: ``--moe-router-dtype fp32``, the precision its MoE recipes route in) written by the upcast (4), softmax read and
#: written (8), top-k selection read (4) = 16 bytes; the load-balancing statistics add reads of the same order
#: (not counted). Backward streams twice the forward like every element-wise term.
ROUTER_BYTES_PER_LOGIT = 16.0
#: FP8 cast traffic per GEMM input element: read BF16 (2) + write FP8 (1)
FP8_CAST_BYTES = 3.0
#: Hopper's FP8 tensor-core GEMMs take only the "TN" layout (cuBLASLt ``cublasLtMatmul`` FP8 requirements; Transformer
#: Engine, common/gemm/cublaslt_gemm.cu: "Hopper only supports TN GEMMs for FP8. Column-wise data is transpose of
#: data", and its "Performance considerations" guide, "Handling transposes"), so every cast tensor that feeds both
#: a forward/dgrad GEMM and a wgrad GEMM is written twice, row-wise and column-wise (+1 byte per element);
#: Blackwell runs FP8 GEMMs in any layout
FP8_TRANSPOSE_BYTES = {"hopper": 1.0}
#: FP8 current scaling (``TrainingSetup.fp8_recipe == "current"``): Transformer Engine's
#: ``Float8CurrentScalingQuantizer::quantize_impl`` (transformer_engine/pytorch/csrc/quantizer.cpp) runs
#: ``nvte_compute_amax`` over the whole input, then ``nvte_compute_scale_from_amax``, then the cast
#: (``nvte_quantize_v2``): one more read of the BF16 input, 2 bytes per element, than delayed scaling, whose cast
#: records the amax as it goes. TE's fused norm and activation kernels compute the amax while they write their BF16
#: output (the current-scaling branches of its normalization and activation extensions), which the cast then reads
#: -- the unfused cast priced above -- so the extra pass falls on the GEMM inputs no TE norm or activation writes:
#: the attention output (projection input) and, in Megatron-Core's MoE layer, the permuted tokens (grouped expert
#: up-projection input) and the output of Megatron's own SwiGLU (down-projection input). Dense FFN inputs come
#: from TE's LayerNormMLP (its norm and activation): no extra pass.
FP8_CURRENT_SCALING_AMAX_BYTES = 2.0
#: cross-entropy over the logits, bytes per logit element, counted from Megatron-LM's vocab-parallel cross
#: entropy (megatron/core/tensor_parallel/cross_entropy.py, called on ``output.float()``): forward upcast
#: (read 2, write 4), max (read 4), subtract (read 4, write 4), exp (read 4, write 4), sum (read 4), normalise
#: (read 4, write 4) = 38; backward softmax - one-hot and scale by the loss gradient (read 8, write 8) and the
#: downcast (read 4, write 2) = 22 -> ~60, rounded to 64 for the label gather/mask passes. PyTorch's
#: F.cross_entropy on upcast logits (torchtitan, LLM Foundry) streams the same order of bytes.
LOGITS_BYTES_PER_ELEMENT = 64.0
#: Adam, FP32 master weights: bytes streamed per local parameter (see module docstring)
OPTIMIZER_BYTES_PER_PARAM = 30.0
#: power activity of phases relative to a dense-GEMM phase (idle = 0, GEMM at the cap = 1): memory-bound
#: from the capture (``hardware.MEMORY_BOUND_ACTIVITY``); attention assumed 0.9 of a GEMM; exposed communication
#: (NCCL kernels on a few SMs streaming HBM at link rate) assumed 0.25; checkpoint writes assumed 0.05
ATTENTION_ACTIVITY = 0.9
COMM_ACTIVITY = 0.25
CHECKPOINT_ACTIVITY = 0.05


#: GPU-to-GPU spread of sustained tensor throughput (coefficient of variation): "5 % and higher differences on
#: an 8-GPU node" (S. Bekman, ml-engineering, compute/accelerator "Not all accelerators are created equal":
#: silicon lottery and uneven cooling); the expected range of 8 normal samples is 2.85 sigma -> sigma ~ 1.75 %.
GPU_SPEED_CV = 0.05 / 2.85


def straggler_fraction(n_gpus: int, cv: float = GPU_SPEED_CV) -> float:
    """Expected speed of the slowest of ``n_gpus`` GPUs relative to the typical one: 1 - cv * E[max of n
    standard normals] (Blom's approximation of the expected maximum). A synchronous step waits for it."""
    if n_gpus <= 1 or cv <= 0:
        return 1.0
    from statistics import NormalDist

    z = NormalDist().inv_cdf((n_gpus - 0.375) / (n_gpus + 0.25))
    return max(1.0 - cv * z, 0.5)


@dataclass(frozen=True)
class Conditions:
    """Live conditions of a job's GPUs: a power cap (W, None = the GPU's default), a thermal clock fraction
    (1 = not throttled), the network bandwidth fraction on its path (used by the built-in timer), and the
    slowest GPU's speed relative to a typical one (None = the expected straggler of the job's size from
    ``GPU_SPEED_CV``; the live service passes the measured one)."""

    power_cap_w: float | None = None
    thermal_clock_fraction: float = 1.0
    network_fraction: float = 1.0
    slowest_gpu_fraction: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.thermal_clock_fraction <= 1.0:
            raise ValueError(f"thermal_clock_fraction must be in (0, 1], got {self.thermal_clock_fraction}")
        if not 0.0 < self.network_fraction <= 1.0:
            raise ValueError(f"network_fraction must be in (0, 1], got {self.network_fraction}")
        if self.slowest_gpu_fraction is not None and not 0.0 < self.slowest_gpu_fraction <= 1.0:
            raise ValueError(f"slowest_gpu_fraction must be in (0, 1], got {self.slowest_gpu_fraction}")
        if self.power_cap_w is not None and not self.power_cap_w > 0:
            raise ValueError(f"power_cap_w must be > 0, got {self.power_cap_w}")


@dataclass(frozen=True)
class PowerPhase:
    name: str
    duration_s: float
    power_w: float  # per GPU


@dataclass(frozen=True)
class StepPrediction:
    """Predicted step of one job (times in seconds per optimizer step; per-GPU quantities per GPU)."""

    step_time_s: float
    gemm_s: float
    attention_s: float
    memory_s: float
    bubble_s: float
    optimizer_s: float
    raw_comm_s: dict[str, float]
    exposed_comm_s: dict[str, float]
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    model_tflops_per_gpu: float
    mfu: float                   # model FLOPs / (GPUs x dense peak of the job's precision)
    clock_fraction: float
    n_gpus: int
    phases: tuple[PowerPhase, ...] = field(default=())

    @property
    def exposed_comm_total_s(self) -> float:
        return float(sum(self.exposed_comm_s.values()))

    @property
    def mean_power_w(self) -> float:
        total = sum(p.duration_s for p in self.phases)
        return sum(p.duration_s * p.power_w for p in self.phases) / total if total > 0 else 0.0


def gemm_time_s(gpu: GpuSpec, m: np.ndarray, n: np.ndarray, k: np.ndarray, fp8: np.ndarray,
                clock: float, groups: np.ndarray | float = 1.0) -> np.ndarray:
    """Forward time of GEMMs (M x K) @ (K x N), vectorized over the arrays. ``groups``: how many independent GEMMs
    of that shape run as one grouped GEMM (MoE local experts), ``GROUPED_GEMM_STREAMS`` at a time: each GEMM
    rounds its own M up to whole tiles, and only the tiles of concurrently running GEMMs share waves. One group is
    a plain GEMM."""
    m, n, k = (np.maximum(np.asarray(a, dtype=np.float64), 1.0) for a in (m, n, k))
    g = np.maximum(np.asarray(groups, dtype=np.float64), 1.0) * np.ones_like(m)
    fp8 = np.asarray(fp8, dtype=bool)
    peak = np.where(fp8, gpu.peak_tflops.get("fp8", 0.0) * gpu.gemm_fraction.get("fp8", 0.0),
                    gpu.peak_tflops["bf16"] * gpu.gemm_fraction["bf16"]) * 1e12
    m_tiles, n_tiles = np.ceil(m / GEMM_TILE[0]), np.ceil(n / GEMM_TILE[1])
    tiles = m_tiles * n_tiles                                               # per GEMM of the group
    conc = np.minimum(g, GROUPED_GEMM_STREAMS)
    full_rounds = np.floor(g / conc)
    waves = full_rounds * np.ceil(conc * tiles / gpu.sms) + np.ceil((g - full_rounds * conc) * tiles / gpu.sms)
    wave_eff = g * tiles / (waves * gpu.sms)
    if gpu.arch == "hopper":
        # the Hopper fractions come from the 8192^3 capture, whose own wave quantization is already in them
        t_anchor = math.ceil(GEMM_ANCHOR_K / GEMM_TILE[0]) * math.ceil(GEMM_ANCHOR_K / GEMM_TILE[1])
        wave_eff = wave_eff / (t_anchor / (math.ceil(t_anchor / gpu.sms) * gpu.sms))
    k_eff = (k / (k + GEMM_K0)) / (GEMM_ANCHOR_K / (GEMM_ANCHOR_K + GEMM_K0))
    # tile quantization: a partial tile costs a whole one (NVIDIA Deep Learning Performance guide, "Matrix
    # Multiplication Background", tile and wave quantization) -- useful share of the tiles' rows x columns
    pad = m * n / (tiles * (GEMM_TILE[0] * GEMM_TILE[1]))
    t_compute = 2.0 * g * m * n * k / (peak * np.minimum(wave_eff, 1.0) * pad * np.minimum(k_eff, 1.0) * clock)
    in_bytes = np.where(fp8, 1.0, 2.0)
    t_memory = g * (in_bytes * (m * k + k * n) + 2.0 * m * n) / (gpu.hbm_TBps * 1e12 * HBM_EFFICIENCY)
    return np.maximum(t_compute, t_memory)


def moe_tokens_per_rank(job: JobSpec) -> int:
    """Tokens one EP rank routes per micro-batch: micro_batch x seq_len / (tp x cp) with sequence parallelism
    (Megatron-Core's token dispatcher notation: num_local_tokens = S/TP x B, the MoE layer's input being the
    sequence-parallel shard; Megatron-LM requires sequence parallelism for MoE with TP > 1), micro_batch x
    seq_len / cp without it (each TP rank then holds the whole CP shard). Rounded up, at least 1."""
    p = job.parallel
    shard = p.cp * (p.tp if (p.tp > 1 and p.sequence_parallel) else 1)
    return max(1, -(-job.training.micro_batch * job.model.seq_len // shard))


def moe_calls(job: JobSpec, gpus_per_domain: int) -> tuple[CollectiveCall, CollectiveCall]:
    """The forward dispatch and combine of one MoE layer for one micro-batch, over the EP group (``ep`` ranks
    ``tp`` apart). Dispatch precision: FP8 when an FP8 job dispatches with DeepEP (DeepSeek-V3 sec. 3.3.4 quantizes
    the activations before the MoE up-projections to FP8 for dispatch; DeepEP takes FP8 with scales), else BF16:
    Megatron-Core's all-to-all dispatcher sends the permuted BF16 tokens and its expert GEMMs quantize after the
    dispatch (megatron/core/transformer/transformer_config.py ``moe_dispatch_fwd_dtype`` defaults to 'bf16', the
    only other choice being Blackwell's MXFP8; HybridEP, moe/fused_a2a.py: "we do not support fp8 dispatch").
    Combine always BF16 (DeepSeek-V3 keeps combine in BF16; DeepEP combines in BF16 only)."""
    m, p = job.model, job.parallel
    group = group_for(p.ep, p.tp, gpus_per_domain)
    tokens = moe_tokens_per_rank(job)
    kernel = job.training.moe_kernel
    fp8_dispatch = job.training.precision == "fp8" and kernel.startswith("deepep")
    disp = MoeTraffic(kernel, tokens, m.hidden, m.moe_topk, m.moe_experts, "fp8" if fp8_dispatch else "bf16")
    comb = MoeTraffic(kernel, tokens, m.hidden, m.moe_topk, m.moe_experts, "bf16")
    return (CollectiveCall("ep", "moe_dispatch", disp.logical_bytes, group, disp),
            CollectiveCall("ep", "moe_combine", comb.logical_bytes, group, comb))


def ep_layer_s(job: JobSpec, comm_time: CommTimer, gpus_per_domain: int) -> float:
    """Dispatch + combine of one MoE layer's forward for one micro-batch (0 without expert parallelism). The
    backward runs the same pair again on the gradients (the combine's gradient travels the dispatch's way, in FP8
    where the dispatch is -- DeepSeek-V3 sec. 3.3.4 quantizes the activation gradient before the down-projection
    -- and the dispatch's gradient travels back in BF16), and a full recomputation repeats the forward pair: the
    step model multiplies this by 2 (+1)."""
    if not job.model.is_moe or job.parallel.ep <= 1:
        return 0.0
    return float(sum(comm_time(c) for c in moe_calls(job, gpus_per_domain)))


def _exposed(raw: float, overlap: float, window: float) -> float:
    return raw - min(raw * overlap, max(window, 0.0))


def predict_step(job: JobSpec, comm_time: CommTimer | None = None, conditions: Conditions | None = None,
                 *, nic_Gbps: float | None = None, gpus_per_domain: int | None = None) -> StepPrediction:
    """Predict one optimizer step of ``job``. ``comm_time`` times each collective (default: the built-in
    ``LinkModel`` of the job's GPU with ``nic_Gbps`` per GPU, degraded by ``conditions.network_fraction``).
    ``gpus_per_domain``: how many of the job's GPUs share each NVLink domain on its placement (default: the
    GPU's full domain, a packed placement; e.g. 4 for a job given half of each 8-GPU node)."""
    cond = conditions or Conditions()
    gpu = gpu_spec(job.gpu)
    if gpus_per_domain is not None and not 1 <= gpus_per_domain <= gpu.nvlink_domain:
        raise ValueError(f"gpus_per_domain must be in 1..{gpu.nvlink_domain}, got {gpus_per_domain}")
    if comm_time is None:
        comm_time = LinkModel.for_gpu(gpu, nic_Gbps, degrade=cond.network_fraction).time_s
    m_, p, t = job.model, job.parallel, job.training
    fp8 = t.precision == "fp8"
    gpu.peak(t.precision)  # raises for precisions the GPU lacks (fp8 on A100)

    cap = run_power_limit_w(gpu) if cond.power_cap_w is None else min(cond.power_cap_w, run_power_limit_w(gpu))
    clock = min(clock_fraction_at_cap(gpu, cap), cond.thermal_clock_fraction)
    slowest = (straggler_fraction(job.n_gpus) if cond.slowest_gpu_fraction is None
               else cond.slowest_gpu_fraction)
    clock *= slowest  # a synchronous step runs at the pace of its slowest GPU

    h, q, kv, f, V = m_.hidden, m_.q_dim, m_.kv_dim, m_.ffn_hidden, m_.vocab
    tp, cp, ep = p.tp, p.cp, p.ep
    tok = float(t.micro_batch * m_.seq_len // cp)           # tokens per GPU per micro-batch
    layers = math.ceil(m_.layers / p.pp)                     # slowest stage
    mats = 3 if m_.gated_ffn else 2
    k_top = m_.moe_topk if m_.is_moe else 1

    # --- GEMMs of one layer (forward): rows (M, N, K, count, fp8, groups) ------------------------------------
    rows = [(tok, (q + 2 * kv) / tp, h, 1, fp8, 1), (tok, h, q / tp, 1, fp8, 1)]
    if m_.is_moe:
        local_experts = max(1.0, m_.moe_experts / ep)
        # rows per local expert: the EP group's tokens x top-k spread evenly over the experts (the validation
        # benchmarks force-balance the routing; imbalance is not modelled)
        m_e = tok * k_top * ep / m_.moe_experts
        # one GEMM per local expert, run as a grouped GEMM (``gemm_time_s`` groups, ``GROUPED_GEMM_STREAMS``)
        rows += [(m_e, (mats - 1) * f / tp, h, 1, fp8, local_experts), (m_e, h, f / tp, 1, fp8, local_experts),
                 (tok, m_.moe_experts, h, 1, False, 1)]
        n_expert_rows = (2, 4)  # the expert up- and down-projections
    else:
        rows += [(tok, (mats - 1) * f / tp, h, 1, fp8, 1), (tok, h, f / tp, 1, fp8, 1)]
        n_expert_rows = (2, 2)
    rows.append((tok, V / tp, h, 1, False, 1))  # the LM head (last stage), once per micro-batch, BF16
    arr = np.array([r[:4] for r in rows], dtype=np.float64)
    is_fp8 = np.array([r[4] for r in rows], dtype=bool)
    n_groups = np.array([r[5] for r in rows], dtype=np.float64)
    m_rows, n_cols, k_red = arr[:, 0], arr[:, 1], arr[:, 2]
    per_gemm = gemm_time_s(gpu, m_rows, n_cols, k_red, is_fp8, clock, n_groups) * arr[:, 3]
    # backward: dgrad (M x K output, reducing over N) + wgrad (K x N output, reducing over the M rows)
    per_bwd = (gemm_time_s(gpu, m_rows, k_red, n_cols, is_fp8, clock, n_groups)
               + gemm_time_s(gpu, k_red, n_cols, m_rows, is_fp8, clock, n_groups)) * arr[:, 3]
    logits_fwd, logits_bwd = float(per_gemm[-1]), float(per_bwd[-1])
    layer_gemm_fwd, layer_gemm_bwd = float(per_gemm[:-1].sum()), float(per_bwd[:-1].sum())
    expert_rows = slice(*n_expert_rows)
    expert_gemm_s = float(per_gemm[expert_rows].sum() + per_bwd[expert_rows].sum()) if m_.is_moe else 0.0

    # --- attention core (flash, causal) ----------------------------------------------------------------------
    s = float(m_.seq_len)
    # (share of layers, attended keys per query): full causal layers attend s/2 on average; windowed layers
    # attend the window, and the kernel's throughput ramps with the keys it streams per query block
    layer_kinds = [(1.0, s / 2.0, s)]
    if m_.sliding_window and m_.sliding_window_every:
        w = 1.0 / m_.sliding_window_every
        window = min(float(m_.sliding_window), s)
        layer_kinds = [(1.0 - w, s / 2.0, s), (w, window, window)]
    hbm = gpu.hbm_TBps * 1e12 * HBM_EFFICIENCY
    if t.attention_kernel == "unfused":
        attn_flops_fwd = 4.0 * tok * s * q / tp
        attn_fwd = attn_flops_fwd / (gpu.peak_tflops["bf16"] * 1e12 * gpu.gemm_fraction["bf16"] * clock)
        attn_mem_fwd = UNFUSED_SCORE_PASSES / 3.0 * ACT_BYTES * tok * s * m_.heads / tp / hbm
        attn_bwd_factor = 2.0
    else:
        base_eff = ATTENTION_EFFICIENCY[(gpu.arch, t.attention_kernel)] * SUSTAINED_FRACTION[gpu.arch]
        if m_.head_dim <= 64:
            base_eff *= HEAD_DIM_64_FACTOR
        attn_fwd = 0.0
        for share, ctx, span in layer_kinds:
            eff = base_eff * span / (span + ATTENTION_RAMP_TOKENS)
            attn_fwd += share * 4.0 * tok * ctx * q / tp / (gpu.peak_tflops["bf16"] * 1e12 * eff * clock)
        attn_mem_fwd = 0.0
        attn_bwd_factor = 2.5

    # --- memory-bound element-wise -----------------------------------------------------------------------
    h_tokens = tok / tp if (tp > 1 and p.sequence_parallel) else tok
    kernels = "eager" if t.kernels == "eager_varlen" else t.kernels
    ew_fwd = attn_mem_fwd + (ELEMENTWISE_H_BYTES[kernels] * h_tokens * h
                             + ELEMENTWISE_F_BYTES[(kernels, m_.gated_ffn)] * tok * k_top * f / tp) / hbm
    if t.kernels == "eager_varlen":
        ew_fwd += ACT_BYTES * tok * (VARLEN_COPY_ELEMENTS[0] * q + VARLEN_COPY_ELEMENTS[1] * kv) / tp / hbm
    if tp > 1 and p.sequence_parallel and not t.sequence_first and t.micro_batch > 1:
        # NCCL gathers/scatters along dim 0: a batch-first [b, s, h] activation sharded on s is concatenated
        # (after all-gather) or split (before reduce-scatter) with a full copy, read + write, for each of the
        # layer's 2 all-gathers and 2 reduce-scatters (DTensor Shard(1) redistribution)
        ew_fwd += 4.0 * 2.0 * tok * h * ACT_BYTES / hbm
    moe_tokens = tok / (tp if p.sequence_parallel else 1)  # the MoE layer's input: the sequence-parallel shard
    if m_.is_moe:
        permute = MOE_PERMUTE_ELEMENTS
        if t.moe_kernel == "nccl_alltoall" and m_.moe_experts / max(ep, 1) > 1:
            permute += MOE_SORT_CHUNKS_ELEMENTS
        ew_fwd += ACT_BYTES * permute * moe_tokens * k_top * h / hbm
        ew_fwd += ROUTER_BYTES_PER_LOGIT * moe_tokens * m_.moe_experts / hbm
    if fp8:
        # casts of each FP8 GEMM's activation input: QKV (h), output projection (q), FFN up (h, once per routed
        # copy: the grouped GEMM's input is the permuted tokens x top-k), FFN down (f per copy)
        fc1_in = k_top * h * (moe_tokens / tok) if m_.is_moe else h
        cast_bytes = FP8_CAST_BYTES + FP8_TRANSPOSE_BYTES.get(gpu.arch, 0.0)
        ew_fwd += cast_bytes * tok * (h + fc1_in + q / tp + k_top * f / tp) / hbm
        if t.fp8_recipe == "current":
            separate_amax = q / tp + ((fc1_in + k_top * f / tp) if m_.is_moe else 0.0)
            ew_fwd += FP8_CURRENT_SCALING_AMAX_BYTES * tok * separate_amax / hbm
    logits_mem = LOGITS_BYTES_PER_ELEMENT * tok * V / tp / hbm

    recompute_fwd_share = {"none": 0.0, "selective": 0.0, "op": 0.5, "full": 1.0}[t.recompute]
    full = 1.0 if t.recompute == "full" else 0.0
    gemm_mb = (layers * (layer_gemm_fwd * (1.0 + recompute_fwd_share) + layer_gemm_bwd)
               + logits_fwd + logits_bwd)
    attn_mb = layers * attn_fwd * (1.0 + attn_bwd_factor + full)
    mem_mb = layers * ew_fwd * (3.0 + full) + logits_mem
    t_fwd = layers * (layer_gemm_fwd + attn_fwd + ew_fwd) + logits_fwd
    t_bwd = gemm_mb + attn_mb + mem_mb - t_fwd

    # --- communication per micro-batch ---------------------------------------------------------------------
    dom = gpu.nvlink_domain if gpus_per_domain is None else gpus_per_domain
    ov = t.overlap
    raw = {"tp": 0.0, "cp": 0.0, "ep": 0.0, "pp": 0.0, "dp": 0.0}
    exposed = dict(raw)

    def timed(kind: str, coll: str, size: float, n: int, stride: int) -> float:
        return float(comm_time(CollectiveCall(kind, coll, size, group_for(n, stride, dom))))

    if tp > 1:
        act = tok * h * ACT_BYTES
        passes = 2.0 + full  # forward, backward (+ recomputed forward)
        if p.sequence_parallel:
            per_layer = 2.0 * (timed("tp", "all_gather", act, tp, 1) + timed("tp", "reduce_scatter", act, tp, 1))
        else:
            per_layer = 2.0 * timed("tp", "all_reduce", act, tp, 1)
        raw["tp"] = layers * passes * per_layer
        exposed["tp"] = _exposed(raw["tp"], ov.tp, gemm_mb)
    if cp > 1:
        kv_chunk = tok * 2.0 * kv / tp * ACT_BYTES
        raw["cp"] = layers * (3.0 + full) * timed("cp", "all_gather", kv_chunk * cp, cp, tp)
        exposed["cp"] = _exposed(raw["cp"], ov.cp, attn_mb)
    if m_.is_moe and ep > 1:
        raw["ep"] = layers * (2.0 + full) * ep_layer_s(job, comm_time, dom)
        exposed["ep"] = _exposed(raw["ep"], ov.ep, layers * expert_gemm_s)
    t_mb = gemm_mb + attn_mb + mem_mb + exposed["tp"] + exposed["cp"] + exposed["ep"]

    micro = job.micro_batches
    if p.pp > 1:
        act_pp = tok * h * ACT_BYTES / (tp if p.sequence_parallel else 1)
        raw["pp"] = micro * 2.0 * p.vp * timed("pp", "send_recv", act_pp, p.pp, tp * cp * p.dp)
        exposed["pp"] = raw["pp"] * (1.0 - ov.pp)

    # --- data parallel -------------------------------------------------------------------------------------
    params_stage = m_.params / p.pp
    expert_params = (mats * h * f * m_.moe_experts * m_.layers / p.pp) if m_.is_moe else 0.0
    dense_local = (params_stage - expert_params) / tp
    expert_local = expert_params / (tp * ep)
    dpcp = p.dp * cp
    edp = dpcp // ep
    grad_b, param_b = 4.0, 2.0
    if dpcp > 1:
        def dp_calls(coll: str, bytes_per: float) -> float:
            total = timed("dp", coll, dense_local * bytes_per, dpcp, tp)
            if expert_local and edp > 1:
                total += timed("dp", coll, expert_local * bytes_per, edp, tp * ep)
            return total

        if p.data_parallel == "fsdp" and p.pp == 1:
            # FSDP FULL_SHARD: parameters gathered for forward and again for backward, gradients
            # reduce-scattered, for every micro-batch; the first layer's gather is not hidden
            ag = dp_calls("all_gather", param_b)
            rs = dp_calls("reduce_scatter", grad_b)
            raw["dp"] = micro * (2.0 * ag + rs)
            per_mb = (_exposed(ag, ov.dp, t_fwd) + _exposed(ag + rs, ov.dp, t_bwd))
            exposed["dp"] = micro * per_mb + ag / max(layers, 1)
        elif p.data_parallel == "fsdp":
            # FSDP under pipeline parallelism keeps parameters gathered across the micro-batches of a step
            # (torchtitan: reshard_after_forward off with PP) and reduces gradients once
            ag = dp_calls("all_gather", param_b)
            rs = dp_calls("reduce_scatter", grad_b)
            raw["dp"] = ag + rs
            exposed["dp"] = _exposed(rs, ov.dp, t_bwd) + _exposed(ag, ov.dp, t_fwd)
        elif p.data_parallel == "zero1":
            rs = dp_calls("reduce_scatter", grad_b)
            ag = dp_calls("all_gather", param_b)
            raw["dp"] = rs + ag
            exposed["dp"] = _exposed(rs, ov.dp, t_bwd) + _exposed(ag, ov.dp, t_fwd)
        else:
            ar = dp_calls("all_reduce", grad_b)
            raw["dp"] = ar
            exposed["dp"] = _exposed(ar, ov.dp, t_bwd)

    # the distributed optimizer / FSDP shards dense parameters over DP x CP and expert parameters over the expert
    # data-parallel group (DP x CP / EP), the groups their gradients are reduced in
    sharded = p.data_parallel in ("zero1", "fsdp")
    shard, eshard = (dpcp, max(edp, 1)) if sharded else (1, 1)
    optimizer = OPTIMIZER_BYTES_PER_PARAM * (dense_local / shard + expert_local / eshard) / hbm

    # hidden communication still occupies NCCL's SMs: the overlapped compute loses that share meanwhile
    sm_share = NCCL_CHANNELS / gpu.sms
    exposed_mb = exposed["tp"] + exposed["cp"] + exposed["ep"]
    penalty_mb = sum(raw[k] - exposed[k] for k in ("tp", "cp", "ep")) * sm_share
    penalty_step = (raw["pp"] - exposed["pp"] + raw["dp"] - exposed["dp"]) * sm_share
    t_mb += penalty_mb
    bubble = (p.pp - 1) / p.vp * t_mb
    step = (micro * t_mb + bubble + exposed["pp"] + exposed["dp"] + penalty_step + optimizer)
    for k in ("tp", "cp", "ep"):
        raw[k] *= micro
        exposed[k] *= micro
    n = job.n_gpus
    tokens_per_s = job.tokens_per_step / step
    model_tflops = model_flops_per_token(m_) * job.tokens_per_step / step / n / 1e12

    # --- power per phase (per GPU); durations add up to the step -----------------------------------------
    idle = gpu.idle_w
    span = cap - idle
    phases = (
        PowerPhase("gemm", micro * (gemm_mb + penalty_mb) + penalty_step, cap),
        PowerPhase("attention", micro * attn_mb, idle + ATTENTION_ACTIVITY * span),
        PowerPhase("memory", micro * mem_mb + optimizer, idle + MEMORY_BOUND_ACTIVITY * span),
        PowerPhase("communication", micro * exposed_mb + exposed["pp"] + exposed["dp"],
                   idle + COMM_ACTIVITY * span),
        PowerPhase("bubble", bubble, idle + COMM_ACTIVITY * span),
    )
    return StepPrediction(
        step_time_s=step, gemm_s=micro * gemm_mb, attention_s=micro * attn_mb, memory_s=micro * mem_mb,
        bubble_s=bubble, optimizer_s=optimizer, raw_comm_s=raw, exposed_comm_s=exposed,
        tokens_per_s=tokens_per_s, tokens_per_s_per_gpu=tokens_per_s / n, model_tflops_per_gpu=model_tflops,
        mfu=model_tflops / gpu.peak(t.precision), clock_fraction=clock, n_gpus=n, phases=phases)


def checkpoint_phase(gpu_name: str, write_s: float, power_cap_w: float | None = None) -> PowerPhase:
    """Power of the GPUs while a synchronous checkpoint is written (GPUs wait on storage)."""
    gpu = gpu_spec(gpu_name)
    cap = run_power_limit_w(gpu) if power_cap_w is None else min(power_cap_w, run_power_limit_w(gpu))
    return PowerPhase("checkpoint", write_s, gpu.idle_w + CHECKPOINT_ACTIVITY * (cap - gpu.idle_w))
