"""The fabric twin as the step model's communication timer, over gRPC (``twin.fabric.v1.FabricSimulationService``).

For a job the twin first lists the collectives of one step (``JobTwin.calls``: kind, NCCL collective, bytes and
group geometry). Each geometry is turned into the job's real communicators: ranks laid out Megatron-style (TP
fastest, then CP, then DP, then PP) over the job's GPU ids in ascending order; a kind's group of ``n`` ranks
``stride`` apart has ``world / n`` instances. Up to ``max_groups`` instances per geometry are timed, each one
``EstimateBatch`` question (all of that geometry's collectives and sizes) sent as an entry of ``EstimatePlacements``
(below), the instances holding GPUs under an
impaired link first, then evenly spread ones; a synchronous step waits for the slowest instance, so each
collective's time is the maximum over the instances asked.

MoE expert-parallel dispatch and combine (``moe_dispatch`` / ``moe_combine`` calls, which carry a ``MoeTraffic``)
are asked of ``EstimateMoe`` instead: one request per chosen EP-group instance (the same choice of instances), one
case per distinct MoE traffic, the placement being that instance's GPU ids; the fabric twin answers with its MoE
model (kernel, precision and node-limited routing as the call states) on its live link state.

Many jobs at once (``answer_many``: the what-if placement's candidates): every job's communicators are gathered
first, equal questions (same GPUs, or with ``shape`` the same ``communicator_shape`` for communicators holding no
GPU under an impaired link) are asked once, and all questions go out together: the collective questions as the
entries of one ``EstimatePlacements`` (each entry one communicator's GPU ids with its collectives and sizes, the
same answer as that communicator's ``EstimateBatch``), split into several requests only at the fabric's limits
(100,000 (collective, size) pairs, 10,000 entries, 2,000,000 ranks per request); the MoE questions one
``EstimateMoe`` each; at most ``CONCURRENCY`` RPCs in flight. A fabric twin without ``EstimatePlacements``
(UNIMPLEMENTED) is asked with one ``EstimateBatch`` per question from then on.

Assumed link states (``answer_many(assume=...)``: the failure what-if's "this link down"): every request carries
them as ``assumed_links`` (the fabric twin answers as if those links had that capacity, the live state untouched)
and no answer is read from or written to the cache; an answer that does not say it applied them
(``assumed_links_applied``: a fabric twin older than the field), a fabric twin without ``EstimatePlacements``, or one
that refuses the link (INVALID_ARGUMENT) gives ``source="local"`` with the reason, without marking the fabric twin
down.

Failure handling: every RPC has ``timeout_s``; an answer is cached per (GPUs, crossed impaired links, calls) so an
unchanged job never asks again; when the fabric twin cannot answer (unreachable, deadline, error) the answer is
``source="local"`` (the caller falls back to the job twin's own estimate and says so in the state) and the fabric
is not asked again for ``retry_s``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from twin.core import grpc_client
from twin.fabric.v1 import fabric_pb2 as fpb
from twin.fabric.v1 import fabric_pb2_grpc as fpb_grpc
from twin.jobs.domain.comm import MOE_COLLECTIVES, CollectiveCall
from twin.jobs.domain.spec import JobSpec
from twin.jobs.live import CommAnswer, JobInputs, LinkHealth, call_key

log = logging.getLogger("twin.jobs.fabric")

_COLLECTIVE = {"all_reduce": fpb.COLLECTIVE_ALL_REDUCE, "all_gather": fpb.COLLECTIVE_ALL_GATHER,
               "reduce_scatter": fpb.COLLECTIVE_REDUCE_SCATTER, "alltoall": fpb.COLLECTIVE_ALLTOALL,
               "send_recv": fpb.COLLECTIVE_SEND_RECV}
_MOE_KERNEL = {"nccl_alltoall": fpb.MOE_KERNEL_NCCL_ALLTOALL, "deepep_normal": fpb.MOE_KERNEL_DEEPEP_NORMAL,
               "deepep_low_latency": fpb.MOE_KERNEL_DEEPEP_LOW_LATENCY}
_MOE_PRECISION = {"fp8": fpb.MOE_PRECISION_FP8, "bf16": fpb.MOE_PRECISION_BF16}
#: at most 100,000 entries per EstimateBatch, (collective, size) pairs per EstimatePlacements and cases per
#: EstimateMoe (protos/twin/fabric/v1/fabric.proto, MAX_BATCH_ENTRIES of the fabric service); a longer question is
#: split into several requests
MAX_BATCH_ENTRIES = 100_000
MAX_MOE_CASES = 100_000
#: EstimatePlacements' other limits (fabric.proto; MAX_PLACEMENT_ENTRIES / MAX_PLACEMENT_RANKS of the fabric service)
MAX_PLACEMENT_ENTRIES = 10_000
MAX_PLACEMENT_RANKS = 2_000_000
#: RPCs in flight at once per exchange (a what-if asks hundreds; the fabric twin estimates them on its event loop)
CONCURRENCY = 32


def moe_case(call: CollectiveCall) -> fpb.MoeCase:
    """The ``EstimateMoe`` case of a ``moe_dispatch`` / ``moe_combine`` call: its traffic at its own precision
    on the phase it times (the other phase at BF16, which every kernel accepts)."""
    m = call.moe
    if m is None:
        raise ValueError(f"{call.collective} is not a MoE call")
    disp = m.precision if call.collective == "moe_dispatch" else "bf16"
    comb = m.precision if call.collective == "moe_combine" else "bf16"
    return fpb.MoeCase(kernel=_MOE_KERNEL[m.kernel], tokens_per_rank=m.tokens, hidden_size=m.hidden, top_k=m.top_k,
                       num_experts=m.experts, dispatch_precision=_MOE_PRECISION[disp],
                       combine_precision=_MOE_PRECISION[comb], max_nodes_per_token=m.max_nodes)


def stride_of(spec: JobSpec, call: CollectiveCall) -> int:
    """Distance in ranks between members of the call's group (see the module docstring)."""
    p = spec.parallel
    if call.kind == "tp":
        return 1
    if call.kind in ("cp", "ep"):
        return p.tp
    if call.kind == "dp":
        return p.tp if call.group.n_ranks == p.dp * p.cp else p.tp * p.ep
    return p.tp * p.cp * p.dp  # pp


def group_instances(world: int, n: int, stride: int) -> list[list[int]]:
    """Every group of ``n`` ranks ``stride`` apart in a world of ``world`` ranks (rank lists)."""
    bases = [r for r in range(world) if (r // stride) % n == 0]
    return [[b + stride * i for i in range(n)] for b in bases if b + stride * (n - 1) < world]


def choose(instances: list[list[int]], gpus: list[int], hot: set[int], limit: int) -> list[list[int]]:
    """Up to ``limit`` instances: those touching a hot GPU first, then evenly spaced ones."""
    hot_first = [g for g in instances if hot and any(gpus[r] in hot for r in g)][:limit]
    rest = [g for g in instances if g not in hot_first]
    room = limit - len(hot_first)
    if room <= 0 or not rest:
        return hot_first
    step = max(1, len(rest) // room)
    return hot_first + rest[::step][:room]


class FabricComm:
    def __init__(self, target: str | None, *, token: str | None = None, tls_ca_file: str | None = None,
                 timeout_s: float = 2.0, retry_s: float = 10.0, max_groups: int = 16, cache_size: int = 4096) -> None:
        self.target = target
        self.token = token
        self.tls_ca_file = tls_ca_file
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.max_groups = max_groups
        self._cache: OrderedDict[tuple, CommAnswer] = OrderedDict()
        self._cache_size = cache_size
        self._channel: grpc.aio.Channel | None = None
        self._stub: fpb_grpc.FabricSimulationServiceStub | None = None
        self.down_until = 0.0
        self.last_error = "" if target else "no fabric target configured (JOBS_FABRIC_TARGET)"
        self.calls = 0
        self.failures = 0
        #: ask collective questions with EstimatePlacements (False after a fabric twin answered UNIMPLEMENTED)
        self.placements_rpc = True
        self.cache_hits = 0

    @property
    def up(self) -> bool:
        return bool(self.target) and time.monotonic() >= self.down_until

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def stub(self) -> fpb_grpc.FabricSimulationServiceStub:
        if self._stub is None:
            options = [("grpc.max_receive_message_length", 64 << 20)]
            creds = grpc.ssl_channel_credentials(Path(self.tls_ca_file).read_bytes()) if self.tls_ca_file else None
            # the kit's channel: calls made while tracing carry the trace context (fabric's span joins the trace)
            self._channel = grpc_client.channel(self.target, credentials=creds, options=options)
            self._stub = fpb_grpc.FabricSimulationServiceStub(self._channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        was_up = time.monotonic() >= self.down_until
        self.down_until = time.monotonic() + self.retry_s
        if isinstance(exc, grpc.aio.AioRpcError):
            self.last_error = f"{exc.code().name}: {exc.details()}"
        else:
            self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if was_up:
            log.warning("fabric twin at %s did not answer (%s); using the own estimate for %.0f s", self.target,
                        self.last_error, self.retry_s)

    async def link_state(self) -> tuple[dict[str, LinkHealth], bool] | None:
        """The fabric twin's live link state (to seed a starting process), or None when unreachable."""
        if not self.up:
            return None
        try:
            resp = await self.stub().GetFabricState(fpb.GetFabricStateRequest(), timeout=self.timeout_s,
                                                    metadata=self._metadata())
        except (TimeoutError, grpc.aio.AioRpcError, OSError) as exc:
            self._failed(exc)
            return None
        st = resp.state
        return {link.link_id: LinkHealth(link.capacity_fraction, link.utilization, link.flapping)
                for link in st.links}, st.truncated

    async def answer(self, inp: JobInputs, calls: list[CollectiveCall], hot_gpus: Iterable[int] = ()) -> CommAnswer:
        """Seconds per collective of the job on its GPUs (see the module docstring)."""
        return (await self.answer_many([(inp, calls, hot_gpus)]))[0]

    async def answer_many(self, jobs: list[tuple[JobInputs, list[CollectiveCall], Iterable[int]]], *,
                          shape: Callable[[np.ndarray], list[bytes]] | None = None, max_groups: int | None = None,
                          timeout_s: float | None = None, assume: tuple[tuple[str, float], ...] = ()
                          ) -> list[CommAnswer]:
        """``answer`` for several jobs (or what-if candidates) at once: every communicator of every job is gathered
        first, equal questions are asked once, then all RPCs go out together (``gather_requests``); each job's
        answer is its own communicators' maximum. ``shape`` (communicators' GPU ids [k, n] -> each one's shape, see
        ``communicator_shape``) lets communicators holding no GPU under an impaired link share one question with
        every communicator of the same shape; ``max_groups`` overrides the instances timed per geometry;
        ``timeout_s`` bounds the whole exchange (default: ``timeout_s`` per RPC, 1.5x for all); ``assume`` lists
        (link id, capacity fraction) the fabric twin assumes in place of the live state (see the module docstring)."""
        assumed = [fpb.LinkHealth(link_id=link, capacity_fraction=cap) for link, cap in assume]
        out: list[CommAnswer | None] = [None] * len(jobs)
        # per job: (index, cache key, [(calls of a geometry, their keys, [question key per instance])], shared)
        pending: list[tuple[int, tuple, list[tuple[list[CollectiveCall], list, list[tuple]]], int]] = []
        questions: dict[tuple, Question] = {}
        cold_rows: dict[int, list[tuple[list, int, list[int]]]] = {}  # width -> (where list, index, GPU ids)
        limit = self.max_groups if max_groups is None else max_groups
        for i, (inp, calls, hot_gpus) in enumerate(jobs):
            gpus = sorted(inp.gpu_ids)
            world = inp.spec.n_gpus
            calls = [c for c in calls if c.group.n_ranks > 1 and c.size_bytes > 0]
            if not calls:
                out[i] = CommAnswer({}, "fabric", "no communication")
                continue
            if len(gpus) != world:
                out[i] = CommAnswer({}, "local", f"placement has {len(gpus)} known GPU ids for {world} ranks")
                continue
            key = (tuple(gpus), inp.links, tuple(sorted((call_key(c), c.moe or ()) for c in calls)))
            hit = None if assume else self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                out[i] = hit
                continue
            if not self.up:
                out[i] = CommAnswer({}, "local", self.last_error or "fabric twin unreachable", retry=bool(self.target))
                continue
            if assume and not self.placements_rpc:
                out[i] = CommAnswer({}, "local", "the fabric twin has no EstimatePlacements: it cannot assume link "
                                    "states")
                continue
            comms = []
            hot = set(hot_gpus)
            for group_calls, moe, ids in communicators(inp.spec, gpus, calls, hot, limit):
                keys = [call_key(c) for c in group_calls]
                what = (moe, tuple(zip(keys, (c.moe or () for c in group_calls), strict=True)))
                where: list = [tuple(row) for row in ids]
                if shape is not None:  # shapes of the cold rows, computed below for every job at once
                    for k, row in enumerate(ids):
                        if hot.isdisjoint(row):
                            cold_rows.setdefault(len(row), []).append((where, k, row))
                comms.append((group_calls, moe, ids, keys, what, where))
            pending.append((i, None if assume else key, comms, 0))
        for rows in cold_rows.values():  # one shape() per communicator width (its rows are independent)
            for (where, k, _), sh in zip(rows, shape(np.asarray([r for _, _, r in rows], np.int64)), strict=True):
                where[k] = sh
        for p, (i, key, comms, _) in enumerate(pending):  # questions in job order: the first asker's GPUs are asked
            asked = []
            shared = 0
            for group_calls, moe, ids, keys, what, where in comms:
                qkeys = []
                for row, w in zip(ids, where, strict=True):
                    q = (what, w)
                    first = questions.get(q)
                    if first is None:
                        questions[q] = Question(tuple(row), moe, tuple(group_calls))
                    elif first.gpus != tuple(row):
                        shared += 1
                    qkeys.append(q)
                asked.append((group_calls, keys, qkeys))
            pending[p] = (i, key, asked, shared)
        if not pending:
            return _all(out)
        qs = list(questions.values())
        sent: list = []
        try:
            try:
                times = await gather_requests(self.stub(), qs, timeout_s=self.timeout_s, metadata=self._metadata(),
                                              total_s=timeout_s, placements=self.placements_rpc, sent=sent,
                                              assumed=assumed)
            except grpc.aio.AioRpcError as exc:
                if not (self.placements_rpc and exc.code() == grpc.StatusCode.UNIMPLEMENTED):
                    raise
                self.placements_rpc = False  # an older fabric twin: one EstimateBatch per question
                log.warning("fabric twin at %s has no EstimatePlacements (%s); asking EstimateBatch per communicator",
                            self.target, exc.details())
                self.calls += len(sent)
                sent = []
                if assume:
                    raise NotAssumed("the fabric twin has no EstimatePlacements: it cannot assume link states") \
                        from None
                times = await gather_requests(self.stub(), qs, timeout_s=self.timeout_s, metadata=self._metadata(),
                                              total_s=timeout_s, placements=False, sent=sent)
        except TimeoutError as exc:
            if timeout_s is not None:
                # the caller's budget for the whole exchange ran out: not the fabric twin's failure (it stays up;
                # an RPC the fabric twin did not answer in ``self.timeout_s`` raises DEADLINE_EXCEEDED instead)
                for i, _, _, _ in pending:
                    out[i] = CommAnswer({}, "local", f"{len(qs)} fabric question(s) not answered within the "
                                        f"{timeout_s:.3f} s left for them")
                return _all(out)
            self._failed(exc)
            for i, _, _, _ in pending:
                out[i] = CommAnswer({}, "local", self.last_error, retry=True)
            return _all(out)
        except NotAssumed as exc:  # the fabric twin is up but did not take the assumption: not its failure
            self.calls += len(sent)
            for i, _, _, _ in pending:
                out[i] = CommAnswer({}, "local", str(exc))
            return _all(out)
        except (grpc.aio.AioRpcError, OSError) as exc:
            if assume and isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                self.calls += len(sent)
                for i, _, _, _ in pending:  # e.g. a link the fabric twin does not know: the what-if's question
                    out[i] = CommAnswer({}, "local", f"the fabric twin refused the assumed link state: "
                                        f"{exc.details()}")
                return _all(out)
            self._failed(exc)
            for i, _, _, _ in pending:
                out[i] = CommAnswer({}, "local", self.last_error, retry=True)
            return _all(out)
        self.calls += len(sent)
        answer_of = dict(zip(questions, times, strict=True))
        for i, key, asked, shared in pending:
            out[i] = self._job_answer(key, asked, answer_of, shared)
        return _all(out)

    def _job_answer(self, key: tuple | None, asked, answer_of: dict, shared: int) -> CommAnswer:
        """A job's table: per collective the slowest of its communicators' answers (or the reason there is none)."""
        table: dict = {}
        n = 0
        for group_calls, keys, qkeys in asked:
            n += len(qkeys)
            for q in qkeys:
                times = answer_of[q]
                if len(times) != len(group_calls):
                    return CommAnswer({}, "local", f"the fabric twin answered {len(times)} estimates for "
                                      f"{len(group_calls)} questions")
                for c, k, time_s in zip(group_calls, keys, times, strict=True):
                    if not math.isfinite(time_s):  # no bandwidth left on a crossed link: not a step time
                        return CommAnswer({}, "local", f"the fabric twin answered a non-finite time for "
                                          f"{c.collective} over {c.group.n_ranks} ranks (no bandwidth left on a "
                                          f"crossed link)")
                    if time_s > table.get(k, -1.0):
                        table[k] = time_s
        answer = CommAnswer(table, "fabric", f"{n} communicator(s) timed by the fabric twin"
                            + (f", {shared} through an equal-shaped communicator's answer" if shared else ""))
        if key is None:  # an answer under assumed link states: not the live one
            return answer
        self._cache[key] = answer
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return answer


class NotAssumed(Exception):
    """The fabric twin answered without applying the assumed link states (or cannot take them)."""


def _all(out: list[CommAnswer | None]) -> list[CommAnswer]:
    missing = [i for i, a in enumerate(out) if a is None]
    if missing:
        raise AssertionError(f"no answer for jobs {missing}")
    return [a for a in out if a is not None]


@dataclass(frozen=True)
class Question:
    """One communicator's collectives for the fabric twin: an ``EstimateBatch`` (or, for MoE dispatch/combine,
    an ``EstimateMoe``) on its GPU ids, split into requests of at most the fabric's limit (``requests``)."""

    gpus: tuple[int, ...]
    moe: bool
    calls: tuple[CollectiveCall, ...]

    def requests(self, assumed: list[fpb.LinkHealth] | None = None) -> list:
        placement = fpb.Placement(gpus=fpb.GpuList(gpu_ids=list(self.gpus)))
        if self.moe:
            cases = [moe_case(c) for c in self.calls]
            return [fpb.EstimateMoeRequest(cases=cases[k:k + MAX_MOE_CASES], placement=placement,
                                           assumed_links=assumed)
                    for k in range(0, len(cases), MAX_MOE_CASES)]
        colls, sizes = self.columns()
        return [fpb.EstimateBatchRequest(collectives=colls[k:k + MAX_BATCH_ENTRIES],
                                         size_bytes=sizes[k:k + MAX_BATCH_ENTRIES], placement=placement,
                                         assumed_links=assumed)
                for k in range(0, len(colls), MAX_BATCH_ENTRIES)]

    def columns(self) -> tuple[list[int], list[int]]:
        """The collective question's (collective enums, sizes in bytes), parallel, in call order."""
        return ([_COLLECTIVE[c.collective] for c in self.calls],
                [max(1, int(math.ceil(c.size_bytes))) for c in self.calls])

    def times(self, responses: list) -> list[float]:
        """Each call's seconds from this question's responses (in request order)."""
        if self.moe:
            ests = [e for r in responses for e in r.estimates]
            return [e.dispatch_time_s if c.collective == "moe_dispatch" else e.combine_time_s
                    for c, e in zip(self.calls, ests, strict=False)]
        return [e.time_s for r in responses for e in r.estimates]


def communicators(spec: JobSpec, gpus: list[int], calls: list[CollectiveCall], hot: set[int],
                  limit: int) -> list[tuple[list[CollectiveCall], bool, list[list[int]]]]:
    """The communicators asked for a job: per geometry (ranks, stride, MoE or not) its calls, whether they are MoE,
    and up to ``limit`` instances (``choose``) as GPU ids."""
    by_geometry: dict[tuple[int, int, bool], list[CollectiveCall]] = {}
    for c in calls:
        by_geometry.setdefault((c.group.n_ranks, stride_of(spec, c), c.collective in MOE_COLLECTIVES), []).append(c)
    world = len(gpus)
    return [(group_calls, moe, [[gpus[r] for r in ranks]
                                for ranks in choose(group_instances(world, n, stride), gpus, hot, limit)])
            for (n, stride, moe), group_calls in by_geometry.items()]


def communicator_shape(inventory) -> Callable[[np.ndarray], list[bytes]]:
    """Communicators' GPU ids [k, n] (each ascending) -> what the fabric twin's answer for each depends on when
    none of its GPUs is under an impaired link: which of its GPUs share a node, an NVLink domain and a leaf group
    (relabelled in order), each GPU's index in its node (its rail) and its node's GPU count, and -- when it spans
    leaf groups, so its traffic crosses the uplinks of those leaves, whose background utilization the fabric twin
    knows and this twin does not -- the absolute leaf groups. (The fabric twin summarises a placement by its nodes,
    domains, leaf groups with their uplinks, and its GPUs' NIC health: twin.fabric.domain.placement
    .placement_from_gpu_ids; tests/integration/test_jobs_whatif_fabric.py checks that communicators of one shape
    get one answer from the real service.)"""
    inv = inventory
    node_of, domain_of, local_of = inv.gpu_node, inv.gpu_nvlink_domain, inv.gpu_local_index
    group_of, node_gpus = inv.node_leaf_group, inv.node_gpus

    def relabel(a: np.ndarray) -> np.ndarray:
        """Per row, each value's rank among the row's distinct values (0, 1, ...)."""
        d = np.diff(a, axis=1)
        if (d >= 0).all():  # ascending rows (GPU ids ascending: nodes, domains and groups too)
            return np.concatenate([np.zeros((a.shape[0], 1), np.int64), np.cumsum(d != 0, axis=1)], axis=1)
        return np.stack([np.unique(row, return_inverse=True)[1].reshape(-1) for row in a])

    def shape(ids: np.ndarray) -> list[bytes]:
        g = np.asarray(ids, np.int64).reshape(len(ids), -1)
        nodes = node_of[g]
        groups = group_of[nodes].astype(np.int64)
        spans = (groups != groups[:, :1]).any(axis=1, keepdims=True)
        where = np.where(spans, groups, relabel(groups))
        flag = spans.astype(np.int64)
        m = np.concatenate([flag, relabel(nodes), relabel(domain_of[g]), local_of[g], node_gpus[nodes], where],
                           axis=1).astype(np.int64)
        return [row.tobytes() for row in m]

    return shape


def placements_requests(questions: list[Question], assumed: list[fpb.LinkHealth] | None = None
                        ) -> list[tuple[fpb.EstimatePlacementsRequest, list[int]]]:
    """The collective (non-MoE) questions as ``EstimatePlacements`` requests: one entry per question (a question of
    more than ``MAX_BATCH_ENTRIES`` calls as several consecutive entries), a new request only where the next entry
    would pass a limit (pairs, entries, ranks); with each request, the question index of each of its entries.
    Every request carries ``assumed`` as its ``assumed_links``."""
    out: list[tuple[fpb.EstimatePlacementsRequest, list[int]]] = []
    req: fpb.EstimatePlacementsRequest | None = None
    owners: list[int] = []
    pairs = ranks = 0
    for qi, q in enumerate(questions):
        if q.moe:
            continue
        colls, sizes = q.columns()
        for k in range(0, len(colls), MAX_BATCH_ENTRIES):
            c, s = colls[k:k + MAX_BATCH_ENTRIES], sizes[k:k + MAX_BATCH_ENTRIES]
            if (req is None or pairs + len(s) > MAX_BATCH_ENTRIES or len(owners) >= MAX_PLACEMENT_ENTRIES
                    or ranks + len(q.gpus) > MAX_PLACEMENT_RANKS):
                req, owners, pairs, ranks = fpb.EstimatePlacementsRequest(assumed_links=assumed), [], 0, 0
                out.append((req, owners))
            req.entries.add(placement=fpb.Placement(gpus=fpb.GpuList(gpu_ids=q.gpus)), collectives=c, size_bytes=s)
            owners.append(qi)
            pairs += len(s)
            ranks += len(q.gpus)
    return out


async def gather_requests(stub, questions: list[Question], *, timeout_s: float, metadata=(),
                          concurrency: int = CONCURRENCY, total_s: float | None = None, placements: bool = True,
                          sent: list | None = None, assumed: list[fpb.LinkHealth] | None = None) -> list[list[float]]:
    """Every question's requests at once (at most ``concurrency`` in flight), each with ``timeout_s``, all within
    ``total_s`` (default 1.5 x ``timeout_s``); per question the times of its calls. The collective questions go as
    ``EstimatePlacements`` (``placements_requests``), or with ``placements`` False one ``EstimateBatch`` (or more,
    ``Question.requests``) each; MoE questions one ``EstimateMoe`` each. Every request sent is appended to ``sent``.
    With ``assumed`` every request carries them as ``assumed_links`` and an answer that did not apply them all
    raises ``NotAssumed``. Raises what an RPC raised."""
    sem = asyncio.Semaphore(concurrency)
    sent = [] if sent is None else sent

    async def rpc(req):
        if isinstance(req, fpb.EstimatePlacementsRequest):
            method = stub.EstimatePlacements
        elif isinstance(req, fpb.EstimateMoeRequest):
            method = stub.EstimateMoe
        else:
            method = stub.EstimateBatch
        sent.append(req)
        async with sem:
            resp = await method(req, timeout=timeout_s, metadata=metadata)
        if assumed and getattr(resp, "assumed_links_applied", 0) != len(assumed):
            raise NotAssumed(f"the fabric twin applied {resp.assumed_links_applied} of {len(assumed)} assumed link "
                             f"state(s) (a version without assumed_links?)")
        return resp

    async def ask(q: Question) -> list[float]:
        return q.times(list(await asyncio.gather(*(rpc(r) for r in q.requests(assumed)))))

    async def ask_all() -> list[list[float]]:
        alone = [qi for qi, q in enumerate(questions) if q.moe or not placements]
        packed = placements_requests(questions, assumed) if placements else []
        answers = await asyncio.gather(*(ask(questions[qi]) for qi in alone), *(rpc(r) for r, _ in packed))
        out: list[list[float]] = [[] for _ in questions]
        for qi, times in zip(alone, answers, strict=False):
            out[qi] = times
        for (_, owners), resp in zip(packed, answers[len(alone):], strict=True):
            # entries in request order; a question's consecutive entries concatenate (a short answer shows as a
            # length mismatch in the job's answer)
            for qi, entry in zip(owners, resp.entries, strict=False):
                out[qi].extend(e.time_s for e in entry.estimates)
        return out

    return await asyncio.wait_for(ask_all(), timeout_s * 1.5 if total_s is None else total_s)
