"""The console against the real broker (Tansu or TWIN_KAFKA_BOOTSTRAP) and real PostgreSQL, over real HTTP
on loopback: what is published on the twins' topics reaches a browser's event stream, what the power
twin stored comes back as history, and a (re)started console neither replays old records nor forgets
the stored picture.

Facility: the DGX H100 SU preset (8 racks su1-0000..su1-0007, site su-h100). Topics: the registry's,
under unique names (the session's broker is shared). The power twin's migrations are applied to a
fresh database with the cooling and jobs twins' ones, so the console reads the real `power_state` and
`*_state_latest` schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from twin.console.app import ConsoleApp, ConsoleConfig, registry_topics
from twin.cooling.adapters.repository import MIGRATIONS_DIR as COOLING_MIGRATIONS
from twin.cooling.v1 import cooling_pb2 as cpb
from twin.core import db, topics
from twin.core.facility import build_inventory, load_facility_spec
from twin.core.kafka import EventProducer
from twin.jobs.adapters.repository import MIGRATIONS_DIR as JOBS_MIGRATIONS
from twin.jobs.v1 import jobs_pb2 as jpb
from twin.power.adapters.repository import MIGRATIONS_DIR as POWER_MIGRATIONS
from twin.power.v1 import power_pb2 as pb

pytestmark = pytest.mark.timeout(180)

SITE = "su-h100"
WAIT_S = 30.0


def ts(t: float) -> Timestamp:
    out = Timestamp()
    out.FromNanoseconds(int(t * 1e9))
    return out


def rack_state(rack: str, t: float, input_w: float) -> pb.PowerState:
    return pb.PowerState(site_id=SITE, entity_id=rack, scope=pb.POWER_SCOPE_RACK, state_time=ts(t),
                         input_power_w=input_w, output_power_w=input_w * 0.97, loss_w=input_w * 0.03, powered=True,
                         source=pb.VALUE_SOURCE_MEASURED, rack=pb.RackPowerDetail(gpu_power_w=input_w * 0.6))


@pytest.fixture
async def power_db(fresh_database: str) -> AsyncIterator[str]:
    pool = await db.open_pool(fresh_database, max_size=2)
    try:
        for name, folder in (("power", POWER_MIGRATIONS), ("cooling", COOLING_MIGRATIONS), ("jobs", JOBS_MIGRATIONS)):
            await db.apply_migrations(pool, name, folder)
    finally:
        await pool.close()
    yield fresh_database


async def execute(url: str, query: str, rows: list[tuple]) -> None:
    pool = await db.open_pool(url, max_size=1)
    try:
        async with pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.executemany(query, rows)
            await conn.commit()
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def running(cfg: ConsoleConfig) -> AsyncIterator[ConsoleApp]:
    app = ConsoleApp(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    ready = asyncio.create_task(app.ready.wait())
    await asyncio.wait([task, ready], timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises why it ended
    assert app.ready.is_set(), f"console not ready within {WAIT_S}s"
    try:
        yield app
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)
        ready.cancel()


async def sse_frames(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, dict]]:
    """(event, data) per server-sent event frame; comments and `retry:` lines are skipped."""
    event, data = "message", []
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


async def next_frame(frames: AsyncIterator[tuple[str, dict]]) -> tuple[str, dict]:
    return await asyncio.wait_for(anext(frames), WAIT_S)


def by_id(frame: dict, section: str) -> dict[str, dict]:
    return {s["id"]: s for s in frame["sections"].get(section, [])}


@pytest.fixture
def config(kafka_bootstrap: str, power_db: str, unique_topic) -> ConsoleConfig:
    return ConsoleConfig(kafka_bootstrap=kafka_bootstrap, database_url=power_db, facility="dgx-h100-su", http_port=0,
                         flush_interval_s=0.1, status_interval_s=60,
                         topics=tuple(unique_topic(t) for t in registry_topics()))


def topic_of(cfg: ConsoleConfig, registry_topic: topics.Topic) -> topics.Topic:
    return next(t for t in cfg.topics if t.name.startswith(registry_topic.name + ".t"))


async def test_event_stream_carries_published_states_and_a_restart_replays_nothing(config: ConsoleConfig) -> None:
    power_topic = topic_of(config, topics.POWER_STATE)
    now = time.time()
    # stored by the power twin before the console starts: shown at once (seed)
    stored = rack_state("su1-0005", now - 5, 31_000.0)
    await execute(config.database_url, "INSERT INTO power_state_latest (entity_id, site_id, scope, time, message)"
                  " VALUES (%s, %s, %s, %s, %s)",
                  [("su1-0005", SITE, pb.POWER_SCOPE_RACK, datetime.fromtimestamp(now - 5, UTC), stored.SerializeToString())])
    at = datetime.fromtimestamp(now - 5, UTC)
    cooled = cpb.CoolingState(site_id=SITE, entity_id="su1-0005", scope=cpb.COOLING_SCOPE_RACK, state_time=ts(now - 5),
                              rack=cpb.RackCoolingDetail(max_gpu_temp_c=66.0))
    await execute(config.database_url, "INSERT INTO cooling_state_latest (entity_id, site_id, scope, time, message)"
                  " VALUES (%s, %s, %s, %s, %s)",
                  [("su1-0005", SITE, cpb.COOLING_SCOPE_RACK, at, cooled.SerializeToString()),
                   ("su1-0006", "other-site", cpb.COOLING_SCOPE_RACK, at, cooled.SerializeToString())])
    await execute(config.database_url, "INSERT INTO job_state_latest (job_id, status, time, message) VALUES (%s, %s, %s, %s)",
                  [(job, status, at, jpb.JobState(job_id=job, status=status, state_time=ts(now - 5)).SerializeToString())
                   for job, status in (("job-running", jpb.JOB_STATUS_RUNNING), ("job-done", jpb.JOB_STATUS_FINISHED))])
    async with EventProducer(config.kafka_bootstrap, source="test") as producer:
        # on the topic before the console starts: latest-only tails never replay it
        await producer.send(power_topic, "su1-0007", rack_state("su1-0007", now - 2, 44_000.0))
        async with running(config) as app, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{app.http_port}"
            async with http.get(f"{base}/api/events") as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
                frames = sse_frames(resp)
                event, snap = await next_frame(frames)
                assert event == "snapshot"
                assert by_id(snap, "power")["su1-0005"]["in_w"] == 31_000.0
                assert "su1-0007" not in by_id(snap, "power")
                assert {k: v["gpu_c"] for k, v in by_id(snap, "cooling").items()} == {"su1-0005": 66.0}
                assert {k: v["status"] for k, v in by_id(snap, "jobs").items()} == {"job-running": "running"}

                other = rack_state("su1-0003", now, 5_000.0)
                other.site_id = "other-site"   # another site on the same broker: not this console's
                await producer.send(power_topic, "su1-0003", other)
                await producer.send(power_topic, "su1-0001", rack_state("su1-0001", now, 12_000.0))
                await producer.send(power_topic, "su1-0002", rack_state("su1-0002", now, 23_500.0))
                await producer.send(power_topic, "su1-0001", rack_state("su1-0001", now - 60, 99_000.0))  # older: ignored
                await producer.send(topic_of(config, topics.POWER_ALERTS), "pdu-1", pb.PowerAlert(
                    alert_id="a-1", site_id=SITE, entity_id="pdu-1", scope=pb.POWER_SCOPE_PDU,
                    kind=pb.ALERT_KIND_OVER_THRESHOLD, severity=pb.SEVERITY_WARNING, alert_time=ts(now), value=41_000,
                    threshold=40_000, message="pdu-1 at 82 % of its rating"))
                await producer.send(topic_of(config, topics.COOLING_STATE), "su1-0002", cpb.CoolingState(
                    site_id=SITE, entity_id="su1-0002", scope=cpb.COOLING_SCOPE_RACK, state_time=ts(now),
                    rack=cpb.RackCoolingDetail(max_gpu_temp_c=71.5, time_to_throttle_s=240.0, gpus_at_risk=3)))
                await producer.send(topic_of(config, topics.JOBS_STATE), "job-7", jpb.JobState(
                    job_id="job-7", state_time=ts(now), status=jpb.JOB_STATUS_RUNNING, mfu=0.41, goodput_fraction=0.93,
                    measured_step_time_s=2.5, predicted_step_time_s=2.4,
                    comm_source=jpb.COMM_SOURCE_OWN_ESTIMATE, comm_source_detail="fabric twin unreachable: test",
                    placement=jpb.Placement(node_ids=["su1-0001-n00", "su1-0002-n03"], n_gpus=16)))

                power: dict[str, dict] = {}
                cooling: dict[str, dict] = {}
                jobs: dict[str, dict] = {}
                events: list[dict] = []
                while not ({"su1-0001", "su1-0002"} <= set(power) and "su1-0002" in cooling and "job-7" in jobs
                           and events):
                    event, frame = await next_frame(frames)
                    assert event == "update"
                    power.update(by_id(frame, "power"))
                    cooling.update(by_id(frame, "cooling"))
                    jobs.update(by_id(frame, "jobs"))
                    events += frame["events"]

        assert {k: (v["scope"], v["in_w"], v["source"], v["t"]) for k, v in power.items()} == {
            "su1-0001": ("rack", 12_000.0, "measured", pytest.approx(now, abs=1e-6)),
            "su1-0002": ("rack", 23_500.0, "measured", pytest.approx(now, abs=1e-6))}
        assert power["su1-0002"]["gpu_w"] == pytest.approx(23_500.0 * 0.6)
        assert cooling["su1-0002"]["gpu_c"] == 71.5 and cooling["su1-0002"]["ttt_s"] == 240.0
        assert jobs["job-7"]["racks"] == ["su1-0001", "su1-0002"] and jobs["job-7"]["mfu"] == 0.41
        assert jobs["job-7"]["own"] == "fabric twin unreachable: test"
        assert [(e["type"], e["src"], e["entity"], e["severity"]) for e in events] == [
            ("alert", "power", "pdu-1", "warning")]

        # a restarted console: the old records are not replayed, the stored picture is shown again
        async with running(config) as app, aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{app.http_port}/api/events") as resp:
                event, snap = await next_frame(sse_frames(resp))
        assert event == "snapshot"
        assert set(by_id(snap, "power")) == {"su1-0005"} and snap["events"] == []
        assert set(by_id(snap, "cooling")) == {"su1-0005"} and set(by_id(snap, "jobs")) == {"job-running"}


async def test_a_new_browser_gets_the_current_picture_at_once(config: ConsoleConfig) -> None:
    power_topic = topic_of(config, topics.POWER_STATE)
    now = time.time()
    async with EventProducer(config.kafka_bootstrap, source="test") as producer, running(config) as app:
        await producer.send(power_topic, "su1-0003", rack_state("su1-0003", now, 18_000.0))
        await producer.send(power_topic, "su1-0003", rack_state("su1-0003", now + 1, 19_000.0))
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{app.http_port}"
            deadline = time.monotonic() + WAIT_S
            while True:  # /api/state reads the same in-memory picture the snapshot frame carries
                async with http.get(f"{base}/api/state") as resp:
                    state = await resp.json()
                racks = {s["id"]: s["in_w"] for s in state["sections"]["power"]}
                if racks.get("su1-0003") == 19_000.0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert racks == {"su1-0003": 19_000.0}
            async with http.get(f"{base}/api/events") as resp:
                event, snap = await next_frame(sse_frames(resp))
        assert event == "snapshot" and {s["id"]: s["in_w"] for s in snap["sections"]["power"]} == {"su1-0003": 19_000.0}


async def test_history_endpoint_returns_site_power_and_pue_from_power_state(config: ConsoleConfig) -> None:
    step = 15  # 60 minutes / 240 points
    t0 = (int(time.time()) // step) * step - 600   # a bucket start 10 minutes ago (date_bin origin 2000-01-01)
    rows = [(t0, SITE, pb.POWER_SCOPE_SITE, 1.2e6, 1.0e6), (t0 + 1, SITE, pb.POWER_SCOPE_SITE, 1.4e6, 1.0e6),
            (t0 + 300, SITE, pb.POWER_SCOPE_SITE, 1.1e6, 1.0e6),
            (t0 - 7200, SITE, pb.POWER_SCOPE_SITE, 5e6, 1e6),            # older than the window
            (t0, "other-site", pb.POWER_SCOPE_SITE, 9e6, 1e6),           # another site
            (t0 + 2, SITE, pb.POWER_SCOPE_RACK, 30e3, 29e3)]             # a rack, not the site
    await execute(config.database_url,
                  "INSERT INTO power_state (time, site_id, entity_id, scope, input_power_w, output_power_w, loss_w,"
                  " rating_w, utilization, source, message) VALUES (%s, %s, %s, %s, %s, %s, 0, 0, 0, 1, %s)",
                  [(datetime.fromtimestamp(t, UTC), site, site if scope == pb.POWER_SCOPE_SITE else "su1-0000", scope,
                    p_in, p_out, b"") for t, site, scope, p_in, p_out in rows])
    async with running(config) as app, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{app.http_port}"
        async with http.get(f"{base}/api/history") as resp:
            assert resp.status == 200
            body = await resp.json()
        for bad in ("0", "1441", "an-hour"):
            async with http.get(f"{base}/api/history", params={"minutes": bad}) as resp:
                assert resp.status == 400, bad
                assert "minutes" in (await resp.json())["error"]
    assert body["site_id"] == SITE and body["window_s"] == 3600 and body["step_s"] == step
    assert body["points"] == [
        {"t": t0, "site_w": pytest.approx(1.3e6), "it_w": pytest.approx(1.0e6), "pue": pytest.approx(1.3), "states": 2},
        {"t": t0 + 300, "site_w": pytest.approx(1.1e6), "it_w": pytest.approx(1.0e6), "pue": pytest.approx(1.1),
         "states": 1}]


async def test_page_layout_and_headers(config: ConsoleConfig) -> None:
    inventory = build_inventory(load_facility_spec("dgx-h100-su"))
    async with running(replace(config, topics=config.topics[:1])) as app, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{app.http_port}"
        async with http.get(base + "/") as resp:
            page = await resp.text()
            assert resp.status == 200 and "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert '<script src="/static/console.js" defer>' in page and "://" not in page  # nothing from elsewhere
        for name in ("console.js", "console.css"):
            async with http.get(f"{base}/static/{name}") as resp:
                assert resp.status == 200 and len(await resp.read()) > 1000
        async with http.get(f"{base}/static/../app.py") as resp:
            assert resp.status == 404
        async with http.get(f"{base}/api/layout") as resp:
            layout = await resp.json()
    racks = [r for hall in layout["halls"] for row in hall["rows"] for r in row["racks"]]
    assert racks == [r.rack_id for r in inventory.racks] and layout["n_racks"] == 8
    assert layout["rack_types"] == {"dgx4": {"nameplate_w": 4 * 10200.0}}


# -- scenario buttons (demo mode) -----------------------------------------------------------------------

OPERATOR_TOKEN = "operator-test-token"


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A TCP listener that accepts and never answers: a gRPC call to it waits out its deadline."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for w in held:
            w.close()
        server.close()


async def test_scenario_endpoint_is_absent_outside_demo_mode(config: ConsoleConfig) -> None:
    async with running(replace(config, topics=config.topics[:1])) as app, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{app.http_port}"
        async with http.get(f"{base}/api/scenarios") as resp:
            assert resp.status == 200 and await resp.json() == {"demo": False, "scenarios": [], "current": None,
                                                                 "last_report": None}
        for path in ("/api/scenarios/cdu-failure", "/api/scenarios/cdu-failure/restore"):
            async with http.post(base + path, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}) as resp:
                assert resp.status == 404, path
                assert "demo mode" in (await resp.json())["error"]
    assert app.scenarios is None


def test_demo_mode_needs_an_operator_token(config: ConsoleConfig) -> None:
    with pytest.raises(ValueError, match="CONSOLE_OPERATOR_TOKEN"):
        replace(config, demo=True, operator_token=None)


async def test_scenario_endpoint_error_codes_and_steps_on_the_event_stream(config: ConsoleConfig) -> None:
    async with silent_server() as silent:
        cfg = replace(config, demo=True, operator_token=OPERATOR_TOKEN, scenario_jobs_target=silent,
                      scenario_step_timeout_s=3.0)
        async with running(cfg) as app, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{app.http_port}"
            auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            async with http.get(f"{base}/api/scenarios") as resp:
                listing = await resp.json()
            assert listing["demo"] is True and OPERATOR_TOKEN not in json.dumps(listing)
            assert [s["name"] for s in listing["scenarios"]] == ["cdu-failure", "grid-curtailment", "spine-failure",
                                                                  "job-landing"]
            async with http.get(base + "/") as resp:
                assert OPERATOR_TOKEN not in await resp.text()

            async def post(path: str, **kw) -> tuple[int, dict]:
                async with http.post(base + path, **kw) as resp:
                    return resp.status, await resp.json()

            assert (await post("/api/scenarios/job-landing"))[0] == 401
            status, body = await post("/api/scenarios/job-landing", headers={"Authorization": "Bearer wrong"})
            assert status == 401 and "token" in body["error"]
            status, body = await post("/api/scenarios/no-such-thing", headers=auth)
            assert status == 400 and "unknown scenario" in body["error"]
            for bad, why in ((b"not json", "not JSON"), (b'{"action": "explode"}', "action must be"),
                             (b'{"restore": true}', "at most the key"), (b"[1]", "at most the key"),
                             (b'{"action": {"a": {"b": 1}}}', "nested deeper")):
                status, body = await post("/api/scenarios/job-landing", headers=auth, data=bad)
                assert status == 400 and why in body["error"], (bad, body)
            status, body = await post("/api/scenarios/job-landing/restore", headers=auth, data=b'{"action": "run"}')
            assert status == 400 and "contradicts" in body["error"]
            status, body = await post("/api/scenarios/job-landing", headers=auth, data=b" " * 2000)
            assert status == 413 and "limit" in body["error"]
            assert app.scenarios.runs == 0   # nothing refused has started anything

            async with http.get(f"{base}/api/events") as events:
                frames = sse_frames(events)
                event, snap = await next_frame(frames)
                assert event == "snapshot" and snap["scenario"] is None
                status, run = await post("/api/scenarios/job-landing", headers=auth, data=b'{"action": "run"}')
                assert status == 202 and run["name"] == "job-landing" and run["status"] == "running"
                # the job twin (the silent listener) keeps the first run busy for its 3 s step timeout
                status, body = await post("/api/scenarios/cdu-failure", headers=auth)
                assert status == 409 and body["current"]["id"] == run["id"]
                seen: list[dict] = []
                while not seen or seen[-1]["status"] == "running":
                    event, frame = await next_frame(frames)
                    if "scenario" in frame:
                        assert frame["scenario"]["id"] == run["id"]
                        seen.append(frame["scenario"])
            final = seen[-1]
            assert seen[0]["status"] == "running" and final["status"] == "failed"
            # the scenario's own report of the unanswered job twin, with timestamps, on the stream; a button run
            # keeps its effect (no restore step: that is the restore button's)
            assert [s["name"] for s in final["steps"]] == ["failed"]
            failed = final["steps"][0]
            assert not failed["ok"] and silent in failed["summary"] and "DEADLINE_EXCEEDED" in failed["summary"]
            assert failed["at"].endswith("Z") and failed["elapsed_s"] >= 3.0
            assert app.scenarios.last_report["scenario"] == "job-landing" and not app.scenarios.last_report["ok"]

            # not busy any more: the restore button's route starts a run
            status, run2 = await post("/api/scenarios/job-landing/restore", headers=auth)
            assert status == 202 and run2["action"] == "restore" and run2["id"] != run["id"]
            await asyncio.wait_for(app.scenarios.task, WAIT_S)
            async with http.get(f"{base}/api/scenarios") as resp:
                current = (await resp.json())["current"]
            assert current["status"] == "ok" and [s["name"] for s in current["steps"]] == ["restore"]
