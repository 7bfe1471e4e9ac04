"""The services table of the embedded stack (`make run`): adding a service is one entry here.

An entry names the module to run, the ports it needs (setting → preferred port; the stack picks a
free one when taken and passes it in that setting), extra settings and arguments, what to print in
the banner, and what to show in the status line. Services are processes: nothing here imports a
service package (only generated protos, to ask a gRPC question).

    StackService("power", "twin.power", ports={"POWER_GRPC_PORT": 50051},
                 status=grpc_health("POWER_GRPC_PORT", "twin.power.v1.PowerService")),
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from twin.core import topics


@dataclass
class StackContext:
    """What an entry's callbacks may use: infrastructure addresses, the chosen ports, the run's options."""

    bootstrap: str
    database_url: str
    inventory: Any  # twin.core.facility.Inventory
    args: argparse.Namespace
    token: str
    ports: dict[str, dict[str, int]]
    offsets_are_lower_bounds: bool
    memory: dict[str, Any] = field(default_factory=dict)  # per-status-callback state (rates)

    def port(self, service: str, setting: str) -> int:
        return self.ports[service][setting]


Status = Callable[[StackContext], Awaitable[str]]


@dataclass(frozen=True)
class StackService:
    name: str                                         # service name: folder, compose service, log file
    module: str                                       # `python -m <module>`
    ports: dict[str, int] = field(default_factory=dict)
    env: Callable[[StackContext], dict[str, str]] | None = None
    args: Callable[[StackContext], list[str]] | None = None
    banner: Callable[[StackContext], list[str]] = lambda ctx: []
    status: Status | None = None
    # (consumer group, topic) pairs whose committed offsets give the screen's records/s, lag and DLQ
    consumes: tuple[tuple[str, topics.Topic], ...] = ()
    grpc_port: str | None = None                      # the setting holding its gRPC port (the screen lists it)

    def env_for(self, ctx: StackContext) -> dict[str, str]:
        return self.env(ctx) if self.env else {}

    def args_for(self, ctx: StackContext) -> list[str]:
        return self.args(ctx) if self.args else []


# -- status probes --------------------------------------------------------------------------------


async def consumer_figures(bootstrap: str, topic: topics.Topic, group: str) -> tuple[int, int]:
    """(lag of `group` on `topic`, records in its DLQ), both from ListOffsets(latest).

    Tansu answers ListOffsets with the base offset of the last record batch + 1, not the last
    offset + 1, so on the embedded broker both are lower bounds (the status line prints `>=`)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        dlq = [TopicPartition(topic.dlq, p) for p in range(topic.partitions)]
        ends = await consumer.end_offsets(tps + dlq)
        lag = 0
        for tp in tps:
            committed = await consumer.committed(tp)
            lag += max(ends[tp] - (committed or 0), 0)
        return lag, sum(ends[tp] for tp in dlq)
    finally:
        await consumer.stop()


class GroupOffsets:
    """Committed offsets, end offsets and DLQ ends of (group, topic) pairs, one consumer per group kept
    open between readings (a consumer that does not subscribe joins no group: it only asks the
    coordinator for the group's committed offsets). Same lower-bound caveat on Tansu as above."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._consumers: dict[str, Any] = {}

    async def _consumer(self, group: str | None):
        from aiokafka import AIOKafkaConsumer

        key = group or ""
        if key not in self._consumers:
            c = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False)
            await c.start()
            self._consumers[key] = c
        return self._consumers[key]

    async def read(self, pairs: tuple[tuple[str, topics.Topic], ...]) -> tuple[int, int, int]:
        """(records consumed = sum of committed offsets, lag, DLQ records) over `pairs`."""
        from aiokafka import TopicPartition

        plain = await self._consumer(None)
        consumed = lag = dead = 0
        for group, topic in pairs:
            tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
            dlq = [TopicPartition(topic.dlq, p) for p in range(topic.partitions)]
            ends = await plain.end_offsets(tps + dlq)
            c = await self._consumer(group)
            for tp in tps:
                committed = await c.committed(tp) or 0
                consumed += committed
                lag += max(ends[tp] - committed, 0)
            dead += sum(ends[tp] for tp in dlq)
        return consumed, lag, dead

    async def close(self) -> None:
        for c in self._consumers.values():
            try:
                await c.stop()
            except Exception:  # noqa: BLE001 - closing on the way out
                pass
        self._consumers.clear()


class AlertTail:
    """The newest alerts and recommendations (power, cooling, jobs) from the end of their topics, as
    one-line texts for the screen; `lines` is newest first, at most `keep`."""

    TOPICS = ("POWER_ALERTS", "COOLING_ALERTS", "JOBS_RECOMMENDATIONS")

    def __init__(self, bootstrap: str, keep: int = 8) -> None:
        self.bootstrap, self.keep = bootstrap, keep
        self.lines: list[str] = []
        self.seen = 0

    @staticmethod
    def describe(topic: topics.Topic, msg: Any) -> str:
        fields = msg.DESCRIPTOR.fields_by_name
        stamp = next((getattr(msg, f) for f in ("alert_time", "recommendation_time")
                      if f in fields and msg.HasField(f)), None)
        when = time.strftime("%H:%M:%S", time.localtime(stamp.seconds if stamp is not None else time.time()))
        who = getattr(msg, "entity_id", "") or getattr(msg, "job_id", "")
        severity = ""
        if hasattr(msg, "severity"):
            severity = type(msg).DESCRIPTOR.fields_by_name["severity"].enum_type.values_by_number.get(msg.severity)
            severity = severity.name.removeprefix("SEVERITY_").lower() if severity else ""
        text = getattr(msg, "message", "") or ""
        if getattr(msg, "cleared", False):   # the condition ended (cooling and power alerts send it once)
            severity = "cleared"
            text = text if text.endswith(" cleared") else f"no longer: {text}"
        return f"{when} {topic.name.split('.')[0]:<7} {severity + ' ' if severity else ''}{who}: {text}".rstrip()

    async def run(self, stop: Any) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        watched = [t for name in self.TOPICS if (t := getattr(topics, name, None)) is not None]
        by_name = {t.name: t for t in watched}
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(t.name, p) for t in watched for p in range(t.partitions)]
            consumer.assign(tps)
            for tp, end in (await consumer.end_offsets(tps)).items():
                consumer.seek(tp, end)
            while not stop.is_set():
                got = await consumer.getmany(timeout_ms=500)
                for tp, records in got.items():
                    for r in records:
                        try:
                            msg = by_name[tp.topic].decode(r.value)
                        except Exception:  # noqa: BLE001 - a record we cannot read is not shown
                            continue
                        self.seen += 1
                        self.lines.insert(0, self.describe(by_name[tp.topic], msg))
                del self.lines[self.keep:]
        finally:
            await consumer.stop()


def _stored_counts(database_url: str) -> tuple[int, int] | None:
    """(GPU readings, rack batches) stored, from ingest's batch ledger (one row per rack and tick, with its GPU
    count): counting `telemetry_gpu` itself would expand every node row of the view (migration 009)."""
    import psycopg

    with psycopg.connect(database_url, connect_timeout=3) as conn:
        exists = conn.execute("SELECT to_regclass('telemetry_batches') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return None
        row = conn.execute("SELECT coalesce(sum(gpu_rows), 0), count(*) FROM telemetry_batches").fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)


async def _ingest_status(ctx: StackContext) -> str:
    import asyncio

    parts = []
    counts = await asyncio.to_thread(_stored_counts, ctx.database_url)
    if counts is None:
        parts.append("stored: tables not created yet")
    else:
        now = time.monotonic()
        last_rows, last_t = ctx.memory.get("ingest", (counts[0], now))
        rate = (counts[0] - last_rows) / max(now - last_t, 1e-9)
        ctx.memory["ingest"] = (counts[0], now)
        parts.append(f"stored gpu_rows={counts[0]} rack_batches={counts[1]} ({rate:,.0f} gpu rows/s)")
    try:
        lag, dead = await asyncio.wait_for(consumer_figures(ctx.bootstrap, topics.FACILITY_TELEMETRY, "ingest"), 4)
        at_least = ">" if ctx.offsets_are_lower_bounds else ""  # prints lag>=N
        parts.append(f"ingest lag{at_least}={lag} dlq{at_least}={dead}")
    except Exception as exc:  # noqa: BLE001 - a status probe reports, never raises
        parts.append(f"kafka: {exc.__class__.__name__}")
    return " | ".join(parts)


async def _fabric_status(ctx: StackContext) -> str:
    import grpc

    from twin.fabric.v1 import fabric_pb2, fabric_pb2_grpc

    n_ranks = min(ctx.inventory.n_gpus, 256)
    target = f"127.0.0.1:{ctx.port('fabric', 'FABRIC_GRPC_PORT')}"
    async with grpc.aio.insecure_channel(target) as channel:
        stub = fabric_pb2_grpc.FabricSimulationServiceStub(channel)
        reply = await stub.EstimateCollective(
            fabric_pb2.EstimateCollectiveRequest(
                collective=fabric_pb2.COLLECTIVE_ALL_REDUCE, size_bytes=1 << 30,
                placement=fabric_pb2.Placement(ranks=fabric_pb2.RankCount(n_ranks=n_ranks)),
            ),
            timeout=2, metadata=(("authorization", f"Bearer {ctx.token}"),),
        )
    e = reply.estimate
    return (f"fabric: all_reduce 1 GiB on {n_ranks} GPUs = {e.time_s * 1e3:.2f} ms "
            f"({e.algorithm}/{e.protocol}, busbw {e.busbw_gbps:.0f} GB/s)")


async def _fabric_status_safe(ctx: StackContext) -> str:
    try:
        return await _fabric_status(ctx)
    except Exception as exc:  # noqa: BLE001
        return f"fabric: {exc.__class__.__name__}"


async def _power_status(ctx: StackContext) -> str:
    import grpc

    from twin.power.v1 import power_pb2, power_pb2_grpc

    target = f"127.0.0.1:{ctx.port('power', 'POWER_GRPC_PORT')}"
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            reply = await power_pb2_grpc.PowerServiceStub(channel).GetSiteState(
                power_pb2.GetSiteStateRequest(), timeout=2, metadata=(("authorization", f"Bearer {ctx.token}"),))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return "power: no telemetry yet"
        return f"power: {exc.code().name}"
    except Exception as exc:  # noqa: BLE001 - a status probe reports, never raises
        return f"power: {exc.__class__.__name__}"
    s = reply.site
    return (f"power: site {s.input_power_w / 1e6:.3f} MW (IT {s.site.it_power_w / 1e6:.3f} MW, PUE {s.site.pue:.2f}, "
            f"headroom {s.headroom_w / 1e6:.2f} MW)")


async def _cooling_status(ctx: StackContext) -> str:
    import grpc

    from twin.cooling.v1 import cooling_pb2, cooling_pb2_grpc

    target = f"127.0.0.1:{ctx.port('cooling', 'COOLING_GRPC_PORT')}"
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            reply = await cooling_pb2_grpc.CoolingServiceStub(channel).GetState(
                cooling_pb2.GetStateRequest(scope=cooling_pb2.COOLING_SCOPE_PLANT), timeout=2,
                metadata=(("authorization", f"Bearer {ctx.token}"),))
    except grpc.aio.AioRpcError as exc:
        return f"cooling: {exc.code().name}"
    except Exception as exc:  # noqa: BLE001 - a status probe reports, never raises
        return f"cooling: {exc.__class__.__name__}"
    if not reply.states:
        return "cooling: no power state yet"
    p = reply.states[0].plant
    pue = f"{p.pue_cooling:.3f}" if p.HasField("pue_cooling") else "n/a, no IT load"  # absent, never NaN
    return (f"cooling: {p.cooling_power_w / 1e3:.0f} kW for {p.heat_load_w / 1e6:.3f} MW of heat "
            f"(PUE cooling part {pue}, facility supply {p.facility_supply_temp_c:.1f} °C)")


async def _jobs_status(ctx: StackContext) -> str:
    import grpc

    from twin.jobs.v1 import jobs_pb2, jobs_pb2_grpc

    target = f"127.0.0.1:{ctx.port('jobs', 'JOBS_GRPC_PORT')}"
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            reply = await jobs_pb2_grpc.JobServiceStub(channel).ListJobs(
                jobs_pb2.ListJobsRequest(status=jobs_pb2.JOB_STATUS_RUNNING, page_size=1000), timeout=2,
                metadata=(("authorization", f"Bearer {ctx.token}"),))
    except grpc.aio.AioRpcError as exc:
        return f"jobs: {exc.code().name}"
    except Exception as exc:  # noqa: BLE001 - a status probe reports, never raises
        return f"jobs: {exc.__class__.__name__}"
    jobs = list(reply.jobs)
    flagged = sum(1 for j in jobs if j.risk_flags)
    power = sum(j.power_w for j in jobs)
    more = "+" if reply.next_page_token else ""
    return f"jobs: {len(jobs)}{more} running, {flagged} with risk flags, {power / 1e3:.1f} kW predicted GPU power"


# -- the table ------------------------------------------------------------------------------------


def _ingest_banner(ctx: StackContext) -> list[str]:
    port = ctx.port("ingest", "INGEST_HTTP_PORT")
    return [f"Redfish POST http://127.0.0.1:{port}/redfish/v1/TelemetryService/MetricReports "
            f"(Authorization: Bearer {ctx.token})"]


def _fabric_banner(ctx: StackContext) -> list[str]:
    port = ctx.port("fabric", "FABRIC_GRPC_PORT")
    return [f"gRPC 127.0.0.1:{port}   try: TWINCTL_TOKEN={ctx.token} .venv/bin/twinctl fabric "
            f"--target 127.0.0.1:{port} estimate --collective all_reduce --size 1GiB "
            f"--ranks {min(ctx.inventory.n_gpus, 256)}"]


def demo_mode(ctx: StackContext) -> bool:
    """The stack runs against the facility simulator: the console shows the scenario buttons."""
    return "facility-sim" in ctx.ports


def _console_env(ctx: StackContext) -> dict[str, str]:
    """Demo mode (facility-sim started): the scenario buttons, with the stack's token and the twins' addresses."""
    if not demo_mode(ctx):
        return {"CONSOLE_DEMO": "0"}
    env = {"CONSOLE_DEMO": "1", "CONSOLE_OPERATOR_TOKEN": ctx.token}
    for twin, setting in (("power", "POWER_GRPC_PORT"), ("cooling", "COOLING_GRPC_PORT"), ("jobs", "JOBS_GRPC_PORT"),
                          ("fabric", "FABRIC_GRPC_PORT")):
        if twin in ctx.ports:
            env[f"CONSOLE_SCENARIO_{twin.upper()}_TARGET"] = f"127.0.0.1:{ctx.port(twin, setting)}"
    if "power" in ctx.ports:
        env["CONSOLE_SCENARIO_POWER_HTTP"] = f"http://127.0.0.1:{ctx.port('power', 'POWER_HTTP_PORT')}"
    return env


def _console_banner(ctx: StackContext) -> list[str]:
    url = f"http://127.0.0.1:{ctx.port('console', 'CONSOLE_HTTP_PORT')}/"
    lines = [f"console {url}   (live floor plan, power chain, cooling, jobs, alerts; site power and PUE history)"]
    if demo_mode(ctx):
        lines.append(f"scenarios {url}#token={ctx.token}   (demo mode: scenario buttons; the fragment stays in "
                     f"the browser)")
    return lines


def _sim_args(ctx: StackContext) -> list[str]:
    a = ctx.args
    return ["--rate-hz", str(a.rate_hz), "--racks", str(a.racks), "--bad-fraction", str(a.bad_fraction)]


STACK_SERVICES: tuple[StackService, ...] = (
    StackService(
        "ingest", "twin.ingest", ports={"INGEST_HTTP_PORT": 8081},
        env=lambda ctx: {"INGEST_REDFISH_TOKEN": ctx.token},
        banner=_ingest_banner, status=_ingest_status, consumes=(("ingest", topics.FACILITY_TELEMETRY),)),
    StackService(
        "fabric", "twin.fabric", ports={"FABRIC_GRPC_PORT": 50053},
        env=lambda ctx: {"FABRIC_GRPC_TOKEN": ctx.token},
        banner=_fabric_banner, status=_fabric_status_safe, grpc_port="FABRIC_GRPC_PORT",
        consumes=(("fabric", topics.FABRIC_EVENTS), ("fabric-telemetry", topics.TELEMETRY_SAMPLES))),
    StackService(
        "power", "twin.power", ports={"POWER_GRPC_PORT": 50054, "POWER_HTTP_PORT": 8082},
        env=lambda ctx: {"POWER_GRPC_TOKEN": ctx.token, "POWER_OPENADR_TOKEN": ctx.token},
        banner=lambda ctx: [
            f"gRPC 127.0.0.1:{ctx.port('power', 'POWER_GRPC_PORT')}   try: TWINCTL_TOKEN={ctx.token} .venv/bin/twinctl "
            f"power --target 127.0.0.1:{ctx.port('power', 'POWER_GRPC_PORT')} state --components",
            f"OpenADR 3 POST http://127.0.0.1:{ctx.port('power', 'POWER_HTTP_PORT')}/openadr3/events "
            f"(Authorization: Bearer {ctx.token})"],
        status=_power_status, grpc_port="POWER_GRPC_PORT",
        consumes=(("power", topics.TELEMETRY_SAMPLES), ("power-site", topics.POWER_RACKS),
                  ("power-grid", topics.GRID_EVENTS))),
    # the cooling twin: heat from power.state.v1, plant cooling power back to the power twin for PUE
    StackService(
        "cooling", "twin.cooling", ports={"COOLING_GRPC_PORT": 50055},
        env=lambda ctx: {"COOLING_GRPC_TOKEN": ctx.token},
        banner=lambda ctx: [
            f"gRPC 127.0.0.1:{ctx.port('cooling', 'COOLING_GRPC_PORT')}   try: TWINCTL_TOKEN={ctx.token} "
            f".venv/bin/twinctl cooling --target 127.0.0.1:{ctx.port('cooling', 'COOLING_GRPC_PORT')} state"],
        status=_cooling_status, grpc_port="COOLING_GRPC_PORT",
        consumes=(("cooling", topics.POWER_STATE), ("cooling-telemetry", topics.TELEMETRY_SAMPLES),
                  ("cooling-events", topics.COOLING_EVENTS), ("cooling-site", topics.COOLING_RACKS))),
    # the job twin: after fabric (it asks the fabric twin's gRPC for collective times, with that port and token)
    StackService(
        "jobs", "twin.jobs", ports={"JOBS_GRPC_PORT": 50056},
        env=lambda ctx: {"JOBS_GRPC_TOKEN": ctx.token, "JOBS_FABRIC_TOKEN": ctx.token,
                         "JOBS_FABRIC_TARGET": f"127.0.0.1:{ctx.port('fabric', 'FABRIC_GRPC_PORT')}"},
        banner=lambda ctx: [
            f"gRPC 127.0.0.1:{ctx.port('jobs', 'JOBS_GRPC_PORT')}   try: TWINCTL_TOKEN={ctx.token} .venv/bin/twinctl "
            f"jobs --target 127.0.0.1:{ctx.port('jobs', 'JOBS_GRPC_PORT')} list"],
        status=_jobs_status, grpc_port="JOBS_GRPC_PORT",
        consumes=(("jobs", topics.JOBS_EVENTS), ("jobs-fabric", topics.FABRIC_STATE),
                  ("jobs-power-plans", topics.POWER_PLANS), ("jobs-power-alerts", topics.POWER_ALERTS),
                  ("jobs-cooling", topics.COOLING_ALERTS))),
    # the console: the live web page (read-only; latest-only tails, so its start order does not matter)
    # demo mode (with facility-sim): scenario buttons, needing the stack's token
    StackService(
        "console", "twin.console", ports={"CONSOLE_HTTP_PORT": 8080}, env=_console_env, banner=_console_banner),
    # the simulator last: started after the twins, stopped first so they drain what it produced
    StackService(
        "facility-sim", "twin.facility_sim", ports={"FACILITY_SIM_METRICS_PORT": 9400}, args=_sim_args,
        banner=lambda ctx: [f"DCGM http://127.0.0.1:{ctx.port('facility-sim', 'FACILITY_SIM_METRICS_PORT')}"
                            f"/metrics (simulated exporter)"]),
)
