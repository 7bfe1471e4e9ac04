"""HTTP receiver for OpenADR 3 events: ``POST /openadr3/events`` (a VTN or an operator pushes them).

Built on the kit's receiver base (`twin.core.http`: bearer-token middleware, body-size and JSON-depth
limits, ``read_json`` raising only ``BodyRejected``). This module adds the route, the schema check
(``twin.power.adapters.openadr.parse_event``) and where things go:

    401  missing or wrong token (nothing read, nothing dead-lettered)
    413  body larger than the limit (not read, not dead-lettered)
    400  not JSON / too deep / not an acceptable OpenADR 3 event: the raw body goes to
         ``grid.events.v1.dlq`` first (headers ``dlq_reason`` = "<json path>: <why>", ``dlq_source_topic``
         = "openadr3-http:/openadr3/events"), and the response carries the same field and reason
    202  the event was published on grid.events.v1 (key = event id) as a twin.power.v1.GridEvent;
         the body names the event id and its intervals; the plan follows on power.plans.v1
    503  publishing or dead-lettering failed: nothing acknowledged, the VTN should retry

Payload ``"cancelled": true`` (not part of OpenADR's event object; an operator's convenience) marks the
event id as withdrawn; a VTN withdraws an event by deleting it, which it reports with the same id.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from twin.core import limits
from twin.core.http import BodyRejected, make_app, read_json
from twin.power.adapters import codec
from twin.power.adapters.openadr import OpenAdrRejected, parse_event
from twin.power.v1 import power_pb2 as pb

log = logging.getLogger("twin.power.http")

EVENTS_PATH = "/openadr3/events"
SOURCE = f"openadr3-http:{EVENTS_PATH}"

Publish = Callable[[pb.GridEvent], Awaitable[None]]
DeadLetter = Callable[[bytes, str, str], Awaitable[None]]


def make_http_app(*, publish: Publish, dead_letter: DeadLetter, token: str,
                  max_body_bytes: int = limits.HTTP_MAX_BODY_BYTES) -> web.Application:
    app = make_app(token, max_body_bytes=max_body_bytes)

    async def reject(raw: bytes, field: str, reason: str) -> web.Response:
        full = f"{field}: {reason}" if field else reason
        try:
            await dead_letter(raw, full, SOURCE)
        except Exception:
            log.exception("dead_letter failed: %s", full)
            return _unavailable("dead-letter sink")
        return web.json_response({"error": "rejected", "field": field, "reason": reason}, status=400)

    async def events(request: web.Request) -> web.Response:
        try:
            raw, doc = await read_json(request)
        except BodyRejected as exc:
            if exc.status == 413:
                return web.json_response({"error": exc.reason}, status=413)
            return await reject(exc.raw, "", exc.reason)
        try:
            event = parse_event(doc)
        except OpenAdrRejected as exc:
            return await reject(raw, exc.field, exc.reason)
        cancelled = isinstance(doc, dict) and doc.get("cancelled") is True
        msg = codec.grid_event_to_proto(event, cancelled=cancelled)
        try:
            await publish(msg)
        except Exception:
            log.exception("publish failed for grid event %s", event.event_id)
            return _unavailable("publisher")
        return web.json_response({"event_id": event.event_id, "intervals": len(event.intervals),
                                  "cancelled": cancelled,
                                  "outcome": "published on grid.events.v1; a plan follows on power.plans.v1"},
                                 status=202)

    app.router.add_post(EVENTS_PATH, events)
    return app


def _unavailable(what: str) -> web.Response:
    return web.json_response({"error": f"the {what} is unavailable; nothing was accepted"}, status=503,
                             headers={"Retry-After": "5"})
