"""Fuzz: the power twin's OpenADR 3 HTTP receiver, ``POST /openadr3/events`` (twin.power.adapters.http, served by
aiohttp on loopback with fakes for the publisher and the dead-letter sink), seeded with the OpenADR fixtures and
mutated (bytes and JSON structure), with and without the bearer token.

Documented answers: 401 (no or wrong token: nothing published or dead-lettered), 413 (body over the limit),
400 (not JSON, too deep, not an acceptable event: the raw body dead-lettered once with a reason, the response
naming it), 202 (one GridEvent published, the response naming its id). 500 or any other status is a crash.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from twin.power.adapters.http import EVENTS_PATH, make_http_app

from ._support import FUZZ, json_mutated, mutated, tried
from .test_fuzz_openadr_slurm import JSON, OPENADR

TOKEN = "fuzz-token"
MAX_BODY = 4096
_LOOP = asyncio.new_event_loop()
PUBLISHED: list = []
DEAD: list[tuple[bytes, str, str]] = []


async def _publish(msg) -> None:
    PUBLISHED.append(msg)


async def _dead_letter(raw: bytes, reason: str, source: str) -> None:
    DEAD.append((raw, reason, source))


async def _start() -> TestClient:
    app = make_http_app(publish=_publish, dead_letter=_dead_letter, token=TOKEN, max_body_bytes=MAX_BODY)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


CLIENT = _LOOP.run_until_complete(_start())


@pytest.fixture(scope="module", autouse=True)
def _close():
    yield
    _LOOP.run_until_complete(CLIENT.close())
    _LOOP.close()


def post(body: bytes, token: str | None) -> None:
    PUBLISHED.clear()
    DEAD.clear()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"

    async def run():
        resp = await CLIENT.post(EVENTS_PATH, data=body, headers=headers)
        return resp.status, await resp.read()

    status, answer = _LOOP.run_until_complete(run())
    assert status in (202, 400, 401, 413), f"HTTP {status}: {answer[:300]!r}"
    if status == 401:
        assert token != TOKEN and not PUBLISHED and not DEAD
        return
    assert token == TOKEN
    if status == 413:
        assert len(body) > MAX_BODY and not PUBLISHED and not DEAD
        return
    doc = json.loads(answer)
    if status == 400:
        assert not PUBLISHED and len(DEAD) == 1 and DEAD[0][0] == body and DEAD[0][1], DEAD
        assert "reason" in doc
        tried("power_http_400")
        return
    assert len(PUBLISHED) == 1 and not DEAD and doc["event_id"] == PUBLISHED[0].event_id
    PUBLISHED[0].SerializeToString()
    tried("power_http_202")


TOKENS = st.sampled_from([TOKEN, TOKEN, TOKEN, TOKEN, None, "wrong", ""])


@FUZZ
@given(st.data(), TOKENS)
def test_openadr_http_answers_only_the_documented_statuses(data, token) -> None:
    tried("power_http")
    raw = data.draw(st.sampled_from(OPENADR), label="fixture")
    kind = data.draw(st.sampled_from(["as is", "structural", "bytes"]), label="mutation")
    if kind == "structural":
        raw = json.dumps(json_mutated(data, json.loads(raw), JSON)).encode()
    elif kind == "bytes":
        raw = mutated(data, raw)
    post(raw, token)


@FUZZ
@given(st.one_of(st.binary(max_size=200), JSON.map(lambda v: json.dumps(v).encode()),
                 st.integers(MAX_BODY - 2, MAX_BODY + 2).map(lambda n: b"[" * n)))
def test_openadr_http_any_body_answers_only_the_documented_statuses(body) -> None:
    tried("power_http")
    post(body, TOKEN)
