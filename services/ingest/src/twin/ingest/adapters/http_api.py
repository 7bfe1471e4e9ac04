"""HTTP push endpoint for Redfish telemetry (aiohttp): BMCs/PDUs/CDUs or a Redfish event relay POST here.

Routes:
    POST /redfish/v1/TelemetryService/MetricReports   a MetricReport resource (DSP2046 #MetricReport)
    POST /redfish/v1/ingest                           any resource ``redfish.parse_redfish`` understands
    GET  /healthz                                     liveness, no auth

Every POST needs ``Authorization: Bearer <token>`` (compared with ``hmac.compare_digest``).
Responses (error bodies use the Redfish error format ``{"error": {"code", "message",
"@Message.ExtendedInfo": [...]}}``):

    401  missing or wrong token (nothing is read, nothing is dead-lettered)
    413  body larger than ``max_body_bytes`` (not read, not dead-lettered)
    400  not UTF-8 / not JSON / not an object / unknown type / nothing mappable — the raw body goes
         to ``dead_letter(raw, reason, source)`` first, and the same reason is in the response
    202  at least one batch was published (``publish`` returned for every batch); if parts of the
         body were rejected, the raw body also goes to ``dead_letter`` with those reasons, and the
         response lists them
    503  ``publish`` or ``dead_letter`` raised: nothing is acknowledged, the sender should retry
         (delivery is at-least-once; batches published before the failure may repeat)

``source`` given to ``dead_letter`` is ``"redfish-http:<path>"``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from twin.core.clock import Clock
from twin.ingest.adapters import codec
from twin.ingest.adapters.redfish import RackOfResource, as_rack_map, parse_redfish_bytes

log = logging.getLogger(__name__)

METRIC_REPORTS_PATH = "/redfish/v1/TelemetryService/MetricReports"
INGEST_PATH = "/redfish/v1/ingest"
HEALTH_PATH = "/healthz"

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


def make_http_app(
    *,
    publish: Publish,
    dead_letter: DeadLetter,
    token: str,
    rack_of_resource: RackOfResource,
    clock: Clock,
    max_body_bytes: int = 1_000_000,
    site_id: str = "",
) -> web.Application:
    """Build the aiohttp application. ``publish``/``dead_letter`` are awaited inline (see module doc)."""
    if not token:
        raise ValueError("an empty bearer token would let anyone in; configure a token")
    if max_body_bytes <= 0:
        raise ValueError("max_body_bytes must be positive")
    racks = as_rack_map(rack_of_resource)  # validate the mapping once, at startup
    expected = f"Bearer {token}".encode()

    def authorized(request: web.Request) -> bool:
        got = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(got, expected)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def handle(request: web.Request, *, only_type: str | None) -> web.Response:
        if not authorized(request):
            return _redfish_error(401, "NoValidSession", "Missing or invalid bearer token.",
                                  "Send 'Authorization: Bearer <token>'.",
                                  headers={"WWW-Authenticate": 'Bearer realm="twin-ingest"'})
        length = request.content_length
        if length is not None and length > max_body_bytes:
            return _too_large(max_body_bytes)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _too_large(max_body_bytes)
        if len(raw) > max_body_bytes:
            return _too_large(max_body_bytes)
        source = f"redfish-http:{request.path}"
        result = parse_redfish_bytes(raw, rack_of_resource=racks, received_time=clock.now(), site_id=site_id)
        if only_type and result.resource_type and result.resource_type != only_type:
            reason = (f"this endpoint takes {only_type} resources, got {result.resource_type}; "
                      f"POST other resources to {INGEST_PATH}")
            result.rack_batches.clear()
        else:
            reason = result.reason
        if not result.rack_batches:
            reason = reason or "nothing to ingest"
            if not await _dead_letter(dead_letter, raw, reason, source):
                return _unavailable("dead-letter sink")
            message_id = "MalformedJSON" if result.rejections and result.rejections[0].where == "body" else "GeneralError"
            return _redfish_error(400, message_id, reason,
                                  "Send a Redfish resource this service maps (see the ingest adapter docs).",
                                  extra=[str(r) for r in result.rejections][:50])
        for batch in result.rack_batches:
            try:
                await publish(codec.encode_batch(batch))
            except Exception:
                log.exception("publish failed for rack %s", batch.rack_id)
                return _unavailable("publisher")
        if result.rejections:
            partial = f"partially accepted ({len(result.rack_batches)} batch(es) published): {result.reason}"
            if not await _dead_letter(dead_letter, raw, partial, source):
                return _unavailable("dead-letter sink")
        body: dict[str, Any] = {
            "accepted_batches": len(result.rack_batches),
            "racks": sorted({b.rack_id for b in result.rack_batches}),
            "rejected": [str(r) for r in result.rejections],
        }
        return web.json_response(body, status=202, headers={"OData-Version": "4.0"})

    async def metric_reports(request: web.Request) -> web.Response:
        return await handle(request, only_type="MetricReport")

    async def ingest(request: web.Request) -> web.Response:
        return await handle(request, only_type=None)

    # client_max_size bounds bodies without Content-Length (chunked) as well.
    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_get(HEALTH_PATH, healthz)
    app.router.add_post(METRIC_REPORTS_PATH, metric_reports)
    app.router.add_post(INGEST_PATH, ingest)
    return app


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
