"""Fault injection against the running services (issue 8 "Fault-injection suite"), loopback only.

One run: a fresh Tansu broker, a DEDICATED embedded PostgreSQL (never the shared server: it is
stopped and restarted), ingest, fabric and the power, cooling and jobs twins as processes
(`python -m twin.<service>`), facility-sim producing labelled good and bad records (and its jobs'
events on jobs.events.v1). While the simulator runs, a seeded schedule injects:

    kill9_<service>               SIGKILL of ingest, fabric, power, cooling, jobs at random moments;
                                  the supervisor below restarts the service after a random delay
                                  (and restarts any service that exits on its own, e.g. one started
                                  while PostgreSQL is away)
    db_outage                     the PostgreSQL server is shut down for `db_outage_s`, then started
                                  again on the same port and data directory
    bad_burst                     a burst of undecodable and invalid records straight onto
                                  facility.telemetry.v1, each with its own ce_id
    link_events                   LinkEvents (down / degraded / up) onto fabric.events.v1, so the
                                  fabric twin has a known final state to converge to

Afterwards `verify()` checks: every good batch of the simulator stored exactly once (no loss, no
duplicate rows), every bad record (simulator's and the burst's) in facility.telemetry.v1.dlq with a
reason, fabric's GetFabricState equal to the state the events define (what a run without faults
answers), each twin's state equal to what a run without faults computes from the same inputs
(twins_check.py: power's rack rows and site total, cooling's plant state for the last tick, jobs'
state of every job), and no stuck consumer (each group's committed offsets reach the topic's end).

Used by tests/chaos/test_chaos.py (short) and bench/chaos.py (`make chaos`, longer, JSON result).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from e2e_support import Procs, read_jsonl, rows, scalar  # noqa: E402

from twin.core import topics  # noqa: E402
from twin.core.envelope import header, new_envelope  # noqa: E402
from twin.core.facility import build_inventory, load_facility_spec  # noqa: E402
from twin.core.testing.kafka import TansuBroker, free_port  # noqa: E402
from twin.core.testing.postgres import EmbeddedPostgres, can_connect  # noqa: E402
from twin.fabric.adapters.topology import LinkIndex  # noqa: E402
from twin.fabric.v1 import fabric_pb2 as pb  # noqa: E402
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc  # noqa: E402
from twin.telemetry.v1 import telemetry_pb2 as tpb  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import twins_check  # noqa: E402

SRC = topics.FACILITY_TELEMETRY
EVENTS = topics.FABRIC_EVENTS
SAMPLES = topics.TELEMETRY_SAMPLES
FACILITY = "dgx-h100-su"
RACKS = 8
# consumer group -> topic (the services' defaults: group = service name, extra inputs `<name>-<input>`).
# Topics written all the time (fabric.state.v1 every second) are left out: their lag is never settled.
GROUPS = {"ingest": SRC, "fabric": EVENTS, "fabric-telemetry": SAMPLES}
TWIN_GROUPS = {"power": SAMPLES, "power-site": topics.POWER_RACKS, "power-grid": topics.GRID_EVENTS,
               "cooling": topics.POWER_STATE, "cooling-telemetry": SAMPLES, "cooling-events": topics.COOLING_EVENTS,
               "cooling-site": topics.COOLING_RACKS,
               "jobs": topics.JOBS_EVENTS}
SERVICES = ("ingest", "fabric")
TWINS = ("power", "cooling", "jobs")


@dataclass
class ChaosConfig:
    duration_s: float = 24.0  # simulator run time; faults happen inside it
    rate_hz: float = 2.0
    seed: int = 1
    bad_fraction: float = 0.1
    kills_per_service: int = 1
    db_outage_s: float = 6.0
    burst: int = 60  # bad records in the burst
    settle_timeout_s: float = 120.0  # after the simulator: how long convergence may take
    twins: bool = True  # also run (and kill) the power, cooling and jobs twins


@dataclass
class Fault:
    kind: str
    at_s: float  # since the start of the run
    detail: str = ""
    recovered_after_s: float | None = None


@dataclass
class ChaosResult:
    faults: list[Fault] = field(default_factory=list)
    good: int = 0
    stored: int = 0
    records_lost: int = 0
    records_duplicated: int = 0
    unexpected_stored: int = 0
    bad_expected: int = 0
    dlq_missing: int = 0
    dlq_without_reason: int = 0
    fabric_converged: bool = False
    fabric_diff: str = ""
    stuck_consumers: dict[str, int] = field(default_factory=dict)  # group -> lag
    twins: dict[str, twins_check.TwinCheck] = field(default_factory=dict)  # power / cooling / jobs
    restarts: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def max_recovery_s(self) -> float | None:
        done = [f.recovered_after_s for f in self.faults if f.recovered_after_s is not None]
        return max(done) if done else None

    def problems(self) -> list[str]:
        out = []
        if self.records_lost:
            out.append(f"{self.records_lost} good batches lost")
        if self.records_duplicated:
            out.append(f"{self.records_duplicated} duplicated rows")
        if self.unexpected_stored:
            out.append(f"{self.unexpected_stored} stored batches that were not good")
        if self.dlq_missing:
            out.append(f"{self.dlq_missing} bad records missing from the DLQ")
        if self.dlq_without_reason:
            out.append(f"{self.dlq_without_reason} DLQ records without a reason")
        if not self.fabric_converged:
            out.append(f"fabric state did not converge: {self.fabric_diff}")
        if self.stuck_consumers:
            out.append(f"consumers with lag after settling: {self.stuck_consumers}")
        for name, check in self.twins.items():
            if not check.converged:
                out.append(f"{name} did not converge: {check.diff}")
        unrecovered = [f"{f.kind}@{f.at_s:.1f}s" for f in self.faults if f.recovered_after_s is None]
        if unrecovered:
            out.append(f"faults without recovery: {unrecovered}")
        return out

    def per_service(self) -> dict[str, dict]:
        """service -> faults injected (SIGKILLs), restarts, max recovery s; the twins' lost / duplicated too."""
        out: dict[str, dict] = {}
        for f in self.faults:
            if f.kind.startswith("kill9_"):
                one = out.setdefault(f.kind.removeprefix("kill9_"), {"faults": 0, "max_recovery_s": None})
                one["faults"] += 1
                if f.recovered_after_s is not None:
                    one["max_recovery_s"] = max(one["max_recovery_s"] or 0.0, f.recovered_after_s)
        for name, one in out.items():
            one["restarts"] = self.restarts.get(name, 0)
        if "ingest" in out:
            out["ingest"].update(lost=self.records_lost, duplicated=self.records_duplicated)
        for name, check in self.twins.items():
            out.setdefault(name, {"faults": 0, "max_recovery_s": None}).update(check.as_json())
        return out

    def as_json(self) -> dict:
        return {
            "faults_injected": len(self.faults),
            "services": self.per_service(),
            "faults": [f.__dict__ for f in self.faults],
            "good_batches": self.good, "stored_batches": self.stored,
            "records_lost": self.records_lost, "records_duplicated": self.records_duplicated,
            "unexpected_stored": self.unexpected_stored,
            "bad_records": self.bad_expected, "dlq_missing": self.dlq_missing,
            "fabric_converged": self.fabric_converged, "stuck_consumers": self.stuck_consumers,
            "restarts": self.restarts, "max_recovery_s": self.max_recovery_s,
            "elapsed_s": round(self.elapsed_s, 1), "problems": self.problems(),
        }


# -- PostgreSQL that can be taken away and brought back -----------------------------------------


class OutagePostgres(EmbeddedPostgres):
    """EmbeddedPostgres whose server can be shut down and started again (same port, same data)."""

    def take_away(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown: every session is disconnected
            proc.wait(20)

    def bring_back(self, timeout_s: float = 30.0) -> None:
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), "-h", self.host, "-p", str(self.port),
                 "-k", "", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                stdout=log, stderr=subprocess.STDOUT, user=self._uid, group=self._gid, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not can_connect(self.url):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL did not come back:\n{self.log_tail()}")
            time.sleep(0.1)


# -- Kafka helpers ----------------------------------------------------------------------------------


def _produce(bootstrap: str, records: list[tuple[str, bytes, bytes, list]]) -> None:
    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            futures = [await producer.send(t, value, key=key, headers=h) for t, key, value, h in records]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def bad_burst(bootstrap: str, n: int, rng: random.Random) -> list[str]:
    """n bad records (undecodable bytes, impossible values) with fresh ce_ids; returns the ids."""
    inv = build_inventory(load_facility_spec(FACILITY))
    records, ids = [], []
    for i in range(n):
        rack = inv.racks[rng.randrange(len(inv.racks))].rack_id
        env = new_envelope(SRC.ce_type, "chaos-burst")
        ids.append(env.id)
        if i % 2:
            value = b"\x2a\xe8\x07chaos-not-protobuf-" + str(i).encode()
        else:
            msg = tpb.RackTelemetryBatch(site_id=inv.spec.site_id, rack_id=rack, sequence=10**9 + i, source="chaos")
            msg.sample_time.GetCurrentTime()
            node = msg.nodes.add(node_id=inv.node_ids(inv.racks[0])[0])
            node.gpus.gpu_index.append(0)
            node.gpus.gpu_temp_c.append(400.0)
            value = msg.SerializeToString()
        records.append((SRC.name, rack.encode(), value, env.to_headers()))
    _produce(bootstrap, records)
    return ids


def link_events(bootstrap: str, events: list[tuple[str, int, float]]) -> None:
    records = []
    for link_id, kind, capacity in events:
        msg = pb.LinkEvent(link_id=link_id, kind=kind, capacity_fraction=capacity, reason="chaos")
        msg.event_time.GetCurrentTime()
        records.append((EVENTS.name, link_id.encode(), msg.SerializeToString(),
                        new_envelope(EVENTS.ce_type, "chaos").to_headers()))
    _produce(bootstrap, records)


async def _read_all(bootstrap: str, name: str, partitions: int) -> list:
    """Every record of the topic, read until the partitions stay quiet. (Tansu's ListOffsets answer
    is not used as the end: for a partition written in multi-record batches it is one too low.)"""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list = []
        empty = 0
        while empty < 3:
            got = await consumer.getmany(timeout_ms=300)
            empty = 0 if got else empty + 1
            for recs in got.values():
                out += recs
        return out
    finally:
        await consumer.stop()


def read_all(bootstrap: str, name: str, partitions: int) -> list:
    return asyncio.run(_read_all(bootstrap, name, partitions))


async def _true_ends(bootstrap: str, topic: topics.Topic) -> dict[TopicPartition, int]:
    ends = {TopicPartition(topic.name, p): 0 for p in range(topic.partitions)}
    for rec in await _read_all(bootstrap, topic.name, topic.partitions):
        tp = TopicPartition(rec.topic, rec.partition)
        ends[tp] = max(ends[tp], rec.offset + 1)
    return ends


def consumer_lag(bootstrap: str, groups: dict[str, topics.Topic] = GROUPS) -> dict[str, int]:
    """group -> records of its topic not yet committed (sum over partitions)."""

    async def run():
        out = {}
        ends_of: dict[str, dict] = {}
        for group, topic in groups.items():
            if topic.name not in ends_of:
                ends_of[topic.name] = await _true_ends(bootstrap, topic)
            ends = ends_of[topic.name]
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
            await consumer.start()
            try:
                lag = 0
                for tp, end in ends.items():
                    committed = await consumer.committed(tp)
                    lag += max(0, end - (committed or 0))
                out[group] = lag
            finally:
                await consumer.stop()
        return out

    return asyncio.run(run())


def fabric_state(port: int) -> pb.FabricState | None:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            return pb_grpc.FabricSimulationServiceStub(channel).GetFabricState(
                pb.GetFabricStateRequest(), timeout=5).state
    except grpc.RpcError:
        return None


def twin_answers(name: str, port: int) -> bool:
    """The twin's gRPC service answers (a state, or "no state yet": FAILED_PRECONDITION)."""
    from twin.cooling.v1 import cooling_pb2 as cpb
    from twin.cooling.v1 import cooling_pb2_grpc as cpb_grpc
    from twin.jobs.v1 import jobs_pb2 as jpb
    from twin.jobs.v1 import jobs_pb2_grpc as jpb_grpc
    from twin.power.v1 import power_pb2 as ppb
    from twin.power.v1 import power_pb2_grpc as ppb_grpc

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            if name == "power":
                ppb_grpc.PowerServiceStub(channel).GetSiteState(ppb.GetSiteStateRequest(), timeout=5)
            elif name == "cooling":
                cpb_grpc.CoolingServiceStub(channel).GetState(cpb.GetStateRequest(), timeout=5)
            else:
                jpb_grpc.JobServiceStub(channel).ListJobs(jpb.ListJobsRequest(), timeout=5)
        return True
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.FAILED_PRECONDITION


# -- the run ----------------------------------------------------------------------------------------


class ChaosRun:
    def __init__(self, cfg: ChaosConfig, tmp: Path) -> None:
        self.cfg, self.tmp = cfg, tmp
        self.rng = random.Random(cfg.seed)
        self.result = ChaosResult()
        self.t0 = time.monotonic()
        self.expected_links: dict[str, float] = {}  # link id -> capacity fraction after all events
        self.burst_ids: list[str] = []
        self.last_start: dict[str, float] = {}

    def now(self) -> float:
        return time.monotonic() - self.t0

    def run(self) -> ChaosResult:
        pg = OutagePostgres()
        pg.start()
        broker = TansuBroker().start()
        self.pg, self.bootstrap = pg, broker.bootstrap
        procs = None
        try:
            procs = self._start(pg.url, broker.bootstrap)
            self._inject(procs)
            self._settle(procs)
        finally:
            self.result.elapsed_s = self.now()
            if procs is not None:
                for p in procs.started:
                    p.kill()
                for p in procs.started:
                    try:
                        p.popen.wait(10)
                    except subprocess.TimeoutExpired:
                        pass
                self.logs = procs.dump()
            broker.stop()
            pg.stop()
        return self.result

    # -- phases --
    def _start(self, db: str, bootstrap: str) -> Procs:
        env = dict(os.environ)
        for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "TWIN_KAFKA_BOOTSTRAP", "TWIN_DATABASE_URL"):
            env.pop(k, None)
        self.port = free_port()
        self.ports = {name: free_port() for name in TWINS}
        env.update({
            "TWIN_KAFKA_BOOTSTRAP": bootstrap, "TWIN_DATABASE_URL": db, "TWIN_FACILITY": FACILITY,
            "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "PYTHONUNBUFFERED": "1",
            "INGEST_SESSION_TIMEOUT_MS": "3000", "INGEST_STATUS_INTERVAL_S": "1", "INGEST_HTTP_PORT": "0",
            "FABRIC_SESSION_TIMEOUT_MS": "3000", "FABRIC_GRPC_HOST": "127.0.0.1", "FABRIC_GRPC_PORT": str(self.port),
            "FABRIC_PUBLISH_INTERVAL_S": "1",
            "POWER_GRPC_PORT": str(self.ports["power"]), "POWER_HTTP_PORT": "0", "POWER_SESSION_TIMEOUT_MS": "3000",
            "POWER_STATUS_INTERVAL_S": "1",
            "COOLING_GRPC_PORT": str(self.ports["cooling"]), "COOLING_SESSION_TIMEOUT_MS": "3000",
            "COOLING_STATUS_INTERVAL_S": "1", "COOLING_MIN_CHANGE_W": "0.001",  # every change of heat published
            "JOBS_GRPC_PORT": str(self.ports["jobs"]), "JOBS_FABRIC_TARGET": f"127.0.0.1:{self.port}",
            "JOBS_SESSION_TIMEOUT_MS": "3000", "JOBS_STATUS_INTERVAL_S": "1", "JOBS_TICK_S": "0.5",
        })
        procs = self._procs = Procs(self.tmp, env)
        names = SERVICES + (TWINS if self.cfg.twins else ())
        self.services = {name: procs.start(name, f"twin.{name}") for name in names}
        self._wait(lambda: fabric_state(self.port) is not None, 90, "fabric answering gRPC")
        for name in names[2:]:
            self._wait(lambda name=name: twin_answers(name, self.ports[name]), 120, f"{name} answering gRPC")
        self._wait(lambda: scalar(db, "SELECT count(*) FROM telemetry_batches") >= 0, 60, "ingest migrated")
        c = self.cfg
        self.sim = procs.start(
            "facility-sim", "twin.facility_sim", "--facility", FACILITY, "--rate-hz", str(c.rate_hz),
            "--racks", str(RACKS), "--duration", str(c.duration_s), "--bad-fraction", str(c.bad_fraction),
            "--seed", str(c.seed), "--metrics-port", "-1", "--bad-log", str(self.tmp / "bad.jsonl"),
            "--good-log", str(self.tmp / "good.jsonl"), "--jobs-progress-s", "2")
        self.sim_started = self.now()
        return procs

    def _schedule(self) -> list[tuple[float, str]]:
        c, rng = self.cfg, self.rng
        span = max(4.0, c.duration_s - 4.0)
        plan = [(rng.uniform(1.0, span), f"kill9_{name}") for name in self.services for _ in range(c.kills_per_service)]
        if c.db_outage_s > 0:
            plan.append((rng.uniform(2.0, max(2.5, span - c.db_outage_s)), "db_outage"))
        if c.burst:
            plan.append((rng.uniform(1.0, span), "bad_burst"))
        plan += [(0.5, "link_events"), (span / 2, "link_events"), (span, "link_events")]
        return sorted(plan)

    def _inject(self, procs: Procs) -> None:
        inv = build_inventory(load_facility_spec(FACILITY))
        index = LinkIndex(inv)
        links = [index.link_id(s) for s in self.rng.sample(range(index.n_links), 6)]
        waves = [
            [(links[0], pb.LINK_EVENT_KIND_DOWN, 0.0), (links[1], pb.LINK_EVENT_KIND_DEGRADED, 0.5),
             (links[2], pb.LINK_EVENT_KIND_DOWN, 0.0)],
            [(links[2], pb.LINK_EVENT_KIND_UP, 1.0), (links[3], pb.LINK_EVENT_KIND_DEGRADED, 0.25)],
            [(links[4], pb.LINK_EVENT_KIND_DOWN, 0.0), (links[1], pb.LINK_EVENT_KIND_DEGRADED, 0.75)],
        ]
        restart_at: dict[str, float] = {}
        pending: list[tuple[Fault, object]] = []  # fault, predicate "recovered"
        plan = self._schedule()
        db_back_at: float | None = None
        while True:
            t = self.now() - self.sim_started
            while plan and plan[0][0] <= t:
                _, kind = plan.pop(0)
                fault = Fault(kind, round(self.now(), 2))
                if kind.startswith("kill9_"):
                    name = kind.removeprefix("kill9_")
                    proc = self.services[name]
                    proc.kill(signal.SIGKILL)
                    proc.popen.wait(10)
                    restart_at[name] = self.now() + self.rng.uniform(0.3, 2.0)
                    fault.detail = f"pid {proc.popen.pid}"
                    pending.append((fault, self._recovered(name)))
                elif kind == "db_outage":
                    self.pg.take_away()
                    db_back_at = self.now() + self.cfg.db_outage_s
                    fault.detail = f"{self.cfg.db_outage_s:g}s"
                    pending.append((fault, None))  # armed when the database is back
                elif kind == "bad_burst":
                    self.burst_ids += bad_burst(self.bootstrap, self.cfg.burst, self.rng)
                    fault.detail = f"{self.cfg.burst} records"
                    fault.recovered_after_s = 0.0  # checked by the DLQ verification
                else:  # link_events: part of the workload, not a fault
                    wave = waves.pop(0) if waves else []
                    link_events(self.bootstrap, wave)
                    for link, _, capacity in wave:
                        self.expected_links[link] = capacity
                    continue
                self.result.faults.append(fault)
            if db_back_at is not None and self.now() >= db_back_at:
                self.pg.bring_back()
                db_back_at = None
                for i, (fault, pred) in enumerate(pending):
                    if fault.kind == "db_outage" and pred is None:
                        fault.detail += f", back at {self.now():.1f}s"
                        pending[i] = (fault, self._recovered("ingest"))
                        fault.at_s = round(self.now(), 2)  # recovery is measured from the return
            self._supervise(restart_at)
            for fault, pred in list(pending):
                if pred is not None and pred():
                    fault.recovered_after_s = round(self.now() - fault.at_s, 2)
                    pending.remove((fault, pred))
            if not plan and db_back_at is None and not self.sim.alive() and not pending:
                break
            if self.now() - self.sim_started > self.cfg.duration_s + self.cfg.settle_timeout_s:
                break
            time.sleep(0.2)
        assert self.sim.wait(60) == 0, self.sim.log()[-3000:]

    def _recovered(self, name: str):
        """A predicate: the service works again (ingest stores a new batch / fabric answers gRPC)."""
        db = self.pg.url
        if name == "fabric":
            return lambda: self.services["fabric"].alive() and fabric_state(self.port) is not None
        if name in TWINS:
            return lambda: self.services[name].alive() and twin_answers(name, self.ports[name])
        before = {"n": None}

        def ingest_progress() -> bool:
            if not self.services["ingest"].alive():
                return False
            try:
                n = scalar(db, "SELECT count(*) FROM telemetry_batches")
            except Exception:  # noqa: BLE001 - the database may still be coming back
                return False
            if before["n"] is None:
                before["n"] = n
                return False
            good_total = len(read_jsonl(self.tmp / "good.jsonl"))
            return n > before["n"] or (not self.sim.alive() and n >= good_total)

        return ingest_progress

    def _supervise(self, restart_at: dict[str, float]) -> None:
        """Restart killed services when their delay passed, and any service that exited on its own."""
        for name, proc in list(self.services.items()):
            due = restart_at.get(name)
            if proc.alive() or (due is not None and self.now() < due):
                continue
            restart_at.pop(name, None)
            env = None  # ports and settings are in the base environment: a restart serves the same port
            if self.now() - self.last_start.get(name, -99.0) < 2.0:
                continue  # backoff: one that dies at once (database away) is not restarted in a loop
            self.last_start[name] = self.now()
            self.services[name] = self._procs.start(name, f"twin.{name}", env=env)
            self.result.restarts[name] = self.result.restarts.get(name, 0) + 1
            time.sleep(0.2)

    def _settle(self, procs: Procs) -> None:
        r, db = self.result, self.pg.url
        good = read_jsonl(self.tmp / "good.jsonl")
        bad = read_jsonl(self.tmp / "bad.jsonl")
        r.good = len(good)
        want = {(g["rack_id"], g["sequence"]) for g in good}
        deadline = time.monotonic() + self.cfg.settle_timeout_s

        def caught_up() -> bool:
            self._supervise({})
            try:
                return scalar(db, "SELECT count(*) FROM telemetry_batches") >= len(good) and \
                    sum(consumer_lag(self.bootstrap).values()) == 0
            except Exception:  # noqa: BLE001
                return False

        self._wait(caught_up, max(1.0, deadline - time.monotonic()), "ingest caught up", fail=False)
        time.sleep(2.0)  # a late duplicate would show up now
        stored = rows(db, "SELECT rack_id, sequence FROM telemetry_batches")
        stored_set = set(stored)
        r.stored = len(stored)
        r.records_lost = len(want - stored_set)
        r.unexpected_stored = len(stored_set - want)
        dup_batches = len(stored) - len(stored_set)
        n_gpu = sum(g["n_gpu_rows"] for g in good)
        gpu_rows = scalar(db, "SELECT count(*) FROM telemetry_gpu")
        dup_gpu = len(rows(db, "SELECT 1 FROM telemetry_gpu GROUP BY rack_id, node_id, gpu_index, time "
                               "HAVING count(*) > 1"))
        r.records_duplicated = dup_batches + dup_gpu
        self.gpu_rows = (gpu_rows, n_gpu)

        expected_bad = {b["ce_id"] for b in bad if b["kind"] != "duplicate"} | set(self.burst_ids)
        r.bad_expected = len(expected_bad)
        dlq: list = []

        def dlq_complete() -> bool:
            dlq[:] = read_all(self.bootstrap, SRC.dlq, SRC.partitions)
            return {header(x.headers, "ce_id").decode() for x in dlq if header(x.headers, "ce_id")} >= expected_bad

        self._wait(dlq_complete, 30, "DLQ complete", fail=False)
        got = {header(x.headers, "ce_id").decode() for x in dlq if header(x.headers, "ce_id")}
        r.dlq_missing = len(expected_bad - got)
        r.dlq_without_reason = sum(1 for x in dlq if not header(x.headers, "dlq_reason"))

        def converged() -> bool:
            self._supervise({})
            state = fabric_state(self.port)
            if state is None:
                r.fabric_diff = "fabric does not answer"
                return False
            have = {link.link_id: round(link.capacity_fraction, 3) for link in state.links
                    if link.capacity_fraction < 1.0}
            want_links = {k: round(v, 3) for k, v in self.expected_links.items() if v < 1.0}
            r.fabric_diff = f"have {sorted(have.items())}, want {sorted(want_links.items())}"
            return have == want_links

        r.fabric_converged = bool(self._wait(converged, 60, "fabric state converged", fail=False))
        if self.cfg.twins:
            self._settle_twins()
        lag = {}
        try:
            lag = consumer_lag(self.bootstrap, {**GROUPS, **(TWIN_GROUPS if self.cfg.twins else {})})
        except Exception as exc:  # noqa: BLE001
            lag = {"error": str(exc)}
        r.stuck_consumers = {g: n for g, n in lag.items() if n}

    def _settle_twins(self) -> None:
        """Wait (bounded) for the twins' consumers to reach the end of their inputs, then for their state to
        equal the fault-free answer (twins_check); the last comparison is the result."""
        r, db = self.result, self.pg.url

        def caught_up() -> bool:
            self._supervise({})
            try:
                return sum(consumer_lag(self.bootstrap, TWIN_GROUPS).values()) == 0
            except Exception:  # noqa: BLE001 - a restarting broker client
                return False

        self._wait(caught_up, 120, "twins caught up", fail=False)
        samples = read_all(self.bootstrap, SAMPLES.name, SAMPLES.partitions)
        events = read_all(self.bootstrap, topics.JOBS_EVENTS.name, topics.JOBS_EVENTS.partitions)
        site_id = build_inventory(load_facility_spec(FACILITY)).spec.site_id

        def converged() -> bool:
            self._supervise({})
            try:
                power_states = read_all(self.bootstrap, topics.POWER_STATE.name, topics.POWER_STATE.partitions)
                cooling_states = read_all(self.bootstrap, topics.COOLING_STATE.name, topics.COOLING_STATE.partitions)
                r.twins = {"power": twins_check.check_power(db, FACILITY, samples, power_states),
                           "cooling": twins_check.check_cooling(db, site_id, RACKS, cooling_states),
                           "jobs": twins_check.check_jobs(db, FACILITY, events)}
            except Exception as exc:  # noqa: BLE001 - tables not there yet, the database coming back
                r.twins = {n: twins_check.TwinCheck(diff=f"check failed: {exc!r}") for n in TWINS}
                return False
            return all(c.converged for c in r.twins.values())

        self._wait(converged, 90, "twins converged", fail=False)

    def _wait(self, predicate, timeout_s: float, what: str, *, fail: bool = True):
        deadline = time.monotonic() + timeout_s
        while True:
            got = predicate()
            if got:
                return got
            if time.monotonic() > deadline:
                if fail:
                    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
                return None
            time.sleep(0.25)


def run_chaos(cfg: ChaosConfig, tmp: Path) -> tuple[ChaosResult, str]:
    """One chaos run; returns the result and the tail of every service log."""
    run = ChaosRun(cfg, tmp)
    result = run.run()
    return result, getattr(run, "logs", "")


def unique_tmp(base: Path) -> Path:
    path = base / f"chaos-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path
