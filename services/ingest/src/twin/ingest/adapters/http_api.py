"""HTTP push endpoint for Redfish telemetry: BMCs/PDUs/CDUs or a Redfish event relay POST here.

Built on the service kit's receiver base (`twin.core.http`): its bearer-token middleware, its body
limit (`twin.core.limits.HTTP_MAX_BODY_BYTES` unless told otherwise) and `read_json` (size and
JSON-depth limits; it raises only `BodyRejected`). This module adds the Redfish routes, the Redfish
error format and where rejects go.

Routes:
    POST /redfish/v1/TelemetryService/MetricReports   a MetricReport resource (DSP2046 #MetricReport)
    POST /redfish/v1/ingest                           any resource ``redfish.parse_redfish`` understands
    GET  /healthz                                     liveness, no auth

Every POST needs ``Authorization: Bearer <token>`` (constant-time comparison in the middleware).
Responses (error bodies use the Redfish error format ``{"error": {"code", "message",
"@Message.ExtendedInfo": [...]}}``):

    401  missing or wrong token (nothing is read, nothing is dead-lettered)
    413  body larger than ``max_body_bytes`` (not read, not dead-lettered)
    400  not UTF-8 / not JSON / nested deeper than ``twin.core.http.MAX_JSON_DEPTH`` / not an object /
         unknown type / nothing mappable — the raw body goes to ``dead_letter(raw, reason, source)``
         first, and the same reason is in the response
    202  at least one batch was published (``publish`` returned for every batch); if parts of the
         body were rejected, the raw body also goes to ``dead_letter`` with those reasons, and the
         response lists them
    503  ``publish`` or ``dead_letter`` raised: nothing is acknowledged, the sender should retry
         (delivery is at-least-once; batches published before the failure may repeat)

What a 202 means, and how to learn the outcome. 202 is "accepted for processing": the batches were
handed to facility.telemetry.v1, and the ingest consumer validates, dedupes and stores them
afterwards. The response says which batches to look for: the body lists the racks, and the header
``Twin-Batch-Keys`` holds the natural key of every published batch as JSON
(``[[rack_id, sample_time, sequence], ...]``; ``sample_time`` is the resource's own timestamp, or the
receive time when it has none; at most 100 keys). The header ``Twin-Outcome`` repeats where each
key ends up: a row in ``telemetry_batches`` (and its samples in ``telemetry_rack``) when stored, or
a record in ``facility.telemetry.v1.dlq`` with Kafka key = rack_id and a ``dlq_reason`` header when
the consumer rejects it (e.g. a timestamp outside the accepted window); a batch whose key was
already stored with other values (a re-sent report with a corrected value) is dead-lettered there
too, with a ``conflict:`` reason, rather than silently dropped (see ``stream.py``).

``source`` given to ``dead_letter`` is ``"redfish-http:<path>"``.

Tracing: a request with a W3C ``traceparent`` header (a traced relay or client) is continued, so the
batches it publishes carry the caller's trace and ingest's "send telemetry.samples.v1" span joins it.
While spans are recorded, each authenticated POST runs in a SERVER span "POST <route>" (HTTP semantic
conventions: http.request.method, http.route, url.path, http.response.status_code; a child of the
caller's span, or a root); while they are not, the caller's context is passed on unchanged, no span.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from opentelemetry import trace

from twin.core import limits
from twin.core.clock import Clock
from twin.core.http import BodyRejected, make_app, read_json
from twin.core.telemetry import extract_http_headers, server_span
from twin.ingest.adapters import codec
from twin.ingest.adapters.redfish import RackOfResource, RedfishResult, Rejection, as_rack_map, parse_redfish

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("twin.ingest.http")

METRIC_REPORTS_PATH = "/redfish/v1/TelemetryService/MetricReports"
INGEST_PATH = "/redfish/v1/ingest"
HEALTH_PATH = "/healthz"
MAX_KEYS_IN_HEADER = 100
OUTCOME = ("asynchronous: each key of Twin-Batch-Keys becomes a telemetry_batches row when stored, "
           "or a facility.telemetry.v1.dlq record (Kafka key = rack_id, header dlq_reason) when rejected")

Publish = codec.Publish
DeadLetter = Callable[[bytes, str, str], Awaitable[None]]

_BASE = "Base.1.8"


def _redfish_error(status: int, message_id: str, message: str, resolution: str,
                   headers: dict[str, str] | None = None, extra: list[str] | None = None) -> web.Response:
    info = [{
        "@odata.type": "#Message.v1_1_1.Message",
        "MessageId": f"{_BASE}.{message_id}",
        "Message": message,
        "Severity": "Critical",
        "Resolution": resolution,
    }]
    for reason in extra or []:
        info.append({"@odata.type": "#Message.v1_1_1.Message", "MessageId": f"{_BASE}.GeneralError",
                     "Message": reason, "Severity": "Warning", "Resolution": "None."})
    body = {"error": {"code": f"{_BASE}.{message_id}", "message": message, "@Message.ExtendedInfo": info}}
    return web.json_response(body, status=status, headers={"OData-Version": "4.0", **(headers or {})})


def _unauthorized() -> web.Response:
    return _redfish_error(401, "NoValidSession", "Missing or invalid bearer token.",
                          "Send 'Authorization: Bearer <token>'.",
                          headers={"WWW-Authenticate": 'Bearer realm="twin-ingest"'})


def make_http_app(
    *,
    publish: Publish,
    dead_letter: DeadLetter,
    token: str,
    rack_of_resource: RackOfResource,
    clock: Clock,
    max_body_bytes: int = limits.HTTP_MAX_BODY_BYTES,
    site_id: str = "",
) -> web.Application:
    """Build the aiohttp application. ``publish``/``dead_letter`` are awaited inline (see module doc)."""
    racks = as_rack_map(rack_of_resource)  # validate the mapping once, at startup
    app = make_app(token, max_body_bytes=max_body_bytes, unauthorized=_unauthorized)

    async def handle(request: web.Request, *, only_type: str | None) -> web.Response:
        source = f"redfish-http:{request.path}"
        try:
            raw, doc = await read_json(request)
        except BodyRejected as exc:
            if exc.status == 413:
                return _too_large(max_body_bytes)
            result = RedfishResult(rejections=[Rejection("body", exc.reason)])
            return await _reject(dead_letter, exc.raw, result.reason, source, result)
        result = parse_redfish(doc, rack_of_resource=racks, received_time=clock.now(), site_id=site_id)
        if only_type and result.resource_type and result.resource_type != only_type:
            reason = (f"this endpoint takes {only_type} resources, got {result.resource_type}; "
                      f"POST other resources to {INGEST_PATH}")
            result.rack_batches.clear()
            result.equipment_batches.clear()
        else:
            reason = result.reason
        if not result.rack_batches and not result.equipment_batches:
            return await _reject(dead_letter, raw, reason or "nothing to ingest", source, result)
        for batch in result.rack_batches:
            try:
                await publish(codec.encode_batch(batch))
            except Exception:
                log.exception("publish failed for rack %s", batch.rack_id)
                return _unavailable("publisher")
        for eq_batch in result.equipment_batches:     # a CDU's readings (CoolingUnit), keyed by site
            try:
                await publish(codec.encode_equipment(eq_batch))
            except Exception:
                log.exception("publish failed for equipment batch of %s", eq_batch.site_id)
                return _unavailable("publisher")
        n_batches = len(result.rack_batches) + len(result.equipment_batches)
        if result.rejections:
            partial = f"partially accepted ({n_batches} batch(es) published): {result.reason}"
            if not await _dead_letter(dead_letter, raw, partial, source):
                return _unavailable("dead-letter sink")
        body: dict[str, Any] = {
            "accepted_batches": n_batches,
            "racks": sorted({b.rack_id for b in result.rack_batches}),
            "rejected": [str(r) for r in result.rejections],
        }
        if result.equipment_batches:      # a CDU's readings: the key is only there when there are some
            body["equipment"] = sorted({s.equipment_id for b in result.equipment_batches for s in b.samples})
        keys = [[b.rack_id, b.sample_time.isoformat() if b.sample_time else None, b.sequence]
                for b in result.rack_batches[:MAX_KEYS_IN_HEADER]]
        headers = {"OData-Version": "4.0", "Twin-Batch-Keys": json.dumps(keys, separators=(",", ":")),
                   "Twin-Outcome": OUTCOME}
        return web.json_response(body, status=202, headers=headers)

    async def traced(request: web.Request, route: str, only_type: str | None) -> web.Response:
        # W3C trace context: the batches published here carry the caller's trace (see the module docstring)
        with server_span(_tracer, f"POST {route}", extract_http_headers(request.headers),
                         attributes={"http.request.method": "POST", "http.route": route,
                                     "url.path": request.path}) as span:
            response = await handle(request, only_type=only_type)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(response.status)))
            return response

    async def metric_reports(request: web.Request) -> web.Response:
        return await traced(request, METRIC_REPORTS_PATH, "MetricReport")

    async def ingest(request: web.Request) -> web.Response:
        return await traced(request, INGEST_PATH, None)

    app.router.add_post(METRIC_REPORTS_PATH, metric_reports)
    app.router.add_post(INGEST_PATH, ingest)
    return app


async def _reject(dead_letter: DeadLetter, raw: bytes, reason: str, source: str,
                  result: RedfishResult) -> web.Response:
    """400 with the reason, after the raw body reached the dead-letter sink (else 503)."""
    if not await _dead_letter(dead_letter, raw, reason, source):
        return _unavailable("dead-letter sink")
    message_id = "MalformedJSON" if result.rejections and result.rejections[0].where == "body" else "GeneralError"
    return _redfish_error(400, message_id, reason,
                          "Send a Redfish resource this service maps (see the ingest adapter docs).",
                          extra=[str(r) for r in result.rejections][:50])


def _too_large(limit: int) -> web.Response:
    return _redfish_error(413, "GeneralError", f"Request body larger than {limit} bytes.",
                          "Send smaller resources (one resource or report per request).")


def _unavailable(what: str) -> web.Response:
    return _redfish_error(503, "ServiceTemporarilyUnavailable", f"The {what} is unavailable; nothing was accepted.",
                          "Retry the request later.", headers={"Retry-After": "5"})


async def _dead_letter(dead_letter: DeadLetter, raw: bytes, reason: str, source: str) -> bool:
    try:
        await dead_letter(raw, reason, source)
        return True
    except Exception:
        log.exception("dead_letter failed (%s): %s", source, reason)
        return False


__all__ = ["HEALTH_PATH", "INGEST_PATH", "METRIC_REPORTS_PATH", "make_http_app"]
