"""The gRPC client side of the kit (grpc.aio): channels whose calls carry the W3C trace context.

    channel = grpc_client.channel("fabric:50053", options=[...])            # plaintext
    channel = grpc_client.channel("fabric:50053", credentials=grpc.ssl_channel_credentials(ca))
    stub = FabricSimulationServiceStub(channel)

Every unary call made while some span processor records spans (`twin.core.telemetry.tracing_enabled()`)
runs in a CLIENT span "<rpc.service>/<rpc.method>" (OTel RPC semantic conventions: rpc.system=grpc,
rpc.service, rpc.method, server.address, server.port, and rpc.grpc.status_code once the call ended) and
sends that span's `traceparent` (+ `tracestate`) in the call's metadata, via the OTel propagator API. The
kit's server (`twin.core.grpc_server.RpcHandler`) extracts it, so its SERVER span is a child of this
CLIENT span, in the caller's trace. While nothing records spans, a call gets no span and no extra
metadata (only the interceptor's own pass-through).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from opentelemetry import trace

from twin.core.telemetry import inject_metadata, tracing_enabled

_tracer = trace.get_tracer("twin.core.grpc")

# gRPC name-resolution syntax (grpc/doc/naming.md): [scheme:[//authority]/]host[:port]; IPv6 hosts in brackets.
_TARGET = re.compile(r"^(?:(?:dns|ipv4|ipv6):(?://[^/]*/)?)?(\[[^\]]+\]|[^:/\[\]]+)(?::(\d+))?$")


def server_attributes(target: str) -> dict[str, Any]:
    """server.address / server.port of a channel target ("host:port", "dns:///host:port", "[::1]:50051");
    a target of another form (unix:..., a name without a port) keeps what can be read from it."""
    m = _TARGET.match(target.strip())
    if m is None:
        return {"server.address": target}
    attrs: dict[str, Any] = {"server.address": m.group(1).strip("[]")}
    if m.group(2):
        attrs["server.port"] = int(m.group(2))
    return attrs


class TraceContextClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """CLIENT span + W3C trace context in the metadata of every unary-unary call (see the module docstring)."""

    def __init__(self, target: str, *, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._server = server_attributes(target)
        self._tracer_provider = tracer_provider
        self._tracer = tracer_provider.get_tracer("twin.core.grpc") if tracer_provider else _tracer
        self._names: dict[Any, tuple[str, dict[str, Any]]] = {}

    def _records(self) -> bool:
        if self._tracer_provider is None:
            return tracing_enabled()
        return bool(getattr(getattr(self._tracer_provider, "_active_span_processor", None), "_span_processors", True))

    def _name(self, method: bytes | str) -> tuple[str, dict[str, Any]]:
        named = self._names.get(method)
        if named is None:
            path = method.decode() if isinstance(method, bytes) else method
            service, _, name = path.lstrip("/").rpartition("/")
            attrs = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name, **self._server}
            named = self._names[method] = (f"{service}/{name}", attrs)
        return named

    async def intercept_unary_unary(self, continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
                                    client_call_details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        if not self._records():  # no span, no metadata: the call goes out as it came
            return await continuation(client_call_details, request)
        d = client_call_details
        name, attrs = self._name(d.method)
        with self._tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT, attributes=attrs,
                                                record_exception=False, set_status_on_exception=False) as span:
            metadata = grpc.aio.Metadata(*inject_metadata(d.metadata or ()))
            call = await continuation(grpc.aio.ClientCallDetails(d.method, d.timeout, metadata, d.credentials,
                                                                 d.wait_for_ready), request)
            try:
                await call  # the span lasts until the answer (or the error) arrived
            except grpc.aio.AioRpcError:
                pass  # the caller gets the error from the returned call
            except BaseException:
                span.set_status(trace.Status(trace.StatusCode.ERROR, "call cancelled"))
                raise
            code = await call.code()
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not grpc.StatusCode.OK:
                span.set_status(trace.Status(trace.StatusCode.ERROR, f"{code.name}: {await call.details()}"))
            return call


def channel(target: str, *, credentials: grpc.ChannelCredentials | None = None,
            options: Sequence[tuple[str, Any]] | None = None,
            interceptors: Sequence[grpc.aio.ClientInterceptor] = ()) -> grpc.aio.Channel:
    """A grpc.aio channel to `target` (TLS with `credentials`, else plaintext) whose unary calls carry the
    trace context (`TraceContextClientInterceptor`), after any `interceptors` given."""
    chain = [*interceptors, TraceContextClientInterceptor(target)]
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, options=options, interceptors=chain)
    return grpc.aio.insecure_channel(target, options=options, interceptors=chain)
