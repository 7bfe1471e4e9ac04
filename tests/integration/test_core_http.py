"""twin.core.http over real loopback HTTP: token, size and depth limits, health open."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from twin.core.http import BodyRejected, HttpOptions, HttpReceiver, make_app, read_json

TOKEN = "t0ken"


async def _receiver(max_body_bytes: int = 1000) -> tuple[HttpReceiver, list]:
    seen: list = []
    app = make_app(TOKEN, max_body_bytes=max_body_bytes)

    async def post(request: web.Request) -> web.Response:
        try:
            raw, doc = await read_json(request)
        except BodyRejected as exc:
            seen.append(("rejected", exc.reason, len(exc.raw)))
            return web.json_response({"error": exc.reason}, status=exc.status)
        seen.append(("ok", doc))
        return web.json_response({"ok": True}, status=202)

    app.router.add_post("/in", post)
    receiver = HttpReceiver(app, HttpOptions(host="127.0.0.1", port=0))
    await receiver.start()
    return receiver, seen


async def test_token_size_depth_and_health():
    receiver, seen = await _receiver()
    url = f"http://127.0.0.1:{receiver.port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz") as r:
                assert r.status == 200
            for headers in ({}, {"Authorization": "Bearer nope"}):
                async with http.post(f"{url}/in", data=b"{}", headers=headers) as r:
                    assert r.status == 401
            async with http.post(f"{url}/in", data=b"x" * 5000, headers=auth) as r:
                assert r.status == 413
            async with http.post(f"{url}/in", data=b"[" * 900, headers=auth) as r:
                assert r.status == 400 and "deeper than" in (await r.json())["error"]
            async with http.post(f"{url}/in", data=b'{"a": 1}', headers=auth) as r:
                assert r.status == 202
        # 401s never reach the handler; the 413 body is refused unread; the deep one is kept for the DLQ
        assert [(kind, size) for kind, *rest in seen for size in [rest[1] if kind == "rejected" else None]] == \
            [("rejected", 0), ("rejected", 900), ("ok", None)]
        assert "exceeds the 1000-byte limit" in seen[0][1]
        assert seen[-1] == ("ok", {"a": 1})
    finally:
        await receiver.stop()


async def test_https_receiver_refuses_plain_http_and_serves_tls(pki):
    import ssl

    app = make_app(TOKEN)
    receiver = HttpReceiver(app, HttpOptions(host="127.0.0.1", port=0, tls_cert_file=str(pki / "server.pem"),
                                             tls_key_file=str(pki / "server.key")))
    await receiver.start()
    try:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.get(f"http://127.0.0.1:{receiver.port}/healthz") as r:
                    plain_status = r.status
            except aiohttp.ClientError:
                plain_status = None
            assert plain_status != 200, "plain HTTP must not be served on the HTTPS port"
            ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
            async with http.get(f"https://127.0.0.1:{receiver.port}/healthz", ssl=ctx) as r:
                assert r.status == 200
    finally:
        await receiver.stop()
