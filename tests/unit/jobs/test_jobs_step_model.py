"""Job twin step-time model: the properties issue 11 asks for, and the FLOP conventions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.jobs.domain import (
    CollectiveCall,
    Conditions,
    JobSpec,
    JobSpecError,
    LinkModel,
    ModelShape,
    Overlap,
    Parallelism,
    TrainingSetup,
    clock_fraction_at_cap,
    gpu_spec,
    model_flops_per_step,
    predict_step,
)
from twin.jobs.domain.flops import megatron_2021_flops_per_token, model_flops_per_token
from twin.jobs.domain.goodput import (
    DEFAULT_GPU_MTBF_H,
    daly_interval_s,
    goodput_fraction,
    job_mtbf_s,
    young_interval_s,
)

LLAMA_70B = ModelShape(layers=80, hidden=8192, ffn_hidden=28672, heads=64, kv_heads=8, vocab=128256,
                       seq_len=8192, gated_ffn=True)
GPT_7B = ModelShape(layers=32, hidden=4096, ffn_hidden=16384, heads=32, kv_heads=32, vocab=51200, seq_len=4096)
MOE = ModelShape(layers=48, hidden=2048, ffn_hidden=768, heads=32, kv_heads=4, vocab=151936, seq_len=4096,
                 head_dim=128, moe_experts=128, moe_topk=8, gated_ffn=True)


def jobs() -> list[JobSpec]:
    """A spread of layouts: TP+PP+DP, FSDP, CP, EP."""
    return [
        JobSpec(LLAMA_70B, Parallelism(tp=8, pp=4, dp=8, vp=5),
                TrainingSetup(micro_batch=1, global_batch=256, precision="fp8", overlap=Overlap(tp=0.8)),
                gpu="H100-SXM"),
        JobSpec(GPT_7B, Parallelism(tp=1, pp=1, dp=64, data_parallel="fsdp"),
                TrainingSetup(micro_batch=4, global_batch=512, recompute="full", kernels="eager"), gpu="A100-80GB"),
        JobSpec(LLAMA_70B, Parallelism(tp=8, pp=2, dp=4, cp=2),
                TrainingSetup(micro_batch=1, global_batch=64), gpu="B200"),
        JobSpec(MOE, Parallelism(tp=1, pp=1, dp=16, ep=16), TrainingSetup(micro_batch=1, global_batch=256,
                                                                         precision="fp8"), gpu="H100-SXM"),
        JobSpec(LLAMA_70B, Parallelism(tp=4, pp=4, dp=18), TrainingSetup(micro_batch=1, global_batch=288),
                gpu="GB200"),
    ]


@pytest.mark.parametrize("job", jobs(), ids=lambda j: f"{j.gpu}-tp{j.parallel.tp}pp{j.parallel.pp}")
def test_step_time_grows_when_the_fabric_degrades(job: JobSpec) -> None:
    times = [predict_step(job, conditions=Conditions(network_fraction=f)).step_time_s
             for f in (1.0, 0.75, 0.5, 0.25, 0.1)]
    assert all(b >= a for a, b in zip(times, times[1:], strict=False))
    assert times[-1] > times[0]  # every layout here crosses the network


@pytest.mark.parametrize("job", jobs(), ids=lambda j: f"{j.gpu}-tp{j.parallel.tp}pp{j.parallel.pp}")
@settings(max_examples=25, deadline=None)
@given(net=st.floats(0.05, 1.0), clock=st.floats(0.3, 1.0), cap_frac=st.floats(0.4, 1.2),
       loss=st.floats(0.0, 0.9), slow=st.floats(0.5, 1.0))
def test_losing_a_resource_never_shortens_the_step(job, net, clock, cap_frac, loss, slow) -> None:
    gpu = gpu_spec(job.gpu)
    cap = cap_frac * gpu.power_limit_w
    base = predict_step(job, conditions=Conditions(cap, clock, net, slow)).step_time_s
    worse = [
        Conditions(cap, clock, net * (1.0 - loss), slow),           # a link fails / degrades further
        Conditions(cap, clock * (1.0 - loss), net, slow),           # thermal throttling deepens
        Conditions(cap * (1.0 - loss), clock, net, slow),           # the power cap drops
        Conditions(cap, clock, net, slow * (1.0 - 0.5 * loss)),     # a straggler GPU slows further
    ]
    for cond in worse:
        if cond.power_cap_w is not None and cond.power_cap_w <= gpu.idle_w:
            continue
        assert predict_step(job, conditions=cond).step_time_s >= base * (1 - 1e-12)


def test_tp_spanning_nvlink_domains_is_slower_than_inside_one() -> None:
    job = JobSpec(LLAMA_70B, Parallelism(tp=8, pp=1, dp=8), TrainingSetup(micro_batch=1, global_batch=64),
                  gpu="H100-SXM")
    inside = predict_step(job)                       # TP group on one 8-GPU NVLink domain
    spanning = predict_step(job, gpus_per_domain=4)  # the same job given half of each node
    assert spanning.exposed_comm_s["tp"] > inside.exposed_comm_s["tp"]
    assert spanning.step_time_s > inside.step_time_s


def test_power_cap_never_speeds_a_job_up() -> None:
    for job in jobs():
        gpu = gpu_spec(job.gpu)
        caps = np.linspace(gpu.idle_w * 1.2, gpu.power_limit_w * 1.5, 12)
        times = [predict_step(job, conditions=Conditions(power_cap_w=float(c))).step_time_s for c in caps]
        assert all(a >= b for a, b in zip(times, times[1:], strict=False))  # higher cap -> never slower
        free = predict_step(job).step_time_s
        assert all(t >= free * (1 - 1e-12) for t in times)


def test_clock_under_a_cap_follows_cubic_dvfs_and_saturates() -> None:
    h100 = gpu_spec("H100-SXM")
    assert clock_fraction_at_cap(h100, None) == 1.0
    assert clock_fraction_at_cap(h100, 900.0) == 1.0
    f = clock_fraction_at_cap(h100, 500.0)
    assert f == pytest.approx(((500 - 118) / (700 - 118)) ** (1 / 3))
    with pytest.raises(ValueError):
        clock_fraction_at_cap(h100, 100.0)


def test_the_expected_straggler_grows_with_job_size_and_sets_the_pace() -> None:
    from twin.jobs.domain.step import GPU_SPEED_CV, straggler_fraction

    fr = [straggler_fraction(n) for n in (1, 8, 64, 512, 8192)]
    assert fr[0] == 1.0 and all(b < a for a, b in zip(fr, fr[1:], strict=False))
    assert 1.0 - fr[1] == pytest.approx(GPU_SPEED_CV * 1.42, rel=0.05)  # E[max of 8 normals] ~ 1.42
    job = jobs()[0]
    typical = predict_step(job, conditions=Conditions(slowest_gpu_fraction=1.0))
    assert predict_step(job).step_time_s > typical.step_time_s
    assert predict_step(job, conditions=Conditions(slowest_gpu_fraction=0.8)).step_time_s > typical.step_time_s


def test_goodput_falls_away_from_the_young_daly_optimum() -> None:
    mtbf = float(job_mtbf_s(16384))
    assert mtbf / 3600 == pytest.approx(DEFAULT_GPU_MTBF_H / 16384)
    tau = float(daly_interval_s(60.0, mtbf))
    assert tau == pytest.approx(float(young_interval_s(60.0, mtbf)), rel=0.1)
    best = float(goodput_fraction(tau, 60.0, 600.0, mtbf))
    factors = np.array([0.1, 0.25, 0.5, 0.8, 1.25, 2.0, 4.0, 10.0])
    others = goodput_fraction(tau * factors, 60.0, 600.0, mtbf)
    assert (others < best).all()
    assert np.all(np.diff(goodput_fraction(tau * factors[:4], 60.0, 600.0, mtbf)) > 0)
    assert np.all(np.diff(goodput_fraction(tau * factors[4:], 60.0, 600.0, mtbf)) < 0)


def test_goodput_falls_with_fleet_size_and_restart_time() -> None:
    n = np.array([1024, 4096, 16384, 65536])
    g = goodput_fraction(1800.0, 60.0, 600.0, job_mtbf_s(n))
    assert np.all(np.diff(g) < 0)
    assert goodput_fraction(1800.0, 60.0, 1200.0, job_mtbf_s(4096)) < goodput_fraction(1800.0, 60.0, 600.0,
                                                                                          job_mtbf_s(4096))


def test_megatron_flops_formula_matches_the_published_closed_form() -> None:
    # Narayanan et al. 2021: model FLOPs 72 B s l h^2 (1 + s/6h + V/12lh); with recomputation 96 ... V/16lh
    m = ModelShape(layers=96, hidden=12288, ffn_hidden=4 * 12288, heads=96, kv_heads=96, vocab=51200, seq_len=2048)
    s, h, L, V = 2048, 12288, 96, 51200
    assert model_flops_per_token(m) == pytest.approx(72 * L * h * h * (1 + s / (6 * h) + V / (12 * L * h)))
    assert megatron_2021_flops_per_token(m) == pytest.approx(96 * L * h * h * (1 + s / (6 * h) + V / (16 * L * h)))
    assert float(model_flops_per_step(m, 1000)) == pytest.approx(1000 * model_flops_per_token(m))


def test_gqa_and_swiglu_change_the_flops_as_the_shape_says() -> None:
    mha = dataclasses.replace(LLAMA_70B, kv_heads=64)
    assert model_flops_per_token(LLAMA_70B) < model_flops_per_token(mha)
    plain = dataclasses.replace(LLAMA_70B, gated_ffn=False)
    assert model_flops_per_token(plain) < model_flops_per_token(LLAMA_70B)
    long = dataclasses.replace(LLAMA_70B, seq_len=32768)
    assert model_flops_per_token(long) > model_flops_per_token(LLAMA_70B)  # attention grows with seq


def test_recomputation_costs_time_and_fp8_saves_it() -> None:
    base = JobSpec(LLAMA_70B, Parallelism(tp=8, pp=1, dp=4), TrainingSetup(micro_batch=1, global_batch=32))
    full = dataclasses.replace(base, training=dataclasses.replace(base.training, recompute="full"))
    fp8 = dataclasses.replace(base, training=dataclasses.replace(base.training, precision="fp8"))
    t, t_full, t_fp8 = (predict_step(j).step_time_s for j in (base, full, fp8))
    assert t_full > t > t_fp8
    # recompute does not change the model FLOPs, so it lowers MFU
    assert predict_step(full).mfu < predict_step(base).mfu


def test_pipeline_bubble_shrinks_with_virtual_stages() -> None:
    job = JobSpec(LLAMA_70B, Parallelism(tp=8, pp=8, dp=2), TrainingSetup(micro_batch=1, global_batch=32))
    inter = dataclasses.replace(job, parallel=dataclasses.replace(job.parallel, vp=5))
    assert predict_step(inter).bubble_s < predict_step(job).bubble_s


def test_comm_timer_is_pluggable_and_sees_every_kind() -> None:
    seen: list[CollectiveCall] = []
    builtin = LinkModel.for_gpu(gpu_spec("H100-SXM"))

    def timer(call: CollectiveCall) -> float:
        seen.append(call)
        return builtin.time_s(call)

    job = JobSpec(MOE, Parallelism(tp=2, pp=2, dp=8, cp=2, ep=8), TrainingSetup(micro_batch=1, global_batch=64))
    a = predict_step(job, comm_time=timer)
    assert {c.kind for c in seen} == {"tp", "cp", "dp", "ep", "pp"}
    assert a.step_time_s == pytest.approx(predict_step(job).step_time_s)
    slow = predict_step(job, comm_time=lambda c: 10 * builtin.time_s(c))
    assert slow.step_time_s > a.step_time_s


def test_power_profile_covers_the_step_and_respects_the_cap() -> None:
    job = jobs()[0]
    p = predict_step(job)
    assert sum(ph.duration_s for ph in p.phases) == pytest.approx(p.step_time_s, rel=0.05)
    assert max(ph.power_w for ph in p.phases) <= gpu_spec(job.gpu).power_limit_w
    capped = predict_step(job, conditions=Conditions(power_cap_w=450.0))
    assert max(ph.power_w for ph in capped.phases) <= 450.0
    assert capped.mean_power_w < p.mean_power_w


@pytest.mark.parametrize("kwargs, field", [
    ({"parallel": Parallelism(tp=8, pp=1, dp=4), "n_gpus": 16}, "parallel"),
    ({"parallel": Parallelism(tp=3, pp=1, dp=1)}, "parallel.tp"),
    ({"parallel": Parallelism(tp=1, pp=1, dp=2, ep=2)}, "parallel.ep"),
    ({"parallel": Parallelism(tp=1, pp=1, dp=1, vp=2)}, "parallel.vp"),
    ({"training": TrainingSetup(micro_batch=3, global_batch=64)}, "training.global_batch"),
])
def test_impossible_specs_are_rejected_naming_the_field(kwargs, field) -> None:
    base = {"model": GPT_7B, "parallel": Parallelism(tp=1, pp=1, dp=4),
            "training": TrainingSetup(micro_batch=1, global_batch=64)}
    with pytest.raises(JobSpecError) as info:
        JobSpec(**(base | kwargs))
    assert info.value.field == field


def test_fp8_on_a100_is_refused() -> None:
    job = JobSpec(GPT_7B, Parallelism(dp=8), TrainingSetup(micro_batch=1, global_batch=64, precision="fp8"),
                  gpu="A100-80GB")
    with pytest.raises(ValueError, match="fp8"):
        predict_step(job)


def test_batch_first_sequence_parallelism_pays_for_layout_copies() -> None:
    job = JobSpec(LLAMA_70B, Parallelism(tp=8, pp=1, dp=4), TrainingSetup(micro_batch=2, global_batch=64))
    batch_first = dataclasses.replace(job, training=dataclasses.replace(job.training, sequence_first=False))
    assert predict_step(batch_first).memory_s > predict_step(job).memory_s
    one = dataclasses.replace(batch_first, training=dataclasses.replace(batch_first.training, micro_batch=1))
    seq_one = dataclasses.replace(one, training=dataclasses.replace(one.training, sequence_first=True))
    assert predict_step(one).step_time_s == pytest.approx(predict_step(seq_one).step_time_s)  # no copy at b=1


def test_backward_gemms_run_at_their_own_shapes() -> None:
    """dgrad (dY W^T) and wgrad (X^T dY) are timed at their shapes, not as two forwards: the wgrad reduces over the
    micro-batch's tokens, so at 1,024 tokens each layer's wgrad pays GEMM_K0 per tile on that short reduction and
    the layer's backward costs more than twice its forward."""
    from twin.jobs.domain.step import gemm_time_s

    m = dataclasses.replace(GPT_7B, seq_len=1024)
    job = JobSpec(m, Parallelism(dp=8), TrainingSetup(micro_batch=1, global_batch=8), gpu="H100-SXM")
    pred = predict_step(job)
    h, f, tok = m.hidden, m.ffn_hidden, float(m.seq_len)
    rows = np.full(5, tok)
    n = np.array([3 * h, h, f, h, m.vocab], float)       # QKV, projection, FFN up, FFN down, LM head
    k = np.array([h, h, h, f, h], float)
    no_fp8, h100 = np.zeros(5, bool), gpu_spec("H100-SXM")
    fwd, dgrad, wgrad = (gemm_time_s(h100, a, b, c, no_fp8, pred.clock_fraction)
                         for a, b, c in ((rows, n, k), (rows, k, n), (k, n, rows)))
    per = fwd + dgrad + wgrad
    assert pred.gemm_s == pytest.approx(m.layers * float(per[:4].sum()) + float(per[4]), rel=1e-12)
    assert np.all(wgrad > fwd)
    assert float((dgrad + wgrad)[:4].sum()) > 2.05 * float(fwd[:4].sum())
