"""The four scenarios of `twinctl scenario` (twin.core.scenarios) against the twin as `make run` runs it: the
stack (python -m twin.core.stack) starts ingest, fabric, power, cooling, jobs and facility-sim as processes on a
fresh Tansu broker and a fresh PostgreSQL database; the scenarios inject over Kafka / HTTP and read the twins'
output topics and gRPC answers. Each test checks the chain AND the numbers against what the test works out on its
own (from the twins' gRPC state and the facility spec), not against what the scenario printed.

Facility: the GB200 NVL72 hall (16 liquid racks, loop-a = cdu-a-1 + cdu-a-2 serves row a) with its scale-out
fabric at 4:1 oversubscription over 2 spines (a copy of the preset). Whether the lost uplink slows a job depends on
its exposed cross-rack traffic: a 144-GPU all-to-all across two racks is ~90 % slower with one of the two uplinks
down, a dense all-reduce of 64 MiB-1 GiB is not (at 8:1: 15-22 % slower), and the simulator's jobs are dense (their
gradient all-reduce mostly overlaps the backward pass), so on this stack (tried at 4:1 and 8:1) the twin states +0.0 % for
them; the test checks the chain (exactly the crossing jobs flagged, finite fabric answers, restore), not a
slowdown.
The tests share one stack and run in file order: job-landing, spine-failure, grid-curtailment, cdu-failure (the
CDU failure last: the job twin keeps its throttle alerts for JOBS_ALERT_TTL_S, which would move step times). Before
them the outdoor temperature is set to a mild 18 / 12 degC (a cooling.events.v1 AMBIENT_CHANGE), so no rack
throttles before a scenario starts (the preset's 38 degC design day already throttles several racks).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
import yaml
from e2e_support import topic_records, wait_until

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.cooling.v1 import cooling_pb2_grpc as cpb_grpc
from twin.core import topics
from twin.core.embedded.kafka import TansuBroker
from twin.core.facility import build_inventory, load_facility_spec
from twin.core.facility.spec import PRESETS_DIR
from twin.core.kafka import EventProducer
from twin.core.scenarios import Report, Targets, run_scenario
from twin.fabric.v1 import fabric_pb2 as fpb
from twin.fabric.v1 import fabric_pb2_grpc as fpb_grpc
from twin.jobs.v1 import jobs_pb2 as jpb
from twin.jobs.v1 import jobs_pb2_grpc as jpb_grpc
from twin.power.v1 import power_pb2 as ppb

pytestmark = pytest.mark.timeout(420)

SITE = "hall-gb200"
TOKEN = "scenario-e2e-token"
ROW_A = [f"a-{i:04d}" for i in range(8)]


class Stack:
    def __init__(self, proc: subprocess.Popen, out: Path, targets: Targets) -> None:
        self.proc, self.out, self.t = proc, out, targets

    def md(self):
        return (("authorization", f"Bearer {TOKEN}"),)

    def jobs(self) -> list[jpb.JobState]:
        with grpc.insecure_channel(self.t.jobs) as ch:
            return list(jpb_grpc.JobServiceStub(ch).ListJobs(
                jpb.ListJobsRequest(status=jpb.JOB_STATUS_RUNNING, page_size=1000), timeout=10, metadata=self.md()).jobs)

    def cooling(self, scope: int) -> list[cpb.CoolingState]:
        with grpc.insecure_channel(self.t.cooling) as ch:
            return list(cpb_grpc.CoolingServiceStub(ch).GetState(cpb.GetStateRequest(scope=scope), timeout=10,
                                                                  metadata=self.md()).states)

    def fabric(self) -> fpb.FabricState:
        with grpc.insecure_channel(self.t.fabric) as ch:
            return fpb_grpc.FabricSimulationServiceStub(ch).GetFabricState(fpb.GetFabricStateRequest(), timeout=10,
                                                                             metadata=self.md()).state

    def run(self, name: str) -> Report:
        report = asyncio.run(run_scenario(name, self.t))
        print(json.dumps(report.to_dict(), indent=1)[:20000])
        return report


def _banner(out: Path, pattern: str, timeout_s: float = 120.0) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = re.search(pattern, out.read_text(errors="replace"), re.M)
        if m:
            return m
        time.sleep(0.5)
    raise AssertionError(f"the stack printed no line matching {pattern!r}:\n{out.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, database_url) -> Iterator[Stack]:
    from twin.core.embedded import postgres

    tmp = tmp_path_factory.mktemp("scenarios")
    spec = yaml.safe_load((PRESETS_DIR / "gb200-nvl72-hall.yaml").read_text())
    spec["fabric"].update(spines=2, oversubscription=4.0)
    facility = tmp / "hall.yaml"
    facility.write_text(yaml.safe_dump(spec))
    with TansuBroker() as broker, postgres.isolated_database(database_url) as db:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWINCTL_", "OTEL_EXPORTER"))}
        env.update(TWIN_KAFKA_BOOTSTRAP=broker.bootstrap, TWIN_DATABASE_URL=db, TWIN_STACK_TOKEN=TOKEN,
                   TWIN_STATE_DIR=str(tmp / ".twin"), PYTHONUNBUFFERED="1", OTEL_TRACES_EXPORTER="none",
                   OTEL_METRICS_EXPORTER="none")
        out = tmp / "stack.out"
        with open(out, "wb") as f:
            proc = subprocess.Popen(
                [sys.executable, "-m", "twin.core.stack", "--facility", str(facility), "--status-interval", "5",
                 "--bad-fraction", "0", "--only", "ingest,fabric,power,cooling,jobs,facility-sim"],
                env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            port = {name: int(_banner(out, rf"^{name}\s+gRPC 127\.0\.0\.1:(\d+)").group(1))
                    for name in ("fabric", "power", "cooling", "jobs")}
            http = _banner(out, r"OpenADR 3 POST (http://127\.0\.0\.1:\d+)/openadr3/events").group(1)
            t = Targets(bootstrap=broker.bootstrap, power=f"127.0.0.1:{port['power']}", power_http=http,
                        cooling=f"127.0.0.1:{port['cooling']}", jobs=f"127.0.0.1:{port['jobs']}",
                        fabric=f"127.0.0.1:{port['fabric']}", token=TOKEN, facility=str(facility),
                        step_timeout_s=60.0)
            s = Stack(proc, out, t)
            wait_until(lambda: _safe(lambda: len(s.jobs()) >= 10), 150, "facility-sim's jobs running in the job twin")
            wait_until(lambda: _safe(lambda: len(s.cooling(cpb.COOLING_SCOPE_RACK)) == 16), 90,
                       "the cooling twin's rack states")

            async def mild_day():
                async with EventProducer(broker.bootstrap, source="test") as producer:
                    ev = cpb.CoolingEvent(event_id=str(uuid.uuid4()), site_id=SITE, entity_id=SITE,
                                          kind=cpb.COOLING_EVENT_KIND_AMBIENT_CHANGE, dry_bulb_temp_c=18.0,
                                          wet_bulb_temp_c=12.0)
                    ev.event_time.FromNanoseconds(time.time_ns())
                    await producer.send(topics.COOLING_EVENTS, SITE, ev)

            asyncio.run(mild_day())
            wait_until(lambda: _safe(lambda: not [r for r in s.cooling(cpb.COOLING_SCOPE_RACK)
                                                  if r.rack.HasField("time_to_throttle_s")]), 90,
                       "no rack throttling at 18 degC outside")
            yield s
        finally:
            import signal

            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(90)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
            print(out.read_text(errors="replace")[-4000:])


def _safe(fn):
    try:
        return fn()
    except grpc.RpcError:
        return None


def test_job_landing_ranks_candidates_through_twinctl(stack: Stack):
    inv = build_inventory(load_facility_spec(stack.t.facility))
    held = {n for j in stack.jobs() for n in j.placement.node_ids}
    free = {row: sum(4 for r in inv.racks if r.row_id == row for n in inv.node_ids(r) if n not in held)
            for row in ("a", "b")}
    t = stack.t
    result = subprocess.run(
        [sys.executable, "-m", "twinctl", "scenario", "run", "job-landing", "--json", "--bootstrap", t.bootstrap,
         "--jobs", t.jobs, "--token", TOKEN, "--facility", t.facility],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TWIN_STACK_TOKEN": ""})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    print(json.dumps(report, indent=1)[:20000])
    assert report["ok"] and [s["name"] for s in report["steps"]] == ["choose", "jobs", "restore"]
    choose = report["steps"][0]["data"]
    n = choose["n_gpus"]
    # 4,096 GPUs do not fit 1,152; the largest every candidate holds, in whole TP 4 x PP 4 units
    assert n == min(4096, min(c["free_gpus"] for c in choose["candidates"].values()) // 16 * 16) and n > 0
    assert choose["candidates"]["row-a"]["free_gpus"] == free["a"]
    assert choose["candidates"]["row-b"]["free_gpus"] == free["b"]
    ranked = report["steps"][1]["data"]["ranked"]
    assert [o["rank"] for o in ranked] == [1, 2, 3]
    assert {o["candidate"] for o in ranked} == {"row-a", "row-b", "mixed-rows"}
    fits = [o for o in ranked if o["step_time_s"] > 0]
    assert fits, ranked
    for o in fits:
        assert o["power_w"] > 0 and o["tokens_per_s"] > 0 and 0 <= o["thermal_risk"] <= 1
        assert o["network_risk"] == 0.0  # no link is impaired
    # no thermal or network risk: ranked by step time alone
    assert [o["step_time_s"] for o in fits] == sorted(o["step_time_s"] for o in fits)


def test_spine_failure_slows_exactly_the_jobs_crossing_the_link(stack: Stack):
    inv = build_inventory(load_facility_spec(stack.t.facility))
    report = stack.run("spine-failure")
    assert report.ok, report.to_dict()
    link = report.step("choose").data["link"]
    group = int(re.fullmatch(r"leaf-r0-g(\d+)/spine0", link).group(1))
    jobs = stack.jobs()
    crossing = sorted(j.job_id for j in jobs
                      if group in (g := {int(inv.node_leaf_group[inv.node_index[n]]) for n in j.placement.node_ids})
                      and len(g) > 1)
    assert crossing, "the chosen leaf group is crossed by running jobs"
    got = report.step("jobs").data
    assert got["flagged"] == crossing           # every job crossing the leaf flagged, and no other
    for j in crossing:
        # the slowdown the job twin states for the link (vs its last healthy communication answer), and the
        # published step time carries it: a job whose stated slowdown is > 0 is slower than before the failure
        assert got["slowdown_fraction"][j] >= 0
        if got["slowdown_fraction"][j] > 0:
            assert j in got["slowed"] and got["step_time_after_s"][j] > got["step_time_before_s"][j]
    # the fabric twin answers every crossing job with a finite time: one uplink of two down leaves a path, and the
    # jobs' own NIC traffic is not counted as competing uplink load (it used to be, so a sample taken in a
    # communication phase made the twin answer "no bandwidth" and the job twin fall back to its own estimate)
    assert not [j for j, src in got["communication"].items() if "non-finite" in src], got["communication"]
    assert report.step("fabric").data["links_down"] == 1
    # restored: the link is up and the jobs carry no degraded-link flag
    assert stack.fabric().links_down == 0
    now = {j.job_id: j for j in stack.jobs()}
    for j in crossing:
        assert not [f for f in now[j].risk_flags if f.kind == jpb.RISK_KIND_DEGRADED_LINK]


def test_grid_curtailment_plans_to_the_limit_or_states_the_shortfall(stack: Stack):
    report = stack.run("grid-curtailment")
    assert report.ok, report.to_dict()
    choose, plan = report.step("choose").data, report.step("power").data
    assert choose["limit_kw"] == pytest.approx(0.8 * choose["site_power_w"] / 1e3, rel=1e-9)
    assert plan["event_id"] == choose["event_id"]
    assert plan["limit_w"] == pytest.approx(round(choose["limit_kw"], 3) * 1e3, rel=1e-9)
    assert plan["deadline_offset_s"] == pytest.approx(600, abs=5)
    assert plan["duration_s"] == pytest.approx(1800)
    cut = plan["baseline_site_power_w"] - plan["limit_w"]
    worst = plan["max_import_after_deadline_w"]
    if plan["meets_limit"]:
        assert worst <= plan["limit_w"] * (1 + 1e-6) and plan["shortfall_w"] == 0
        if cut > 0:  # something covers the cut: battery, gensets, caps or pauses
            assert plan["sources"] or plan["capped_gpus"] or plan["paused_job_ids"]
        if not plan["capped_gpus"] and not plan["paused_job_ids"]:  # on-site sources alone carry the cut
            assert sum(s["power_w"] for s in plan["sources"]) >= cut * (1 - 1e-6)
            assert plan["throughput_cost"] == 0
    else:
        assert plan["shortfall_w"] == pytest.approx(worst - plan["limit_w"], rel=1e-6) and plan["shortfall_w"] > 0
    assert 0 <= plan["throughput_cost"] <= 1
    # the battery (bess-1, 1 MW) dispatches at most its rating
    for s in plan["sources"]:
        assert 0 < s["power_w"] <= 1.0e6 + 1e-6
    # the same plan is on power.plans.v1 for anyone else to read
    plans = [ppb.CurtailmentPlan.FromString(r.value) for r in
             topic_records(stack.t.bootstrap, topics.POWER_PLANS.name, topics.POWER_PLANS.partitions)]
    assert [p.plan_id for p in plans if p.event_id == choose["event_id"]][-1] == plan["plan_id"]
    assert report.step("restore").ok and report.step("restore").data["response"]["cancelled"] is True


def test_cdu_failure_alerts_its_racks_flags_their_jobs_and_reaches_power(stack: Stack):
    loops = {s.entity_id: s for s in stack.cooling(cpb.COOLING_SCOPE_LOOP)}
    jobs_before = stack.jobs()
    report = stack.run("cdu-failure")
    assert report.ok, report.to_dict()
    choose = report.step("choose").data
    # loop-a is N+1: one CDU's loss is carried, so both fail and the loop loses its flow
    assert choose["loop"] == "loop-a" and choose["cdus"] == list(loops["loop-a"].loop.cdu_ids) == ["cdu-a-1", "cdu-a-2"]
    # the racks the failure makes throttle: row a minus any rack already throttling (the simulator's plant readings
    # may bring its 38 degC design day back over the mild one set above)
    new = [r for r in ROW_A if r not in choose["throttling_before"]]
    assert choose["loop_racks"] == ROW_A and choose["expected_racks"] == new and new
    cooling = report.step("cooling").data
    assert cooling["racks"] == new                        # exactly those racks of loop-a, no other rack of it
    assert not set(cooling["other_racks_alerted"]) & set(ROW_A)
    assert all(cooling["gpus"][r] == 72 for r in new)    # every GPU of a rack that lost its flow
    assert all(0 <= s < 3600 for s in cooling["time_to_throttle_s"].values())
    on_row_a = sorted(j.job_id for j in jobs_before if {n.rsplit("-n", 1)[0] for n in j.placement.node_ids} & set(new))
    assert on_row_a
    jobs = report.step("jobs").data
    assert jobs["flagged"] == on_row_a and jobs["checkpoint_now"] == on_row_a
    for j in on_row_a:
        assert 0 < jobs["deadlines_s"][j] <= max(cooling["time_to_throttle_s"].values())
        assert jobs["messages"][j].startswith("checkpoint now: rack a-")
    power = report.step("power").data
    assert power["cooling_power_after_w"] != pytest.approx(power["cooling_power_before_w"], rel=1e-6)
    # the site state carries a plant cooling power the cooling twin published (and stored) after the failure
    with psycopg.connect(_db(stack)) as conn:
        rows = conn.execute("SELECT power_w FROM cooling_state WHERE entity_id = %s AND time >= %s::timestamptz",
                            (SITE, power["cdus_down_at"])).fetchall()
    assert any(r[0] == pytest.approx(power["cooling_power_after_w"], abs=1e-3) for r in rows), rows[-5:]
    # restored: both CDUs up and loop-a carries again
    assert report.step("restore").data["cdus"] == ["cdu-a-1", "cdu-a-2"]
    wait_until(lambda: all(s.loop.carries for s in stack.cooling(cpb.COOLING_SCOPE_LOOP)), 30, "loop-a carrying")


def _db(stack: Stack) -> str:
    m = _banner(stack.out, r"^SQL\s+psql (\S+)")
    return m.group(1)
