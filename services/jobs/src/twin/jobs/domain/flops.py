"""FLOPs of a transformer training step from its shape (matmul FLOPs; 2 FLOPs per multiply-accumulate).

Per token and layer, forward (h = hidden, q = heads x head_dim, kv = kv_heads x head_dim, f = FFN hidden per
expert, k = experts per token (1 dense), s = attended context, V = vocabulary):

* QKV projection 2 h (q + 2 kv) -- grouped-query attention shrinks the K/V part;
* attention core QK^T and AV: 2 x 2 s q with s = seq_len (full, the Megatron-LM/NeMo "model FLOPs"
  convention) or the sliding window on windowed layers;
* output projection 2 q h;
* FFN 2 m h f k with m = 3 matrices for gated (SwiGLU) and 2 otherwise; MoE router 2 h E;
* logits 2 h V once per token (not per layer).

Training = forward + backward = 3 x forward (dgrad and wgrad each cost one forward; Narayanan et al. 2021,
"Efficient Large-Scale Language Model Training on GPU Clusters Using Megatron-LM", appendix).

Which FLOPs a published number counts differs by source (see ``model_flops_per_step``); which FLOPs the GPU
executes (causal masking skips half of the attention core, flash attention's backward costs 2.5 forwards,
activation recomputation repeats the forward) is the step model's business (``step.py``).
"""

from __future__ import annotations

import numpy as np

from .spec import ModelShape


def attended_context(model: ModelShape) -> float:
    """Mean attended context per layer for the model-FLOPs convention: seq_len on full-attention layers, the
    window on sliding-window layers (every ``sliding_window_every``-th layer)."""
    s = float(model.seq_len)
    if model.sliding_window and model.sliding_window_every:
        frac_windowed = 1.0 / model.sliding_window_every
        return (1.0 - frac_windowed) * s + frac_windowed * min(float(model.sliding_window), s)
    return s


def forward_flops_per_token(model: ModelShape) -> dict[str, float]:
    """Forward matmul FLOPs per token by part, summed over layers (logits once)."""
    h, q, kv, f, L = model.hidden, model.q_dim, model.kv_dim, model.ffn_hidden, model.layers
    k = model.moe_topk if model.is_moe else 1
    mats = 3 if model.gated_ffn else 2
    return {
        "attn_proj": float(L * (2 * h * (q + 2 * kv) + 2 * q * h)),
        "attn_core": float(L * 4 * attended_context(model) * q),
        "ffn": float(L * 2 * mats * h * f * k),
        "router": float(L * 2 * h * model.moe_experts) if model.is_moe else 0.0,
        "logits": float(2 * h * model.vocab),
    }


def model_flops_per_token(model: ModelShape) -> float:
    """Training model FLOPs per token: 3 x forward, attention counted in full, no recomputation (the
    Megatron-Core ``num_floating_point_operations`` / NeMo "model TFLOP/s" convention; router excluded as
    Megatron-Core r0.8 does)."""
    parts = forward_flops_per_token(model)
    return 3.0 * (parts["attn_proj"] + parts["attn_core"] + parts["ffn"] + parts["logits"])


def megatron_2021_flops_per_token(model: ModelShape) -> float:
    """The Apr-2021 Megatron-LM table's count: 96 B s l h^2 (1 + s/6h + V/16lh) per batch, i.e. the transformer
    layers 4 x forward (full activation recomputation counted) and the logits 3 x (Narayanan et al. 2021, sec. 5.1
    and appendix). Generalised to the shape: layers 4 x forward, logits 3 x."""
    parts = forward_flops_per_token(model)
    return 4.0 * (parts["attn_proj"] + parts["attn_core"] + parts["ffn"]) + 3.0 * parts["logits"]


def llm_foundry_flops_per_token(model: ModelShape, params: float | None = None) -> float:
    """LLM Foundry's MFU numerator per token: 6 N + 3 x attention (attention = 2 x 2 l h s per token; N = the
    parameter count it reports, NumParams, which includes embeddings). scripts/train/benchmarking/collect_results.py."""
    n = model.params if params is None else params
    return 6.0 * n + 3.0 * 4.0 * model.layers * model.hidden * model.seq_len


def model_flops_per_step(model: ModelShape, tokens_per_step: float | np.ndarray,
                         convention: str = "megatron") -> float | np.ndarray:
    """Model FLOPs of one optimizer step under a source's ``convention``: "megatron" (Megatron-Core/NeMo),
    "megatron2021" (the 2021 A100 table), "llm_foundry"."""
    per_token = {"megatron": model_flops_per_token, "megatron2021": megatron_2021_flops_per_token,
                 "llm_foundry": llm_foundry_flops_per_token}
    if convention not in per_token:
        raise ValueError(f"unknown FLOPs convention {convention!r}; known: {sorted(per_token)}")
    return per_token[convention](model) * np.asarray(tokens_per_step, dtype=np.float64)
