"""The HTTP receiver base every push feed uses (aiohttp): bearer token, body-size and JSON-depth
limits, optional TLS, and one way to read a JSON body that never raises anything but `BodyRejected`.

    receiver = HttpReceiver(app, HttpOptions(host="127.0.0.1", port=8081, cert...))
    await receiver.start(); ...; await receiver.stop()

    app = make_app(token)                                   # /healthz open, everything else needs the token
    app.router.add_post("/openadr3/events", handler)
    async def handler(request):
        raw, doc = await read_json(request)                 # BodyRejected(status, reason, raw) on bad input

A rejected body is the caller's to dead-letter (it has the raw bytes and the reason): the base
decides what is acceptable, the service decides where rejects go.
"""

from __future__ import annotations

import hmac
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from twin.core import limits

log = logging.getLogger("twin.core.http")

HEALTH_PATH = "/healthz"
# Deeper JSON than this is refused before parsing: no real feed nests anywhere near it (Redfish and
# OpenADR 3 documents nest < 10 levels), and CPython's json module recurses per level.
MAX_JSON_DEPTH = 64


class BodyRejected(Exception):
    """A request body the receiver refuses: HTTP `status`, a `reason` for the sender and the DLQ,
    and the `raw` bytes read (empty when the body was refused unread)."""

    def __init__(self, status: int, reason: str, raw: bytes = b"") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.raw = raw


@dataclass(frozen=True)
class HttpOptions:
    host: str = "127.0.0.1"
    port: int = 0
    max_body_bytes: int = limits.HTTP_MAX_BODY_BYTES
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls_cert_file and not self.tls_key_file:
            return None
        if not (self.tls_cert_file and self.tls_key_file):
            raise ValueError("HTTPS needs both a certificate file and a key file")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.tls_cert_file, self.tls_key_file)
        return ctx


def json_depth(raw: bytes, stop_at: int = MAX_JSON_DEPTH + 1) -> int:
    """Maximum nesting of arrays/objects in `raw` (strings skipped), counted without parsing;
    stops counting at `stop_at` so a hostile body costs one linear scan at most."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest >= stop_at:
                    return deepest
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def parse_json(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """UTF-8 JSON → Python, or BodyRejected(400, reason, raw); never any other exception."""
    depth = json_depth(raw, max_depth + 1)
    if depth > max_depth:
        raise BodyRejected(400, f"JSON nested deeper than {max_depth} levels", raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyRejected(400, f"body is not UTF-8: {exc.reason} at byte {exc.start}", raw) from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BodyRejected(400, f"body is not JSON: {str(exc)[:200]}", raw) from None


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The body, or BodyRejected(413) unread when its declared or actual size exceeds `max_bytes`."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyRejected(413, f"body of {request.content_length} bytes exceeds the {max_bytes}-byte limit")
    try:
        return await request.content.readexactly(request.content_length) if request.content_length \
            else await _read_capped(request, max_bytes)
    except web.HTTPRequestEntityTooLarge:
        raise BodyRejected(413, f"body exceeds the {max_bytes}-byte limit") from None
    except (ConnectionError, EOFError) as exc:  # asyncio.IncompleteReadError is an EOFError
        raise BodyRejected(400, f"body ended early: {type(exc).__name__}") from None


async def _read_capped(request: web.Request, max_bytes: int) -> bytes:
    chunks, total = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > max_bytes:
            raise BodyRejected(413, f"body exceeds the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, *, max_bytes: int | None = None,
                    max_depth: int = MAX_JSON_DEPTH) -> tuple[bytes, Any]:
    """(raw bytes, parsed JSON) of a request body within the app's size limit and `max_depth`."""
    limit = max_bytes or request.app.get(MAX_BODY_KEY, limits.HTTP_MAX_BODY_BYTES)
    raw = await read_body(request, limit)
    return raw, parse_json(raw, max_depth=max_depth)


MAX_BODY_KEY = web.AppKey("twin_max_body_bytes", int)


def bearer_middleware(token: str, *, open_paths: tuple[str, ...] = (HEALTH_PATH,),
                      unauthorized: Callable[[], web.StreamResponse] | None = None):
    """401 unless `Authorization: Bearer <token>` matches (constant-time); nothing is read before."""
    if not token:
        raise ValueError("an empty bearer token would let anyone in; configure a token")
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if request.path in open_paths:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            if unauthorized is not None:
                return unauthorized()
            return web.json_response({"error": "missing or wrong bearer token"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return check


def make_app(token: str, *, max_body_bytes: int = limits.HTTP_MAX_BODY_BYTES,
             unauthorized: Callable[[], web.StreamResponse] | None = None) -> web.Application:
    """An aiohttp app with token auth on every path but /healthz, and the body limit recorded for
    `read_json` (aiohttp's own client_max_size is set one byte above it as a backstop)."""
    if max_body_bytes <= 0:
        raise ValueError("max_body_bytes must be positive")
    app = web.Application(middlewares=[bearer_middleware(token, unauthorized=unauthorized)],
                          client_max_size=max_body_bytes + 1)
    app[MAX_BODY_KEY] = max_body_bytes

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get(HEALTH_PATH, health)
    return app


class HttpReceiver:
    """Runs an aiohttp app on host:port (HTTPS when the options carry a certificate)."""

    def __init__(self, app: web.Application, options: HttpOptions) -> None:
        self.app = app
        self.options = options
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        o = self.options
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, o.host, o.port, ssl_context=o.ssl_context())
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        server = site._server  # aiohttp exposes the bound sockets only here
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else o.port
        log.info("HTTP%s receiver on %s:%d", "S" if o.tls_cert_file else "", o.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
