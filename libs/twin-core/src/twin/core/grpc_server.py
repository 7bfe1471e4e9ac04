"""The gRPC server every twin service runs (grpc.aio): health, reflection, deadlines, errors, spans,
metrics, bind address, TLS and a bearer token.

    server = GrpcServer("twin.fabric.v1.FabricSimulationService",
                        lambda s: pb_grpc.add_FabricSimulationServiceServicer_to_server(servicer, s),
                        GrpcOptions(host="127.0.0.1", port=50053, token="..."))
    port = await server.start()
    ...
    await server.stop(grace_s=5)        # NOT_SERVING first, then refuse new RPCs, drain running ones

A servicer method stays a few lines long by handing its work to `RpcHandler.run`:

    rpc = RpcHandler("twin.fabric.v1.FabricSimulationService")
    async def EstimateCollective(self, request, context):
        return await rpc.run("EstimateCollective", context, lambda deadline: ..., heavy=False)

`run` takes the caller's deadline, runs heavy work in a worker thread bounded by it (the worker
checks `Deadline` between chunks), opens a SERVER span (a child of the caller's span when the call's
metadata carries a W3C `traceparent`, as `twin.core.grpc_client` channels send it), records `rpc.server.call.duration` and maps
`twin.core.rpc` errors to status codes: InvalidArgument → INVALID_ARGUMENT, NotFound → NOT_FOUND,
FailedPrecondition → FAILED_PRECONDITION, DeadlineExceeded → DEADLINE_EXCEEDED; details start with
the offending field. Anything else is INTERNAL with a generic message (the traceback goes to the log,
never to the client).

Access: `GrpcOptions.token` requires `authorization: Bearer <token>` on every RPC except health
checks (UNAUTHENTICATED otherwise); `tls_cert_file`/`tls_key_file` serve TLS, and `tls_client_ca_file`
additionally requires a client certificate signed by that CA (mutual TLS). Reflection is served as
both `grpc.reflection.v1.ServerReflection` and the older `grpc.reflection.v1alpha` name (the two
protos differ only in their package, so one servicer answers both).
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection_pb2
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace

from twin.core import limits
from twin.core.rpc import Deadline, DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound
from twin.core.telemetry import extract_metadata, tracing_enabled

log = logging.getLogger("twin.core.grpc")
_tracer = trace.get_tracer("twin.core.grpc")
_meter = metrics.get_meter("twin.core.grpc")


def _duration_histogram(meter: metrics.Meter) -> metrics.Histogram:
    # OpenTelemetry RPC semantic conventions: server call duration in seconds.
    return meter.create_histogram("rpc.server.call.duration", unit="s", description="server time per RPC")


_duration = _duration_histogram(_meter)

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
REFLECTION_V1ALPHA = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"

_STATUS: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
)


@dataclass(frozen=True)
class GrpcOptions:
    host: str = "127.0.0.1"
    port: int = 0
    max_message_bytes: int = limits.GRPC_MAX_MESSAGE_BYTES
    token: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None

    def credentials(self) -> grpc.ServerCredentials | None:
        if not self.tls_cert_file and not self.tls_key_file:
            if self.tls_client_ca_file:
                raise ValueError("a client CA (mutual TLS) needs a server certificate and key too")
            return None
        if not (self.tls_cert_file and self.tls_key_file):
            raise ValueError("TLS needs both a certificate file and a key file")
        key = Path(self.tls_key_file).read_bytes()
        cert = Path(self.tls_cert_file).read_bytes()
        ca = Path(self.tls_client_ca_file).read_bytes() if self.tls_client_ca_file else None
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED unless `authorization: Bearer <token>` matches (constant-time compare).
    Health checks stay open so orchestrators can probe without the secret."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("an empty token would let anyone in")
        self._expected = f"Bearer {token}".encode()

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        self._deny = deny

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        if details.method.startswith(f"/{HEALTH_SERVICE}/"):
            return await continuation(details)
        given = next((v for k, v in details.invocation_metadata or () if k == "authorization"), "")
        given_bytes = given.encode() if isinstance(given, str) else bytes(given)
        if hmac.compare_digest(given_bytes, self._expected):
            return await continuation(details)
        handler = await continuation(details)
        if handler is None:
            return None
        # Same streaming shape as the real method, answering UNAUTHENTICATED.
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(self._deny)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(self._deny)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(self._deny)
        return grpc.unary_unary_rpc_method_handler(self._deny)


class RpcHandler:
    """Deadline, thread offload, span, duration metric and error mapping for one gRPC service.

    `run`'s work is called with the Deadline; a `heavy` one runs in a worker thread, any other may return an
    awaitable (async work such as asking another twin), awaited inside the span and the duration.

    The SERVER span is made only while some span processor records it and the duration only while some
    metric reader collects it (an SDK provider without processors/readers keeps nothing, and a span
    costs tens of microseconds per RPC); attribute dicts are built once per method and status code.
    `tracer_provider`/`meter_provider` default to the global ones (looked up per call, so a processor or
    provider installed later counts); tests pass their own."""

    def __init__(self, service_name: str, *, tracer_provider: trace.TracerProvider | None = None,
                 meter_provider: metrics.MeterProvider | None = None) -> None:
        self.service_name = service_name
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracer = tracer_provider.get_tracer("twin.core.grpc") if tracer_provider else _tracer
        self._duration = (_duration_histogram(meter_provider.get_meter("twin.core.grpc")) if meter_provider
                          else _duration)
        self._span_attrs: dict[str, dict[str, Any]] = {}
        self._metric_attrs: dict[tuple[str, int], dict[str, Any]] = {}

    def _attrs(self, method: str) -> dict[str, Any]:
        attrs = self._span_attrs.get(method)
        if attrs is None:
            attrs = self._span_attrs[method] = {"rpc.system": "grpc", "rpc.service": self.service_name,
                                                "rpc.method": method}
        return attrs

    def _metric_attributes(self, method: str, code: int) -> dict[str, Any]:
        attrs = self._metric_attrs.get((method, code))
        if attrs is None:
            attrs = self._metric_attrs[(method, code)] = {**self._attrs(method), "rpc.grpc.status_code": code}
        return attrs

    async def run(self, method: str, context: grpc.aio.ServicerContext, work: Callable[[Deadline], Any], *,
                  heavy: bool = False) -> Any:
        started = time.perf_counter()
        remaining = context.time_remaining()
        deadline = Deadline(remaining)
        code = grpc.StatusCode.OK
        span = token = None
        if _records_spans(self._tracer_provider):
            # the caller's trace context (twin.core.grpc_client sends it): the SERVER span is its child.
            # start_span + attach (not start_as_current_span's three nested context managers): the
            # same span, current while the work runs, for less per-RPC overhead
            span = self._tracer.start_span(f"{self.service_name}/{method}", context=_caller_context(context),
                                           kind=trace.SpanKind.SERVER, attributes=self._attrs(method),
                                           record_exception=False, set_status_on_exception=False)
            token = otel_context.attach(trace.set_span_in_context(span))
        # else nothing would record the span: the current (non-recording) span stays current
        try:
            try:
                if not heavy:
                    answer = work(deadline)
                    # async work (e.g. asking another twin first) runs inside the span and the duration too
                    return await answer if inspect.isawaitable(answer) else answer
                job = asyncio.to_thread(work, deadline)
                if remaining is None:
                    return await job
                try:
                    return await asyncio.wait_for(job, timeout=max(0.0, remaining))
                except TimeoutError:
                    deadline.cancel()  # the worker stops at its next chunk boundary
                    raise DeadlineExceeded() from None
            except Exception as exc:  # mapped to a status below; never leaks a traceback to the client
                code, details = _status_of(exc)
                if code is grpc.StatusCode.INTERNAL:
                    log.exception("%s/%s failed", self.service_name, method)
            finally:
                status = code.value[0]
                if span is not None:
                    span.set_attribute("rpc.grpc.status_code", status)
                if _records_metrics(self._meter_provider):
                    self._duration.record(time.perf_counter() - started, self._metric_attributes(method, status))
            if span is not None:
                span.set_status(trace.Status(trace.StatusCode.ERROR, details))
            await context.abort(code, details)
        except BaseException as exc:  # the abort above, or the call cancelled (the caller went away)
            if span is not None and code is grpc.StatusCode.OK:
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            if span is not None:
                otel_context.detach(token)
                span.end()


def _caller_context(context: Any) -> Any:
    """The trace context in the call's metadata (None without one; a duck-typed context without
    `invocation_metadata`, as tests pass, has none)."""
    metadata = getattr(context, "invocation_metadata", None)
    return extract_metadata(metadata()) if metadata is not None else None


def _records_spans(provider: trace.TracerProvider | None) -> bool:
    """Whether a span started now would be recorded (by the given provider, or the global one)."""
    if provider is None:
        return tracing_enabled()
    return bool(getattr(getattr(provider, "_active_span_processor", None), "_span_processors", True))


def _records_metrics(provider: metrics.MeterProvider | None) -> bool:
    """False only for an SDK meter provider without metric readers (nothing can ever collect from it:
    the SDK takes its readers at construction); any other provider records (no-op ones cheaply)."""
    provider = provider or metrics.get_meter_provider()
    readers = getattr(provider, "_metric_readers", None)
    return readers is None or bool(readers)


def _status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the service log"


class GrpcServer:
    """One grpc.aio server: the service(s) `register` adds, health per service, reflection v1 + v1alpha."""

    def __init__(self, service_names: str | tuple[str, ...], register: Callable[[grpc.aio.Server], None],
                 options: GrpcOptions | None = None) -> None:
        self.service_names = (service_names,) if isinstance(service_names, str) else tuple(service_names)
        self.options = options or GrpcOptions()
        o = self.options
        interceptors = [BearerTokenInterceptor(o.token)] if o.token else []
        self.server = grpc.aio.server(interceptors=interceptors, options=[
            ("grpc.max_receive_message_length", o.max_message_bytes),
            ("grpc.max_send_message_length", o.max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second process on the same port is an error, not a silent split
        ])
        register(self.server)
        self.health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        listed = (*self.service_names, HEALTH_SERVICE, REFLECTION_V1, REFLECTION_V1ALPHA)
        reflection = reflection_aio.ReflectionServicer(listed)
        for name in (REFLECTION_V1, REFLECTION_V1ALPHA):
            self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, {
                "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                    reflection.ServerReflectionInfo,
                    request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                    response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString),
            }),))
        self.port = 0

    @property
    def address(self) -> str:
        return f"{self.options.host}:{self.port}"

    async def start(self) -> int:
        o = self.options
        address = f"{o.host}:{o.port}"
        creds = o.credentials()
        self.port = self.server.add_secure_port(address, creds) if creds else self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot bind gRPC port {address}")
        await self.server.start()
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("gRPC %s on %s (%s%s)", ", ".join(self.service_names), self.address,
                 "TLS" + (" + client certificates" if o.tls_client_ca_file else "") if creds else "plaintext",
                 ", bearer token required" if o.token else "")
        return self.port

    async def stop(self, grace_s: float = 5.0) -> None:
        """Graceful stop: report NOT_SERVING, refuse new RPCs, let running ones finish within grace."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)

    async def wait(self) -> None:
        await self.server.wait_for_termination()
