"""WhatIfFailure with a LINK target asks the fabric twin with the link assumed down (``whatif.failure_asking``,
``FabricComm.answer_many(assume=...)``): which jobs are asked and how, the step after predicted from the answer as
the live path predicts it, the own estimate as the fallback, and the fabric client's handling of assumed link states
(carried on every request, never cached, a fabric twin that does not apply them or refuses them gives the own
estimate without being marked down). The real services: tests/integration/test_jobs_whatif_fabric.py."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.facilities import small_leaf_facility
from twin.core.facility import load_facility_spec
from twin.fabric.v1 import fabric_pb2 as fpb
from twin.jobs import whatif
from twin.jobs.adapters.fabric_client import FabricComm
from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.domain.spec import JobSpec, ModelShape, Parallelism, TrainingSetup
from twin.jobs.live import CommAnswer, JobTwin, LinkHealth, call_key
from twin.jobs.site import build_site_map

SPEC = JobSpec(ModelShape(layers=32, hidden=4096, ffn_hidden=14336, heads=32, kv_heads=8, vocab=128256, seq_len=8192,
                          gated_ffn=True), Parallelism(tp=8, dp=4), TrainingSetup(micro_batch=1, global_batch=4))
T0 = 1_800_000_000.0
UPLINK = "leaf-r0-g0/spine1"
SPANNING = ("su1-0000-n00", "su1-0000-n01", "su1-0002-n00", "su1-0002-n01")   # leaf groups 0 and 1: crosses UPLINK
INSIDE = ("su1-0004-n00", "su1-0004-n01", "su1-0004-n02", "su1-0004-n03")     # leaf group 2 only


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The DGX H100 SU re-cabled into 4 leaf groups of 8 nodes (as tests/integration/test_jobs_service.py)."""
    return build_site_map(load_facility_spec(str(small_leaf_facility(tmp_path_factory.mktemp("facility")))))


def _twin(site) -> JobTwin:
    twin = JobTwin(site)
    for job, nodes in (("span", SPANNING), ("inside", INSIDE)):
        twin.apply(JobEvent(job_id=job, kind=EventKind.SUBMITTED, time_s=T0 - 10, source="test", spec=SPEC))
        twin.apply(JobEvent(job_id=job, kind=EventKind.STARTED, time_s=T0 - 5, source="test", nodes=nodes,
                            n_gpus=32))
    return twin


def _slow_table(twin: JobTwin, inp, factor: float) -> CommAnswer:
    """A fabric answer: the own estimate's time of every call, the DP ones ``factor`` slower."""
    local = twin._timer(inp, None, 1.0)
    return CommAnswer({call_key(c): local(c) * (factor if c.kind == "dp" else 1.0) for c in twin.calls(inp)},
                      "fabric", "fake fabric answer")


def test_link_down_replaces_the_live_state_of_the_link_only() -> None:
    from twin.jobs.live import JobInputs

    inp = JobInputs(SPEC, (), (), (("a/nic0", 0.5, True), (UPLINK, 0.25, False)), None, 1.0)
    assert whatif.link_down(inp, UPLINK).links == (("a/nic0", 0.5, True), (UPLINK, 0.0, False))
    assert whatif.link_down(inp, "spine0").links == (("a/nic0", 0.5, True), (UPLINK, 0.25, False),
                                                      ("spine0", 0.0, False))


def test_the_crossing_jobs_are_asked_once_with_the_link_assumed_down_and_predicted_from_the_answer(site) -> None:
    twin = _twin(site)
    asked: list = []

    async def ask(jobs, assume):
        asked.append((jobs, assume))
        return [_slow_table(twin, inp, 1.5) for inp, _, _ in jobs]

    impacts = asyncio.run(whatif.failure_asking(twin, "link", UPLINK, 600.0, T0, ask))
    assert len(asked) == 1, "one exchange"
    jobs, assume = asked[0]
    assert assume == ((UPLINK, 0.0),)
    assert len(jobs) == 1 and tuple(jobs[0][0].nodes) == SPANNING, "only the job crossing the link"
    down, calls, hot = jobs[0]
    assert down.links == ((UPLINK, 0.0, False),)
    assert calls == twin.calls(down) and hot == twin.hot_gpus(down) and hot, "the live path's question"
    [imp] = impacts
    assert imp.job_id == "span" and imp.comm_source == "fabric" and imp.comm_detail == "fake fabric answer"
    # the step after is the live path's prediction with that answer (JobTwin.compute: fabric answer, no degrade)
    want = twin._predict(down, _slow_table(twin, down, 1.5), cap=down.cap_w, thermal=down.thermal_fraction)
    assert imp.after_s == want.step_time_s
    assert imp.after_s > imp.before_s and imp.slowdown == pytest.approx(imp.after_s / imp.before_s - 1, rel=1e-12)


def test_an_answer_that_does_not_slow_the_job_gives_no_slowdown_where_the_own_estimate_would(site) -> None:
    twin = _twin(site)

    async def ask(jobs, assume):
        return [_slow_table(twin, inp, 1.0) for inp, _, _ in jobs]

    [imp] = asyncio.run(whatif.failure_asking(twin, "link", UPLINK, 600.0, T0, ask))
    before = twin.predict_what_if(twin.inputs(twin.book.jobs["span"], T0), None)
    assert imp.before_s == before.step_time_s
    assert imp.after_s == imp.before_s and imp.slowdown == 0.0 and imp.lost_gpu_h == 0.0
    [own] = whatif.failure(twin, "link", UPLINK, 600.0, T0)  # the old answer: 1 of 4 uplinks scales the network
    assert own.comm_source == "local" and own.slowdown > 0.01


def test_without_a_fabric_answer_the_own_estimate_answers(site) -> None:
    twin = _twin(site)
    own = whatif.failure(twin, "link", UPLINK, 600.0, T0)

    async def ask(jobs, assume):
        return [CommAnswer({}, "local", "fabric twin unreachable") for _ in jobs]

    got = asyncio.run(whatif.failure_asking(twin, "link", UPLINK, 600.0, T0, ask))
    assert [(i.job_id, i.after_s, i.comm_source) for i in got] == [(i.job_id, i.after_s, "local") for i in own]
    assert got[0].comm_detail == "fabric twin unreachable" and got[0].slowdown > 0


def test_other_kinds_and_unknown_links_do_not_ask(site) -> None:
    twin = _twin(site)

    async def ask(jobs, assume):
        raise AssertionError("asked")

    stop = asyncio.run(whatif.failure_asking(twin, "node", SPANNING[0], 600.0, T0, ask))
    assert [(i.job_id, i.stops) for i in stop] == [("span", True)]
    with pytest.raises(whatif.NotFound):
        asyncio.run(whatif.failure_asking(twin, "link", "leaf-r0-g9/spine1", 600.0, T0, ask))
    assert asyncio.run(whatif.failure_asking(twin, "link", "leaf-r0-g3/spine1", 600.0, T0, ask)) == []


# -- the fabric client under assumed link states --------------------------------------------------------------------


class _Stub:
    """Answers every collective with 1 ms and records the requests; ``applied``: the assumed_links_applied it
    answers (None: as many as sent); ``fail``: raised instead."""

    def __init__(self, applied: int | None = None, fail: Exception | None = None) -> None:
        self.requests: list = []
        self.applied = applied
        self.fail = fail

    async def EstimatePlacements(self, req, timeout=None, metadata=None):  # noqa: N802 - the gRPC method's name
        self.requests.append(req)
        if self.fail is not None:
            raise self.fail
        n = len(req.assumed_links) if self.applied is None else self.applied
        return fpb.EstimatePlacementsResponse(entries=[fpb.PlacementAnswer(
            estimates=[fpb.CollectiveEstimate(time_s=1e-3) for _ in e.collectives]) for e in req.entries],
            assumed_links_applied=n)


class _Fabric(FabricComm):
    def __init__(self, stub: _Stub) -> None:
        super().__init__("fake:1", retry_s=60.0)
        self._fake = stub

    def stub(self):
        return self._fake


def _jobs(twin: JobTwin):
    inp = whatif.link_down(twin.inputs(twin.book.jobs["span"], T0), UPLINK)
    return [(inp, twin.calls(inp), twin.hot_gpus(inp))]


def test_assumed_links_go_on_every_request_and_are_never_cached(site) -> None:
    twin = _twin(site)
    stub = _Stub()
    fabric = _Fabric(stub)
    jobs = _jobs(twin)
    for _ in range(2):
        [a] = asyncio.run(fabric.answer_many(jobs, assume=((UPLINK, 0.0),)))
        assert a.source == "fabric"
    assert len(stub.requests) == 2, "an assumed answer is neither read from nor written to the cache"
    assert all([(x.link_id, x.capacity_fraction) for x in r.assumed_links] == [(UPLINK, 0.0)] for r in stub.requests)
    asyncio.run(fabric.answer_many(jobs))
    assert len(stub.requests) == 3 and not stub.requests[-1].assumed_links, "the live question: not the assumed one"


@pytest.mark.parametrize("stub, why", [
    (_Stub(applied=0), "applied 0 of 1 assumed link state(s)"),
    (_Stub(fail=grpc.aio.AioRpcError(grpc.StatusCode.INVALID_ARGUMENT, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                     details="assumed_links[0].link_id: unknown uplink")),
     "refused the assumed link state: assumed_links[0].link_id"),
    (_Stub(fail=grpc.aio.AioRpcError(grpc.StatusCode.UNIMPLEMENTED, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                     details="Method not found!")), "has no EstimatePlacements"),
])
def test_a_fabric_twin_that_does_not_take_the_assumption_gives_the_own_estimate_and_stays_up(site, stub, why) -> None:
    twin = _twin(site)
    fabric = _Fabric(stub)
    [a] = asyncio.run(fabric.answer_many(_jobs(twin), assume=((UPLINK, 0.0),)))
    assert a.source == "local" and why in a.detail, a.detail
    assert fabric.up and fabric.failures == 0, "not the fabric twin's failure"


def test_a_fabric_twin_that_fails_is_marked_down_as_for_the_live_path(site) -> None:
    twin = _twin(site)
    twin.set_links({UPLINK: LinkHealth(1.0)})
    fabric = _Fabric(_Stub(fail=OSError("connection refused")))
    [a] = asyncio.run(fabric.answer_many(_jobs(twin), assume=((UPLINK, 0.0),)))
    assert a.source == "local" and a.retry and not fabric.up
