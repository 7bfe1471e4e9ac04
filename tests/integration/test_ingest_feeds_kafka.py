"""The ingest app's external feeds end to end in-process: HTTP receiver and DCGM scraper → Kafka → PostgreSQL.

Real broker (Tansu or TWIN_KAFKA_BOOTSTRAP), real PostgreSQL (fresh database per test), real HTTP on
127.0.0.1. Feeds publish RackTelemetryBatch protos into the source topic; the same app consumes them,
so these rows went through validation, dedupe and the ledger like any Kafka batch.

Isolation as in test_ingest_pipeline.py: unique topic names (registry type + partitions), a unique
consumer group and a fresh database per test.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import psycopg
import pytest
from test_ingest_pipeline import read_all, running

from twin.core import topics
from twin.core.envelope import header
from twin.core.testing.kafka import free_port
from twin.core.validation_data import validation_dir
from twin.facility_sim.adapters.publisher import MemoryPublisher
from twin.facility_sim.app import FacilitySim, SimConfig
from twin.ingest.adapters.http_api import INGEST_PATH, METRIC_REPORTS_PATH
from twin.ingest.app import IngestApp, IngestConfig, load_rack_map

pytestmark = pytest.mark.timeout(180)

TOKEN = "feeds-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The rack PDU of the feed files measures rack su1-0003 (3 phases, like every dgx-h100-su rack);
# the trays of the telemetry metric reports sit in su1-0002.
RACK_MAP = {
    "/redfish/v1/PowerEquipment/RackPDUs/1": "su1-0003",
    "/redfish/v1/Chassis/Tray_1": "su1-0002",
    "/redfish/v1/Chassis/Tray_2": "su1-0002",
}


def feed(name: str) -> bytes:
    return (validation_dir() / "feeds" / "redfish" / name).read_bytes()


def redated(report: bytes) -> bytes:
    """The metric report with its timestamps moved to the last minutes, their spacing kept."""
    doc = json.loads(report)
    stamps = sorted({datetime.fromisoformat(v["Timestamp"]) for v in doc["MetricValues"]})
    shift = datetime.now(UTC) - timedelta(minutes=1) - stamps[-1]
    for v in doc["MetricValues"]:
        v["Timestamp"] = (datetime.fromisoformat(v["Timestamp"]) + shift).isoformat()
    return json.dumps(doc).encode()


def rows(url: str, query: str, params=()):
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


async def poll_rows(url: str, query: str, want, timeout_s: float = 30.0, params=()):
    """Re-run `query` until `want(result)` holds (bounded); returns the last result."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        got = await asyncio.to_thread(rows, url, query, params)
        if want(got) or loop.time() > deadline:
            return got
        await asyncio.sleep(0.2)


async def wait_ready(app: IngestApp, task: asyncio.Task, timeout_s: float = 30.0) -> None:
    waiter = asyncio.create_task(app.ready.wait())
    done, _ = await asyncio.wait([waiter, task], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task in done:
        task.result()  # raises what stopped the app
    assert app.ready.is_set(), "ingest consumer did not start"


async def wait_http(url: str, timeout_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if loop.time() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout_s}s")
            await asyncio.sleep(0.1)


@pytest.fixture
def base_config(kafka_bootstrap, fresh_database, unique_topic) -> IngestConfig:
    return IngestConfig(
        kafka_bootstrap=kafka_bootstrap, database_url=fresh_database, facility="dgx-h100-su",
        group_id=f"ingest-{uuid.uuid4().hex[:8]}", source_topic=unique_topic(topics.FACILITY_TELEMETRY),
        samples_topic=unique_topic(topics.TELEMETRY_SAMPLES), max_records=50, status_interval_s=5.0)


def test_rack_map_file_json_and_yaml(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(RACK_MAP))
    (tmp_path / "m.yaml").write_text("/redfish/v1/ThermalEquipment/CDUs/1: [su1-0000, su1-0001]\n"
                                     "/redfish/v1/Chassis/PDU: su1-0000\n")
    assert load_rack_map(tmp_path / "m.json") == RACK_MAP
    assert load_rack_map(tmp_path / "m.yaml") == {"/redfish/v1/ThermalEquipment/CDUs/1": ["su1-0000", "su1-0001"],
                                                  "/redfish/v1/Chassis/PDU": "su1-0000"}
    assert load_rack_map(None) == {}
    (tmp_path / "bad.yaml").write_text("- just a list\n")
    with pytest.raises(ValueError, match="expected an object"):
        load_rack_map(tmp_path / "bad.yaml")


async def test_http_receiver_without_token_refuses_to_start_and_consumer_runs(base_config, caplog):
    port = free_port()
    cfg = IngestConfig(**{**base_config.__dict__, "http_port": port, "http_host": "127.0.0.1",
                          "redfish_token": None})
    app = IngestApp(cfg)
    async with running(app) as task:
        await wait_ready(app, task)
        await asyncio.sleep(0.5)
        assert not task.done()
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz"):
                pass
    assert any("HTTP receiver NOT started" in r.getMessage() and "INGEST_REDFISH_TOKEN" in r.getMessage()
               for r in caplog.records)


async def test_redfish_post_lands_in_telemetry_rack_and_rejects_go_to_dlq(base_config, tmp_path):
    map_file = tmp_path / "redfish-map.json"
    map_file.write_text(json.dumps(RACK_MAP))
    port = free_port()
    cfg = IngestConfig(**{**base_config.__dict__, "http_port": port, "http_host": "127.0.0.1",
                          "redfish_token": TOKEN, "redfish_map": str(map_file)})
    url = base_config.database_url
    base = f"http://127.0.0.1:{port}"
    garbage = b"\x00{not json at all"
    report = feed("telemetry-metricreport-platformpowerusage.json")
    app = IngestApp(cfg)
    async with running(app) as task:
        await wait_ready(app, task)
        await wait_http(base + "/healthz")
        async with aiohttp.ClientSession() as session:
            # wrong token: 401, nothing published, nothing dead-lettered
            async with session.post(base + INGEST_PATH, data=feed("pdu-rackpdu1-mains-ac1.json"),
                                    headers={"Authorization": "Bearer nope"}) as resp:
                assert resp.status == 401
            # the real rack-PDU mains circuit (3 phases, no timestamp of its own → received time)
            async with session.post(base + INGEST_PATH, data=feed("pdu-rackpdu1-mains-ac1.json"),
                                    headers={**AUTH, "Content-Type": "application/json"}) as resp:
                assert resp.status == 202, await resp.text()
                assert await resp.json() == {"accepted_batches": 1, "racks": ["su1-0003"], "rejected": []}
            got = await poll_rows(url, "SELECT rack_id, pdu_l1_power_w, pdu_l2_power_w, pdu_l3_power_w, "
                                       "inlet_air_temp_c FROM telemetry_rack", lambda r: len(r) >= 1)
            assert got == [("su1-0003", 198.4, 231.5, 58.1, None)]
            # garbage: 400, the raw body in the DLQ with a reason
            async with session.post(base + INGEST_PATH, data=garbage, headers=AUTH) as resp:
                assert resp.status == 400
                body = await resp.json()
                assert "not JSON" in body["error"]["message"]
            # a real MetricReport maps (202) but its 2016 timestamps and 1-value (total) power fail
            # the real report is dated 2016: accepted over HTTP, dead-lettered by the consumer's time check
            async with session.post(base + METRIC_REPORTS_PATH, data=report, headers=AUTH) as resp:
                assert resp.status == 202
                assert (await resp.json())["accepted_batches"] == 3
            # the same report re-dated to the last minutes: three rack totals (two trays summed) stored
            async with session.post(base + METRIC_REPORTS_PATH, data=redated(report), headers=AUTH) as resp:
                assert resp.status == 202
                assert (await resp.json())["accepted_batches"] == 3
            await poll_rows(url, "SELECT count(*) FROM telemetry_rack WHERE rack_id = 'su1-0002'",
                            lambda got: got == [(3,)])
        dlq = await read_all(cfg.kafka_bootstrap, cfg.source_topic.dlq, expected=4,
                             partitions=cfg.source_topic.partitions)
    assert rows(url, "SELECT count(*) FROM telemetry_rack") == [(4,)]
    assert rows(url, "SELECT pdu_input_power_w, pdu_l1_power_w FROM telemetry_rack WHERE rack_id = 'su1-0002' "
                     "ORDER BY time") == [(206.0, None), (212.0, None), (214.0, None)]
    assert rows(url, "SELECT rack_id, gpu_rows FROM telemetry_batches WHERE rack_id = 'su1-0003'") == [("su1-0003", 0)]

    by_source = {}
    for rec in dlq:
        by_source.setdefault(header(rec.headers, "dlq_source_topic").decode(), []).append(rec)
    assert set(by_source) == {f"redfish-http:{INGEST_PATH}", cfg.source_topic.name}
    [raw_rec] = by_source[f"redfish-http:{INGEST_PATH}"]
    assert raw_rec.value == garbage
    assert raw_rec.key is None
    assert header(raw_rec.headers, "dlq_source").decode() == f"redfish-http:{INGEST_PATH}"
    assert "body is not JSON" in header(raw_rec.headers, "dlq_reason").decode()
    assert header(raw_rec.headers, "dlq_partition") == b"-1" and header(raw_rec.headers, "dlq_time")
    invalid = by_source[cfg.source_topic.name]
    assert len(invalid) == 3
    for rec in invalid:
        reason = header(rec.headers, "dlq_reason").decode()
        assert reason.startswith("validation: ") and "more than 7 days before now" in reason, reason
        assert "pdu_input_power_w" not in reason, "one value is a valid rack total"
        assert rec.key == b"su1-0002"


async def test_dcgm_scrape_of_facility_sim_lands_in_telemetry_gpu(base_config):
    # facility-sim's own /metrics endpoint (its aiohttp server on an ephemeral port), one tick simulated
    sim = FacilitySim(SimConfig(facility="dgx-h100-su", racks=1, metrics_port=0, metrics_racks=1, seed=7),
                      MemoryPublisher(keep=False))
    sim.metrics.host = "127.0.0.1"
    await sim.start()
    try:
        await sim.tick(sim.clock.now())
        metrics_url = f"http://127.0.0.1:{sim.metrics.port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(metrics_url) as resp:
            assert resp.status == 200
            served = await resp.text()
        cfg = IngestConfig(**{**base_config.__dict__, "dcgm_urls": (metrics_url,), "dcgm_interval_s": 0.5})
        url = cfg.database_url
        app = IngestApp(cfg)
        async with running(app) as task:
            await wait_ready(app, task)
            got = await poll_rows(url, "SELECT count(DISTINCT time) FROM telemetry_gpu", lambda r: r[0][0] >= 2)
            assert got[0][0] >= 2, "expected at least two scrapes stored"
    finally:
        await sim.stop()

    def served_value(metric: str, host: str, gpu: int) -> float:
        m = re.search(rf'^{metric}{{gpu="{gpu}",[^}}]*Hostname="{host}"[^}}]*}} (\S+)$', served, re.M)
        assert m, (metric, host, gpu)
        return float(m.group(1))

    # every scrape stores all 32 GPUs of rack su1-0000 (4 nodes × 8)
    per_time = rows(url, "SELECT time, count(*), count(DISTINCT node_id) FROM telemetry_gpu GROUP BY time")
    assert per_time and all(n == 32 and nodes == 4 for _, n, nodes in per_time)
    assert rows(url, "SELECT DISTINCT rack_id FROM telemetry_gpu") == [("su1-0000",)]
    stored = rows(url, "SELECT node_id, gpu_index, power_w, gpu_temp_c, sm_clock_mhz, util_gpu_pct, tensor_active, "
                       "ecc_sbe_total FROM telemetry_gpu WHERE node_id = 'su1-0000-n01' ORDER BY time, gpu_index")
    assert len(stored) == 8 * len(per_time)
    for node, gpu, power, temp, clock, util, tensor, sbe in stored:
        assert (power, temp, clock, util, tensor, sbe) == (
            served_value("DCGM_FI_DEV_POWER_USAGE", node, gpu), served_value("DCGM_FI_DEV_GPU_TEMP", node, gpu),
            served_value("DCGM_FI_DEV_SM_CLOCK", node, gpu), served_value("DCGM_FI_DEV_GPU_UTIL", node, gpu),
            served_value("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", node, gpu),
            served_value("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", node, gpu)), (node, gpu)
    assert rows(url, "SELECT DISTINCT source_topic FROM telemetry_batches") == [(base_config.source_topic.name,)]


async def test_resent_redfish_report_with_a_corrected_value_is_dead_lettered_not_dropped(base_config, tmp_path):
    """Issue 8 item 6: the same report sent again is a duplicate (dropped, counted); sent again with one
    corrected value, that rack/timestamp batch is kept in the DLQ with a "conflict:" reason."""
    map_file = tmp_path / "redfish-map.json"
    map_file.write_text(json.dumps(RACK_MAP))
    port = free_port()
    cfg = IngestConfig(**{**base_config.__dict__, "http_port": port, "http_host": "127.0.0.1",
                          "redfish_token": TOKEN, "redfish_map": str(map_file)})
    url = base_config.database_url
    base = f"http://127.0.0.1:{port}"
    report = redated(feed("telemetry-metricreport-platformpowerusage.json"))
    doc = json.loads(report)
    corrected_ts = doc["MetricValues"][0]["Timestamp"]
    doc["MetricValues"][0]["MetricValue"] = str(float(doc["MetricValues"][0]["MetricValue"]) + 1000)
    corrected = json.dumps(doc).encode()
    app = IngestApp(cfg)
    async with running(app) as task:
        await wait_ready(app, task)
        await wait_http(base + "/healthz")
        async with aiohttp.ClientSession() as session:
            for body in (report, report, corrected):
                async with session.post(base + METRIC_REPORTS_PATH, data=body, headers=AUTH) as resp:
                    assert resp.status == 202, await resp.text()
                await poll_rows(url, "SELECT count(*) FROM telemetry_rack", lambda got: got == [(3,)])
        dlq = await read_all(cfg.kafka_bootstrap, cfg.source_topic.dlq, expected=1,
                             partitions=cfg.source_topic.partitions)
        await poll_rows(url, "SELECT 1", lambda _: app.ingest_stats.duplicates >= 5)
    assert app.ingest_stats.stored_batches == 3 and app.ingest_stats.conflicts == 1
    assert app.ingest_stats.duplicates == 5  # the whole identical re-send and the two unchanged batches
    [rec] = dlq
    reason = header(rec.headers, "dlq_reason").decode()
    assert reason.startswith("conflict: batch rack_id=su1-0002 sample_time=") and "other values" in reason
    assert datetime.fromisoformat(reason.split("sample_time=")[1].split()[0]) == datetime.fromisoformat(corrected_ts)
    assert rec.key == b"su1-0002"
    # the stored values are the first ones (the conflict did not overwrite them)
    assert rows(url, "SELECT count(*) FROM telemetry_rack WHERE pdu_input_power_w > 1000") == [(0,)]
