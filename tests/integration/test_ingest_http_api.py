"""The Redfish push endpoint on a real aiohttp server (127.0.0.1, ephemeral port), real HTTP client.

publish/dead_letter are in-memory collectors here: the Kafka wiring belongs to the ingest app.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from twin.core.clock import FixedClock
from twin.core.validation_data import validation_dir
from twin.ingest.adapters.http_api import INGEST_PATH, METRIC_REPORTS_PATH, make_http_app
from twin.telemetry.v1 import telemetry_pb2

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RACKS = {
    "/redfish/v1/Chassis/Tray_1": "r1-0002",
    "/redfish/v1/Chassis/Tray_2": "r1-0002",
    "/redfish/v1/ThermalEquipment/CDUs/1": ["r1-0000", "r1-0001"],
}


def feed(name: str) -> bytes:
    return (validation_dir() / "feeds" / "redfish" / name).read_bytes()


@dataclass
class Sinks:
    published: list[telemetry_pb2.RackTelemetryBatch] = field(default_factory=list)
    dead: list[tuple[bytes, str, str]] = field(default_factory=list)
    fail_publish: bool = False

    async def publish(self, batch: telemetry_pb2.RackTelemetryBatch) -> None:
        if self.fail_publish:
            raise ConnectionError("broker unreachable")
        self.published.append(batch)

    async def dead_letter(self, raw: bytes, reason: str, source: str) -> None:
        self.dead.append((raw, reason, source))


@dataclass
class Api:
    sinks: Sinks
    session: aiohttp.ClientSession
    server: TestServer

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    sinks = Sinks()
    app = make_http_app(publish=sinks.publish, dead_letter=sinks.dead_letter, token=TOKEN, rack_of_resource=RACKS,
                        clock=FixedClock(T0), max_body_bytes=20_000, site_id="site-a")
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        yield Api(sinks, session, server)


async def test_healthz_needs_no_token(api: Api):
    async with api.session.get(api.url("/healthz")) as resp:
        assert resp.status == 200 and await resp.json() == {"status": "ok"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                                     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}])
async def test_missing_or_wrong_token_is_401_redfish_error(api: Api, headers):
    async with api.session.post(api.url(METRIC_REPORTS_PATH), data=feed("dsp2046-metricreport.json"),
                                headers=headers) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        body = await resp.json()
    assert body["error"]["code"] == "Base.1.8.NoValidSession"
    assert body["error"]["@Message.ExtendedInfo"][0]["MessageId"] == "Base.1.8.NoValidSession"
    assert api.sinks.published == [] and api.sinks.dead == []  # unauthenticated bodies never reach the DLQ


async def test_metric_report_is_published_then_accepted(api: Api):
    async with api.session.post(api.url(METRIC_REPORTS_PATH), data=feed("telemetry-metricreport-platformpowerusage.json"),
                                headers={**AUTH, "Content-Type": "application/json"}) as resp:
        assert resp.status == 202
        body = await resp.json()
    assert body == {"accepted_batches": 3, "racks": ["r1-0002"], "rejected": []}
    assert [(b.rack_id, b.site_id, b.source, list(b.rack.pdu_input_power_w)) for b in api.sinks.published] == [
        ("r1-0002", "site-a", "redfish", [206.0]), ("r1-0002", "site-a", "redfish", [212.0]),
        ("r1-0002", "site-a", "redfish", [214.0])]
    assert api.sinks.published[0].sample_time.ToJsonString() == "2016-11-08T17:25:00Z"
    assert api.sinks.dead == []


async def test_partially_rejected_report_is_accepted_and_dead_lettered(api: Api):
    raw = feed("telemetry-metricreport-powermetricstats.json")
    async with api.session.post(api.url(METRIC_REPORTS_PATH), data=raw, headers=AUTH) as resp:
        assert resp.status == 202
        body = await resp.json()
    assert body["accepted_batches"] == 1 and len(body["rejected"]) == 7
    assert list(api.sinks.published[0].rack.pdu_input_power_w) == [88.0]
    ((dead_raw, reason, source),) = api.sinks.dead
    assert dead_raw == raw and source == f"redfish-http:{METRIC_REPORTS_PATH}"
    assert reason.startswith("partially accepted (1 batch(es) published): ")
    assert "Tray_3" in reason and "no rack mapping" in reason


async def test_generic_ingest_of_a_coolant_connector(api: Api):
    async with api.session.post(api.url(INGEST_PATH), data=feed("cdu-secondary-coolantconnector.json"),
                                headers=AUTH) as resp:
        assert resp.status == 202
        assert (await resp.json())["racks"] == ["r1-0000", "r1-0001"]
    rs = [(b.rack_id, b.rack.coolant_supply_temp_c, b.rack.coolant_return_temp_c, b.rack.coolant_flow_lpm)
          for b in api.sinks.published]
    assert rs == [("r1-0000", 30.0, 48.0, 42.0), ("r1-0001", 30.0, 48.0, 42.0)]
    assert api.sinks.published[0].sample_time.ToJsonString() == "2026-01-02T03:04:05Z"  # the clock's now


async def test_body_that_is_not_json_is_400_and_dead_lettered(api: Api):
    raw = b'{"@odata.type": "#MetricReport.v1_5_2.MetricReport", "MetricValues": ['
    async with api.session.post(api.url(METRIC_REPORTS_PATH), data=raw, headers=AUTH) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["error"]["code"] == "Base.1.8.MalformedJSON"
    assert body["error"]["message"].startswith("body: body is not JSON: Expecting value")
    assert api.sinks.dead == [(raw, body["error"]["message"], f"redfish-http:{METRIC_REPORTS_PATH}")]
    assert api.sinks.published == []


async def test_understood_but_unmappable_resource_is_400_with_reason(api: Api):
    raw = feed("cdu-pump-2.json")
    async with api.session.post(api.url(INGEST_PATH), data=raw, headers=AUTH) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert "Pump speed (PumpSpeedPercent) has no RackSamples field" in body["error"]["message"]
    assert api.sinks.dead[0][0] == raw and "PumpSpeedPercent" in api.sinks.dead[0][1]


async def test_metric_reports_endpoint_takes_only_metric_reports(api: Api):
    raw = feed("cdu-secondary-coolantconnector.json")  # mappable, but on the wrong endpoint
    async with api.session.post(api.url(METRIC_REPORTS_PATH), data=raw, headers=AUTH) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["error"]["message"].startswith("this endpoint takes MetricReport resources, got CoolantConnector")
    assert api.sinks.published == [] and len(api.sinks.dead) == 1


async def test_huge_body_is_413(api: Api):
    huge = b'{"pad": "' + b"x" * 50_000 + b'"}'
    async with api.session.post(api.url(INGEST_PATH), data=huge, headers=AUTH) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["message"] == "Request body larger than 20000 bytes."

    async def chunks():  # no Content-Length: the server must still stop at the limit
        for _ in range(50):
            yield b"x" * 1000

    async with api.session.post(api.url(INGEST_PATH), data=chunks(), headers=AUTH) as resp:
        assert resp.status == 413
    assert api.sinks.dead == [] and api.sinks.published == []


async def test_publish_failure_is_503_and_not_acknowledged(api: Api):
    api.sinks.fail_publish = True
    async with api.session.post(api.url(METRIC_REPORTS_PATH), data=feed("dsp2046-metricreport.json"),
                                headers=AUTH) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "5"
        assert (await resp.json())["error"]["code"] == "Base.1.8.ServiceTemporarilyUnavailable"
    assert api.sinks.dead == []


def test_empty_token_is_refused():
    sinks = Sinks()
    with pytest.raises(ValueError, match="empty bearer token"):
        make_http_app(publish=sinks.publish, dead_letter=sinks.dead_letter, token="", rack_of_resource=RACKS,
                      clock=FixedClock(T0))


async def test_deeply_nested_json_is_400_with_reason_and_dead_lettered():
    """Issue 8 item 2: 100 000 nested '[' used to crash the parser (HTTP 500, traceback, no DLQ record)."""
    sinks = Sinks()
    app = make_http_app(publish=sinks.publish, dead_letter=sinks.dead_letter, token=TOKEN, rack_of_resource=RACKS,
                        clock=FixedClock(T0), site_id="site-a")  # the default body limit (1 MB)
    raw = b"[" * 100_000
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        async with session.post(str(server.make_url(INGEST_PATH)), data=raw, headers=AUTH) as resp:
            assert resp.status == 400
            body = await resp.json()
    assert body["error"]["code"] == "Base.1.8.MalformedJSON"
    assert "nested deeper than 64 levels" in body["error"]["message"]
    assert sinks.dead == [(raw, body["error"]["message"], f"redfish-http:{INGEST_PATH}")]
    assert sinks.published == []


async def test_accepted_response_names_the_batch_keys_and_where_the_outcome_appears(api: Api):
    async with api.session.post(api.url(METRIC_REPORTS_PATH), data=feed("telemetry-metricreport-platformpowerusage.json"),
                                headers=AUTH) as resp:
        assert resp.status == 202
        keys = json.loads(resp.headers["Twin-Batch-Keys"])
        outcome = resp.headers["Twin-Outcome"]
    assert keys == [["r1-0002", "2016-11-08T17:25:00+00:00", 0], ["r1-0002", "2016-11-08T18:25:00+00:00", 0],
                    ["r1-0002", "2016-11-08T19:25:00+00:00", 0]]
    assert "telemetry_batches" in outcome and "facility.telemetry.v1.dlq" in outcome and "dlq_reason" in outcome
