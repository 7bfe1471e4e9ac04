"""Job specification: model shape, parallelism and training setup (frozen dataclasses, validated on creation).

``JobSpecError`` (a ``ValueError``) names the offending field; the scheduler adapters and the gRPC API turn it
into a rejection / INVALID_ARGUMENT. Parallelism follows Megatron-LM's conventions:
``world = tp * pp * cp * dp``; expert parallelism is carved out of ``dp * cp`` (``ep`` divides ``dp * cp``);
``vp`` virtual (interleaved) pipeline stages per rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RECOMPUTE_MODES = ("none", "selective", "op", "full")
#: attention kernels the step model knows (efficiencies in ``step.ATTENTION_EFFICIENCY``)
ATTENTION_KERNELS = ("flash2", "flash1", "cudnn", "unfused")
#: MoE token dispatch/combine kernels (the fabric twin's EstimateMoe kernels; see ``comm.MoeTraffic``)
MOE_KERNELS = ("nccl_alltoall", "deepep_normal", "deepep_low_latency")
#: per-tensor FP8 scaling recipes (``TrainingSetup.fp8_recipe``)
FP8_RECIPES = ("delayed", "current")


class JobSpecError(ValueError):
    """An impossible or incomplete job spec. ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _positive(obj: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise JobSpecError(name, f"must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class ModelShape:
    """Transformer shape. ``ffn_hidden`` is per expert for MoE; ``head_dim`` defaults to hidden / heads.

    ``gated_ffn``: SwiGLU-style FFN (three matrices) instead of two. ``sliding_window`` tokens on every
    ``sliding_window_every``-th layer (0 = full attention everywhere). ``tied_embeddings``: the output
    projection shares the input embedding."""

    layers: int
    hidden: int
    ffn_hidden: int
    heads: int
    kv_heads: int
    vocab: int
    seq_len: int
    head_dim: int = 0
    moe_experts: int = 0
    moe_topk: int = 0
    gated_ffn: bool = False
    sliding_window: int = 0
    sliding_window_every: int = 0
    tied_embeddings: bool = False

    def __post_init__(self) -> None:
        _positive(self, ("layers", "hidden", "ffn_hidden", "heads", "kv_heads", "vocab", "seq_len"))
        if self.head_dim == 0:
            if self.hidden % self.heads:
                raise JobSpecError("heads", f"hidden={self.hidden} is not divisible by heads={self.heads}")
            object.__setattr__(self, "head_dim", self.hidden // self.heads)
        if self.head_dim < 1:
            raise JobSpecError("head_dim", f"must be >= 1, got {self.head_dim}")
        if self.heads % self.kv_heads:
            raise JobSpecError("kv_heads", f"heads={self.heads} is not divisible by kv_heads={self.kv_heads}")
        if self.moe_experts < 0 or self.moe_topk < 0:
            raise JobSpecError("moe_experts", "must be >= 0")
        if self.moe_experts and not 1 <= self.moe_topk <= self.moe_experts:
            raise JobSpecError("moe_topk", f"must be in 1..moe_experts={self.moe_experts}, got {self.moe_topk}")
        if not self.moe_experts and self.moe_topk:
            raise JobSpecError("moe_topk", "set without moe_experts")
        if self.sliding_window < 0 or self.sliding_window_every < 0:
            raise JobSpecError("sliding_window", "must be >= 0")

    @property
    def is_moe(self) -> bool:
        return self.moe_experts > 0

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def params(self) -> float:
        """Parameter count from the shape (weights only; norms and biases are < 0.1 % and left out)."""
        h = self.hidden
        attn = h * (self.q_dim + 2 * self.kv_dim) + self.q_dim * h
        mats = 3 if self.gated_ffn else 2
        ffn = mats * h * self.ffn_hidden * max(self.moe_experts, 1) + (h * self.moe_experts if self.is_moe else 0)
        emb = self.vocab * h * (1 if self.tied_embeddings else 2)
        return float(self.layers * (attn + ffn) + emb)


@dataclass(frozen=True)
class Parallelism:
    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    vp: int = 1
    sequence_parallel: bool = True     # Megatron-Core default with TP > 1
    #: "ddp" (full gradient all-reduce), "zero1" (Megatron distributed optimizer: reduce-scatter grads,
    #: all-gather params), "fsdp" (ZeRO-3 / FSDP FULL_SHARD: params gathered for forward and backward)
    data_parallel: str = "zero1"

    def __post_init__(self) -> None:
        _positive(self, ("tp", "pp", "dp", "cp", "ep", "vp"))
        if self.data_parallel not in ("ddp", "zero1", "fsdp"):
            raise JobSpecError("data_parallel", f"must be ddp, zero1 or fsdp, got {self.data_parallel!r}")
        if (self.dp * self.cp) % self.ep:
            raise JobSpecError("ep", f"ep={self.ep} must divide dp*cp={self.dp * self.cp}")

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.cp * self.dp


@dataclass(frozen=True)
class Overlap:
    """Fraction of each communication kind a framework hides behind compute when it overlaps it (0..1), the
    stated parameter the issue asks for. ``tp`` applies only when the job enables TP overlap."""

    tp: float = 0.0
    dp: float = 0.9
    pp: float = 0.5
    cp: float = 0.9
    ep: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tp", "dp", "pp", "cp", "ep"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise JobSpecError(f"overlap.{name}", f"must be in [0, 1], got {v}")


@dataclass(frozen=True)
class TrainingSetup:
    micro_batch: int
    global_batch: int
    precision: str = "bf16"
    recompute: str = "none"
    attention_kernel: str = "cudnn"
    #: element-wise kernels: "fused" (Transformer Engine, torch.compile, Megatron fused kernels), "eager" (one
    #: kernel per op), "eager_fp32" (eager with FP32 norms and rotary, as torchtitan's Llama) or "eager_varlen"
    #: (eager, attention through flash-attn's varlen API with unpad/pad copies, as LLM Foundry's MPT)
    kernels: str = "fused"
    overlap: Overlap = field(default_factory=Overlap)
    #: activations laid out sequence-first ([s, b, h], Megatron) so sequence-parallel gathers and scatters are
    #: contiguous; batch-first frameworks (torchtitan's DTensor, [b, s, h]) copy the full activation around each
    #: sequence-parallel collective when micro_batch > 1
    sequence_first: bool = True
    #: fraction of GEMM FLOPs run in FP8 when precision == "fp8" (the LM head stays in BF16 in Transformer
    #: Engine and torchao float8; set below 1 to keep more layers in BF16)
    fp8_gemm_share: float = 1.0
    #: per-tensor FP8 scaling recipe when precision == "fp8", as Transformer Engine names them: "delayed"
    #: (DelayedScaling: the scale comes from the amax history and the cast kernel records the new amax as it goes;
    #: TE's and Megatron-Core's default ``--fp8-recipe delayed``) or "current" (Float8CurrentScaling, Megatron-Core
    #: ``--fp8-recipe tensorwise``, megatron/core/fp8_utils.py ``get_fp8_recipe``: each tensor's amax is computed
    #: before it is cast -- priced in ``step.FP8_CURRENT_SCALING_AMAX_BYTES``)
    fp8_recipe: str = "delayed"
    #: MoE expert-parallel dispatch/combine kernel: Megatron-Core's all-to-all token dispatcher over NCCL unless the
    #: job says DeepEP (Megatron's "flex" dispatcher). Megatron-Core's MoE README (megatron/core/transformer/moe,
    #: ``--moe-token-dispatcher-type``): the default is "allgather", "alltoall" is the one recommended with expert
    #: parallelism -- the twin assumes a job with ep > 1 follows that advice
    moe_kernel: str = "nccl_alltoall"

    def __post_init__(self) -> None:
        _positive(self, ("micro_batch", "global_batch"))
        if self.moe_kernel not in MOE_KERNELS:
            raise JobSpecError("moe_kernel", f"must be one of {MOE_KERNELS}, got {self.moe_kernel!r}")
        if self.precision not in ("bf16", "fp8"):
            raise JobSpecError("precision", f"must be bf16 or fp8, got {self.precision!r}")
        if self.recompute not in RECOMPUTE_MODES:
            raise JobSpecError("recompute", f"must be one of {RECOMPUTE_MODES}, got {self.recompute!r}")
        if self.attention_kernel not in ATTENTION_KERNELS:
            raise JobSpecError("attention_kernel", f"must be one of {ATTENTION_KERNELS}, got {self.attention_kernel!r}")
        if self.kernels not in ("fused", "eager", "eager_fp32", "eager_varlen"):
            raise JobSpecError("kernels", f"must be fused, eager, eager_fp32 or eager_varlen, got {self.kernels!r}")
        if not 0.0 <= self.fp8_gemm_share <= 1.0:
            raise JobSpecError("fp8_gemm_share", "must be in [0, 1]")
        if self.fp8_recipe not in FP8_RECIPES:
            raise JobSpecError("fp8_recipe", f"must be one of {FP8_RECIPES}, got {self.fp8_recipe!r}")


@dataclass(frozen=True)
class JobSpec:
    """Everything the step model needs about one training job, checked for consistency."""

    model: ModelShape
    parallel: Parallelism
    training: TrainingSetup
    gpu: str = "h100-sxm"
    n_gpus: int = 0  # 0 = parallel.world

    def __post_init__(self) -> None:
        p, m, t = self.parallel, self.model, self.training
        if self.n_gpus == 0:
            object.__setattr__(self, "n_gpus", p.world)
        if self.n_gpus != p.world:
            raise JobSpecError("parallel", f"tp*pp*cp*dp = {p.world} != n_gpus = {self.n_gpus}")
        if m.heads % p.tp:
            raise JobSpecError("parallel.tp", f"heads={m.heads} not divisible by tp={p.tp}")
        if p.pp > m.layers:
            raise JobSpecError("parallel.pp", f"pp={p.pp} exceeds layers={m.layers}")
        if p.vp > 1 and p.pp == 1:
            raise JobSpecError("parallel.vp", "virtual pipeline stages need pp > 1")
        if p.pp * p.vp > m.layers:
            raise JobSpecError("parallel.vp", f"pp*vp = {p.pp * p.vp} exceeds layers={m.layers}")
        if m.seq_len % p.cp:
            raise JobSpecError("parallel.cp", f"seq_len={m.seq_len} not divisible by cp={p.cp}")
        if p.ep > 1 and not m.is_moe:
            raise JobSpecError("parallel.ep", "expert parallelism on a dense model")
        if m.is_moe and m.moe_experts % p.ep:
            raise JobSpecError("parallel.ep", f"moe_experts={m.moe_experts} not divisible by ep={p.ep}")
        if t.global_batch % (t.micro_batch * p.dp):
            raise JobSpecError("training.global_batch",
                               f"global_batch={t.global_batch} is not a multiple of micro_batch*dp = "
                               f"{t.micro_batch * p.dp}")

    @property
    def micro_batches(self) -> int:
        """Micro-batches per pipeline (gradient-accumulation steps) per optimizer step."""
        return self.training.global_batch // (self.training.micro_batch * self.parallel.dp)

    @property
    def tokens_per_step(self) -> int:
        return self.training.global_batch * self.model.seq_len
