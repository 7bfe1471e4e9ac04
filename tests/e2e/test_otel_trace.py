"""OpenTelemetry end to end (issue 14 item 6): one trace from a telemetry batch to a job recommendation.

ingest, power, cooling and jobs run as processes with OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/gRPC
receiver in this test process (the collector's TraceService/Export, collecting ExportTraceServiceRequests).
GB200 NVL72 hall (16 liquid racks; loop-a = cdu-a-1 + cdu-a-2 serves row a, as in test_scenarios):

1. a job starts on rack a-0000 (jobs.events.v1), and both CDUs of loop-a fail (cooling.events.v1) while the
   cooling twin knows no heat yet, so no tick is evaluated;
2. one RackTelemetryBatch per rack goes to facility.telemetry.v1, each sent from its own root span (the
   test's "send facility.telemetry.v1", the batch's creation context);
3. ingest -> telemetry.samples.v1 -> power -> power.state.v1 -> cooling: the tick completes, row a is predicted
   to throttle -> cooling.alerts.v1 -> jobs: a CHECKPOINT_NOW recommendation for the job.

Asserted on the spans the receiver got: the recommendation's send span is in the trace of one of the test's
batches, and its parent chain is exactly  jobs "send jobs.recommendations.v1" -> jobs "jobs refresh" ->
cooling "send cooling.alerts.v1" -> cooling "cooling evaluate" -> power "send power.state.v1" -> ingest
"send telemetry.samples.v1" -> the test's root span of that batch; the aggregating spans LINK to the other
inputs and to their batch "process <topic>" spans; every messaging span carries the semantic-convention
attributes. Waits poll with a deadline; nothing is asserted from a sleep.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent import futures
from datetime import UTC, datetime

import grpc
import pytest
from e2e_support import Procs, topic_records, wait_until
from ingest_factory import inventory, rack_batch
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as ts_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.core import topics
from twin.core.embedded.kafka import free_port
from twin.core.kafka import EventProducer
from twin.core.topics_admin import ensure_topics
from twin.jobs.v1 import jobs_pb2 as jpb
from twin.jobs.v1 import jobs_pb2_grpc as jpb_grpc

pytestmark = pytest.mark.timeout(300)

FACILITY = "gb200-nvl72-hall"
SITE = "hall-gb200"
RACK = "a-0000"
LOOP_A_CDUS = ("cdu-a-1", "cdu-a-2")
JOB = "otel-e2e-job"
KIND = {m.value: name for name, m in trace.SpanKind.__members__.items()}  # API value -> name


class Receiver(ts_grpc.TraceServiceServicer):
    """opentelemetry.proto.collector.trace.v1.TraceService on loopback: keeps every span it is sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[ts.ExportTraceServiceRequest] = []

    def Export(self, request, context):  # noqa: N802 - the proto's method name
        with self.lock:
            self.requests.append(request)
        return ts.ExportTraceServiceResponse()

    def spans(self) -> dict[str, tuple[str, object]]:
        """span id (hex) -> (service.name, Span proto)."""
        out = {}
        with self.lock:
            requests = list(self.requests)
        for req in requests:
            for rs in req.resource_spans:
                service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        out[sp.span_id.hex()] = (service, sp)
        return out


def _attrs(span) -> dict:
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
    return out


def _traceparent(headers) -> tuple[str, str]:
    value = dict(headers)["traceparent"].decode()
    _, trace_id, span_id, _ = value.split("-")
    return trace_id, span_id


def _job_events(inv, now: datetime) -> list[jpb.JobEvent]:
    rack = next(r for r in inv.racks if r.rack_id == RACK)
    nodes = list(inv.node_ids(rack))
    n_gpus = 4 * len(nodes)  # 18 trays x 4 B200 (the preset)
    spec = jpb.JobSpec(model=jpb.ModelShape(layers=32, hidden=4096, ffn_hidden=14336, heads=32, kv_heads=8,
                                            vocab=128256, seq_len_tokens=8192, gated_ffn=True),
                       parallel=jpb.Parallelism(tp=1, pp=1, dp=n_gpus, cp=1, data_parallel=jpb.DATA_PARALLEL_ZERO1),
                       micro_batch_sequences=1, global_batch_sequences=4 * n_gpus, precision=jpb.PRECISION_BF16,
                       recompute=jpb.RECOMPUTE_SELECTIVE, gpu_model="B200-GB200", n_gpus=n_gpus, owner="otel-e2e")
    out = []
    for kind, dt, extra in ((jpb.JOB_EVENT_KIND_SUBMITTED, 2, {}),
                            (jpb.JOB_EVENT_KIND_STARTED, 1,
                             {"placement": jpb.Placement(node_ids=nodes, n_nodes=len(nodes), n_gpus=n_gpus)})):
        ev = jpb.JobEvent(job_id=JOB, kind=kind, source="otel-e2e", spec=spec, **extra)
        ev.event_time.FromNanoseconds(int((now.timestamp() - dt) * 1e9))
        out.append(ev)
    return out


def test_one_trace_from_a_telemetry_batch_to_a_job_recommendation(kafka, fresh_database, procs: Procs):
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ts_grpc.add_TraceServiceServicer_to_server(receiver, server)
    otlp_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        _run(kafka, procs, receiver, otlp_port)
    finally:
        server.stop(grace=None)


def _run(kafka: str, procs: Procs, receiver: Receiver, otlp_port: int) -> None:
    # every topic with its registry partitions before anything is sent (no broker-side auto-creation)
    asyncio.run(ensure_topics(kafka))
    otel = {"TWIN_FACILITY": FACILITY, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
            "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none", "OTEL_BSP_SCHEDULE_DELAY": "200"}
    procs.start("ingest", "twin.ingest", env=otel)
    procs.start("power", "twin.power", env={**otel, "POWER_GRPC_PORT": str(free_port()), "POWER_HTTP_PORT": "0",
                                            "POWER_SESSION_TIMEOUT_MS": "3000"})
    cooling = procs.start("cooling", "twin.cooling", env={**otel, "COOLING_GRPC_PORT": str(free_port()),
                                                          "COOLING_SESSION_TIMEOUT_MS": "3000"})
    jobs_port = free_port()
    procs.start("jobs", "twin.jobs", env={**otel, "JOBS_GRPC_PORT": str(jobs_port), "JOBS_FABRIC_TARGET": "",
                                          "JOBS_SESSION_TIMEOUT_MS": "3000"})
    inv = inventory(FACILITY)
    now = datetime.now(UTC)

    async def send(topic, items):
        async with EventProducer(kafka, source="otel-e2e") as producer:
            for key, msg in items:
                await producer.send(topic, key, msg)

    # 1. the job runs on rack a-0000 before anything about its rack arrives
    asyncio.run(send(topics.JOBS_EVENTS, [(JOB, ev) for ev in _job_events(inv, now)]))
    with grpc.insecure_channel(f"127.0.0.1:{jobs_port}") as channel:
        stub = jpb_grpc.JobServiceStub(channel)

        def running() -> bool:
            try:
                resp = stub.ListJobs(jpb.ListJobsRequest(status=jpb.JOB_STATUS_RUNNING), timeout=5)
            except grpc.RpcError:
                return False
            return any(j.job_id == JOB for j in resp.jobs)

        wait_until(running, 120, f"{JOB} running in the job twin", procs)

    # 2. loop-a's CDUs fail while the cooling twin knows no heat (no tick yet: the first tick will be telemetry's)
    failures = []
    for cdu in LOOP_A_CDUS:
        ev = cpb.CoolingEvent(event_id=str(uuid.uuid4()), site_id=SITE, entity_id=cdu,
                              kind=cpb.COOLING_EVENT_KIND_CDU_FAILURE, note="otel e2e")
        ev.event_time.FromNanoseconds(time.time_ns())
        failures.append((cdu, ev))
    asyncio.run(send(topics.COOLING_EVENTS, failures))
    wait_until(lambda: all(f"cdu_failure {cdu} at" in cooling.log().lower() for cdu in LOOP_A_CDUS), 120,
               "the cooling twin applied both CDU failures", procs)

    # 3. one batch per rack, each from its own root span (the batch's creation context)
    provider = TracerProvider()
    roots = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(roots))
    tracer = provider.get_tracer("otel-e2e")
    sample_time = datetime.now(UTC)

    async def send_batches():
        async with EventProducer(kafka, source="otel-e2e") as producer:
            for i, rack in enumerate(inv.racks):
                with tracer.start_as_current_span(f"send {topics.FACILITY_TELEMETRY.name}",
                                                  kind=trace.SpanKind.PRODUCER):
                    await producer.send(topics.FACILITY_TELEMETRY, rack.rack_id, rack_batch(inv, i, sample_time, 1))

    asyncio.run(send_batches())
    root_of = {f"{s.context.span_id:016x}": s for s in roots.get_finished_spans()}
    assert len(root_of) == len(inv.racks) == 16

    # 4. the job twin's CHECKPOINT_NOW for the predicted throttling of rack a-0000
    def recommendation():
        for r in topic_records(kafka, topics.JOBS_RECOMMENDATIONS.name, topics.JOBS_RECOMMENDATIONS.partitions):
            msg = topics.JOBS_RECOMMENDATIONS.decode(r.value)
            if msg.job_id == JOB and msg.kind == jpb.RECOMMENDATION_KIND_CHECKPOINT_NOW and "throttle" in msg.message:
                return r, msg
        return None

    rec_record, rec = wait_until(recommendation, 150, "a CHECKPOINT_NOW recommendation for the throttling rack",
                                 procs, interval_s=1.0)
    trace_id, rec_span_id = _traceparent(rec_record.headers)

    # 5. the whole chain of that trace at the receiver
    chain_names = [("jobs", "send jobs.recommendations.v1"), ("jobs", "jobs refresh"),
                   ("cooling", "send cooling.alerts.v1"), ("cooling", "cooling evaluate"),
                   ("cooling", "send cooling.racks.v1"),  # cooling's stage 1 forwards the rack to stage 2
                   ("power", "send power.state.v1"), ("ingest", "send telemetry.samples.v1")]

    def chain():
        spans = receiver.spans()
        out, span_id = [], rec_span_id
        for _ in chain_names:
            if span_id not in spans:
                return None
            service, sp = spans[span_id]
            out.append((service, sp))
            span_id = sp.parent_span_id.hex()
        return spans, out, span_id

    spans, got, root_id = wait_until(chain, 60, "the trace's spans from jobs back to ingest at the receiver",
                                     procs)
    print("\n".join(f"{svc:8s} {sp.name:32s} trace {sp.trace_id.hex()} span {sp.span_id.hex()} "
                    f"parent {sp.parent_span_id.hex()} links {len(sp.links)}" for svc, sp in got))
    assert [(svc, sp.name) for svc, sp in got] == chain_names
    assert {sp.trace_id.hex() for _, sp in got} == {trace_id}, "one trace from the batch to the recommendation"
    assert root_id in root_of, "ingest's send span is a child of the test's send span of one batch"
    root = root_of[root_id]
    assert f"{root.context.trace_id:032x}" == trace_id

    by_name = {sp.name: sp for _, sp in got}
    kinds = {name: KIND[sp.kind - 1] if sp.kind else None for name, sp in by_name.items()}
    # the OTLP SpanKind enum is the API's + 1 (0 = unspecified)
    assert kinds["send jobs.recommendations.v1"] == kinds["send cooling.alerts.v1"] == "PRODUCER"
    assert kinds["send power.state.v1"] == kinds["send telemetry.samples.v1"] == "PRODUCER"
    assert kinds["send cooling.racks.v1"] == "PRODUCER"
    assert kinds["cooling evaluate"] == kinds["jobs refresh"] == "INTERNAL"

    # messaging semantic conventions on every send span
    for name in ("send jobs.recommendations.v1", "send cooling.alerts.v1", "send cooling.racks.v1",
                 "send power.state.v1", "send telemetry.samples.v1"):
        a = _attrs(by_name[name])
        assert a["messaging.system"] == "kafka" and a["messaging.operation.type"] == "send", (name, a)
        assert a["messaging.destination.name"] == name.removeprefix("send ")
        assert a["messaging.kafka.message.key"] and a["messaging.message.id"], (name, a)
    assert _attrs(by_name["send jobs.recommendations.v1"])["messaging.message.id"] == rec.recommendation_id
    assert _attrs(by_name["send jobs.recommendations.v1"])["messaging.kafka.message.key"] == JOB
    assert _attrs(by_name["send telemetry.samples.v1"])["messaging.kafka.message.key"] in {r.rack_id for r in inv.racks}
    assert _attrs(by_name["send power.state.v1"])["messaging.kafka.message.key"] == \
        _attrs(by_name["send telemetry.samples.v1"])["messaging.kafka.message.key"], "one rack's batch, one rack's state"

    # links: each per-message send span links to its consumer's batch span "process <input topic>"
    def linked_process(name: str, topic: str, group_service: str) -> None:
        sp = by_name[name]
        batch = [spans[link.span_id.hex()] for link in sp.links if link.span_id.hex() in spans]
        batch = [(svc, b) for svc, b in batch if b.name == f"process {topic}"]
        assert batch, f"{name} links to no 'process {topic}' span: {[link.span_id.hex() for link in sp.links]}"
        svc, b = batch[0]
        a = _attrs(b)
        assert svc == group_service and KIND[b.kind - 1] == "CONSUMER"
        assert a["messaging.system"] == "kafka" and a["messaging.operation.type"] == "process"
        assert a["messaging.destination.name"] == topic and a["messaging.consumer.group.name"]
        assert a["messaging.batch.message_count"] >= 1
        # the batch span is a root linked to the creation contexts of the records it processed
        assert not b.parent_span_id
        assert any(link.trace_id.hex() == trace_id for link in b.links)

    linked_process("send telemetry.samples.v1", topics.FACILITY_TELEMETRY.name, "ingest")
    linked_process("send power.state.v1", topics.TELEMETRY_SAMPLES.name, "power")
    linked_process("send cooling.racks.v1", topics.POWER_STATE.name, "cooling")
    # the aggregating spans: the tick links to the other racks' power states (other batches' traces)
    tick = by_name["cooling evaluate"]
    causes = [link for link in tick.links if dict((a.key, a.value.string_value) for a in link.attributes)
              .get("twin.link") == "cause"]
    other_traces = {f"{s.context.trace_id:032x}" for s in root_of.values()} - {trace_id}
    # ... and to the CDU failures, which cooling's stage 1 forwarded from its "process cooling.events.v1" batch
    # (the test sent them without a trace context, so that batch span's trace is theirs)
    event_traces = {sp.trace_id.hex() for svc, sp in spans.values()
                    if svc == "cooling" and sp.name == f"process {topics.COOLING_EVENTS.name}"}
    linked = {link.trace_id.hex() for link in causes}
    assert linked & other_traces, "the tick links to the rack states of the other batches"
    assert linked <= other_traces | event_traces, "the tick links to nothing but racks' states and the CDU events"
    assert _attrs(tick)["twin.causes"] == len(causes) + 1 and _attrs(tick)["twin.site_id"] == SITE
    refresh = by_name["jobs refresh"]
    assert any(spans.get(link.span_id.hex(), ("", None))[1] is not None
               and spans[link.span_id.hex()][1].name == f"process {topics.COOLING_ALERTS.name}"
               for link in refresh.links), "jobs refresh links to its alerts batch span"
    # the ingest batch span for this batch exists and links to the test's root span
    ingest_batches = [sp for svc, sp in spans.values() if svc == "ingest"
                      and sp.name == f"process {topics.FACILITY_TELEMETRY.name}"
                      and any(link.span_id.hex() == root_id for link in sp.links)]
    assert len(ingest_batches) == 1
