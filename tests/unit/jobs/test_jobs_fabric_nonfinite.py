"""A fabric twin answer with no bandwidth left (time_s = inf: a crossed leaf's other uplinks fully used by
background traffic) must not become a NaN step time on jobs.state.v1: the job twin uses its own estimate for
that question (stated in the state's fallback flag) and asks the fabric twin again when the inputs change."""

from __future__ import annotations

import asyncio
import math

from twin.core.facility import load_facility_spec
from twin.fabric.v1 import fabric_pb2 as fpb
from twin.jobs.adapters.fabric_client import FabricComm
from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.domain.spec import JobSpec, ModelShape, Parallelism, TrainingSetup
from twin.jobs.live import JobTwin
from twin.jobs.site import build_site_map

SITE = build_site_map(load_facility_spec("dgx-h100-su"))
SPEC = JobSpec(ModelShape(layers=32, hidden=4096, ffn_hidden=14336, heads=32, kv_heads=8, vocab=128256, seq_len=8192,
                          gated_ffn=True), Parallelism(tp=8, dp=4), TrainingSetup(micro_batch=1, global_batch=4))
NODES = ("su1-0000-n00", "su1-0000-n01", "su1-0002-n00", "su1-0002-n01")
T0 = 1_800_000_000.0


class _Stub:
    def __init__(self, time_s: float) -> None:
        self.time_s = time_s

    async def EstimateBatch(self, req, timeout=None, metadata=None):  # noqa: N802 - the gRPC method's name
        return fpb.EstimateBatchResponse(estimates=[fpb.CollectiveEstimate(time_s=self.time_s)
                                                    for _ in req.collectives])

    async def EstimatePlacements(self, req, timeout=None, metadata=None):  # noqa: N802 - what FabricComm asks
        return fpb.EstimatePlacementsResponse(entries=[fpb.PlacementAnswer(estimates=[
            fpb.CollectiveEstimate(time_s=self.time_s) for _ in e.collectives]) for e in req.entries])


class _Fabric(FabricComm):
    def __init__(self, time_s: float) -> None:
        super().__init__("fake:1")
        self._fake = _Stub(time_s)

    def stub(self):
        return self._fake


def _answer(time_s: float):
    twin = JobTwin(SITE)
    twin.apply(JobEvent("j", EventKind.SUBMITTED, T0, spec=SPEC))
    twin.apply(JobEvent("j", EventKind.STARTED, T0 + 1, nodes=NODES, n_gpus=SPEC.n_gpus))
    inp = twin.inputs(twin.book.jobs["j"], T0 + 10)
    fabric = _Fabric(time_s)
    answer = asyncio.run(fabric.answer(inp, twin.calls(inp)))
    twin.compute("j", inp, answer, T0 + 10)
    return fabric, answer, twin.jobs["j"]


def test_an_infinite_fabric_answer_falls_back_to_the_own_estimate_and_is_not_cached():
    fabric, answer, job = _answer(math.inf)
    assert answer.source == "local" and "non-finite" in answer.detail
    assert math.isfinite(job.prediction.step_time_s) and job.prediction.step_time_s > 0
    assert job.comm_source == "local" and "non-finite" in job.comm_detail, "the fallback is stated"
    assert not [f for f in job.flags if f.kind == "unspecified"]  # provenance, not a risk flag
    assert fabric.up and not fabric._cache  # the fabric twin is not marked down, the answer is not kept


def test_a_finite_fabric_answer_is_used():
    _, answer, job = _answer(1e-3)
    assert answer.source == "fabric" and math.isfinite(job.prediction.step_time_s)
