"""The console's HTTP routes (aiohttp): read-only GETs without a token, plus the scenario buttons.

    GET /                   the page (static/index.html; its JS and CSS under /static/, no build step)
    GET /api/layout         the floor plan: halls → rows → racks, rack nameplates (JSON)
    GET /api/state          the current picture (JSON; what a new browser's first SSE frame carries)
    GET /api/events         server-sent events: `snapshot`, then `update` frames (one connection per browser)
    GET /api/history        site power and PUE from the database (?minutes=60, 1..1440)
    GET /healthz            liveness
    GET /api/scenarios      {demo, scenarios: [{name, description}], current: the last run (steps so far)}
    POST /api/scenarios/{name}          start a scenario (demo mode only; Authorization: Bearer <operator token>);
                                        body optional, at most 1 KiB of JSON: {"action": "run" | "restore"}
    POST /api/scenarios/{name}/restore  the same with action "restore" (undo what the run left in place)

The scenario routes answer, in this order: 404 when the console is not in demo mode (CONSOLE_DEMO: the
stack sets it only when it runs the facility simulator), 401 without the operator token, 400 for an
unknown scenario or a bad body, 413 for a body over the limit, 409 while a run is in progress, else
202 with the run ({id, name, action, status: "running", started_at}); its steps follow on /api/events.

Every response says `Content-Security-Policy: default-src 'self'`: the page loads nothing from
anywhere else (no CDN) and runs no inline script.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from twin.console.adapters.history import HistoryUnavailable
from twin.console.adapters.hub import Hub
from twin.console.adapters.scenarios import ACTIONS, Busy, ScenarioRunner
from twin.core.http import BodyRejected, read_json

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
KEEPALIVE_S = 15.0
HISTORY_MAX_MINUTES = 1440
SCENARIO_MAX_BODY_BYTES = 1024   # {"action": "restore"} is 21 bytes


@dataclass
class ConsoleRoutes:
    hub: Hub
    layout: dict[str, Any]
    static: Mapping[str, bytes]                    # file name → bytes (index.html, console.js, console.css)
    history: Callable[[int], Awaitable[dict[str, Any]]] | None
    history_minutes: int = 60
    info: Callable[[], dict[str, Any]] = dict      # shown in /api/state (topics, counters)
    scenarios: ScenarioRunner | None = None        # demo mode: the scenario buttons' runner
    operator_token: str | None = None              # what POST /api/scenarios/* must carry (demo mode)


def _static_response(name: str, body: bytes) -> web.Response:
    suffix = name[name.rfind("."):]
    resp = web.Response(body=body, content_type=CONTENT_TYPES.get(suffix, "application/octet-stream").split(";")[0],
                        charset="utf-8" if "charset" in CONTENT_TYPES.get(suffix, "") else None,
                        headers={"Cache-Control": "no-cache"})
    resp.enable_compression()
    return resp


def make_console_app(routes: ConsoleRoutes) -> web.Application:
    @web.middleware
    async def security(request: web.Request, handler):
        resp = await handler(request)
        resp.headers.update(SECURITY_HEADERS)
        return resp

    app = web.Application(middlewares=[security])
    layout_body = json.dumps(routes.layout, separators=(",", ":")).encode()

    async def index(_: web.Request) -> web.Response:
        return _static_response("index.html", routes.static["index.html"])

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in routes.static or name == "index.html":
            raise web.HTTPNotFound()
        return _static_response(name, routes.static[name])

    async def layout(_: web.Request) -> web.Response:
        resp = web.Response(body=layout_body, content_type="application/json")
        resp.enable_compression()
        return resp

    async def state(_: web.Request) -> web.Response:
        resp = web.json_response({**routes.hub.state.snapshot(), "info": routes.info()})
        resp.enable_compression()
        return resp

    async def history(request: web.Request) -> web.Response:
        raw = request.query.get("minutes", str(routes.history_minutes))
        try:
            minutes = int(raw)
        except ValueError:
            return web.json_response({"error": f"minutes must be an integer, got {raw!r}"}, status=400)
        if not 1 <= minutes <= HISTORY_MAX_MINUTES:
            return web.json_response({"error": f"minutes must be within 1..{HISTORY_MAX_MINUTES}"}, status=400)
        if routes.history is None:
            return web.json_response({"error": "no database configured"}, status=503)
        try:
            return web.json_response(await routes.history(minutes))
        except HistoryUnavailable as exc:
            return web.json_response({"error": str(exc)}, status=503)

    async def events(request: web.Request) -> web.StreamResponse:
        sub = routes.hub.subscribe()
        if sub is None:
            return web.json_response({"error": "too many browsers connected, or shutting down"}, status=503,
                                     headers={"Retry-After": "5"})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        resp.headers.update(SECURITY_HEADERS)
        try:
            await resp.prepare(request)
            await resp.write(b"retry: 2000\n\n")
            while True:
                try:
                    frame = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    frame = b": keepalive\n\n"
                if frame is None:
                    break
                await resp.write(frame)
        except ConnectionResetError:
            return resp  # the browser went away
        finally:
            routes.hub.unsubscribe(sub)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
        return resp

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def scenario_list(_: web.Request) -> web.Response:
        runner = routes.scenarios
        return web.json_response({"demo": runner is not None, "scenarios": runner.catalogue() if runner else [],
                                  "current": routes.hub.state.scenario if runner else None,
                                  "last_report": runner.last_report if runner else None})

    def error(status: int, message: str, **headers: str) -> web.Response:
        return web.json_response({"error": message}, status=status, headers=headers or None)

    async def scenario_start(request: web.Request) -> web.Response:
        runner, token = routes.scenarios, routes.operator_token
        if runner is None or not token:
            return error(404, "scenarios run only in demo mode (CONSOLE_DEMO=1 with CONSOLE_OPERATOR_TOKEN; "
                              "`make run` sets both when it runs the facility simulator)")
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, f"Bearer {token}".encode()):
            return error(401, "missing or wrong operator token (Authorization: Bearer <the stack's token>)",
                         **{"WWW-Authenticate": "Bearer"})
        name = request.match_info["name"]
        action = request.match_info.get("action") or "run"
        if name not in runner.catalogue_names():
            return error(400, f"unknown scenario {name!r} (one of {', '.join(runner.catalogue_names())})")
        if request.can_read_body:
            try:
                _, doc = await read_json(request, max_bytes=SCENARIO_MAX_BODY_BYTES, max_depth=2)
            except BodyRejected as exc:
                return error(exc.status, exc.reason)
            if not isinstance(doc, dict) or set(doc) - {"action"}:
                return error(400, 'the body must be a JSON object with at most the key "action"')
            if "action" in doc:
                if request.match_info.get("action") and doc["action"] != action:
                    return error(400, f"the body's action {doc['action']!r} contradicts the path's {action!r}")
                action = doc["action"]
            if action not in ACTIONS:
                return error(400, f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        try:
            run = runner.start(name, action=action)
        except Busy as exc:
            return web.json_response({"error": str(exc), "current": exc.current}, status=409)
        return web.json_response(run, status=202)

    async def on_shutdown(_: web.Application) -> None:
        routes.hub.close()
        if routes.scenarios is not None:
            await routes.scenarios.stop()

    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/layout", layout)
    app.router.add_get("/api/state", state)
    app.router.add_get("/api/events", events)
    app.router.add_get("/api/history", history)
    app.router.add_get("/healthz", health)
    app.router.add_get("/api/scenarios", scenario_list)
    app.router.add_post("/api/scenarios/{name}", scenario_start)
    app.router.add_post("/api/scenarios/{name}/{action:restore}", scenario_start)
    return app
