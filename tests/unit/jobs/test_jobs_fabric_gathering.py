"""The what-if placement asks the fabric twin for every candidate in one exchange (``FabricComm.answer_many``):
the gathering of communicators into questions (equal questions once, equal-shaped communicators sharing one when
none of their GPUs is under an impaired link, communicators under one asked on their own GPUs), the split of a
question at the fabric's entry limit, the collective questions of a what-if as the entries of one
``EstimatePlacements`` (split only at its limits; one ``EstimateBatch`` per question from a fabric twin without it),
and the fallback to the own estimate, stated per candidate, when the fabric twin cannot answer. The real service:
tests/integration/test_jobs_whatif_fabric.py."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from tests.facilities import small_leaf_facility
from twin.core.facility import load_facility_spec
from twin.fabric.v1 import fabric_pb2 as fpb
from twin.jobs import whatif
from twin.jobs.adapters import codec, fabric_client
from twin.jobs.adapters.fabric_client import FabricComm, Question, communicator_shape, communicators
from twin.jobs.domain.spec import JobSpec, ModelShape, Parallelism, TrainingSetup
from twin.jobs.live import JobTwin, LinkHealth
from twin.jobs.site import build_site_map
from twin.jobs.v1 import jobs_pb2 as pb

SPEC = JobSpec(ModelShape(layers=32, hidden=4096, ffn_hidden=14336, heads=32, kv_heads=8, vocab=128256, seq_len=8192,
                          gated_ffn=True), Parallelism(tp=8, dp=4), TrainingSetup(micro_batch=1, global_batch=4))
T0 = 1_800_000_000.0
UPLINK = "leaf-r0-g0/spine1"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The DGX H100 SU re-cabled into 4 leaf groups of 8 nodes (as tests/integration/test_jobs_service.py)."""
    return build_site_map(load_facility_spec(str(small_leaf_facility(tmp_path_factory.mktemp("facility")))))


def _answer(gpu_ids, n: int) -> list[fpb.CollectiveEstimate]:
    first = gpu_ids[0]
    return [fpb.CollectiveEstimate(time_s=1e-3 * (1 + k) + 1e-6 * first) for k in range(n)]


class _Stub:
    """Answers every collective with a time from the placement's GPU ids (so a shared answer is visible) and
    records the requests; ``placements`` False: a fabric twin without EstimatePlacements (UNIMPLEMENTED)."""

    def __init__(self, fail: Exception | None = None, placements: bool = True) -> None:
        self.requests: list = []
        self.fail = fail
        self.placements = placements

    async def EstimateBatch(self, req, timeout=None, metadata=None):  # noqa: N802 - the gRPC method's name
        self.requests.append(req)
        if self.fail is not None:
            raise self.fail
        return fpb.EstimateBatchResponse(estimates=_answer(req.placement.gpus.gpu_ids, len(req.collectives)))

    async def EstimatePlacements(self, req, timeout=None, metadata=None):  # noqa: N802
        self.requests.append(req)
        if not self.placements:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNIMPLEMENTED, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       details="Method not found!")
        if self.fail is not None:
            raise self.fail
        return fpb.EstimatePlacementsResponse(entries=[fpb.PlacementAnswer(
            estimates=_answer(e.placement.gpus.gpu_ids, len(e.collectives))) for e in req.entries])

    def asked(self) -> list[tuple[int, ...]]:
        """GPU ids of every collective question asked (EstimatePlacements entries and EstimateBatch requests)."""
        return [tuple(e.placement.gpus.gpu_ids) for r in self.requests
                for e in (r.entries if isinstance(r, fpb.EstimatePlacementsRequest) else [r])]


class _Fabric(FabricComm):
    def __init__(self, stub: _Stub) -> None:
        super().__init__("fake:1", retry_s=60.0)
        self._fake = stub

    def stub(self):
        return self._fake


def _inputs(twin: JobTwin, nodes: list[str]):
    return twin.inputs_for(SPEC, tuple(nodes), twin.site.gpu_ids(nodes, SPEC.n_gpus), T0)


def _jobs(twin: JobTwin, placements: list[list[str]]):
    return [(inp, twin.calls(inp), twin.hot_gpus(inp)) for inp in (_inputs(twin, n) for n in placements)]


# two candidates of one shape inside leaf group 1 (nodes 8-15), one spanning groups 0 and 1
INSIDE_A = ["su1-0002-n00", "su1-0002-n01", "su1-0002-n02", "su1-0002-n03"]
INSIDE_B = ["su1-0003-n00", "su1-0003-n01", "su1-0003-n02", "su1-0003-n03"]
SPANNING = ["su1-0000-n00", "su1-0000-n01", "su1-0002-n00", "su1-0002-n01"]


def test_equal_questions_are_asked_once_and_equal_shapes_share_an_answer(site) -> None:
    twin = JobTwin(site)
    jobs = _jobs(twin, [INSIDE_A, INSIDE_B, INSIDE_A])
    n_comms = sum(len(ids) for inp, calls, hot in jobs[:2]
                  for _, _, ids in communicators(SPEC, sorted(inp.gpu_ids), calls, hot, 16))
    assert n_comms == 2 * (4 + 8)  # per candidate: 4 TP groups (one per node), 8 DP groups (one per rail)

    exact = _Stub()
    fabric = _Fabric(exact)
    answers = asyncio.run(fabric.answer_many(jobs))
    assert len(exact.asked()) == len(set(exact.asked())) == n_comms, \
        "without shapes: each distinct communicator once (the repeat is free)"
    assert len(exact.requests) == 1 == fabric.calls, "all of them in one EstimatePlacements"
    assert answers[0].table == answers[2].table and all(a.source == "fabric" for a in answers)

    shared = _Stub()
    fabric = _Fabric(shared)
    answers = asyncio.run(fabric.answer_many(jobs, shape=communicator_shape(site.inventory)))
    # one TP shape (8 GPUs of one node) and one DP shape per rail (4 nodes of one leaf group, GPU r of each)
    assert len(shared.asked()) == 1 + 8 and len(shared.requests) == 1 == fabric.calls
    assert answers[1].table == answers[0].table, "candidate B took candidate A's equal-shaped answers"
    assert "12 communicator(s) timed by the fabric twin, 3 through" in answers[0].detail  # its other 3 nodes' TP
    assert "12 communicator(s) timed by the fabric twin, 12 through" in answers[1].detail


def test_a_communicator_under_an_impaired_link_is_asked_on_its_own_gpus(site) -> None:
    twin = JobTwin(site)
    twin.set_links({UPLINK: LinkHealth(0.25)})
    jobs = _jobs(twin, [SPANNING, INSIDE_A])
    inp = jobs[0][0]
    assert inp.links and jobs[0][2], "the spanning candidate crosses the degraded uplink"
    stub = _Stub()
    asyncio.run(_Fabric(stub).answer_many(jobs, shape=communicator_shape(site.inventory)))
    asked = set(stub.asked())
    hot = jobs[0][2]
    rows = [row for _, _, ids in communicators(SPEC, sorted(inp.gpu_ids), jobs[0][1], hot, 16) for row in ids]
    under = [row for row in rows if not hot.isdisjoint(row)]
    assert len(under) == 2 + 8  # TP of the 2 nodes in group 0, every DP group (each has a GPU there)
    for row in under:
        assert tuple(row) in asked, f"hot communicator {row} asked on its own GPUs"


def test_shapes_keep_absolute_leaf_groups_only_for_communicators_spanning_them(site) -> None:
    shape = communicator_shape(site.inventory)
    gpu = site.gpu_ids
    a = gpu(INSIDE_A, 32)
    b = gpu(INSIDE_B, 32)
    span = gpu(SPANNING, 32)
    other_span = gpu(["su1-0004-n00", "su1-0004-n01", "su1-0006-n00", "su1-0006-n01"], 32)  # groups 2 and 3
    rows = np.asarray([a[0::8], b[0::8], a[1::8], span[0::8], other_span[0::8]])
    s = shape(rows)
    assert s[0] == s[1], "same rail, same layout inside one leaf group each"
    assert s[0] != s[2], "another rail (NIC, leaf) is another question"
    assert s[3] != s[4], "spanning communicators cross their own leaves' uplinks"


def test_a_long_question_is_split_at_the_fabric_limit(monkeypatch, site) -> None:
    twin = JobTwin(site)
    inp = _inputs(twin, INSIDE_A)
    calls = twin.calls(inp)
    dp = [c for c in calls if c.kind == "dp"]
    q = Question((0, 8, 16, 24), False, tuple(dp * 5))
    monkeypatch.setattr(fabric_client, "MAX_BATCH_ENTRIES", 3)
    reqs = q.requests()
    assert [len(r.collectives) for r in reqs] == [3] * (len(q.calls) // 3) + ([len(q.calls) % 3] if len(q.calls) % 3
                                                                              else [])
    assert all(list(r.placement.gpus.gpu_ids) == [0, 8, 16, 24] for r in reqs)
    expected = [1e-3 * (1 + k) + 1e-6 * 0 for r in reqs for k in range(len(r.collectives))]
    stub = _Stub()
    times = asyncio.run(fabric_client.gather_requests(stub, [q], timeout_s=1.0, placements=False))[0]
    assert len(stub.requests) == len(reqs) and len(times) == len(q.calls)
    # each chunk's answers in request order, concatenated
    assert times == expected
    # EstimatePlacements: the same chunks as consecutive entries, a new request where the pairs would pass the limit
    stub = _Stub()
    sent: list = []
    times = asyncio.run(fabric_client.gather_requests(stub, [q], timeout_s=1.0, sent=sent))[0]
    assert sent == stub.requests and len(stub.requests) == len(reqs)
    assert [[len(e.collectives) for e in r.entries] for r in stub.requests] == [[len(r.collectives)] for r in reqs]
    assert times == expected


def test_estimate_placements_splits_only_at_its_limits_with_the_same_answers(monkeypatch, site) -> None:
    twin = JobTwin(site)
    jobs = _jobs(twin, [INSIDE_A, INSIDE_B, SPANNING])
    one = _Stub()
    want = asyncio.run(_Fabric(one).answer_many(jobs))
    n = len(one.asked())
    assert len(one.requests) == 1 and n == 3 * 12 - 2  # SPANNING shares 2 nodes (their TP groups) with INSIDE_A
    for name, limit, per_request in (("MAX_PLACEMENT_ENTRIES", 5, 5), ("MAX_PLACEMENT_RANKS", 40, 10)):
        monkeypatch.setattr(fabric_client, name, limit)  # TP groups of 8 GPUs, DP groups of 4: <= 10 of either
        stub = _Stub()
        fabric = _Fabric(stub)
        got = asyncio.run(fabric.answer_many(jobs))
        assert [a.table for a in got] == [a.table for a in want]
        assert sorted(stub.asked()) == sorted(one.asked())
        assert all(len(r.entries) <= per_request for r in stub.requests)
        assert all(sum(len(e.placement.gpus.gpu_ids) for e in r.entries) <= limit for r in stub.requests) \
            or name == "MAX_PLACEMENT_ENTRIES"
        assert fabric.calls == len(stub.requests) >= -(-n // per_request)
        monkeypatch.undo()


def test_a_fabric_twin_without_estimate_placements_is_asked_per_communicator(site) -> None:
    twin = JobTwin(site)
    jobs = _jobs(twin, [INSIDE_A, SPANNING])
    want = asyncio.run(_Fabric(_Stub()).answer_many(jobs))
    old = _Stub(placements=False)
    fabric = _Fabric(old)
    got = asyncio.run(fabric.answer_many(jobs))
    assert [a.table for a in got] == [a.table for a in want] and all(a.source == "fabric" for a in got)
    assert not fabric.placements_rpc and fabric.up and fabric.failures == 0
    batches = [r for r in old.requests if isinstance(r, fpb.EstimateBatchRequest)]
    assert len(old.requests) == 1 + len(batches) == fabric.calls and len(batches) == 2 * 12 - 2  # 2 shared TP groups
    # from then on EstimateBatch only (a new job: not from the answer cache)
    old.requests.clear()
    asyncio.run(fabric.answer_many(_jobs(twin, [INSIDE_B])))
    assert old.requests and all(isinstance(r, fpb.EstimateBatchRequest) for r in old.requests)


def test_the_what_if_states_the_fabric_answer_and_the_fallback_per_candidate(site) -> None:
    twin = JobTwin(site)
    cands = [("a", INSIDE_A), ("b", INSIDE_B), ("small", ["su1-0007-n00"])]
    stub = _Stub()
    fabric = _Fabric(stub)
    shape = communicator_shape(site.inventory)
    out = asyncio.run(whatif.placement_asking(twin, SPEC, cands, T0, lambda j: fabric.answer_many(j, shape=shape)))
    by = {o.candidate_id: o for o in out}
    assert by["small"].rank == 3 and by["small"].comm_source == "" and "does not fit" in by["small"].detail
    for cid in ("a", "b"):
        o = by[cid]
        assert o.comm_source == "fabric" and "timed by the fabric twin" in o.comm_detail
        inp = _inputs(twin, dict(cands)[cid])
        comm = asyncio.run(fabric.answer(inp, twin.calls(inp)))  # cached: the answer the candidate got
        assert o.step_time_s == twin.predict_what_if(inp, comm).step_time_s
    msg = codec.placement_outcome(by["a"])
    assert msg.comm_source == pb.COMM_SOURCE_FABRIC_TWIN and "fabric twin" in msg.comm_source_detail

    down = _Fabric(_Stub(fail=OSError("connection refused")))
    out = asyncio.run(whatif.placement_asking(twin, SPEC, cands, T0, lambda j: down.answer_many(j, shape=shape)))
    by = {o.candidate_id: o for o in out}
    own = {o.candidate_id: o for o in whatif.placement(twin, SPEC, cands, T0)}
    for cid in ("a", "b"):
        assert by[cid].comm_source == "local" and "connection refused" in by[cid].comm_detail
        assert "own estimate (OSError: connection refused)" in by[cid].detail
        assert by[cid].step_time_s == own[cid].step_time_s, "the fallback is the own estimate"
    assert not down.up and down.failures == 1
    msg = codec.placement_outcome(by["a"])
    assert msg.comm_source == pb.COMM_SOURCE_OWN_ESTIMATE and "connection refused" in msg.comm_source_detail


def test_a_caller_deadline_too_short_for_the_fabric_does_not_mark_it_down(site) -> None:
    twin = JobTwin(site)

    class _Slow(_Stub):
        async def EstimatePlacements(self, req, timeout=None, metadata=None):  # noqa: N802
            await asyncio.sleep(0.5)
            return await super().EstimatePlacements(req, timeout, metadata)

    fabric = _Fabric(_Slow())
    answers = asyncio.run(fabric.answer_many(_jobs(twin, [INSIDE_A]), timeout_s=0.01))
    assert answers[0].source == "local" and "not answered within the 0.010 s left" in answers[0].detail
    assert fabric.up and fabric.failures == 0


def test_equal_shapes_share_answers_only_while_every_impaired_link_is_known(site) -> None:
    twin = JobTwin(site)
    assert twin.impaired_links_complete
    # a truncated fabric.state.v1 lists impaired links first: one that still carries a busy link holds them all
    twin.set_links({UPLINK: LinkHealth(0.5), "leaf-r1-g0/spine0": LinkHealth(1.0, utilization=0.3)}, truncated=True)
    assert twin.impaired_links_complete
    twin.set_links({UPLINK: LinkHealth(0.5)}, truncated=True)
    assert not twin.impaired_links_complete
    twin.set_links({}, truncated=False)
    assert twin.impaired_links_complete


def test_moe_candidates_ask_estimate_moe_once_per_shape(site) -> None:
    shape = ModelShape(layers=4, hidden=2048, ffn_hidden=768, heads=16, kv_heads=4, vocab=32000, seq_len=4096,
                       moe_experts=64, moe_topk=8, gated_ffn=True)
    moe = JobSpec(shape, Parallelism(dp=32, ep=16), TrainingSetup(micro_batch=1, global_batch=64))

    class _MoeStub(_Stub):
        async def EstimateMoe(self, req, timeout=None, metadata=None):  # noqa: N802
            self.requests.append(req)
            first = req.placement.gpus.gpu_ids[0]
            return fpb.EstimateMoeResponse(estimates=[
                fpb.MoeEstimate(dispatch_time_s=2e-3 + 1e-6 * first, combine_time_s=3e-3 + 1e-6 * first)
                for _ in req.cases])

    twin = JobTwin(site)
    stub = _MoeStub()
    fabric = _Fabric(stub)
    ask = lambda j: fabric.answer_many(j, shape=communicator_shape(site.inventory))  # noqa: E731
    out = asyncio.run(whatif.placement_asking(twin, moe, [("a", INSIDE_A), ("b", INSIDE_B)], T0, ask))
    assert [o.comm_source for o in out] == ["fabric", "fabric"]
    moe_reqs = [r for r in stub.requests if isinstance(r, fpb.EstimateMoeRequest)]
    # 2 EP groups of 16 (two nodes each) per candidate, one shape: one EstimateMoe for all four
    assert len(moe_reqs) == 1 and len(moe_reqs[0].placement.gpus.gpu_ids) == 16
    assert {len(r.cases) for r in moe_reqs} == {2}  # the dispatch and the combine case
    assert out[0].step_time_s == out[1].step_time_s
