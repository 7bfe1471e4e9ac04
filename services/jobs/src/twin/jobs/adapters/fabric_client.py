"""The fabric twin as the step model's communication timer, over gRPC (``twin.fabric.v1.FabricSimulationService``).

For a job the twin first lists the collectives of one step (``JobTwin.calls``: kind, NCCL collective, bytes and
group geometry). Each geometry is turned into the job's real communicators: ranks laid out Megatron-style (TP
fastest, then CP, then DP, then PP) over the job's GPU ids in ascending order; a kind's group of ``n`` ranks
``stride`` apart has ``world / n`` instances. Up to ``max_groups`` instances per geometry are timed with one
``EstimateBatch`` each (all of that geometry's collectives and sizes), the instances holding GPUs under an
impaired link first, then evenly spread ones; a synchronous step waits for the slowest instance, so each
collective's time is the maximum over the instances asked.

MoE expert-parallel dispatch and combine (``moe_dispatch`` / ``moe_combine`` calls, which carry a ``MoeTraffic``)
are asked of ``EstimateMoe`` instead: one request per chosen EP-group instance (the same choice of instances), one
case per distinct MoE traffic, the placement being that instance's GPU ids; the fabric twin answers with its MoE
model (kernel, precision and node-limited routing as the call states) on its live link state.

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
from collections.abc import Iterable
from pathlib import Path

import grpc

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
        gpus = sorted(inp.gpu_ids)
        world = inp.spec.n_gpus
        calls = [c for c in calls if c.group.n_ranks > 1 and c.size_bytes > 0]
        if not calls:
            return CommAnswer({}, "fabric", "no communication")
        if len(gpus) != world:
            return CommAnswer({}, "local", f"placement has {len(gpus)} known GPU ids for {world} ranks")
        key = (tuple(gpus), inp.links, tuple(sorted((call_key(c), c.moe or ()) for c in calls)))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return hit
        if not self.up:
            return CommAnswer({}, "local", self.last_error or "fabric twin unreachable", retry=bool(self.target))
        hot = set(hot_gpus)
        by_geometry: dict[tuple[int, int, bool], list[CollectiveCall]] = {}
        for c in calls:
            moe = c.collective in MOE_COLLECTIVES
            by_geometry.setdefault((c.group.n_ranks, stride_of(inp.spec, c), moe), []).append(c)
        # (calls, request, time of each call from the response)
        requests: list[tuple[list[CollectiveCall], object, object]] = []
        for (n, stride, moe), group_calls in by_geometry.items():
            for ranks in choose(group_instances(world, n, stride), gpus, hot, self.max_groups):
                placement = fpb.Placement(gpus=fpb.GpuList(gpu_ids=[gpus[r] for r in ranks]))
                if moe:
                    cases = [moe_case(c) for c in group_calls]
                    requests.append((group_calls, fpb.EstimateMoeRequest(cases=cases, placement=placement),
                                     _moe_times(group_calls)))
                else:
                    requests.append((group_calls, fpb.EstimateBatchRequest(
                        collectives=[_COLLECTIVE[c.collective] for c in group_calls],
                        size_bytes=[max(1, int(math.ceil(c.size_bytes))) for c in group_calls],
                        placement=placement), _batch_times))
        stub = self.stub()

        def rpc(req):
            method = stub.EstimateMoe if isinstance(req, fpb.EstimateMoeRequest) else stub.EstimateBatch
            return method(req, timeout=self.timeout_s, metadata=self._metadata())

        try:
            responses = await asyncio.wait_for(asyncio.gather(*(rpc(req) for _, req, _ in requests)),
                                               self.timeout_s * 1.5)
        except (TimeoutError, grpc.aio.AioRpcError, OSError) as exc:
            self._failed(exc)
            return CommAnswer({}, "local", self.last_error, retry=True)
        self.calls += len(requests)
        table: dict = {}
        for (group_calls, _, times_of), resp in zip(requests, responses, strict=True):
            times = times_of(resp)
            if len(times) != len(group_calls):
                return CommAnswer({}, "local", f"the fabric twin answered {len(times)} estimates for "
                                  f"{len(group_calls)} questions")
            for c, time_s in zip(group_calls, times, strict=True):
                if not math.isfinite(time_s):  # no bandwidth left on a crossed link: not a step time
                    return CommAnswer({}, "local", f"the fabric twin answered a non-finite time for {c.collective} "
                                      f"over {c.group.n_ranks} ranks (no bandwidth left on a crossed link)")
                k = call_key(c)
                table[k] = max(table.get(k, 0.0), time_s)
        answer = CommAnswer(table, "fabric", f"{len(requests)} communicator(s) timed by the fabric twin")
        self._cache[key] = answer
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return answer


def _batch_times(resp: fpb.EstimateBatchResponse) -> list[float]:
    return [est.time_s for est in resp.estimates]


def _moe_times(group_calls: list[CollectiveCall]):
    """Each MoE call's time from an ``EstimateMoe`` answer: a dispatch call reads its case's dispatch time, a
    combine call its case's combine time (one case per call, so every call's own precision is asked)."""
    def times(resp: fpb.EstimateMoeResponse) -> list[float]:
        return [est.dispatch_time_s if c.collective == "moe_dispatch" else est.combine_time_s
                for c, est in zip(group_calls, resp.estimates, strict=False)]

    return times
