"""gRPC unary EstimateCollective latency on loopback vs the health Check RPC on the same server.

Starts `python -m twin.fabric` with FABRIC_CONSUME=0 (gRPC only) in a subprocess on a free port,
waits for SERVING, then issues sequential unary calls from this process (sync stubs, one channel):
a warm-up, then in interleaved rounds (so all see the same machine state): N EstimateCollective calls
that the server must compute (a 256-rank spread all-reduce, each with a size not asked before), N
repeats of one request (answered from the server's exact answer cache) and N health Check calls.
Then, with the server stopped, the same two request kinds are awaited directly on the servicer built in a
fresh process like the server builds it (FabricApp, FABRIC_CONSUME=0, telemetry from the same OTEL_*
settings): the handler's own time without gRPC transport, so the gap to the loopback figures is gRPC's.
Once more with telemetry recording (`--traced`): the SDK providers `setup_telemetry` builds, with a
BatchSpanProcessor and a metric reader whose exporters drop what they get (no collector here), so the
SERVER span and the `rpc.server.call.duration` point every RPC makes when OTLP export is on are paid.
Writes bench/results/fabric_grpc.json. Targets: p50 <= 1 ms, p99 <= 5 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from twin.core.embedded.kafka import free_port
from twin.fabric.v1 import fabric_pb2 as pb
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc

RESULTS = Path(__file__).parent / "results" / "fabric_grpc.json"
REQUESTS = 2_000
WARMUP = 300
ROUND = 100


def _percentiles(samples_s: list[float]) -> tuple[float, float]:
    a = np.asarray(samples_s) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


class _Context:
    """The ServicerContext calls the kit's RpcHandler makes (a 5 s deadline, like the loopback calls)."""

    def time_remaining(self) -> float:
        return 5.0

    async def abort(self, code, details):
        raise RuntimeError(f"{code}: {details}")


def _in_process(env: dict[str, str], requests: int, traced: bool = False) -> tuple[list, list]:
    """(computed, cached) handler times in s, measured in a fresh process (`--handler`): telemetry is
    set up there globally like the server does, without touching this process's providers (the other
    benchmarks of a `python -m bench` run set their own). `traced`: spans and metrics recorded."""
    out = subprocess.run([sys.executable, "-m", "bench.fabric_grpc", "--handler", str(requests),
                          *(["--traced"] if traced else [])], env=env,
                         cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=600, check=True)
    samples = json.loads(out.stdout.strip().splitlines()[-1])
    return samples["computed"], samples["cached"]


def _recording_telemetry() -> dict:
    """setup_telemetry's extra processor/reader: what an OTLP setup records, exported to nowhere."""
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DropSpans(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
            pass

    return {"span_processors": [BatchSpanProcessor(DropSpans())],
            "metric_readers": [PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=10_000)]}


def _handler_main(env: dict[str, str], req: pb.EstimateCollectiveRequest, requests: int,
                  traced: bool = False) -> tuple[list, list]:
    """(computed, cached) handler times in s: the servicer awaited directly, no transport."""
    from twin.core.settings import load_config
    from twin.core.telemetry import setup_telemetry
    from twin.fabric.adapters.repository import InMemoryStateStore
    from twin.fabric.app import SERVICE, FabricApp, FabricConfig

    setup_telemetry(SERVICE, environ=env, **(_recording_telemetry() if traced else {}))
    app = FabricApp(load_config(FabricConfig, SERVICE, environ=env))
    app.build(InMemoryStateStore())
    servicer, ctx = app.servicer, _Context()
    unique = pb.EstimateCollectiveRequest()
    unique.CopyFrom(req)
    est: list[float] = []
    cached: list[float] = []

    async def run() -> None:
        pc = time.perf_counter
        for _ in range(WARMUP):
            await servicer.EstimateCollective(req, ctx)
        for start in range(0, requests, ROUND):
            n = min(ROUND, requests - start)
            for i in range(n):
                unique.size_bytes = (1 << 31) + 1 + start + i  # sizes the loopback run did not ask
                t = pc()
                await servicer.EstimateCollective(unique, ctx)
                est.append(pc() - t)
            for _ in range(n):
                t = pc()
                await servicer.EstimateCollective(req, ctx)
                cached.append(pc() - t)

    asyncio.run(run())
    return est, cached


def main(requests: int = REQUESTS) -> dict:
    port = free_port()
    env = dict(os.environ, FABRIC_CONSUME="0", FABRIC_GRPC_PORT=str(port), FABRIC_GRPC_HOST="127.0.0.1",
               OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    proc = subprocess.Popen([sys.executable, "-m", "twin.fabric"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        health = health_pb2_grpc.HealthStub(channel)
        stub = pb_grpc.FabricSimulationServiceStub(channel)
        deadline = time.monotonic() + 60
        while True:
            try:
                if health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status == 1:
                    break
            except grpc.RpcError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"fabric server did not start: {proc.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.1)
        req = _request()
        hreq = health_pb2.HealthCheckRequest(service="twin.fabric.v1.FabricSimulationService")
        for _ in range(WARMUP):
            stub.EstimateCollective(req, timeout=5)
            health.Check(hreq, timeout=5)
        est: list[float] = []
        cached: list[float] = []
        chk: list[float] = []
        pc = time.perf_counter
        answer = None
        # computed: every request has a size never asked before, so the server runs the numpy core;
        # cached: the same request again (the server's exact answer cache for repeated queries)
        unique = pb.EstimateCollectiveRequest()
        unique.CopyFrom(req)
        for start in range(0, requests, ROUND):
            n = min(ROUND, requests - start)
            for i in range(n):
                unique.size_bytes = (1 << 30) + 1 + start + i
                t = pc()
                answer = stub.EstimateCollective(unique, timeout=5)
                est.append(pc() - t)
            for _ in range(n):
                t = pc()
                stub.EstimateCollective(req, timeout=5)
                cached.append(pc() - t)
            for _ in range(n):
                t = pc()
                health.Check(hreq, timeout=5)
                chk.append(pc() - t)
        channel.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    p50, p99 = _percentiles(est)
    h50, h99 = _percentiles(chk)
    c50, c99 = _percentiles(cached)
    in_est, in_cached = _in_process(env, requests)
    i50, i99 = _percentiles(in_est)
    ic50, _ = _percentiles(in_cached)
    tr_est, tr_cached = _in_process(env, requests, traced=True)
    t50, _ = _percentiles(tr_est)
    tc50, _ = _percentiles(tr_cached)
    result = {
        "benchmark": "fabric_grpc",
        "grpc_requests": len(est),
        "grpc_unary_p50_ms": round(p50, 4),
        "grpc_unary_p99_ms": round(p99, 4),
        "baseline_health_p50_ms": round(h50, 4),
        "baseline_health_p99_ms": round(h99, 4),
        "ratio_p50_to_health": round(p50 / h50, 3),
        "grpc_unary_cached_p50_ms": round(c50, 4),
        "grpc_unary_cached_p99_ms": round(c99, 4),
        "handler_p50_ms": round(i50, 4),
        "handler_p99_ms": round(i99, 4),
        "handler_cached_p50_ms": round(ic50, 4),
        "grpc_minus_handler_p50_ms": round(p50 - i50, 4),
        "handler_traced_p50_ms": round(t50, 4),
        "handler_traced_cached_p50_ms": round(tc50, 4),
        "note": "grpc_unary_* = computed answers (unique size per request, numpy core runs every time); "
                "grpc_unary_cached_* = the same request repeated (exact answer cache keyed by live-state version); "
                "handler_* = the servicer awaited directly in a fresh process (no gRPC transport), same request kinds; "
                "handler_traced_* = the same with the SERVER span and duration metric recorded (exporters drop)",
        "targets": {"grpc_unary_p50_ms": 1.0, "grpc_unary_p99_ms": 5.0},
        "meets_targets": bool(p50 <= 1.0 and p99 <= 5.0),
        "request": "EstimateCollective all_reduce 1 GiB, 256 ranks spread (dgx-h100-su)",
        "answer": {"time_s": answer.estimate.time_s, "algorithm": answer.estimate.algorithm,
                   "protocol": answer.estimate.protocol} if answer else None,
        "client": "sync grpc stub, one channel, sequential calls on 127.0.0.1; server: python -m twin.fabric "
                  "(FABRIC_CONSUME=0) in a subprocess",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"EstimateCollective p50 {p50:.3f} ms p99 {p99:.3f} ms | health Check p50 {h50:.3f} ms p99 {h99:.3f} ms "
          f"| ratio p50 {p50 / h50:.2f}x over {len(est)} requests (targets p50 <= 1 ms, p99 <= 5 ms); "
          f"repeated (cached) p50 {c50:.3f} ms p99 {c99:.3f} ms | in-process handler p50 {i50:.3f} ms "
          f"(cached {ic50:.3f} ms); traced {t50:.3f} ms (cached {tc50:.3f} ms)")
    return result


def _request() -> pb.EstimateCollectiveRequest:
    return pb.EstimateCollectiveRequest(
        collective=pb.COLLECTIVE_ALL_REDUCE, size_bytes=1 << 30,
        placement=pb.Placement(ranks=pb.RankCount(n_ranks=256, policy=pb.PACKING_POLICY_SPREAD)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--handler"]:
        computed, cached = _handler_main(dict(os.environ), _request(), int(sys.argv[2]), "--traced" in sys.argv[3:])
        print(json.dumps({"computed": computed, "cached": cached}))
    else:
        main()
