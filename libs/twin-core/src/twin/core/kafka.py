"""Kafka producer and at-least-once consumer loop (aiokafka) shared by every service (DESIGN §4).

Producer: `EventProducer(bootstrap, source)` sends one protobuf message per call with the CloudEvents
binary-mode headers (twin.core.envelope) and the W3C trace context of the current span. With
`cause=record` (or `traced=True`) and tracing on, the message gets its own PRODUCER span
"send <topic>" (OTel messaging semantic conventions) whose parent is the cause's creation context (or
the current span), linked to the current span: its context is what the headers carry.

Tracing: each polled batch is processed in a CONSUMER span "process <topic>" (messaging.operation.type
= process), a new root LINKED to every record's creation context (the conventions' batch consumer);
handlers keep a record's trace going with `cause=` / twin.core.telemetry.caused_span.

Consumer: `run_consumer(...)` polls a batch, decodes each record (protobuf + envelope), hands the good
ones to `handle_batch` and sends every undecodable or rejected record to `<topic>.dlq` with its
ORIGINAL value bytes and headers plus

    dlq_reason        why (e.g. "decode: Error parsing message", "validation: gpu_temp_c=400.0 ...")
    dlq_source_topic  the topic the record was read from
    dlq_partition     its partition (decimal text)
    dlq_offset        its offset (decimal text)
    dlq_time          when it was dead-lettered (ISO 8601, UTC)
    dlq_original_size the original value's size in bytes (decimal text)
    dlq_payload       "full": the value is the original; "prefix": only its first
                      limits.DLQ_PAYLOAD_PREFIX_BYTES; "none": no value

Size limits all live in twin.core.limits. A record whose value is larger than
limits.RECORD_MAX_BYTES (only a foreign producer on a permissive broker can put one there) is refused
before decoding with reason "size: ..." and dead-lettered as a REFERENCE (payload prefix, original
headers only when small, key truncated), never in full; so is any rejected record whose full DLQ copy
would exceed the DLQ producer's max_request_size. DLQ sends:
- retriable errors (broker unreachable, timeouts) are retried with capped backoff until stop_event is
  set; then the loop leaves at once (after a short grace for an in-flight send) WITHOUT committing, so
  the records are redelivered;
- an error that can never succeed (MessageSizeTooLargeError and other non-retriable ones) turns a
  full copy into a reference once; if that is refused too, the record is logged at ERROR with its
  topic/partition/offset/size/reason, counted (`dlq_failed`, twin.kafka.dlq.failed) and committed:
  a record the DLQ refuses never blocks its partition.

Offsets are committed only after the handler returned (its side effects are durable) AND every DLQ
send of the batch is acknowledged (or refused for good, see above). Handler failures never crash the
loop:
- transient errors (`is_transient`, e.g. database or broker unreachable) are retried with capped
  exponential backoff until stop_event is set (then the loop returns without committing: the batch
  is redelivered), and nothing is committed meanwhile;
- any other error is retried `max_attempts` times, then the batch is split in halves until the
  failing record is isolated; that record goes to the DLQ with the exception as reason and the rest
  of the batch proceeds. A poison record never blocks its partition.

Pipelined mode (opt-in, `pipelined(handler)`): a handler with `pipeline = True` and two phases,
`prepare(records) -> prepared` (CPU only: parse, validate, build rows; no side effects) and
`async write(prepared) -> BatchResult` (the I/O: transaction, publishing), plus the plain
`__call__(records)` (= write(prepare(records))). While write N runs in the event loop, the loop polls
poll N+1 and decodes and prepares it in a worker thread (so `prepare` must only read handler state that
`write` does not change). Offsets are still committed strictly in order, each
only after its write and its DLQ acks succeeded. Prepared-but-unwritten work is discarded when
- write N raised: N goes through the plain path (retries, bisection of a poison record, as above) and
  the partitions of N+1 are re-seeked to N+1's first offsets (re-polled, prepared again);
- partitions were revoked since N+1 was polled (rebalance listener): N+1 is dropped unwritten and the
  new assignment's positions (the committed offsets) decide what is read next.
A handler without the two phases (or with `pipeline` false) runs exactly as described above.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    ProducerClosed,
    RecordTooLargeError,
)
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from google.protobuf.message import DecodeError, Message
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from twin.core import limits
from twin.core.envelope import Envelope, EnvelopeError, Headers, envelope_headers, iso_time, now_iso
from twin.core.telemetry import MAX_LINKS, inject_current, span_context_from_headers, tracing_enabled
from twin.core.topics import Topic

log = logging.getLogger("twin.core.kafka")
_tracer = trace.get_tracer("twin.core.kafka")
_meter = metrics.get_meter("twin.core.kafka")

_consumed = _meter.create_counter("twin.kafka.records.consumed", unit="{record}", description="records polled")
_rejected = _meter.create_counter(
    "twin.kafka.records.rejected", unit="{record}", description="records sent to the DLQ, by reason kind")
_dlq_sent = _meter.create_counter("twin.kafka.dlq.sent", unit="{record}", description="DLQ records acknowledged")
_dlq_failed = _meter.create_counter(
    "twin.kafka.dlq.failed", unit="{record}", description="records the DLQ refused for good (logged, committed)")
_retries = _meter.create_counter("twin.kafka.handler.retries", unit="{attempt}", description="failed handler attempts")
_batch_latency = _meter.create_histogram(
    "twin.kafka.batch.duration", unit="s", description="handler time per batch (decode excluded)")

# (group, topic, partition) -> lag; read by one observable gauge for every consumer in the process.
_LAG: dict[tuple[str, str, int], int] = {}


def _observe_lag(options: CallbackOptions) -> Iterable[Observation]:
    for (group, topic, partition), lag in list(_LAG.items()):
        yield Observation(lag, {"group": group, "topic": topic, "partition": partition})


_meter.create_observable_gauge(
    "twin.kafka.consumer.lag", callbacks=[_observe_lag], unit="{record}",
    description="highwater - position per assigned partition")


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One decoded Kafka record: the protobuf message plus where it came from."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: Headers
    timestamp_ms: int
    message: Message
    envelope: Envelope
    raw: ConsumerRecord = field(repr=False, compare=False)


@dataclass(frozen=True)
class Rejected:
    """A record the handler refuses (invalid); it goes to the DLQ. `kind` is a low-cardinality label."""

    record: Record
    reason: str
    kind: str = "invalid"


@dataclass
class BatchResult:
    rejected: list[Rejected] = field(default_factory=list)


Handler = Callable[[list[Record]], Awaitable[BatchResult]]


def pipelined(handler: Any) -> bool:
    """Does `handler` opt in to the pipelined loop (`pipeline` true, `prepare` and `write` present)?"""
    return bool(getattr(handler, "pipeline", False)) and callable(getattr(handler, "prepare", None)) \
        and callable(getattr(handler, "write", None))


@dataclass
class ConsumerStats:
    """Plain counters for the operator's status line (OTel carries the same numbers as metrics)."""

    consumed: int = 0
    handled: int = 0
    rejected: int = 0
    dlq_sent: int = 0
    batches: int = 0
    commits: int = 0
    retries: int = 0
    dlq_references: int = 0  # dead-lettered as a reference (dlq_payload=prefix|none), not in full
    dlq_failed: int = 0  # could never be dead-lettered (non-retriable send error): logged, then committed
    dlq_retries: int = 0  # DLQ send attempts that failed with a retriable error
    discarded: int = 0  # pipelined mode: prepared polls dropped unwritten (write failure, rebalance)
    lag: dict[int, int] = field(default_factory=dict)
    # the topic's partitions this member holds and the topic's partition count (refreshed with the lag): a group
    # member holding fewer than all of them shares the group with another process
    assigned: frozenset[int] = frozenset()
    topic_partitions: int = 0

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


def decode_record(topic: Topic, raw: ConsumerRecord) -> Record:
    """Parse the protobuf value and the CloudEvents envelope; raises ValueError with a reason."""
    headers: Headers = [(k, v) for k, v in (raw.headers or ())]
    value = raw.value
    if value is None:
        raise ValueError("decode: empty value (tombstone)")
    try:
        message = topic.decode(value)
    except DecodeError as exc:
        raise ValueError(f"decode: {exc}") from exc
    try:
        envelope = Envelope.from_pairs(headers)
    except EnvelopeError as exc:
        raise ValueError(f"envelope: {exc}") from exc
    if envelope.type != topic.ce_type:
        raise ValueError(f"envelope: ce_type {envelope.type!r} is not {topic.ce_type!r} for topic {topic.name}")
    key = raw.key.decode("utf-8", "replace") if raw.key is not None else None
    # Record's generated __init__ sets each of its 10 fields through object.__setattr__ (frozen); its fields
    # have no defaults, factories or __post_init__, so filling __dict__ makes the same object at a third of the cost
    record = object.__new__(Record)
    record.__dict__.update(topic=raw.topic, partition=raw.partition, offset=raw.offset, key=key, value=value,
                           headers=headers, timestamp_ms=raw.timestamp, message=message, envelope=envelope, raw=raw)
    return record


def dlq_headers(headers: Sequence[tuple[str, bytes]], reason: str, topic: str, partition: int, offset: int,
                now: datetime | None = None, *, original_size: int | None = None,
                payload: str | None = None) -> Headers:
    """The original headers plus the `dlq_*` context (see the module docstring)."""
    extra = {
        "dlq_reason": reason[:limits.DLQ_REASON_MAX_CHARS],
        "dlq_source_topic": topic,
        "dlq_partition": str(partition),
        "dlq_offset": str(offset),
        "dlq_time": (now or datetime.now(UTC)).isoformat(),
    }
    if original_size is not None:
        extra["dlq_original_size"] = str(original_size)
    if payload is not None:
        extra["dlq_payload"] = payload
    kept = [(k, v) for k, v in headers if k not in extra]
    return kept + [(k, v.encode()) for k, v in extra.items()]


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """The producer's own size estimate of one record (what `max_request_size` is compared with)."""
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers))


def oversized_reason(raw: ConsumerRecord) -> str | None:
    """Why `raw` is refused before decoding (larger than limits.RECORD_MAX_BYTES), or None."""
    size = len(raw.value or b"")
    if size > limits.RECORD_MAX_BYTES:
        return f"size: record value is {size} bytes, larger than the {limits.RECORD_MAX_BYTES}-byte limit"
    return None


# -- producer -----------------------------------------------------------------------------------


def send_span(destination: str, key: str | None, message_id: str | None,
              cause: Record | trace.SpanContext | None = None) -> Any:
    """The PRODUCER span "send <destination>" of one message (messaging semantic conventions), current
    while it is used as a context manager. Parent: `cause`'s creation context when it has a valid one,
    else the current span; linked to the current span when that is in another trace."""
    ctx = cause if isinstance(cause, trace.SpanContext) or cause is None else span_context_from_headers(cause.headers)
    attrs: dict[str, Any] = {"messaging.system": "kafka", "messaging.destination.name": destination,
                             "messaging.operation.type": "send", "messaging.operation.name": "send"}
    if key is not None:
        attrs["messaging.kafka.message.key"] = key
    if message_id:
        attrs["messaging.message.id"] = message_id
    if ctx is None or not ctx.is_valid:
        return _tracer.start_as_current_span(f"send {destination}", kind=trace.SpanKind.PRODUCER, attributes=attrs)
    if not ctx.trace_flags.sampled:
        # a trace the head sampler dropped: pass its context on unchanged (downstream stays unsampled, as a
        # parent-based sampler decides) without paying for a span nobody records
        return trace.use_span(trace.NonRecordingSpan(ctx), end_on_exit=False)
    current = trace.get_current_span().get_span_context()
    links = [trace.Link(current, {"twin.link": "batch"})] if current.is_valid and current.trace_id != ctx.trace_id else []
    return _tracer.start_as_current_span(
        f"send {destination}", context=trace.set_span_in_context(trace.NonRecordingSpan(ctx)),
        kind=trace.SpanKind.PRODUCER, links=links, attributes=attrs)



# Bytes of records the producer gathers per partition before a send (aiokafka `max_batch_size`, default 16 KiB).
# aiokafka keeps one produce request in flight per broker and takes one batch per partition into it, and
# `send()` WAITS while its partition's batch is full: with 16 KiB and ~8-10 KiB records (ingest's normalized
# rack batches) every request carried about one record per partition, so publishing a tick was one broker
# round trip per ~6 records, in series (profile of a 50k-GPU drain, 2026-11-29). A batch is one record batch
# on the broker, so it must stay under its message.max.bytes (limits.BROKER_MAX_MESSAGE_BYTES); half of it
# leaves room for a record that does not fit any more (a batch is closed before it would overflow).
PRODUCER_MAX_BATCH_BYTES = limits.BROKER_MAX_MESSAGE_BYTES // 2


class KeyHashPartitioner:
    """aiokafka's DefaultPartitioner (Kafka's Java client's rule: murmur2 of the key, sign bit cleared, modulo the
    partition count; no key: a random available partition) with each key's hash kept: the producers send the same
    few thousand keys (rack ids) over and over, and aiokafka's murmur2 is pure Python: 1.5 us per call against
    0.1 us from the cache (timeit, a 9-byte rack key; py-spy put the partitioner at 3 % of an ingest process's
    samples at 50k GPUs, bench/README.md, more than these timings account for)."""

    MAX_KEYS = 1 << 16   # the cache is dropped when full: a producer with ever-new keys pays the hash as before

    def __init__(self) -> None:
        self._hash: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return DefaultPartitioner()(key, all_partitions, available)
        h = self._hash.get(key)
        if h is None:
            if len(self._hash) >= self.MAX_KEYS:
                self._hash.clear()
            h = self._hash[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[h % len(all_partitions)]


class EventProducer:
    """Protobuf events with CloudEvents headers and W3C trace context. Use as `async with`."""

    def __init__(self, bootstrap: str, source: str, *, linger_ms: int = 5, acks: str | int = "all",
                 client_id: str | None = None, **producer_kwargs: Any) -> None:
        self.source = source
        self._source = source.encode()
        self._ce_types: dict[type, bytes] = {}   # a topic's message type -> its ce_type, encoded
        producer_kwargs.setdefault("max_request_size", limits.PRODUCER_MAX_REQUEST_BYTES)
        producer_kwargs.setdefault("max_batch_size", PRODUCER_MAX_BATCH_BYTES)
        producer_kwargs.setdefault("partitioner", KeyHashPartitioner())
        self.max_request_size: int = producer_kwargs["max_request_size"]
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=linger_ms, acks=acks,
            client_id=client_id or f"twin-{source}", **producer_kwargs)

    async def start(self) -> EventProducer:
        await self._producer.start()
        return self

    async def stop(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> EventProducer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def headers_for(self, topic: Topic, *, ce_id: str | None = None, time: datetime | None = None) -> Headers:
        """The CloudEvents headers (`new_envelope(...).to_headers()`) plus the current trace context
        (`inject_headers`), built from the values encoded once per topic; the same list, at a third of the cost
        (one per published record)."""
        headers = envelope_headers((ce_id or str(uuid.uuid4())).encode(), self._ce_type(topic), self._source,
                                   now_iso() if time is None else iso_time(time))
        return inject_current(headers)

    def _ce_type(self, topic: Topic) -> bytes:
        """`topic.ce_type`, encoded once per message type."""
        ce_type = self._ce_types.get(topic.message_type)
        if ce_type is None:
            ce_type = self._ce_types[topic.message_type] = topic.ce_type.encode()
        return ce_type

    async def enqueue(self, topic: Topic, key: str, message: Message | bytes, *, ce_id: str | None = None,
                      time: datetime | None = None, cause: Record | trace.SpanContext | None = None,
                      traced: bool = False) -> asyncio.Future:
        """Put one event in the send buffer; await the returned future for the broker's ack.

        `message`: a `topic.message_type`, or one already serialized (bytes: the caller vouches for its type,
        e.g. ingest's normalized record framed from the bytes it received, which saves a parse and a
        serialization per record).
        `cause`: the input record (or span context) this event follows from; with tracing on, the event is
        sent from a "send <topic>" PRODUCER span in the cause's trace (see the module docstring).
        `traced=True` without a cause: the same span as a child of the current one."""
        if isinstance(message, bytes):
            value = message
        elif isinstance(message, topic.message_type):
            value = message.SerializeToString()
        else:
            raise TypeError(f"{topic.name} carries {topic.ce_type}, got {type(message).__name__}")
        if (cause is None and not traced) or not tracing_enabled():
            headers = self.headers_for(topic, ce_id=ce_id, time=time)
            return await self._producer.send(topic.name, value, key=key.encode(), headers=headers)
        ce_id = ce_id or str(uuid.uuid4())
        with send_span(topic.name, key, ce_id, cause):
            headers = self.headers_for(topic, ce_id=ce_id, time=time)
            return await self._producer.send(topic.name, value, key=key.encode(), headers=headers)

    async def enqueue_many(self, topic: Topic, events: Sequence[tuple[str, bytes, str, Record | None]], *,
                           time: datetime | None = None) -> list[asyncio.Future]:
        """`enqueue(topic, key, value, ce_id=ce_id, time=time, cause=cause)` of every (key, value, ce_id, cause) of
        `events` (values serialized), in order: the same records (key, value, headers, partition, order within a
        partition) as that loop, except that without `time` every record is stamped with the call's time, not each
        with its own; the futures are one per record batch, not per event (await them all for the acks).

        Without tracing the records go into one record batch per partition (aiokafka `create_batch` /
        `send_batch`, closed so that it is sent without lingering; a full batch is submitted and another begun)
        instead of one `send` each, whose metadata wait, partitioning, size check, accumulator lookup and future
        per record were a third of publishing a 100k-GPU tick's 3,125 normalized records (in-process against Tansu,
        best of 7 ticks: 61-64 -> 41-43 ms CPU; bench/README.md, issue 13). With tracing each event gets its PRODUCER
        span: the plain loop."""
        if not events:
            return []
        if time is None:   # one time for the call's records, on either path
            time = datetime.now(UTC)
        if tracing_enabled():
            return [await self.enqueue(topic, key, value, ce_id=ce_id, time=time, cause=cause)
                    for key, value, ce_id, cause in events]
        producer, name = self._producer, topic.name
        # send()'s steps (aiokafka 0.14 AIOKafkaProducer.send / _serialize / _partition), once per call where they
        # do not depend on the record: the topic's metadata and partition lists
        all_partitions = list(await producer.partitions_for(name))   # waits for the topic's metadata, as send()
        available = list(producer.client.cluster.available_partitions_for_topic(name))
        partitioner, limit = producer._partitioner, self.max_request_size
        estimate_size = DefaultRecordBatchBuilder.estimate_size_in_bytes
        # headers_for's values that are the same for every record of the call, made once: the ce_type and source,
        # the time, the trace context (no span is made per record on this path, so the current one holds for the
        # whole loop); per record only its ce_id (62,500 records, a profiled 100k-GPU drain: headers 1.40 -> 0.37 s)
        ce_type, source, stamp = self._ce_type(topic), self._source, iso_time(time)
        trace_headers = inject_current([])
        builders: dict[int, Any] = {}
        futures: list[asyncio.Future] = []
        for key, value, ce_id, _cause in events:
            key_bytes = key.encode()
            headers = envelope_headers((ce_id or str(uuid.uuid4())).encode(), ce_type, source, stamp)
            if trace_headers:
                headers += trace_headers
            if (size := estimate_size(key_bytes, value, headers)) > limit:
                raise MessageSizeTooLargeError(   # send()'s check and text
                    f"The message is {size} bytes when serialized which is larger than the maximum request size you "
                    "have configured with the max_request_size configuration")
            partition = partitioner(key_bytes, all_partitions, available)
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = producer.create_batch()
            if builder.append(timestamp=None, key=key_bytes, value=value, headers=headers) is None:   # full
                builder.close()
                futures.append(await producer.send_batch(builder, name, partition=partition))
                builder = builders[partition] = producer.create_batch()
                builder.append(timestamp=None, key=key_bytes, value=value, headers=headers)   # first: always fits
        for partition, builder in builders.items():
            builder.close()
            futures.append(await producer.send_batch(builder, name, partition=partition))
        return futures

    async def send(self, topic: Topic, key: str, message: Message | bytes, *, ce_id: str | None = None,
                   time: datetime | None = None, cause: Record | trace.SpanContext | None = None,
                   traced: bool = False):
        """Send one event and wait until the broker acknowledged it (returns RecordMetadata)."""
        return await (await self.enqueue(topic, key, message, ce_id=ce_id, time=time, cause=cause, traced=traced))

    async def enqueue_raw(self, topic_name: str, key: bytes | None, value: bytes | None,
                          headers: Sequence[tuple[str, bytes]] = ()) -> asyncio.Future:
        return await self._producer.send(topic_name, value, key=key, headers=list(headers))

    async def send_raw(self, topic_name: str, key: bytes | None, value: bytes | None,
                       headers: Sequence[tuple[str, bytes]] = ()):
        """Bytes as given (DLQ: original value and headers), acknowledged before returning."""
        return await (await self.enqueue_raw(topic_name, key, value, headers))


# -- consumer loop ------------------------------------------------------------------------------


async def seek_to_start(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]) -> None:
    """Put the assigned partitions `tps` at their first offset, for a consumer with no group reading a topic from
    its start. Numeric seeks, not `seek_to_beginning()`: `assign()` already started a reset to the consumer's
    default (latest), and `seek_to_beginning()` only marks the partitions as awaiting a reset again, so that
    in-flight answer can still land and leave a partition at its end (aiokafka 0.14's fetcher applies a reset's
    answer while the partition awaits one; `seek()` clears that, and the stale answer is dropped). Under CPU load a
    restarted job twin rebuilt an empty job book that way."""
    for tp, offset in (await consumer.beginning_offsets(list(tps))).items():
        consumer.seek(tp, offset)


async def replay_topic(bootstrap: str, topic: Topic, apply: Callable[[ConsumerRecord], object], *,
                       since_ms: int | None = None, timeout_s: float = 60.0, name: str = "replay",
                       **client_options) -> int:
    """Read `topic` from its beginning (or, with `since_ms`, from the first record at or after that epoch time in
    ms) to its end as it stood when called, with no consumer group and nothing committed, and hand every raw
    record to `apply` (each fetch in timestamp order across partitions). What a restarted process uses to
    rebuild state that lives in a topic (a book of events, the alerts in force): its group resumes after its
    committed offset and would never show it what came before. `apply` handles (or skips) bad records itself:
    the group's consumer dead-letters them when it reaches them. Stops at `timeout_s` (logged). Returns the
    records handed to `apply`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                **client_options)
    await consumer.start()
    handed = 0
    try:
        tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        if since_ms is None:
            await seek_to_start(consumer, tps)
        else:
            found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
            for tp in tps:
                hit = found.get(tp)
                consumer.seek(tp, hit.offset if hit is not None else ends[tp])   # none that new: nothing to read
        deadline = time.monotonic() + timeout_s

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            if time.monotonic() > deadline:
                log.warning("%s: %s not read to its end within %.0f s", name, topic.name, timeout_s)
                break
            batches = await consumer.getmany(timeout_ms=200)
            for raw in sorted((r for rs in batches.values() for r in rs), key=lambda r: r.timestamp):
                if raw.offset < ends[TopicPartition(raw.topic, raw.partition)]:
                    apply(raw)
                    handed += 1
    finally:
        await consumer.stop()
    return handed


def default_is_transient(exc: BaseException) -> bool:
    """Infrastructure trouble worth retrying forever (never a reason to dead-letter a record)."""
    if isinstance(exc, (ConnectionError, TimeoutError, KafkaConnectionError, KafkaTimeoutError)):
        return True
    # psycopg.OperationalError covers "server closed the connection", "connection refused", pool timeouts.
    names = {cls.__module__.split(".")[0] + "." + cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"psycopg.OperationalError", "psycopg_pool.PoolTimeout", "psycopg.InterfaceError"})


@dataclass
class _Pending:
    raw: ConsumerRecord
    reason: str
    kind: str


async def run_consumer(
    bootstrap: str,
    group_id: str,
    topic: Topic,
    handle_batch: Handler,
    *,
    dlq_producer: EventProducer,
    max_records: int = 500,
    session_timeout_ms: int = 6000,
    poll_timeout_ms: int = 200,
    stop_event: asyncio.Event | None = None,
    is_transient: Callable[[BaseException], bool] = default_is_transient,
    max_attempts: int = 3,
    backoff_s: float = 0.1,
    max_backoff_s: float = 5.0,
    stats: ConsumerStats | None = None,
    auto_offset_reset: str = "earliest",
    on_started: Callable[[], None] | None = None,
    **consumer_kwargs: Any,
) -> ConsumerStats:
    """Consume `topic` in `group_id` until `stop_event` is set (then leave the group); at-least-once."""
    stop_event = stop_event or asyncio.Event()
    stats = stats or ConsumerStats()
    consumer_kwargs.setdefault("fetch_max_bytes", limits.CONSUMER_FETCH_MAX_BYTES)
    consumer_kwargs.setdefault("max_partition_fetch_bytes", limits.CONSUMER_MAX_PARTITION_FETCH_BYTES)
    pipeline = pipelined(handle_batch)
    consumer = AIOKafkaConsumer(
        *(() if pipeline else (topic.name,)), bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset, session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(100, session_timeout_ms // 3), max_poll_records=max_records,
        client_id=f"twin-{group_id}", **consumer_kwargs)
    loop = _Loop(consumer, group_id, topic, handle_batch, dlq_producer, is_transient, max_attempts,
                 backoff_s, max_backoff_s, stats, stop_event)
    if pipeline:
        consumer.subscribe([topic.name], listener=_Revocations(loop))
        log.info("%s (group %s): pipelined consumer loop (poll N+1 prepared while N is written)", topic.name, group_id)
    await consumer.start()
    if on_started is not None:
        on_started()
    step = loop.pipelined_step if pipeline else loop.poll_once
    lag_checked = 0.0
    try:
        while not stop_event.is_set():
            try:
                await step(poll_timeout_ms, max_records)
                if time.monotonic() - lag_checked >= 1.0:
                    await loop.update_lag()
                    lag_checked = time.monotonic()
            except _StopRequested as stop:
                log.info("stop requested while %s; the uncommitted records will be redelivered", stop)
                break
    finally:
        for key in [k for k in _LAG if k[0] == group_id and k[1] == topic.name]:
            _LAG.pop(key, None)
        await consumer.stop()  # leaves the group; nothing uncommitted is committed here
    return stats


_BATCH_LINKS = 4 * MAX_LINKS  # links of a batch's process span to its records' creation contexts
STOP_GRACE_S = 2.0  # after stop_event, how long an in-flight DLQ send may still complete


class _StopRequested(Exception):
    """stop_event was set while a retriable step (DLQ send) was waiting: leave without committing."""


def is_retriable_send_error(exc: BaseException) -> bool:
    """Could the same DLQ send succeed later? Broker/network trouble yes; a refused record never."""
    if isinstance(exc, ProducerClosed):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError, KafkaConnectionError, KafkaTimeoutError)):
        return True
    return isinstance(exc, KafkaError) and bool(exc.retriable)


@dataclass
class _DlqMessage:
    pending: _Pending
    key: bytes | None
    value: bytes | None
    headers: Headers
    payload: str  # "full" | "prefix" | "none"


class _Revocations(ConsumerRebalanceListener):
    """Counts revocations: work prepared before one is stale (its partitions may have a new owner)."""

    def __init__(self, loop: _Loop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.loop.epoch += 1

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.loop.epoch += 1


@dataclass
class _Prepared:
    """One poll, decoded and prepared (pipelined mode), not yet written."""

    polled: dict[TopicPartition, list[ConsumerRecord]]
    good: list[Record]
    pending: list[_Pending]
    epoch: int
    prepared: Any = None
    error: BaseException | None = None  # prepare raised: the write goes through the plain path


class _Loop:
    def __init__(self, consumer: AIOKafkaConsumer, group_id: str, topic: Topic, handler: Handler,
                 dlq: EventProducer, is_transient: Callable[[BaseException], bool], max_attempts: int,
                 backoff_s: float, max_backoff_s: float, stats: ConsumerStats, stop_event: asyncio.Event) -> None:
        self.consumer, self.group_id, self.topic, self.handler, self.dlq = consumer, group_id, topic, handler, dlq
        self.is_transient, self.max_attempts = is_transient, max_attempts
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.stats, self.stop_event = stats, stop_event
        self.attrs = {"topic": topic.name, "group": group_id}
        self.epoch = 0  # pipelined mode: +1 per revocation/assignment (_Revocations)
        self.ahead: _Prepared | None = None  # pipelined mode: the next poll, prepared while the last was written

    async def update_lag(self) -> None:
        assignment = list(self.consumer.assignment())
        self.stats.assigned = frozenset(tp.partition for tp in assignment if tp.topic == self.topic.name)
        self.stats.topic_partitions = len(self.consumer.partitions_for_topic(self.topic.name) or ())
        for tp in assignment:
            try:
                high = self.consumer.highwater(tp)
                if high is None:
                    continue
                position = await asyncio.wait_for(self.consumer.position(tp), 1.0)
            except (IllegalStateError, TimeoutError, AssertionError):
                # AssertionError: aiokafka's "Partition is not assigned" when a rebalance revoked `tp` while an
                # earlier partition's position() awaited (highwater) or while this one's did (position); lag is
                # a best-effort figure, never a reason to stop consuming
                continue
            if position is not None:
                lag = max(0, high - position)
                self.stats.lag[tp.partition] = lag
                _LAG[(self.group_id, tp.topic, tp.partition)] = lag

    async def poll_once(self, timeout_ms: int, max_records: int) -> None:
        try:
            polled = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except RecordTooLargeError as exc:
            await self.unfetchable(exc)
            return
        if polled:
            await self.process(polled)

    def _decode(self, polled: dict[TopicPartition, list[ConsumerRecord]]) -> tuple[list[Record], list[_Pending]]:
        raws = [r for recs in polled.values() for r in recs]
        self.stats.consumed += len(raws)
        _consumed.add(len(raws), self.attrs)
        good: list[Record] = []
        pending: list[_Pending] = []
        for raw in raws:
            if (too_big := oversized_reason(raw)) is not None:
                pending.append(_Pending(raw, too_big, "size"))
                continue
            try:
                good.append(decode_record(self.topic, raw))
            except ValueError as exc:
                reason = str(exc)
                pending.append(_Pending(raw, reason, reason.split(":", 1)[0]))
        return good, pending

    def _span(self, polled: dict[TopicPartition, list[ConsumerRecord]], good: list[Record]) -> Any:
        """The CONSUMER span "process <topic>" of one poll (see the module docstring)."""
        raws = [r for recs in polled.values() for r in recs]
        links = [trace.Link(ctx, {"messaging.destination.partition.id": str(r.partition),
                                  "messaging.kafka.offset": r.offset})
                 for r in (good[:_BATCH_LINKS] if tracing_enabled() else ())
                 if (ctx := span_context_from_headers(r.headers))]
        attrs = {"messaging.system": "kafka", "messaging.destination.name": self.topic.name,
                 "messaging.operation.type": "process", "messaging.operation.name": "process",
                 "messaging.consumer.group.name": self.group_id, "messaging.batch.message_count": len(raws)}
        if len(raws) == 1:
            attrs["messaging.destination.partition.id"] = str(raws[0].partition)
            attrs["messaging.kafka.offset"] = raws[0].offset
            if raws[0].key is not None:
                attrs["messaging.kafka.message.key"] = raws[0].key.decode("utf-8", "replace")
        return _tracer.start_as_current_span(
            f"process {self.topic.name}", kind=trace.SpanKind.CONSUMER, links=links, attributes=attrs)

    async def process(self, polled: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        good, pending = self._decode(polled)
        with self._span(polled, good) as span:
            if good:
                started = time.perf_counter()
                rejected = await self._handle(good)
                _batch_latency.record(time.perf_counter() - started, self.attrs)
                self.stats.handled += len(good) - len(rejected)
                pending += [_Pending(_raw_of(r.record), r.reason, r.kind) for r in rejected]
            await self._dead_letter(pending)
            span.set_attribute("twin.records.rejected", len(pending))
            await self._commit(polled)
        self.stats.batches += 1

    # -- pipelined mode ---------------------------------------------------------------------

    async def _poll_prepared(self, timeout_ms: int, max_records: int) -> _Prepared | None:
        """Poll, decode and prepare one batch (no side effects but the consumer's position)."""
        try:
            polled = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except RecordTooLargeError as exc:
            await self.unfetchable(exc)
            return None
        if not polled:
            return None
        # Taken after the poll: these records are of the assignment current now. A rebalance after this
        # point starts the new assignment at the committed offsets, at or before these records.
        epoch = self.epoch
        # In a worker thread: the event loop keeps driving write N (its COPY chunks, its round trips) meanwhile.
        return await asyncio.to_thread(self._prepare, polled, epoch)

    def _prepare(self, polled: dict[TopicPartition, list[ConsumerRecord]], epoch: int) -> _Prepared:
        good, pending = self._decode(polled)
        batch = _Prepared(polled, good, pending, epoch)
        if good:
            try:
                batch.prepared = self.handler.prepare(good)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - the plain path retries/bisects it
                batch.error = exc
        return batch

    async def pipelined_step(self, timeout_ms: int, max_records: int) -> None:
        """Write the prepared batch N while polling and preparing N+1; then DLQ and commit N."""
        batch, self.ahead = self.ahead, None
        if batch is None:
            batch = await self._poll_prepared(timeout_ms, max_records)
            if batch is None:
                return
        if batch.epoch != self.epoch:
            # A rebalance since it was polled: its partitions may belong to another consumer now, and the
            # new assignment starts from the committed offsets. Nothing of it was written or committed.
            self.stats.discarded += 1
            log.info("rebalance: dropping a prepared, unwritten batch of %d records (re-read from the commit)",
                     sum(len(v) for v in batch.polled.values()))
            return
        with self._span(batch.polled, batch.good) as span:
            write = asyncio.ensure_future(self._write(batch))
            try:
                nxt = await self._poll_prepared(timeout_ms, max_records)  # while write N awaits the database
                rejected = await write
            except BaseException:
                write.cancel()
                await asyncio.gather(write, return_exceptions=True)
                raise
            if rejected is None:  # write N failed: discard N+1, run N through the plain path
                if nxt is not None:
                    self._rewind(nxt)
                    nxt = None
                rejected = await self._handle(batch.good)
            self.stats.handled += len(batch.good) - len(rejected)
            pending = batch.pending + [_Pending(_raw_of(r.record), r.reason, r.kind) for r in rejected]
            await self._dead_letter(pending)
            span.set_attribute("twin.records.rejected", len(pending))
            await self._commit(batch.polled)
        self.stats.batches += 1
        self.ahead = nxt

    async def _write(self, batch: _Prepared) -> list[Rejected] | None:
        """write(prepared) once; None when it (or prepare) failed: the caller falls back to the plain path."""
        if not batch.good:
            return []
        if batch.error is not None:
            exc: BaseException = batch.error
        else:
            started = time.perf_counter()
            try:
                result = await self.handler.write(batch.prepared)  # type: ignore[attr-defined]
                _batch_latency.record(time.perf_counter() - started, self.attrs)
                return list(result.rejected)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the plain path retries / bisects
                exc = err
        self.stats.retries += 1
        _retries.add(1, self.attrs)
        log.warning("pipelined write failed (%d records), prepared next poll discarded, "
                    "retrying on the plain path: %r", len(batch.good), exc)
        return None

    def _rewind(self, batch: _Prepared) -> None:
        """Forget a prepared, unwritten batch: seek its partitions back to its first offsets so the next
        polls return it again. After a rebalance since its poll the new assignment's positions (the
        committed offsets) already point at or before it: leave them."""
        self.stats.discarded += 1
        if batch.epoch != self.epoch:
            return
        assigned = self.consumer.assignment()
        for tp, recs in batch.polled.items():
            if recs and tp in assigned:
                self.consumer.seek(tp, recs[0].offset)

    async def _handle(self, records: list[Record]) -> list[Rejected]:
        """Run the handler; on non-transient failure isolate the poison record(s) by bisection."""
        attempt = 0
        delay = self.backoff_s
        while True:
            try:
                result = await self.handler(records)
                return list(result.rejected)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must survive any handler failure
                attempt += 1
                self.stats.retries += 1
                _retries.add(1, self.attrs)
                transient = self.is_transient(exc)
                if not transient and attempt >= self.max_attempts:
                    if len(records) == 1:
                        log.warning("dead-lettering poison record %s[%d]@%d: %r", records[0].topic,
                                    records[0].partition, records[0].offset, exc)
                        return [Rejected(records[0], f"handler: {type(exc).__name__}: {exc}", "handler")]
                    mid = len(records) // 2
                    return await self._handle(records[:mid]) + await self._handle(records[mid:])
                log.warning("handler failed (%s, attempt %d, %d records), retrying in %.2fs: %r",
                            "transient" if transient else "error", attempt, len(records), delay, exc)
                if transient and self.stop_event.is_set():
                    raise _StopRequested(f"retrying a transient handler failure ({exc!r})") from exc
                await self._pause(delay)
                delay = min(self.max_backoff_s, delay * 2)

    async def _pause(self, delay: float) -> None:
        """Sleep `delay` seconds, or less when stop_event is set meanwhile."""
        try:
            await asyncio.wait_for(self.stop_event.wait(), delay)
        except TimeoutError:
            pass

    async def _dead_letter(self, pending: list[_Pending]) -> None:
        """Send every pending record to the DLQ (in full, or as a reference when it cannot fit).

        Retriable send errors are retried with backoff until stop_event is set (then _StopRequested:
        nothing is committed). A send that can never succeed (oversized, refused) is retried once as
        a reference; if that is refused too, the record is logged at ERROR with its coordinates and
        counted in `dlq_failed`, and the partition moves on.
        """
        if not pending:
            return
        todo = [self._dlq_message(p, reference=p.kind == "size") for p in pending]
        delay = self.backoff_s
        sent: list[_DlqMessage] = []
        while todo:
            results = await self._until_stopped(self._send_all(todo), f"dead-lettering {len(todo)} record(s)")
            retry: list[_DlqMessage] = []
            retriable: BaseException | None = None
            for msg, exc in zip(todo, results, strict=True):
                if exc is None:
                    sent.append(msg)
                elif isinstance(exc, ProducerClosed):
                    raise exc
                elif is_retriable_send_error(exc):
                    retriable = exc
                    retry.append(msg)
                elif msg.payload == "full" and isinstance(exc, (MessageSizeTooLargeError, RecordTooLargeError)):
                    retry.append(self._dlq_message(msg.pending, reference=True))  # at once, no backoff
                else:
                    self._dlq_failed(msg, exc)
            todo = retry
            if retriable is not None:
                self.stats.dlq_retries += 1
                log.warning("DLQ send failed for %d record(s), retrying in %.2fs: %r", len(todo), delay, retriable)
                if self.stop_event.is_set():
                    raise _StopRequested(f"dead-lettering {len(todo)} record(s) ({retriable!r})")
                await self._pause(delay)
                delay = min(self.max_backoff_s, delay * 2)
        for msg in sent:
            _rejected.add(1, {**self.attrs, "reason": msg.pending.kind})
        _dlq_sent.add(len(sent), self.attrs)
        self.stats.rejected += len(pending)
        self.stats.dlq_sent += len(sent)
        self.stats.dlq_references += sum(1 for m in sent if m.payload != "full")

    def _dlq_message(self, p: _Pending, *, reference: bool) -> _DlqMessage:
        raw = p.raw
        value = raw.value
        size = len(value) if value is not None else 0
        headers = list(raw.headers or ())
        if not reference:
            full = dlq_headers(headers, p.reason, raw.topic, raw.partition, raw.offset,
                               original_size=size, payload="full")
            if record_size(raw.key, value, full) <= self.dlq.max_request_size:
                return _DlqMessage(p, raw.key, value, full, "full")
        # A reference: bounded prefix, truncated key, original headers only when small.
        prefix = value[:limits.DLQ_PAYLOAD_PREFIX_BYTES] if value is not None else None
        payload = "none" if value is None else ("full" if len(prefix) == size else "prefix")
        key = raw.key[:limits.DLQ_KEY_MAX_BYTES] if raw.key is not None else None
        if sum(len(k) + len(v or b"") for k, v in headers) > limits.DLQ_HEADERS_MAX_BYTES:
            headers = [("dlq_headers_dropped", str(len(headers)).encode())]
        ref = dlq_headers(headers, p.reason, raw.topic, raw.partition, raw.offset,
                          original_size=size if value is not None else raw.serialized_value_size, payload=payload)
        return _DlqMessage(p, key, prefix, ref, payload)

    async def _send_all(self, todo: list[_DlqMessage]) -> list[BaseException | None]:
        """Enqueue every message, then wait for every ack; one result (None or the error) per message."""
        futures: list[asyncio.Future | BaseException] = []
        for msg in todo:
            try:
                futures.append(await self.dlq.enqueue_raw(self.topic.dlq, msg.key, msg.value, msg.headers))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified by the caller
                futures.append(exc)
        waiting = [f for f in futures if isinstance(f, asyncio.Future)]
        if waiting:
            await asyncio.wait(waiting)  # does not cancel the producer's futures when we are cancelled
        return [f if isinstance(f, BaseException) else
                KafkaTimeoutError("DLQ send cancelled") if f.cancelled() else f.exception() for f in futures]

    async def _until_stopped(self, coro: Awaitable[Any], doing: str) -> Any:
        """Await `coro`; once stop_event is set, give it STOP_GRACE_S more, then cancel it and raise
        _StopRequested (a healthy broker acks within the grace; a dead one would block for minutes)."""
        task = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(self.stop_event.wait())
        try:
            await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not task.done():
            await asyncio.wait([task], timeout=STOP_GRACE_S)
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise _StopRequested(doing)

    def _dlq_failed(self, msg: _DlqMessage, exc: BaseException) -> None:
        raw = msg.pending.raw
        self.stats.dlq_failed += 1
        _dlq_failed.add(1, {**self.attrs, "reason": msg.pending.kind})
        log.error("DLQ refused %s[%d]@%d (value %s bytes, reason %r) with a non-retriable error; "
                  "it is NOT in %s and its offset will be committed: %r", raw.topic, raw.partition, raw.offset,
                  len(raw.value) if raw.value is not None else raw.serialized_value_size,
                  msg.pending.reason[:500], self.topic.dlq, exc)

    async def unfetchable(self, exc: RecordTooLargeError) -> None:
        """The client could not fetch a record at all (larger than max_partition_fetch_bytes on a broker
        that truncates): aiokafka skipped it; dead-letter a payload-less reference to its coordinates."""
        args = exc.args
        tp, offset = (args[1], args[2]) if len(args) >= 3 and isinstance(args[1], TopicPartition) else (None, -1)
        log.error("record too large to fetch, skipped by the client: %s", exc)
        if tp is None:
            return
        raw = ConsumerRecord(tp.topic, tp.partition, offset, -1, 0, None, None, None, -1, -1, ())
        reason = (f"size: record at offset {offset} is larger than max_partition_fetch_bytes "
                  f"({limits.CONSUMER_MAX_PARTITION_FETCH_BYTES}) and could not be fetched")
        self.stats.consumed += 1
        await self._dead_letter([_Pending(raw, reason, "size")])

    async def _commit(self, polled: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        offsets = {tp: recs[-1].offset + 1 for tp, recs in polled.items() if recs}
        try:
            await self.consumer.commit(offsets)
            self.stats.commits += 1
        except (CommitFailedError, IllegalStateError) as exc:
            # Partitions were revoked meanwhile: their new owner re-reads from the last commit;
            # the handler is idempotent, so the redelivery is harmless.
            log.warning("offset commit failed after rebalance (records will be redelivered): %r", exc)


def _raw_of(record: Record) -> ConsumerRecord:
    return record.raw
