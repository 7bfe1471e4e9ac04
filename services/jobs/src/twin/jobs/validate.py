"""Accuracy report of the step-time model against published training throughputs.

    python -m twin.jobs.validate [CSV] [--json] [--fabric HOST:PORT [--fabric-facility NAME]]

Default CSV: ``training_public.csv`` in the shared validation folder (``twin.core.validation_data``). Any CSV
with the same columns works. ``--json`` prints ``{rows, skipped, median_abs_pct_error, p90_abs_pct_error,
worst_ratio, ...}`` with the per-row results, the skipped rows and their reasons.

Like with like: each row is compared on the metric it reports, in this order of preference --
``tokens_per_s_per_gpu`` (framework-independent), else ``tflops_per_gpu`` computed with the source's own FLOPs
convention (Megatron-Core/NeMo model FLOPs; the 2021 Megatron-LM table counts full recomputation,
Narayanan et al. 2021 sec. 5.1; LLM Foundry 6N + attention), else ``mfu_pct`` (Megatron model FLOPs over the
dense BF16 peak of the GPU).

How a row becomes a job (rules read the row's columns and ``note``/``framework`` text, never its index):

* shape: empty ``heads`` -> head dim 128; empty ``kv_heads`` -> = heads; empty ``ffn_hidden`` -> 4 x hidden
  (GPT); empty ``vocab`` -> the family's tokenizer (GPT-3 51,200 = GPT-2 BPE padded, Llama 2 32,000, Llama 3
  128,256); "head dim N" and "alternating N-token sliding-window" in the note are honoured. Gated (SwiGLU)
  FFN for the Llama, Qwen and GPT-OSS families (their published configs); plain GeLU otherwise.
* parallel layout: tp/pp/dp as stated; "model-parallel size (tp x pp) = N" -> TP fills the 8-GPU NVLink domain
  first and PP takes the rest (the Megatron-LM layout rule, TP inside a node); a row stating no layout at all is
  skipped. Empty micro_batch -> 1. Empty precision -> bf16.
* framework facts: Megatron-Core / NeMo / Megatron-Bridge = distributed optimizer (ZeRO-1), sequence parallel,
  cuDNN (Transformer Engine) attention, DP and TP communication overlapped, FP8 in Transformer Engine's delayed
  scaling unless the note says "FP8-CS" / "current scaling" (then current scaling); Megatron-LM 2021 = plain DDP, no
  sequence parallelism, unfused attention, nothing overlapped (all three arrived later); torchtitan = FSDP2,
  PyTorch SDPA (FlashAttention-2) attention, batch-first DTensor activations (a copy around each sequence-
  parallel collective), TP overlapped only with "async TP", the local batch split into
  one micro-batch per pipeline stage and 2 stages per rank for "interleaved" schedules (its defaults), fused
  element-wise kernels only with torch.compile (eager: FP32 norms and rotary, its Llama code); LLM Foundry = FSDP FULL_SHARD, flash attention
  through flash-attn's varlen API (MPT's ``flash_attn_fn`` unpads q/k/v and pads the output: eager kernels plus
  those copies): FlashAttention-2 for its ">= 128 GPUs" table (2024-01, ``.[gpu-flash2]``), FlashAttention-1 for
  the older tables (flash-attn 1.0.x, by the benchmark script's install at the time; read from the note's
  section). Recomputation from the note ("full" /
  "activation checkpointing True" -> full; torchtitan "selective" -> per-op; otherwise none).
* network: "N Gbps node-node" (per 8-GPU node) or "N Gb/s/GPU" from the note; DGX H100 / Selene (DGX A100)
  by their published NICs; otherwise the GPU's reference design (one 400 Gb/s NIC per GPU; 200 Gb/s on A100),
  listed as an assumption.

* ``--fabric HOST:PORT``: MoE rows whose GPU model and per-GPU NIC rate match the fabric twin's facility
  (``--fabric-facility``, default dgx-h100-su; e.g. a gRPC-only fabric twin: ``FABRIC_CONSUME=0 python -m
  twin.fabric``) take their EP dispatch/combine from its ``EstimateMoe`` (EP group = ``ep`` ranks ``tp`` apart
  from GPU 0 of the healthy fabric); every other collective and every other row stay on the own estimate, and
  each row says which it used.
* MoE: the EP dispatcher from the note ("DeepEP" -> DeepEP's normal kernels, "low-latency" -> its low-latency
  ones), else NCCL all-to-all (Megatron-Core's alltoall dispatcher), listed as an assumption. Offline the EP
  term is the job twin's own estimate (NCCL all-to-all of the per-(token, expert) copies): the fabric twin's MoE
  model answers only over gRPC in the live service (``twin.core.importrules`` forbids importing it here).

* consistency: a note stating "GA N" (gradient accumulations) other than global_batch / (micro_batch x dp) is
  reported with the row (its micro_batch is kept as stated).

Every assumption a row needed is printed with it.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import grpc
import numpy as np

from twin.core.validation_data import validation_dir
from twin.jobs.domain.flops import model_flops_per_step
from twin.jobs.domain.hardware import gpu_spec
from twin.jobs.domain.spec import JobSpec, JobSpecError, ModelShape, Overlap, Parallelism, TrainingSetup
from twin.jobs.domain.step import predict_step

CSV_NAME = "training_public.csv"
#: tokenizer vocabularies by family when a row leaves vocab empty (GPT-2 BPE 50,257 padded to 51,200 as
#: Megatron/NeMo do; Llama 2 SentencePiece 32,000; Llama 3 tiktoken 128,256)
FAMILY_VOCAB = (("llama 3", 128256), ("llama 2", 32000), ("gpt", 51200))
GATED_FAMILIES = ("llama", "qwen", "gpt-oss", "mixtral", "deepseek")
DEFAULT_HEAD_DIM = 128
#: frameworks' overlap parameters (fraction of a communication kind hidden when the window allows)
OVERLAP_MEGATRON_CORE = Overlap(tp=0.8, dp=0.9, pp=0.5, cp=0.9, ep=0.0)
OVERLAP_NONE = Overlap(tp=0.0, dp=0.0, pp=0.0, cp=0.0, ep=0.0)
OVERLAP_FSDP = Overlap(tp=0.0, dp=0.9, pp=0.0, cp=0.0, ep=0.0)
OVERLAP_FSDP_ASYNC_TP = Overlap(tp=0.8, dp=0.9, pp=0.0, cp=0.0, ep=0.0)


def default_csv_path() -> Path:
    return validation_dir() / CSV_NAME


def load_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _int(row: dict[str, str], key: str) -> int | None:
    v = (row.get(key) or "").strip()
    if not v:
        return None
    f = float(v)
    if f != int(f):
        raise ValueError(f"{key}={v} is not an integer")
    return int(f)


def _float(row: dict[str, str], key: str) -> float | None:
    v = (row.get(key) or "").strip()
    return float(v) if v else None


def family_of(model: str) -> str:
    m = model.lower()
    for key, name in (("gpt-oss", "GPT-OSS"), ("qwen", "Qwen"), ("llama", "Llama"), ("mpt", "MPT"),
                      ("gpt", "GPT")):
        if key in m:
            return name
    return model.split()[0] if model else "?"


def framework_of(row: dict[str, str]) -> str:
    fw = (row.get("framework") or "").lower()
    if "torchtitan" in fw:
        return "torchtitan"
    if "foundry" in fw or "composer" in fw:
        return "llm_foundry"
    if "2021" in fw:
        return "megatron2021"
    if "megatron" in fw or "nemo" in fw:
        return "megatron_core"
    return "unknown"


def nic_gbps_of(row: dict[str, str], gpus_per_node: int) -> tuple[float | None, str | None]:
    """Per-GPU scale-out line rate the row states (or None and the assumption text)."""
    text = f"{row.get('note', '')} {row.get('framework', '')}"
    m = re.search(r"(\d+)\s*gbps\s+node-node", text, re.I)
    if m:
        return float(m.group(1)) / gpus_per_node, None
    m = re.search(r"(\d+)\s*gb/s/gpu", text, re.I)
    if m:
        return float(m.group(1)), None
    if re.search(r"dgx[-\s]?h100", text, re.I):
        return 400.0, None  # DGX H100 user guide: 8x ConnectX-7 NDR 400 Gb/s
    if re.search(r"selene", text, re.I):
        return 200.0, None  # Selene = DGX A100 SuperPOD: 8x HDR 200 Gb/s per node
    return None, "scale-out network not stated: one reference-design NIC per GPU"


def row_job(row: dict[str, str]) -> tuple[dict | None, str | None]:
    """(case, None) with the JobSpec and how to compare, or (None, skip reason)."""
    assumptions: list[str] = []
    note = row.get("note", "") or ""
    name = row.get("model", "") or ""
    fam = family_of(name)
    fw = framework_of(row)
    try:
        gpu = gpu_spec(row.get("gpu", ""))
    except ValueError as exc:
        return None, str(exc)
    try:
        n_gpus = _int(row, "n_gpus")
        layers, hidden = _int(row, "layers"), _int(row, "hidden")
        seq, gbs = _int(row, "seq_len"), _int(row, "global_batch")
        if not (n_gpus and layers and hidden and seq and gbs):
            return None, "n_gpus, layers, hidden, seq_len or global_batch missing"
        head_dim = 0
        m = re.search(r"head dim (\d+)", note)
        if m:
            head_dim = int(m.group(1))
        heads = _int(row, "heads")
        if heads is None:
            heads = hidden // DEFAULT_HEAD_DIM
            assumptions.append(f"heads not stated: head dim {DEFAULT_HEAD_DIM} -> {heads} heads")
        kv = _int(row, "kv_heads")
        if kv is None:
            kv = heads
            assumptions.append("kv_heads not stated: multi-head attention (kv = heads)")
        ffn = _int(row, "ffn_hidden")
        if ffn is None:
            ffn = 4 * hidden
            assumptions.append("ffn_hidden not stated: 4 x hidden (GPT)")
        vocab = _int(row, "vocab")
        if vocab is None:
            low = name.lower()
            vocab = next((v for k, v in FAMILY_VOCAB if k in low), 51200)
            assumptions.append(f"vocab not stated: {vocab} (family tokenizer)")
        window = every = 0
        m = re.search(r"alternating (\d+)-token sliding-window", note)
        if m:
            window, every = int(m.group(1)), 2
        experts, topk = _int(row, "moe_experts") or 0, _int(row, "moe_topk") or 0
        gated = any(k in name.lower() for k in GATED_FAMILIES)
        shape = ModelShape(layers=layers, hidden=hidden, ffn_hidden=ffn, heads=heads, kv_heads=kv, vocab=vocab,
                           seq_len=seq, head_dim=head_dim, moe_experts=experts, moe_topk=topk, gated_ffn=gated,
                           sliding_window=window, sliding_window_every=every)

        tp, pp, dp = _int(row, "tp"), _int(row, "pp"), _int(row, "dp")
        cp, ep, vp = _int(row, "cp") or 1, _int(row, "ep") or 1, _int(row, "vp") or 1
        if tp is None or pp is None:
            m = re.search(r"model-parallel size \(tp x pp\) = (\d+)", note)
            if m:
                mp = int(m.group(1))
                tp = min(mp, gpu.nvlink_domain)
                pp = mp // tp
                assumptions.append(f"tp/pp split not stated: model-parallel {mp} -> tp {tp} x pp {pp}")
            else:
                return None, "parallel layout (tp, pp, dp) not stated in the row"
        if dp is None:
            dp = n_gpus // (tp * pp * cp)
        mb = _int(row, "micro_batch")
        if fw == "torchtitan" and pp > 1:
            # torchtitan's pipeline schedules: looped ("interleaved") schedules default to 2 stages per rank,
            # and the local batch is split into as many micro-batches as there are stages in total
            # (experimental.pipeline_parallel_microbatches default) -- the row's micro_batch is the local batch
            if "interleaved" in note.lower() and vp == 1:
                vp = 2
                assumptions.append("interleaved schedule: 2 stages per rank (torchtitan default)")
            local = mb if mb is not None else gbs // dp
            stages = pp * vp
            if local % stages:
                return None, f"local batch {local} does not split into {stages} pipeline micro-batches"
            mb = local // stages
            assumptions.append(f"pipeline micro-batches = stages = {stages} (torchtitan default): micro-batch {mb}")
        if mb is None:
            mb = 1
            assumptions.append("micro_batch not stated: 1")
        precision = (row.get("precision") or "").strip().lower()
        if not precision:
            precision = "bf16"
            assumptions.append("precision not stated: bf16")
        if precision not in ("bf16", "fp8"):
            return None, f"precision {precision!r} not modelled (bf16, fp8 only)"

        low = note.lower()
        sequence_first = True
        fp8_recipe = "delayed"
        if fw == "torchtitan":
            recompute = "full" if re.search(r"full (activation checkpointing|ac)\b", low) else (
                "op" if "selective" in low else "none")
            async_tp = re.search(r"async\s?tp", low) is not None and "vanilla tp" not in low
            overlap = OVERLAP_FSDP_ASYNC_TP if async_tp else OVERLAP_FSDP
            par_kw = {"data_parallel": "fsdp", "sequence_parallel": True}
            kernel = "flash2"
            kernels = "fused" if "torch.compile" in low else "eager_fp32"
            sequence_first = False  # DTensor [b, s, h] activations
        elif fw == "llm_foundry":
            recompute = "full" if "activation checkpointing true" in low else "none"
            overlap, par_kw, kernel = OVERLAP_FSDP, {"data_parallel": "fsdp", "sequence_parallel": False}, "flash2"
            kernels = "eager_varlen"  # MPT's flash path: flash-attn varlen with unpad/pad copies
            if "section" in low and "large scale" not in low:
                # the benchmark README's tables older than 2024-01 were run with flash-attn 1.0.x: the A100 40 GB
                # table predates FlashAttention-2; scripts/train/benchmarking/submit_benchmarks.py at b2a43a147
                # (2023-10, the A100 80 GB and H100 8-GPU tables) installs llm-foundry v0.3.0 ``.[gpu]`` =
                # flash-attn==1.0.9 (FP8: 1.0.7); the ">= 128 GPUs" table (2024-01) installs ``.[gpu-flash2]``
                kernel = "flash1"
                assumptions.append("LLM Foundry table older than 2024-01: FlashAttention-1 (flash-attn 1.0.x)"
                                   + ("; no Hopper FlashAttention-1 figure read: taken at FlashAttention-2's"
                                      if gpu.arch != "ampere" else ""))
        elif fw == "megatron2021":
            recompute = "full"  # the paper's runs use activation recomputation (sec. 5.1)
            overlap, par_kw, kernel = OVERLAP_NONE, {"data_parallel": "ddp", "sequence_parallel": False}, "unfused"
            kernels = "fused"
        elif fw == "megatron_core":
            recompute = "full" if "full recompute" in low or "full activation" in low else "none"
            overlap, par_kw, kernel = OVERLAP_MEGATRON_CORE, {"data_parallel": "zero1", "sequence_parallel": True}, \
                "cudnn"
            kernels = "fused"
            if recompute == "none":
                assumptions.append("activation recompute not stated: none (Megatron-Core/NeMo default)")
            if precision == "fp8":
                # Transformer Engine's per-tensor recipes: current scaling where the row says so ("FP8-CS", the
                # Megatron-Bridge tables' name for Float8CurrentScaling), else delayed scaling, TE's and
                # Megatron-Core's default (``--fp8-recipe delayed``)
                if re.search(r"fp8-cs\b|current scaling", low):
                    fp8_recipe = "current"
                else:
                    assumptions.append("FP8 recipe not stated: delayed scaling (Transformer Engine / Megatron-Core "
                                       "default)")
        else:
            return None, f"framework {row.get('framework')!r} not recognised (its software facts are unknown)"
        moe_kernel = "nccl_alltoall"
        if ep > 1:
            if "deepep" in low:
                moe_kernel = "deepep_low_latency" if "low-latency" in low or "low latency" in low else "deepep_normal"
            else:
                assumptions.append("EP dispatcher not stated: NCCL all-to-all (Megatron-Core alltoall dispatcher)")
            assumptions.append("EP dispatch/combine from the job twin's own estimate (the fabric twin's MoE model "
                               "is asked online only: services do not import each other)")
        par = Parallelism(tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, vp=vp, **par_kw)
        training = TrainingSetup(micro_batch=mb, global_batch=gbs, precision=precision, recompute=recompute,
                                 attention_kernel=kernel, overlap=overlap, kernels=kernels,
                                 sequence_first=sequence_first, moe_kernel=moe_kernel, fp8_recipe=fp8_recipe)
        job = JobSpec(shape, par, training, gpu=gpu.key, n_gpus=n_gpus)
        # a stated gradient-accumulation count ("GA N", the Megatron-Bridge tables' column) must equal
        # global_batch / (micro_batch x dp); when it does not, the row contradicts itself -- say so, keep the row's
        # micro_batch (nothing is re-read from the GA)
        ga = re.search(r"\bGA (\d+)\b", note)
        if ga and int(ga.group(1)) != job.micro_batches:
            assumptions.append(f"the note's GA {ga.group(1)} contradicts global_batch / (micro_batch x dp) = "
                               f"{job.micro_batches}: micro_batch {mb} taken as stated")
    except (JobSpecError, ValueError) as exc:
        return None, f"cannot build the job: {exc}"

    nic, nic_assumption = nic_gbps_of(row, gpu.gpus_per_node)
    if nic_assumption and n_gpus > gpu.nvlink_domain:
        assumptions.append(f"{nic_assumption} ({gpu.nic_Gbps:g} Gb/s)")

    tokens, tflops, mfu = (_float(row, k) for k in ("tokens_per_s_per_gpu", "tflops_per_gpu", "mfu_pct"))
    convention = {"megatron2021": "megatron2021", "llm_foundry": "llm_foundry"}.get(fw, "megatron")
    if tokens:
        metric, measured = "tokens_per_s_per_gpu", tokens
    elif tflops:
        metric, measured = "tflops_per_gpu", tflops
    elif mfu:
        metric, measured = "mfu_pct", mfu
    else:
        return None, "no measured metric (tokens_per_s_per_gpu, tflops_per_gpu, mfu_pct)"
    params_b = _float(row, "params_b")
    return {"job": job, "nic_Gbps": nic, "metric": metric, "measured": measured, "convention": convention,
            "params": params_b * 1e9 if params_b else None, "family": fam, "gpu": row.get("gpu", ""),
            "framework": fw, "model": name, "assumptions": assumptions}, None


class FabricMoe:
    """EP dispatch/combine of a row from a running fabric twin's ``EstimateMoe`` (gRPC), for rows on its hardware."""

    def __init__(self, target: str, facility: str = "dgx-h100-su", timeout_s: float = 10.0) -> None:
        from twin.core.facility import load_facility_spec

        spec = load_facility_spec(facility)
        node = next(iter(spec.node_types.values()))
        self.gpu = gpu_spec(node.gpu_model).key
        self.nic_Gbps = spec.fabric.nic_gbps * node.nics / node.gpus
        self.domain = node.nvlink_domain_gpus
        self.target, self.facility, self.timeout_s = target, facility, timeout_s

    def matches(self, case: dict) -> bool:
        job: JobSpec = case["job"]
        nic = case["nic_Gbps"] if case["nic_Gbps"] is not None else gpu_spec(job.gpu).nic_Gbps
        return job.model.is_moe and job.parallel.ep > 1 and job.gpu == self.gpu and abs(nic - self.nic_Gbps) < 1e-6

    def timer(self, case: dict):
        """A CommTimer: the fabric twin's answer for the row's MoE calls, the own estimate for the rest."""
        from twin.fabric.v1 import fabric_pb2 as fpb
        from twin.fabric.v1 import fabric_pb2_grpc as fpb_grpc
        from twin.jobs.adapters.fabric_client import moe_case
        from twin.jobs.domain.comm import LinkModel
        from twin.jobs.domain.step import moe_calls

        job: JobSpec = case["job"]
        p = job.parallel
        calls = moe_calls(job, self.domain)
        with grpc.insecure_channel(self.target) as channel:
            resp = fpb_grpc.FabricSimulationServiceStub(channel).EstimateMoe(fpb.EstimateMoeRequest(
                cases=[moe_case(c) for c in calls],
                placement=fpb.Placement(gpus=fpb.GpuList(gpu_ids=[p.tp * r for r in range(p.ep)]))),
                timeout=self.timeout_s)
        table = {(c.collective, c.size_bytes): (e.dispatch_time_s if c.collective == "moe_dispatch"
                                                else e.combine_time_s)
                 for c, e in zip(calls, resp.estimates, strict=True)}
        own = LinkModel.for_gpu(gpu_spec(job.gpu), case["nic_Gbps"]).time_s

        def timer(call) -> float:
            t = table.get((call.collective, call.size_bytes)) if call.moe is not None else None
            return own(call) if t is None else t

        return timer


def predicted_metric(case: dict, fabric: FabricMoe | None = None) -> tuple[float, object]:
    job: JobSpec = case["job"]
    timer = fabric.timer(case) if fabric is not None and fabric.matches(case) else None
    pred = predict_step(job, timer, nic_Gbps=case["nic_Gbps"])
    if case["metric"] == "tokens_per_s_per_gpu":
        return pred.tokens_per_s_per_gpu, pred
    if case["convention"] == "llm_foundry" and case["params"]:
        from twin.jobs.domain.flops import llm_foundry_flops_per_token

        flops = llm_foundry_flops_per_token(job.model, case["params"]) * job.tokens_per_step
    else:
        flops = float(model_flops_per_step(job.model, job.tokens_per_step, case["convention"]))
    tflops = flops / pred.step_time_s / job.n_gpus / 1e12
    if case["metric"] == "tflops_per_gpu":
        return tflops, pred
    return 100.0 * tflops / gpu_spec(job.gpu).peak("bf16"), pred


def error_stats(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float | int]:
    """Median / p90 absolute percentage error and worst ratio (max of p/m and m/p)."""
    p = np.asarray(predicted, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    if p.size == 0:
        return {"n": 0, "median_abs_pct_error": float("nan"), "p90_abs_pct_error": float("nan"),
                "worst_ratio": float("nan")}
    ape = np.abs(p - m) / m * 100.0
    return {"n": int(p.size), "median_abs_pct_error": float(np.median(ape)),
            "p90_abs_pct_error": float(np.percentile(ape, 90)), "worst_ratio": float(np.max(np.maximum(p / m, m / p)))}


def summarize(rows: Iterable[dict[str, str]], fabric: FabricMoe | None = None) -> dict:
    results, skipped = [], []
    for i, row in enumerate(rows):
        case, reason = row_job(row)
        if case is not None and fabric is not None and case["job"].model.is_moe and case["job"].parallel.ep > 1:
            own_note = [a for a in case["assumptions"] if a.startswith("EP dispatch/combine from")]
            if fabric.matches(case):
                for a in own_note:
                    case["assumptions"].remove(a)
                case["assumptions"].append(f"EP dispatch/combine from the fabric twin's EstimateMoe at "
                                           f"{fabric.target} ({fabric.facility})")
            else:
                case["assumptions"].append(f"fabric twin's facility {fabric.facility} is other hardware: own estimate")
        if case is None:
            skipped.append({"row": i, "model": row.get("model"), "gpu": row.get("gpu"),
                            "n_gpus": row.get("n_gpus"), "reason": reason})
            continue
        try:
            value, pred = predicted_metric(case, fabric)
        except ValueError as exc:
            skipped.append({"row": i, "model": row.get("model"), "gpu": row.get("gpu"),
                            "n_gpus": row.get("n_gpus"), "reason": f"model cannot predict it: {exc}"})
            continue
        job: JobSpec = case["job"]
        p = job.parallel
        results.append({
            "row": i, "model": case["model"], "family": case["family"], "gpu": case["gpu"],
            "kind": "moe" if job.model.is_moe else "dense",
            "framework": case["framework"], "n_gpus": job.n_gpus, "precision": job.training.precision,
            "layout": f"tp{p.tp} pp{p.pp} dp{p.dp} cp{p.cp} ep{p.ep} vp{p.vp}",
            "metric": case["metric"], "measured": case["measured"], "predicted": value,
            "ratio": value / case["measured"], "step_time_s": pred.step_time_s,
            "exposed_comm_s": pred.exposed_comm_s, "bubble_s": pred.bubble_s, "clock_fraction": pred.clock_fraction,
            "mfu_pct": 100.0 * pred.mfu, "assumptions": case["assumptions"],
        })
    overall = error_stats([r["predicted"] for r in results], [r["measured"] for r in results])

    def grouped(key: str) -> dict:
        out = {}
        for value in sorted({r[key] for r in results}):
            sel = [r for r in results if r[key] == value]
            out[value] = error_stats([r["predicted"] for r in sel], [r["measured"] for r in sel])
        return out

    return {"rows": len(results), "skipped": len(skipped), "skipped_rows": skipped,
            "median_abs_pct_error": overall["median_abs_pct_error"],
            "p90_abs_pct_error": overall["p90_abs_pct_error"], "worst_ratio": overall["worst_ratio"],
            "by_gpu": grouped("gpu"), "by_family": grouped("family"), "by_framework": grouped("framework"),
            "by_metric": grouped("metric"), "by_kind": grouped("kind"), "results": results}


def format_report(report: dict) -> str:
    lines = [f"{'row':>3} {'model':<36}{'gpu':<14}{'n':>5} {'prec':<5}{'layout':<27}{'metric':<21}"
             f"{'measured':>10}{'predicted':>11}{'ratio':>7}"]
    for r in report["results"]:
        lines.append(f"{r['row']:>3} {r['model'][:35]:<36}{r['gpu']:<14}{r['n_gpus']:>5} {r['precision']:<5}"
                     f"{r['layout']:<27}{r['metric']:<21}{r['measured']:>10.1f}{r['predicted']:>11.1f}"
                     f"{r['ratio']:>7.2f}" + "".join(f"\n      [assumed: {a}]" for a in r["assumptions"]))
    for s in report["skipped_rows"]:
        lines.append(f"SKIPPED row {s['row']} ({s['model']}, {s['gpu']} x {s['n_gpus']}): {s['reason']}")
    lines.append("")
    lines.append(f"rows {report['rows']}  skipped {report['skipped']}  median |err| "
                 f"{report['median_abs_pct_error']:.1f} %  p90 |err| {report['p90_abs_pct_error']:.1f} %  "
                 f"worst ratio {report['worst_ratio']:.2f}x")
    for title, key in (("by GPU", "by_gpu"), ("by model family", "by_family"), ("by framework", "by_framework"),
                       ("by metric", "by_metric"), ("by model kind (dense / MoE)", "by_kind")):
        lines.append(title + ":")
        for name, st in report[key].items():
            lines.append(f"  {name:<22} n={st['n']:<3} median {st['median_abs_pct_error']:6.1f} %  "
                         f"p90 {st['p90_abs_pct_error']:6.1f} %  worst {st['worst_ratio']:.2f}x")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m twin.jobs.validate [CSV] [--json] [--fabric HOST:PORT [--fabric-facility NAME]]"
    options: dict[str, str] = {}
    for opt in ("--fabric", "--fabric-facility"):
        if opt in args:
            i = args.index(opt)
            if i + 1 >= len(args) or args[i + 1].startswith("-"):
                print(usage, file=sys.stderr)
                return 2
            options[opt] = args[i + 1]
            del args[i:i + 2]
    as_json = "--json" in args
    paths = [a for a in args if a != "--json"]
    if any(a.startswith("-") for a in paths) or len(paths) > 1 or ("--fabric-facility" in options
                                                                    and "--fabric" not in options):
        print(usage, file=sys.stderr)
        return 2
    fabric = None
    if "--fabric" in options:
        try:
            fabric = FabricMoe(options["--fabric"], options.get("--fabric-facility", "dgx-h100-su"))
        except (FileNotFoundError, ValueError, KeyError) as exc:
            print(f"--fabric-facility: {exc}", file=sys.stderr)
            return 2
    try:
        path = Path(paths[0]) if paths else default_csv_path()
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not path.exists():
        print(f"validation CSV not found: {path} (set TWIN_VALIDATION_DIR or pass a path)", file=sys.stderr)
        return 2
    try:
        report = summarize(load_rows(path), fabric)
    except grpc.RpcError as exc:  # only asked with --fabric
        print(f"the fabric twin at {fabric.target} did not answer: {exc}", file=sys.stderr)
        return 1
    report["csv"] = str(path)
    print(json.dumps(report) if as_json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
