"""The embedded default stack behind `make run` (DESIGN §6): no Docker, one command.

Starts a Kafka-protocol broker (Tansu) unless TWIN_KAFKA_BOOTSTRAP is set, PostgreSQL (embedded)
unless TWIN_DATABASE_URL is set, creates every topic, then runs every service of `STACK_SERVICES`
(twin.core.stack_services: ingest, fabric, power, cooling, jobs, console, facility-sim, started in
that order) as a child process, supervises them (a child that dies is restarted with
backoff, and the stack says so) and shows its state until Ctrl-C or --duration: on a terminal, one
screen redrawn in place (where to look: console URL, gRPC ports, database, Kafka; per service
records/s, consumer lag and DLQ; the twins' one-line answers; the last alerts; twin.core.stack_screen),
otherwise plain periodic lines (the status line, a rates line, each new alert).

Services are started as processes (`python -m twin.<pkg>`), never imported: the stack knows them
only through their table entry, exactly as docker-compose does. Stop order: children in reverse
start order (the simulator first, so ingest drains what was produced), then PostgreSQL, then the
broker. The broker and PostgreSQL run in their own sessions, so a terminal's Ctrl-C reaches only
this process, which then stops everything in that order.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from twin.core import topics
from twin.core.settings import DEFAULT_FACILITY
from twin.core.stack_screen import CLEAR, Offsets, Screen, ServiceRow, plain_rates, rates, render_screen
from twin.core.stack_services import (
    STACK_SERVICES,
    AlertTail,
    GroupOffsets,
    StackContext,
    StackService,
    demo_mode,
)
from twin.core.topics_admin import ensure_topics

STATE_DIR = Path(os.environ.get("TWIN_STATE_DIR", ".twin"))
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # waits before restart 1, 2, 3, ... (last one repeats)
STABLE_AFTER_S = 60.0  # a child that ran this long resets its backoff


def _port(preferred: int) -> int:
    """`preferred` when it is free on loopback, else any free port."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a quick restart finds the same port
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


class PortReservations:
    """Holds each chosen service port bound (not listening) for the stack's lifetime.

    The default ports (50051-50056, 8080-8082, 9400) lie inside Linux's ephemeral range (32768-60999), so
    between choosing a port and a child binding it (seconds later; again after every restart) any outgoing
    connection on the machine could be given it. Linux never hands out a port for connect() that has a bound
    socket (`__inet_hash_connect` skips ports with an owner), and a child can still bind and listen there
    because both sockets set SO_REUSEADDR and this one never listens (the servers used here, gRPC core and
    asyncio's create_server, set SO_REUSEADDR on Linux).
    """

    def __init__(self) -> None:
        self._held: list[socket.socket] = []

    def take(self, preferred: int) -> int:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        self._held.append(s)
        return s.getsockname()[1]

    def release(self) -> None:
        for s in self._held:
            s.close()
        self._held.clear()


@dataclass
class Child:
    """One supervised service process; its log starts empty for each stack run."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    restarts_in_a_row: int = 0         # drives the backoff; reset once a run lasted STABLE_AFTER_S
    started_at: float = 0.0
    restart_at: float | None = None  # when a dead child is due to restart
    log_offset: int = 0               # where this run's lines start in the log
    stopping: bool = False

    def start(self) -> None:
        mode = "ab" if self.restarts else "wb"  # truncate on the stack's first start: logs do not append across runs
        with open(self.log_path, mode) as log:
            if self.restarts:
                log.write(f"\n--- restart #{self.restarts} at {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            self.log_offset = log.tell()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,  # Ctrl-C reaches the stack; it stops children in order
            )
        self.started_at = time.monotonic()
        self.restart_at = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        self.stopping = True
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
        """The last lines this run of the child wrote (not earlier runs')."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:]) or "(nothing logged)"

    def supervise(self, now: float) -> str | None:
        """Restart a child that died (with backoff); returns a message for the operator, if any."""
        if self.stopping or self.proc is None or self.running():
            return None
        if self.restart_at is None:
            if now - self.started_at >= STABLE_AFTER_S:
                self.restarts_in_a_row = 0
            wait = RESTART_BACKOFF_S[min(self.restarts_in_a_row, len(RESTART_BACKOFF_S) - 1)]
            self.restart_at = now + wait
            code = self.proc.returncode
            how = f"signal {-code}" if code is not None and code < 0 else f"status {code}"
            return (f"!! {self.name} exited ({how}); restarting in {wait:.0f} s. Its last log lines:\n"
                    + "\n".join("   " + line for line in self.tail().splitlines()))
        if now >= self.restart_at:
            self.restarts += 1
            self.restarts_in_a_row += 1
            self.start()
            pid = self.proc.pid if self.proc else "?"
            return f"!! {self.name} restarted (restart #{self.restarts}, pid {pid})"
        return None


@dataclass
class Status:
    started: float = field(default_factory=time.monotonic)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m twin.core.stack", description=__doc__.splitlines()[0])
    p.add_argument("--facility", default=os.environ.get("TWIN_FACILITY", DEFAULT_FACILITY))
    p.add_argument("--rate-hz", type=float, default=1.0, help="simulator ticks per second")
    p.add_argument("--racks", type=int, default=0, help="simulate only the first N racks (0: all)")
    p.add_argument("--bad-fraction", type=float, default=0.01, help="share of simulated records made bad")
    p.add_argument("--status-interval", type=float, default=5.0)
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: Ctrl-C)")
    p.add_argument("--only", default="", help="comma-separated services to start (default: all)")
    p.add_argument("--screen", choices=("auto", "on", "off"), default="auto",
                   help="one screen redrawn in place (auto: when stdout is a terminal) or plain lines")
    return p.parse_args(argv)


def _children(services: list[StackService], ctx: StackContext, base: dict[str, str], logs: Path) -> list[Child]:
    out = []
    for svc in services:
        env = dict(base)
        for var, port in ctx.ports[svc.name].items():
            env[var] = str(port)
        env.update(svc.env_for(ctx))
        out.append(Child(svc.name, [svc.module, *svc.args_for(ctx)], env, logs / f"{svc.name}.log"))
    return out


async def _status_line(status: Status, services: list[StackService], ctx: StackContext) -> str:
    parts = []
    for svc in services:
        if svc.status is None:
            continue
        try:
            parts.append(await asyncio.wait_for(svc.status(ctx), 5))
        except Exception as exc:  # status must never take the stack down
            parts.append(f"{svc.name}: {exc.__class__.__name__}")
    return f"[{time.monotonic() - status.started:6.0f}s] " + " | ".join(parts)


def where_to_look(ctx: StackContext, services: list[StackService], logs: Path, embedded: bool) -> list[tuple[str, str]]:
    """The screen's "where to look" rows, from the chosen ports (pure)."""
    out = []
    if "console" in ctx.ports:
        url = f"http://127.0.0.1:{ctx.port('console', 'CONSOLE_HTTP_PORT')}/"
        out.append(("console", url + (f"#token={ctx.token}  (demo)" if demo_mode(ctx) else "")))
    grpc = [f"{s.name} {ctx.port(s.name, s.grpc_port)}" for s in services if s.grpc_port and s.name in ctx.ports]
    if grpc:
        out.append(("gRPC", "127.0.0.1: " + ", ".join(grpc)))
    http = [(name, svc, setting) for name, svc, setting in (("redfish", "ingest", "INGEST_HTTP_PORT"),
                                                            ("openadr3", "power", "POWER_HTTP_PORT"),
                                                            ("dcgm", "facility-sim", "FACILITY_SIM_METRICS_PORT"))
            if svc in ctx.ports]
    if http:
        out.append(("HTTP", "127.0.0.1: " + ", ".join(f"{n} {ctx.port(svc, st)}" for n, svc, st in http)))
    out.append(("database", ctx.database_url))
    out.append(("kafka", ctx.bootstrap + ("  (embedded Tansu)" if embedded else "")))
    out.append(("token", f"TWINCTL_TOKEN={ctx.token}  (logs: {logs}/)"))
    return out


class Board:
    """What the screen (or the plain lines) shows, refreshed every --status-interval."""

    def __init__(self, ctx: StackContext, services: list[StackService], children: list[Child], title: str,
                 where: list[tuple[str, str]], screen: bool) -> None:
        self.ctx, self.services, self.children, self.title, self.where = ctx, services, children, title, where
        self.screen = screen
        self.offsets = GroupOffsets(ctx.bootstrap)
        self.alerts = AlertTail(ctx.bootstrap)
        self.last: dict[str, Offsets] = {}
        self.message = ""
        self.alerts_printed = 0

    async def rows(self) -> list[ServiceRow]:
        out = []
        by_name = {c.name: c for c in self.children}
        for svc in self.services:
            child = by_name[svc.name]
            state = "up" if child.running() else "restarting" if child.restart_at is not None else "down"
            rate = lag = dlq = None
            note = ""
            if svc.consumes:
                try:
                    consumed, lag, dlq = await asyncio.wait_for(self.offsets.read(svc.consumes), 5)
                    now = Offsets(time.monotonic(), consumed, lag, dlq)
                    rate = rates(self.last.get(svc.name), now)
                    self.last[svc.name] = now
                except Exception as exc:  # noqa: BLE001 - the screen reports, never raises
                    note = exc.__class__.__name__
            out.append(ServiceRow(svc.name, state, child.restarts, rate, lag, dlq, note))
        return out

    async def site(self) -> list[str]:
        lines = []
        for svc in self.services:
            if svc.status is None or svc.name not in ("power", "cooling", "jobs"):
                continue
            try:
                lines.append(await asyncio.wait_for(svc.status(self.ctx), 5))
            except Exception as exc:  # noqa: BLE001
                lines.append(f"{svc.name}: {exc.__class__.__name__}")
        return lines

    async def show(self, status: Status) -> None:
        rows = await self.rows()
        if self.screen:
            size = shutil.get_terminal_size((80, 24))
            up = time.monotonic() - status.started
            screen = Screen(f"{self.title} · up {int(up // 3600)}:{int(up % 3600 // 60):02d}:{int(up % 60):02d}"
                            f" · Ctrl-C stops", self.where, rows, await self.site(), list(self.alerts.lines),
                            self.ctx.offsets_are_lower_bounds, self.message)
            print(CLEAR + "\n".join(render_screen(screen, size.columns, size.lines - 1)), flush=True)
            return
        print(await _status_line(status, self.services, self.ctx), flush=True)
        print(f"[{time.monotonic() - status.started:6.0f}s] "
              + plain_rates(rows, self.ctx.offsets_are_lower_bounds), flush=True)
        new = self.alerts.seen - self.alerts_printed
        for line in reversed(self.alerts.lines[:min(new, len(self.alerts.lines))]):
            print(f"alert       {line}", flush=True)
        self.alerts_printed = self.alerts.seen

    def note(self, message: str) -> None:
        self.message = message.splitlines()[0]
        if not self.screen:
            print(message, flush=True)

    async def close(self) -> None:
        await self.offsets.close()


async def _run(args: argparse.Namespace, stop: asyncio.Event) -> int:
    from twin.core.embedded.kafka import TansuBroker
    from twin.core.embedded.postgres import EmbeddedPostgres
    from twin.core.facility import build_inventory, load_facility_spec

    inventory = build_inventory(load_facility_spec(args.facility))  # fail fast on a bad spec
    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = wanted - {s.name for s in STACK_SERVICES}
    if unknown:
        print(f"unknown service(s) {sorted(unknown)}; known: {[s.name for s in STACK_SERVICES]}", file=sys.stderr)
        return 2
    services = [s for s in STACK_SERVICES if not wanted or s.name in wanted]
    logs = STATE_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    broker = pg = None
    children: list[Child] = []
    reservations = PortReservations()
    board: Board | None = None
    board_tasks: list[asyncio.Task] = []
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

        ctx = StackContext(
            bootstrap=bootstrap, database_url=database_url, inventory=inventory, args=args,
            token=os.environ.get("TWIN_STACK_TOKEN") or secrets.token_urlsafe(16),
            ports={s.name: {var: reservations.take(p) for var, p in s.ports.items()} for s in services},
            offsets_are_lower_bounds=broker is not None,
        )
        base = dict(os.environ, TWIN_KAFKA_BOOTSTRAP=bootstrap, TWIN_DATABASE_URL=database_url,
                    TWIN_FACILITY=args.facility, PYTHONUNBUFFERED="1")
        children = _children(services, ctx, base, logs)
        for child in children:
            child.start()
            print(f"{child.name:<13}started (pid {child.proc.pid if child.proc else '?'}), log {child.log_path}",
                  flush=True)
        print(f"\nfacility    {inventory.spec.site_id}: {len(inventory.racks)} racks, {inventory.n_gpus} GPUs", flush=True)
        for svc in services:
            for line in svc.banner(ctx):
                print(f"{svc.name:<13}{line}", flush=True)
        print(f"SQL         psql {database_url}\n"
              f"Status line: one part per service; `lag>=`/`dlq>=` are lower bounds on the embedded broker "
              f"(see README, Operating it).\nCtrl-C stops everything.\n", flush=True)
        screen = args.screen == "on" or (args.screen == "auto" and sys.stdout.isatty())
        board = Board(ctx, services, children,
                      f"AI Factory Twin · {inventory.spec.site_id}: {len(inventory.racks)} racks, {inventory.n_gpus:,} GPUs",
                      where_to_look(ctx, services, logs, broker is not None), screen)
        board_tasks.append(asyncio.create_task(board.alerts.run(stop), name="alerts"))
        status = Status()
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        next_status = time.monotonic() + args.status_interval
        while not stop.is_set():
            timeout = 0.5  # supervision tick
            if deadline is not None:
                timeout = min(timeout, max(deadline - time.monotonic(), 0))
            try:
                await asyncio.wait_for(stop.wait(), timeout)
            except TimeoutError:
                pass
            if stop.is_set():
                break
            now = time.monotonic()
            for child in children:
                message = child.supervise(now)
                if message:
                    board.note(message)
            if now >= next_status:
                await board.show(status)
                next_status = time.monotonic() + args.status_interval
            if deadline is not None and time.monotonic() >= deadline:
                await board.show(status)
                break
        return 1 if any(c.restarts for c in children) else 0
    finally:
        for task in board_tasks:
            task.cancel()
        await asyncio.gather(*board_tasks, return_exceptions=True)
        if board is not None:
            await board.close()
        print("stopping ...", flush=True)
        for child in reversed(children):  # simulator first, so ingest drains what was produced
            await asyncio.to_thread(child.stop)
            code = child.proc.returncode if child.proc else None
            print(f"  {child.name} stopped ({'clean' if code == 0 else f'exit {code}'})", flush=True)
        if pg is not None:
            await asyncio.to_thread(pg.stop)
        if broker is not None:
            broker.stop()
        reservations.release()
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
