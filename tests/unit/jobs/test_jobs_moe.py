"""The job twin's expert-parallel term: dispatch + combine per MoE layer and micro-batch (``step.moe_calls``),
timed by the built-in estimate offline and by the fabric twin's ``EstimateMoe`` online (a real in-process
FabricApp in gRPC-only mode, no broker), with the own estimate when the fabric twin does not answer."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import grpc
import pytest

from twin.core.facility import load_facility_spec
from twin.fabric.app import FabricApp, FabricConfig
from twin.fabric.v1 import fabric_pb2 as fpb
from twin.fabric.v1 import fabric_pb2_grpc as fpb_grpc
from twin.jobs.adapters.fabric_client import FabricComm, moe_case
from twin.jobs.domain.comm import CollectiveCall, CommGroup, LinkModel, MoeTraffic, moe_bytes_per_token
from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.domain.hardware import gpu_spec
from twin.jobs.domain.spec import JobSpec, JobSpecError, ModelShape, Parallelism, TrainingSetup
from twin.jobs.domain.step import ep_layer_s, moe_calls, moe_tokens_per_rank, predict_step
from twin.jobs.live import JobTwin, call_key
from twin.jobs.site import build_site_map

T0 = 1_800_000_000.0
# 4 DGX H100 nodes (32 GPUs): an EP group of 16 spans two NVLink domains
NODES = ("su1-0000-n00", "su1-0000-n01", "su1-0000-n02", "su1-0000-n03")


def moe_job(*, seq: int = 4096, mb: int = 1, topk: int = 8, experts: int = 64, tp: int = 1, cp: int = 1,
            ep: int = 16, dp: int | None = None, precision: str = "bf16", kernel: str = "nccl_alltoall",
            recompute: str = "none") -> JobSpec:
    dp = dp if dp is not None else 32 // (tp * cp)
    shape = ModelShape(layers=4, hidden=2048, ffn_hidden=768, heads=16, kv_heads=4, vocab=32000, seq_len=seq,
                       moe_experts=experts, moe_topk=topk, gated_ffn=True)
    return JobSpec(shape, Parallelism(tp=tp, cp=cp, dp=dp, ep=ep),
                   TrainingSetup(micro_batch=mb, global_batch=mb * dp * 2, precision=precision, recompute=recompute,
                                 moe_kernel=kernel))


def own(job: JobSpec):
    return LinkModel.for_gpu(gpu_spec(job.gpu)).time_s


# -- the EP term (built-in estimate) ---------------------------------------------------------------------------
def test_tokens_per_rank_follow_megatrons_sequence_parallel_shard() -> None:
    assert moe_tokens_per_rank(moe_job(seq=4096, mb=2, tp=2, cp=2, ep=8)) == 2 * 4096 // 4
    no_sp = dataclasses.replace(moe_job(tp=2, ep=8), parallel=Parallelism(tp=2, dp=16, ep=8,
                                                                          sequence_parallel=False))
    assert moe_tokens_per_rank(no_sp) == 4096


def test_ep_term_is_zero_without_expert_parallelism() -> None:
    job = moe_job(ep=1)
    assert ep_layer_s(job, own(job), 8) == 0.0
    pred = predict_step(job)
    assert pred.raw_comm_s["ep"] == 0.0 and pred.exposed_comm_s["ep"] == 0.0


@pytest.mark.parametrize("kernel", ["nccl_alltoall", "deepep_normal", "deepep_low_latency"])
def test_ep_term_grows_with_tokens_and_top_k(kernel: str) -> None:
    def ep(**kw) -> float:
        job = moe_job(kernel=kernel, **kw)
        return predict_step(job).raw_comm_s["ep"]

    by_tokens = [ep(seq=s) for s in (1024, 2048, 4096, 8192)]
    by_topk = [ep(topk=k) for k in (1, 2, 4, 8)]
    assert all(b > a for a, b in zip(by_tokens, by_tokens[1:], strict=False)), by_tokens
    assert all(b > a for a, b in zip(by_topk, by_topk[1:], strict=False)), by_topk


def test_forward_backward_and_recompute_repeat_dispatch_and_combine() -> None:
    job = moe_job()
    per_layer = ep_layer_s(job, own(job), 8)
    assert per_layer > 0
    pred = predict_step(job)
    assert pred.raw_comm_s["ep"] == pytest.approx(job.micro_batches * job.model.layers * 2.0 * per_layer)
    full = predict_step(moe_job(recompute="full"))
    assert full.raw_comm_s["ep"] == pytest.approx(job.micro_batches * job.model.layers * 3.0 * per_layer)


def test_fp8_jobs_dispatch_in_fp8_with_scales_on_deepep_and_combine_in_bf16() -> None:
    d8, c8 = moe_calls(moe_job(precision="fp8", kernel="deepep_normal"), 8)
    d16, c16 = moe_calls(moe_job(precision="bf16", kernel="deepep_normal"), 8)
    assert d8.moe.precision == "fp8" and c8.moe.precision == "bf16" and d16.moe.precision == "bf16"
    assert moe_bytes_per_token(2048, "fp8") == 2048 + 4 * 16  # one FP32 scale per 128 elements
    assert d8.size_bytes == 4096 * 8 * (2048 + 64) and c8.size_bytes == d16.size_bytes == 4096 * 8 * 2 * 2048
    assert own(moe_job())(d8) < own(moe_job())(d16)


def test_megatrons_all_to_all_dispatcher_sends_bf16_even_for_fp8_jobs() -> None:
    # Megatron-Core dispatches the permuted BF16 tokens (moe_dispatch_fwd_dtype defaults to bf16); the expert
    # GEMMs quantize after the dispatch
    d8, c8 = moe_calls(moe_job(precision="fp8"), 8)
    d16, _ = moe_calls(moe_job(precision="bf16"), 8)
    assert d8.moe.precision == "bf16" and c8.moe.precision == "bf16"
    assert d8.size_bytes == d16.size_bytes == 4096 * 8 * 2 * 2048


def test_moe_calls_need_their_traffic_and_bad_kernels_are_refused() -> None:
    traffic = MoeTraffic("nccl_alltoall", 128, 1024, 2, 8)
    with pytest.raises(ValueError, match="MoeTraffic"):
        CollectiveCall("ep", "moe_dispatch", 1.0, CommGroup(8, 8))
    with pytest.raises(ValueError, match="MoeTraffic"):
        CollectiveCall("ep", "alltoall", 1.0, CommGroup(8, 8), traffic)
    with pytest.raises(ValueError, match="top_k"):
        MoeTraffic("nccl_alltoall", 128, 1024, 9, 8)
    with pytest.raises(JobSpecError) as err:
        moe_job(kernel="deepep_fast")
    assert err.value.field == "moe_kernel"


def test_moe_case_asks_each_phase_at_its_own_precision() -> None:
    d, c = moe_calls(moe_job(precision="fp8", kernel="deepep_normal"), 8)
    cd, cc = moe_case(d), moe_case(c)
    assert cd.kernel == fpb.MOE_KERNEL_DEEPEP_NORMAL and cd.dispatch_precision == fpb.MOE_PRECISION_FP8
    assert cc.combine_precision == fpb.MOE_PRECISION_BF16 and cc.tokens_per_rank == 4096 and cc.top_k == 8
    assert cd.num_experts == 64 and cd.hidden_size == 2048


# -- online: the fabric twin's EstimateMoe over gRPC ------------------------------------------------------------
def _twin_inputs(job: JobSpec):
    twin = JobTwin(build_site_map(load_facility_spec("dgx-h100-su")))
    twin.apply(JobEvent("j", EventKind.SUBMITTED, T0, spec=job))
    twin.apply(JobEvent("j", EventKind.STARTED, T0 + 1, nodes=NODES, n_gpus=job.n_gpus))
    return twin, twin.inputs(twin.book.jobs["j"], T0 + 10)


async def _with_fabric(body):
    cfg = FabricConfig(kafka_bootstrap="unused:1", database_url="unused", facility="dgx-h100-su",
                       grpc_host="127.0.0.1", grpc_port=0, consume=False)
    app = FabricApp(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        await asyncio.wait_for(app.ready.wait(), 30)
        return await body(f"127.0.0.1:{app.port}")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def test_the_ep_term_comes_from_the_fabric_twins_estimate_moe() -> None:
    async def body(target: str):
        out = {}
        for kernel in ("nccl_alltoall", "deepep_normal"):
            job = moe_job(kernel=kernel)
            twin, inp = _twin_inputs(job)
            calls = twin.calls(inp)
            moe = [c for c in calls if c.collective in ("moe_dispatch", "moe_combine")]
            assert {c.collective for c in moe} == {"moe_dispatch", "moe_combine"}
            fabric = FabricComm(target)
            answer = await fabric.answer(inp, calls)
            assert answer.source == "fabric", answer.detail
            # the same question asked directly of EstimateMoe for the first EP group (GPUs 0-15, two nodes)
            gpus = sorted(inp.gpu_ids)
            async with grpc.aio.insecure_channel(target) as ch:
                stub = fpb_grpc.FabricSimulationServiceStub(ch)
                resp = await stub.EstimateMoe(fpb.EstimateMoeRequest(
                    cases=[moe_case(c) for c in moe], placement=fpb.Placement(gpus=fpb.GpuList(gpu_ids=gpus[:16]))))
            assert resp.ep_ranks == 16 and resp.n_domains == 2
            direct = {c.collective: (e.dispatch_time_s if c.collective == "moe_dispatch" else e.combine_time_s)
                      for c, e in zip(moe, resp.estimates, strict=True)}
            for c in moe:
                got = answer.table[call_key(c)]
                assert math.isfinite(got) and got >= direct[c.collective] > 0
            twin.compute("j", inp, answer, T0 + 10)
            pred = twin.jobs["j"].prediction
            per_layer = sum(answer.table[call_key(c)] for c in moe)
            assert pred.raw_comm_s["ep"] == pytest.approx(job.micro_batches * job.model.layers * 2.0 * per_layer)
            assert twin.jobs["j"].comm_source == "fabric", "no fallback stated"
            out[kernel] = per_layer
            await fabric.close()
        return out

    per_layer = asyncio.run(_with_fabric(body))
    # DeepEP's normal kernels send a token once per remote NVLink domain, NCCL's all-to-all once per expert
    assert per_layer["deepep_normal"] < per_layer["nccl_alltoall"]


def test_without_the_fabric_twin_the_ep_term_falls_back_to_the_own_estimate() -> None:
    async def body(target: str):
        return target

    dead = asyncio.run(_with_fabric(body))  # a port that served and is closed now
    job = moe_job()
    twin, inp = _twin_inputs(job)
    fabric = FabricComm(dead, timeout_s=1.0)
    answer = asyncio.run(fabric.answer(inp, twin.calls(inp)))
    assert answer.source == "local" and answer.retry and not fabric.up
    twin.compute("j", inp, answer, T0 + 10)
    live = twin.jobs["j"]
    assert live.comm_source == "local" and live.comm_detail, "the fallback is stated"
    d, c = moe_calls(job, 8)
    expect = job.micro_batches * job.model.layers * 2.0 * (own(job)(d) + own(job)(c))
    assert live.prediction.raw_comm_s["ep"] == pytest.approx(expect)


# -- validation: --fabric asks a running fabric twin for the MoE rows on its hardware ----------------------------
def test_validate_takes_moe_rows_from_the_fabric_twin_only_on_its_hardware() -> None:
    from twin.jobs.validate import FabricMoe, default_csv_path, load_rows, summarize

    rows = [r for r in load_rows(default_csv_path()) if (r.get("ep") or "1") not in ("", "1")]
    assert rows, "the public CSV has MoE rows"
    a100 = dict(rows[0], gpu="A100-80GB", precision="bf16")  # same row on other hardware: own estimate

    async def body(target: str):
        return await asyncio.to_thread(summarize, rows + [a100], FabricMoe(target, "dgx-h100-su"))

    with_fabric = asyncio.run(_with_fabric(body))
    own_only = summarize(rows + [a100])
    for got, ref in zip(with_fabric["results"], own_only["results"], strict=True):
        from_fabric = any("fabric twin's EstimateMoe" in a for a in got["assumptions"])
        assert from_fabric == (got["gpu"] == "H100-SXM"), got["assumptions"]
        if from_fabric:  # the fabric twin's NCCL model differs from the own estimate: the EP term changed
            assert got["exposed_comm_s"]["ep"] != pytest.approx(ref["exposed_comm_s"]["ep"], rel=1e-6)
        else:
            assert got["exposed_comm_s"]["ep"] == pytest.approx(ref["exposed_comm_s"]["ep"])


# -- the kernel travels from the scheduler to the service ---------------------------------------------------------
def test_moe_kernel_from_a_slurm_comment_survives_jobs_events_v1() -> None:
    from twin.jobs.adapters import codec
    from twin.jobs.adapters.slurm import SlurmRecordRejected, job_spec_from
    from twin.jobs.v1 import jobs_pb2 as jpb

    comment = ("layers=4 hidden=2048 ffn_hidden=768 heads=16 kv_heads=4 vocab=32000 seq_len=4096 moe_experts=64 "
               "moe_topk=8 gated=1 ep=16 mbs=1 gbs=64 gpu=H100-SXM moe_kernel=deepep_normal")
    spec, _ = job_spec_from(comment, allocated_gpus=32)
    assert spec is not None and spec.training.moe_kernel == "deepep_normal"
    back = codec.spec_from_proto(jpb.JobSpec.FromString(codec.spec_to_proto(spec).SerializeToString()))
    assert back.training.moe_kernel == "deepep_normal" and back == spec
    unset = codec.spec_to_proto(spec)
    unset.ClearField("moe_dispatcher")
    assert codec.spec_from_proto(unset).training.moe_kernel == "nccl_alltoall"  # the stated default
    bad = codec.spec_to_proto(spec)
    bad.moe_dispatcher = 99
    with pytest.raises(codec.InvalidMessage) as err:
        codec.spec_from_proto(bad)
    assert err.value.field == "spec.moe_dispatcher"
    with pytest.raises(SlurmRecordRejected, match="moe_kernel"):
        job_spec_from(comment.replace("deepep_normal", "deepep_turbo"), allocated_gpus=32)
