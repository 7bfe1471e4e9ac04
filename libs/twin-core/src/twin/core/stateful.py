"""Keyed stateful stream processing on faust-streaming: the pattern the power, cooling and jobs twins share.

DESIGN §6: per-entity state lives in a faust Table backed by a changelog topic, keyed like its input
topic (rack, CDU, job); numpy work runs once per batch inside the agent; outputs are published only
when they change; a process that takes over a partition (rebalance, restart) restores that
partition's state from the changelog instead of recomputing it from zero. Totals over many entities
(PDU, UPS, site, plant) come from a second processor keyed by the aggregate (see "Second stage").

A service writes one pure function and wires it in a few lines:

    from twin.core.faust_app import make_app, running
    from twin.core.stateful import Emit, JsonState, KeyedStateProcessor

    def rack_step(states, records):               # pure: dict + list in, dict + dict out
        new_states, outputs = {}, {}
        for r in records:                          # r: twin.core.kafka.Record (r.key, r.message, ...)
            s = dict(states.get(r.key) or {"n": 0, "max_w": 0.0})
            ...                                    # numpy over the batch is fine here
            new_states[r.key] = s
            outputs[r.key] = power_pb2.RackPower(rack_id=r.key, max_w=s["max_w"])
        return new_states, outputs

    app = make_app("power", settings)             # consumer group = "power"
    KeyedStateProcessor(app, "rack-power", input=topics.TELEMETRY_SAMPLES, output=topics.POWER_STATE,
                        step=rack_step, state=JsonState(), source="power")
    async with running(app):                      # inside the service's own asyncio program
        await stop_event.wait()                   # graceful: drain, flush, commit, leave the group

or, as a decorator: `@stateful(app, "rack-power", input=..., output=..., source="power")` above `rack_step`.

Contract of `step(states, records) -> (new_states, outputs)`:
- `records`: the batch's decodable records (twin.core.kafka.Record, in partition order), at most
  `max_batch`, gathered for at most `within_s` seconds with faust's `Stream.noack_take`.
- `states`: the current state of every key that occurs in `records` and has one (keys never seen are
  absent). Do not mutate it; return new objects.
- `new_states`: key -> new state for the keys whose state changed (returning unchanged ones is
  harmless: a state is written only when its encoded bytes differ); key -> None deletes the state.
- `outputs`: key -> protobuf message of the output topic's type, published with that key, or
  key -> `Emit(other_key, message)` to publish under another key (e.g. the aggregate's id for a
  second stage). An output is published only when it differs from the last one published for that
  state key (the comparison survives restarts: its digest is stored with the state).
- Keys of `new_states` and `outputs` must be keys of `records` (state is co-partitioned with the
  input; a key from another partition would land in a changelog partition this process does not own).
- `step` must be pure and deterministic: it is re-run on the same records after a crash, and to
  isolate a record that makes it raise.

Delivery (DESIGN §4):
- Values are read as raw bytes and decoded by `twin.core.kafka.decode_record` (protobuf + CloudEvents
  envelope). Undecodable records go to `<input>.dlq` with the original value and headers plus the
  `dlq_*` headers of `twin.core.kafka.dlq_headers` (`dlq_reason` = "decode: ...", "envelope: ...");
  a record that makes `step` raise is isolated by bisection and dead-lettered with
  "step: <exception>". Nothing is dropped silently and no bad record stops a partition.
- Outputs carry the CloudEvents binary-mode headers (`twin.core.envelope`) and the W3C trace context
  (`twin.core.telemetry.inject_headers`), like `twin.core.kafka.EventProducer`; the context is that of
  one span per batch, linked to the traces of (up to 32 of) the batch's input records. `ce_id` is derived
  from (processor, key, output bytes), so a replayed output repeats its `ce_id` and sinks can drop it.
- Per batch: DLQ sends acknowledged -> outputs acknowledged -> changelog written and flushed -> the
  batch's events acked (so faust may commit their offsets). A crash anywhere replays the batch.
  State updates are applied once even then: each key's stored value records the offset of the last
  record applied to it, and replayed records at or below that offset are skipped for that key.

Stored table value (the changelog record value; the key is the UTF-8 entity id):
    b"\\x01" | offset: int64 big-endian (last input offset applied, -1 none) | digest: 16 bytes (blake2b
    of the last published output key+value, zeros none) | state bytes (the `state` codec's encoding;
    empty = no state, so an empty protobuf state reads back as absent)
State codecs: `JsonState()` (JSON, sorted keys; the default) or `ProtobufState(MessageType)`.

Second stage (totals over many entities): the first processor emits, per entity, its contribution
keyed by the aggregate (`Emit(site_id, contribution)`) to an intermediate topic; a second
`KeyedStateProcessor` on that topic keeps state per aggregate (e.g. {rack_id: watts}) and publishes
the total. Each stage is partitioned by its own key, so any number of processes can share the work
and the total equals what one process would compute. `tests/integration/test_core_stateful.py`
shows it.

Running it: `twin.core.faust_app.running(app)` starts the faust App inside the caller's event loop
(`await app.start()`; faust's worker and its own loop are not used), waits for `is_ready(app)`
(joined, tables recovered) and stops it gracefully (`stop_app`). Several processors can share one
App (one consumer group, one process); every process of the service runs the same App id. Topics:
input, output and `<input>.dlq` must exist (`twin.core.topics_admin.ensure_topics`); faust creates
the changelog topic `<app id>-<table>-changelog` with the input's partition count. On Tansu keep
`make_app`'s default one-record-per-batch producer: it is what makes changelog recovery complete there
(see twin.core.faust_app).

faust specifics relied on: values are read raw (`value_serializer="raw"`) so a bad record cannot
crash the stream before it reaches the DLQ; batches come from `Stream.noack_take` (faust's `take`
without its automatic acks: `take` acks a batch in a `finally`, even when the agent was cancelled
half-way); changelog records are sent with the record's own partition (`Table.send_changelog`)
because faust's default (`partition_for_key`) takes the partition of the *current* event, which in a
multi-partition batch is the last event's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Generic, Protocol, TypeVar

import faust
from google.protobuf.message import Message
from opentelemetry import metrics, trace

from twin.core.envelope import new_envelope
from twin.core.kafka import Record, decode_record, dlq_headers
from twin.core.telemetry import inject_headers, span_context_from_headers
from twin.core.topics import Topic

log = logging.getLogger("twin.core.stateful")
_tracer = trace.get_tracer("twin.core.stateful")
_meter = metrics.get_meter("twin.core.stateful")
_records = _meter.create_counter("twin.stateful.records", unit="{record}", description="records applied to state")
_published = _meter.create_counter("twin.stateful.published", unit="{record}", description="outputs published")
_dead = _meter.create_counter("twin.stateful.dlq", unit="{record}", description="records sent to the DLQ")

S = TypeVar("S")
_MAX_LINKS = 32  # span links to the producers' traces per batch
_NS = uuid.UUID("5b0f8f0e-7d2c-4c55-9a59-0c6f3f1d2a10")


# -- state codecs -------------------------------------------------------------------------------


class StateCodec(Protocol[S]):
    def encode(self, state: S) -> bytes: ...

    def decode(self, data: bytes) -> S: ...


class JsonState:
    """State as JSON (dicts, lists, numbers, strings); keys sorted so equal states encode equally."""

    def encode(self, state: Any) -> bytes:
        return json.dumps(state, sort_keys=True, separators=(",", ":")).encode()

    def decode(self, data: bytes) -> Any:
        return json.loads(data)


class ProtobufState(Generic[S]):
    """State as one protobuf message type (deterministic serialization)."""

    def __init__(self, message_type: type[Message]) -> None:
        self.message_type = message_type

    def encode(self, state: Message) -> bytes:
        return state.SerializeToString(deterministic=True)

    def decode(self, data: bytes) -> Message:
        msg = self.message_type()
        msg.ParseFromString(data)
        return msg


# -- stored value framing -----------------------------------------------------------------------

_HEAD = struct.Struct(">bq16s")
_VERSION = 1
_NO_DIGEST = bytes(16)


@dataclass(frozen=True)
class Stored:
    """One table value: last applied input offset, digest of the last published output, state bytes."""

    offset: int
    digest: bytes
    state: bytes

    def pack(self) -> bytes:
        return _HEAD.pack(_VERSION, self.offset, self.digest) + self.state

    @classmethod
    def unpack(cls, data: bytes) -> Stored:
        version, offset, digest = _HEAD.unpack_from(data)
        if version != _VERSION:
            raise ValueError(f"stored state version {version} is not {_VERSION}")
        return cls(offset, digest, bytes(data[_HEAD.size:]))


def output_digest(key: str, value: bytes) -> bytes:
    return hashlib.blake2b(key.encode() + b"\0" + value, digest_size=16).digest()


# -- step contract ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Emit:
    """An output published under `key` instead of the state key (e.g. the aggregate's id)."""

    key: str
    message: Message


Outputs = Mapping[str, "Message | Emit"]
Step = Callable[[Mapping[str, Any], Sequence[Record]], tuple[Mapping[str, Any], Outputs]]


@dataclass
class ProcessorStats:
    batches: int = 0
    records: int = 0
    skipped_replayed: int = 0
    state_writes: int = 0
    published: int = 0
    unchanged: int = 0
    dead_lettered: int = 0


@dataclass(frozen=True)
class _Publish:
    state_key: str
    key: str
    value: bytes
    digest: bytes


@dataclass
class BatchPlan:
    """What one batch does, computed purely from (stored values, records): tested without a broker."""

    writes: dict[str, bytes | None] = field(default_factory=dict)  # key -> packed value (None = delete)
    publish: list[_Publish] = field(default_factory=list)
    dead: list[tuple[Record, str]] = field(default_factory=list)
    applied: int = 0
    skipped: int = 0
    unchanged: int = 0


def plan_batch(step: Step, codec: StateCodec, output: Topic, stored: Mapping[str, bytes],
               records: Sequence[Record]) -> BatchPlan:
    """Apply `step` to the records not yet applied per key; decide writes, publications and rejects."""
    plan = BatchPlan()
    current: dict[str, Stored] = {k: Stored.unpack(v) for k, v in stored.items()}
    fresh = [r for r in records if r.key is None or r.key not in current or r.offset > current[r.key].offset]
    plan.skipped = len(records) - len(fresh)
    for r in fresh:
        if r.key is None:
            plan.dead.append((r, "key: record has no key (state is keyed by entity id)"))
    fresh = [r for r in fresh if r.key is not None]
    original = dict(current)
    _apply(step, codec, output, current, fresh, plan)
    for key, now in current.items():
        before = original.get(key)
        if now is _DELETED:
            if before is not None:
                plan.writes[key] = None
        elif before is None or now.pack() != before.pack():
            plan.writes[key] = now.pack()
    return plan


_DELETED: Any = Stored(-1, _NO_DIGEST, b"<deleted>")


def _apply(step: Step, codec: StateCodec, output: Topic, current: dict[str, Stored],
           records: Sequence[Record], plan: BatchPlan) -> None:
    """Run step on records; on an exception bisect until the offending record is isolated (DLQ)."""
    if not records:
        return
    keys = {r.key for r in records}
    states = {k: codec.decode(current[k].state) for k in keys
              if k in current and current[k] is not _DELETED and current[k].state}
    try:
        new_states, outputs = step(states, list(records))
        for k in list(new_states) + list(outputs):
            if k not in keys:
                raise ValueError(f"step returned key {k!r} that is not in its batch (state is co-partitioned)")
        encoded = {k: (None if v is None else codec.encode(v)) for k, v in new_states.items()}
        rendered = {k: _render(output, k, v) for k, v in outputs.items()}
    except Exception as exc:  # noqa: BLE001 - a step failure is isolated to one record, never fatal
        if len(records) == 1:
            plan.dead.append((records[0], f"step: {exc!r}"))
            return
        mid = len(records) // 2
        _apply(step, codec, output, current, records[:mid], plan)
        _apply(step, codec, output, current, records[mid:], plan)
        return
    last_offset = {r.key: r.offset for r in records}
    for k in keys:
        prev = current.get(k)
        prev = None if prev is _DELETED else prev
        digest = prev.digest if prev else _NO_DIGEST
        if k in rendered:
            out_key, value = rendered[k]
            new_digest = output_digest(out_key, value)
            if new_digest != digest:
                plan.publish = [p for p in plan.publish if p.state_key != k]  # superseded in this batch
                plan.publish.append(_Publish(k, out_key, value, new_digest))
                digest = new_digest
            else:
                plan.unchanged += 1
        if k in encoded and encoded[k] is None:
            current[k] = _DELETED
            continue
        # b"" = no state yet (step gave none): the offset and output digest are still remembered
        state = encoded[k] if k in encoded else (prev.state if prev else b"")
        current[k] = Stored(last_offset[k], digest, state)
    plan.applied += len(records)


def _render(output: Topic, key: str, value: Message | Emit) -> tuple[str, bytes]:
    out_key, message = (value.key, value.message) if isinstance(value, Emit) else (key, value)
    if not isinstance(message, output.message_type):
        raise TypeError(f"{output.name} carries {output.ce_type}, step returned {type(message).__name__}")
    return out_key, message.SerializeToString(deterministic=True)


# -- the processor ------------------------------------------------------------------------------


class KeyedStateProcessor:
    """Per-key state over one input topic, in a changelog-backed faust Table; see the module docstring."""

    def __init__(self, app: faust.App, table: str, *, input: Topic, output: Topic, step: Step,
                 state: StateCodec | None = None, source: str | None = None, max_batch: int = 500,
                 within_s: float = 0.2) -> None:
        self.app, self.name, self.input, self.output, self.step = app, table, input, output, step
        self.codec: StateCodec = state or JsonState()
        self.source = source or app.conf.id
        self.max_batch, self.within_s = max_batch, within_s
        self.stats = ProcessorStats()
        self.attrs = {"processor": table, "topic": input.name}
        self.table = app.Table(
            table, default=None, partitions=input.partitions, key_type=bytes, value_type=bytes,
            help=f"{table}: per-key state of {input.name} (twin.core.stateful framing)")
        self.topic = app.topic(input.name, key_type=str, value_type=bytes, key_serializer="raw",
                               value_serializer="raw", partitions=input.partitions)
        self.agent = app.agent(self.topic, name=f"{table}-agent")(self._agent)

    # faust calls this with the stream of the input topic
    async def _agent(self, stream: faust.StreamT) -> None:
        async for events in stream.noack_take(self.max_batch, within=self.within_s):
            # The batch's events are acked only after its effects are durable; a cancellation or
            # crash before that leaves them unacked, so their offsets are never committed (replay).
            await self.process_batch(events)
            for event in events:
                await stream.ack(event)

    def get(self, key: str) -> Any:
        """The current state of `key` in this process (None if absent or owned by another process)."""
        raw = self.table.data.get(key.encode())
        state = None if raw is None else Stored.unpack(raw).state
        return self.codec.decode(state) if state else None

    def items(self) -> dict[str, Any]:
        """Every state this process holds (its assigned partitions; plus standbys if configured)."""
        out = {}
        for k, v in list(self.table.data.items()):
            state = Stored.unpack(v).state
            if state:
                out[k.decode()] = self.codec.decode(state)
        return out

    async def process_batch(self, events: Sequence[Any]) -> None:
        good: list[Record] = []
        dead: list[tuple[Any, str]] = []
        for event in events:
            raw = _consumer_record(event.message)
            try:
                good.append(decode_record(self.input, raw))
            except ValueError as exc:
                dead.append((raw, str(exc)))
        partitions = {r.key: r.partition for r in good}
        links = [trace.Link(ctx) for r in good[:_MAX_LINKS] if (ctx := span_context_from_headers(r.headers))]
        with _tracer.start_as_current_span(f"stateful {self.name}", links=links, attributes={
                "messaging.destination.name": self.input.name, "messaging.batch.message_count": len(events)}):
            stored = {k: v for k in partitions if (v := self.table.data.get(k.encode())) is not None}
            plan = plan_batch(self.step, self.codec, self.output, stored, good)
            dead += [(r.raw, reason) for r, reason in plan.dead]
            await self._dead_letter(dead)
            await self._publish(plan.publish)
            for key, value in plan.writes.items():
                k = key.encode()  # table and changelog keys: the entity id as UTF-8 bytes
                if value is None:
                    self.table.data.pop(k, None)
                    self.table.send_changelog(partitions[key], k, None)
                else:
                    self.table.data[k] = value
                    self.table.send_changelog(partitions[key], k, value)
            await self.app.producer.flush()  # the changelog is durable before the events are acked
        self.stats.batches += 1
        self.stats.records += plan.applied
        self.stats.skipped_replayed += plan.skipped
        self.stats.state_writes += len(plan.writes)
        self.stats.published += len(plan.publish)
        self.stats.unchanged += plan.unchanged
        _records.add(plan.applied, self.attrs)

    async def _publish(self, items: Sequence[_Publish]) -> None:
        futures = []
        for p in items:
            ce_id = str(uuid.uuid5(_NS, f"{self.name}/{p.state_key}/{p.digest.hex()}"))
            headers = inject_headers(new_envelope(self.output.ce_type, self.source, id=ce_id).to_headers())
            futures.append(await self.app.producer.send(
                self.output.name, p.key.encode(), p.value, partition=None, timestamp=None, headers=headers))
        if futures:
            await asyncio.gather(*futures)
            _published.add(len(futures), self.attrs)

    async def _dead_letter(self, dead: Sequence[tuple[Any, str]]) -> None:
        futures = []
        for raw, reason in dead:
            log.warning("%s: %s[%d]@%d to DLQ: %s", self.name, raw.topic, raw.partition, raw.offset, reason)
            headers = dlq_headers(list(raw.headers or ()), reason, raw.topic, raw.partition, raw.offset)
            futures.append(await self.app.producer.send(
                self.input.dlq, raw.key, raw.value, partition=None, timestamp=None, headers=headers))
        if futures:
            await asyncio.gather(*futures)
            self.stats.dead_lettered += len(futures)
            _dead.add(len(futures), self.attrs)


def stateful(app: faust.App, table: str, *, input: Topic, output: Topic, **kwargs: Any
             ) -> Callable[[Step], KeyedStateProcessor]:
    """Decorator form: `@stateful(app, "rack-power", input=..., output=...)` over a step function."""

    def wrap(step: Step) -> KeyedStateProcessor:
        return KeyedStateProcessor(app, table, input=input, output=output, step=step, **kwargs)

    return wrap


def _consumer_record(message: Any) -> Any:
    """faust's Message as the ConsumerRecord shape twin.core.kafka.decode_record reads."""
    headers = message.headers or []
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    return SimpleNamespace(
        topic=message.topic, partition=message.partition, offset=message.offset, key=message.key,
        value=message.value, headers=[(k, v) for k, v in headers],
        timestamp=int((message.timestamp or 0) * 1000))
