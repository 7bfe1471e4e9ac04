"""twin.core.stateful (faust tables + changelog) against the real broker (Tansu, or TWIN_KAFKA_BOOTSTRAP).

Each test has its own topics and consumer group. Waits are bounded and wait for a condition (records
applied, an output value), never for a duration.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from twin.core.envelope import Envelope, header
from twin.core.faust_app import is_ready, make_app, running
from twin.core.kafka import EventProducer, Record
from twin.core.settings import Settings
from twin.core.stateful import Emit, JsonState, KeyedStateProcessor, stateful
from twin.core.topics import Topic
from twin.core.topics_admin import ensure_topics
from twin.telemetry.v1 import telemetry_pb2 as pb

pytestmark = pytest.mark.timeout(150)

WAIT_S = 60.0


def topic(kind: str, key: str, partitions: int) -> Topic:
    return Topic(f"test.stateful.{kind}.{uuid.uuid4().hex[:10]}", pb.RackTelemetryBatch, key, partitions)


def reading(site: str, rack: str, power_w: float, seq: int = 0) -> pb.RackTelemetryBatch:
    return pb.RackTelemetryBatch(site_id=site, rack_id=rack, sequence=seq,
                                 rack=pb.RackSamples(pdu_input_power_w=[power_w / 3] * 3))


def power_of(msg: pb.RackTelemetryBatch) -> float:
    return float(np.sum(np.asarray(msg.rack.pdu_input_power_w, dtype=float)))


# -- the two stages, pure -----------------------------------------------------------------------


def rack_step(states: Mapping[str, dict], records: Sequence[Record]):
    """Per rack: batches seen, energy-like sum, max power. Output: the rack's max power (on change)."""
    power = np.array([power_of(r.message) for r in records])  # one numpy pass per batch
    if np.any(power < 0):
        bad = records[int(np.argmax(power < 0))]
        raise ValueError(f"negative power for {bad.key}")
    new: dict[str, dict] = {}
    for r, w in zip(records, power, strict=True):
        s = new.get(r.key) or dict(states.get(r.key) or {"n": 0, "sum_w": 0.0, "max_w": 0.0})
        new[r.key] = {"n": s["n"] + 1, "sum_w": s["sum_w"] + float(w), "max_w": max(s["max_w"], float(w))}
    outputs = {k: pb.RackTelemetryBatch(rack_id=k, rack=pb.RackSamples(pdu_input_power_w=[s["max_w"]]))
               for k, s in new.items()}
    return new, outputs


def contribution_step(states: Mapping[str, dict], records: Sequence[Record]):
    """Stage 1 of a total: per rack, the latest power, emitted keyed by its site."""
    new, outputs = {}, {}
    for r in records:
        w = power_of(r.message)
        new[r.key] = {"site": r.message.site_id, "w": w}
        outputs[r.key] = Emit(r.message.site_id, pb.RackTelemetryBatch(
            site_id=r.message.site_id, rack_id=r.key, rack=pb.RackSamples(pdu_input_power_w=[w])))
    return new, outputs


def site_step(states: Mapping[str, dict], records: Sequence[Record]):
    """Stage 2, keyed by site: {rack: latest watts}; output the site total."""
    new: dict[str, dict] = {}
    for r in records:
        racks = dict(new.get(r.key) or states.get(r.key) or {})
        racks[r.message.rack_id] = power_of(r.message)
        new[r.key] = racks
    outputs = {site: pb.RackTelemetryBatch(site_id=site, rack=pb.RackSamples(
        pdu_input_power_w=[float(np.sum(list(racks.values())))])) for site, racks in new.items()}
    return new, outputs


# -- helpers ------------------------------------------------------------------------------------


def new_app(bootstrap: str, group: str):
    return make_app("stateful-test", Settings.from_env("stateful-test", {"TWIN_KAFKA_BOOTSTRAP": bootstrap}),
                    id=group)


async def until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}") from None


async def until_async(condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = WAIT_S) -> None:
    async def poll() -> None:
        while not await condition():
            await asyncio.sleep(0.2)

    try:
        await asyncio.wait_for(poll(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}") from None


async def read_all(bootstrap: str, t: Topic | str, partitions: int | None = None):
    """Every record currently in the topic (up to its end offsets): [(key, value, headers)]."""
    name = t if isinstance(t, str) else t.name
    partitions = partitions or t.partitions
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out = []
        async def drain() -> None:
            while any([await consumer.position(tp) < end[tp] for tp in tps]):
                for recs in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend((r.key.decode() if r.key else None, r.value, list(r.headers)) for r in recs)
        await asyncio.wait_for(drain(), WAIT_S)
        return out
    finally:
        await consumer.stop()


def outputs_of(records) -> list[tuple[str, float]]:
    return [(k, pb.RackTelemetryBatch.FromString(v).rack.pdu_input_power_w[0]) for k, v, _ in records]


async def send(bootstrap: str, t: Topic, items: Sequence[pb.RackTelemetryBatch], key=lambda m: m.rack_id):
    async with EventProducer(bootstrap, source="tests") as producer:
        for m in items:
            await producer.send(t, key(m), m)


# -- (a) state per key over batches, publish only on change -------------------------------------


async def test_state_accumulates_and_outputs_publish_only_on_change(kafka_bootstrap):
    src, out = topic("in", "rack_id", 3), topic("out", "rack_id", 3)
    await ensure_topics(kafka_bootstrap, [src, out])
    app = new_app(kafka_bootstrap, f"stateful-a-{uuid.uuid4().hex[:8]}")
    racks = stateful(app, "racks", input=src, output=out, source="stateful-test")(rack_step)
    phases = [
        [reading("s", "r1", 100.0), reading("s", "r2", 50.0)],   # both new        -> r1 100, r2 50
        [reading("s", "r1", 200.0), reading("s", "r2", 50.0)],   # r2 unchanged    -> r1 200
        [reading("s", "r1", 150.0)],                             # max unchanged   -> nothing
        [reading("s", "r1", 300.0), reading("s", "r1", 250.0)],  # one batch or two -> r1 300 once
    ]
    async with running(app):
        sent = 0
        for phase in phases:
            await send(kafka_bootstrap, src, phase)
            sent += len(phase)
            await until(lambda n=sent: racks.stats.records == n, f"{sent} records applied")

        assert racks.get("r1") == {"n": 5, "sum_w": pytest.approx(1000.0), "max_w": pytest.approx(300.0)}
        assert racks.get("r2") == {"n": 2, "sum_w": pytest.approx(100.0), "max_w": pytest.approx(50.0)}
        published = await read_all(kafka_bootstrap, out)
        assert sorted(outputs_of(published)) == [("r1", 100.0), ("r1", 200.0), ("r1", 300.0), ("r2", 50.0)]
        assert racks.stats.published == 4 and racks.stats.unchanged >= 2
        for _, _, headers in published:  # DESIGN §4 envelope, as EventProducer writes it
            envelope = Envelope.from_headers(headers)
            assert envelope.type == "twin.telemetry.v1.RackTelemetryBatch"
            assert envelope.source == "stateful-test"
            assert header(headers, "content-type") == b"application/protobuf"
        # the changelog holds the same state the table does (what a restart recovers from)
        changelog = await read_all(kafka_bootstrap, f"{app.conf.id}-racks-changelog", src.partitions)
        assert {k for k, _, _ in changelog} == {"r1", "r2"}


# -- (b) restart: state restored from the changelog ---------------------------------------------


async def test_restart_restores_state_from_changelog_not_from_zero(kafka_bootstrap):
    src, out = topic("in", "rack_id", 3), topic("out", "rack_id", 3)
    await ensure_topics(kafka_bootstrap, [src, out])
    group = f"stateful-b-{uuid.uuid4().hex[:8]}"

    first_app = new_app(kafka_bootstrap, group)
    first = KeyedStateProcessor(first_app, "racks", input=src, output=out, step=rack_step, state=JsonState())
    async with running(first_app):
        await send(kafka_bootstrap, src, [reading("s", "r1", 100.0), reading("s", "r1", 200.0),
                                          reading("s", "r2", 50.0)])
        await until(lambda: first.stats.records == 3, "3 records applied by the first processor")
        before = first.items()
    published_before = len(await read_all(kafka_bootstrap, out))

    second_app = new_app(kafka_bootstrap, group)
    second = KeyedStateProcessor(second_app, "racks", input=src, output=out, step=rack_step, state=JsonState())
    async with running(second_app):
        # restored on assignment, before any new record arrives, and nothing was re-applied
        assert second.items() == before == {"r1": {"n": 2, "sum_w": 300.0, "max_w": 200.0},
                                            "r2": {"n": 1, "sum_w": 50.0, "max_w": 50.0}}
        await send(kafka_bootstrap, src, [reading("s", "r1", 300.0), reading("s", "r2", 50.0)])
        await until(lambda: second.stats.records + second.stats.skipped_replayed >= 2, "2 new records")
        assert second.stats.records == 2  # only the new records: state continued, not rebuilt
        assert second.get("r1") == {"n": 3, "sum_w": 600.0, "max_w": 300.0}
        assert second.get("r2") == {"n": 2, "sum_w": 100.0, "max_w": 50.0}
    published_after = outputs_of(await read_all(kafka_bootstrap, out))
    # the restored output digest holds: r2's unchanged max is not re-published after the restart
    assert len(published_after) == published_before + 1
    assert ("r1", 300.0) in published_after


class CrashesBeforeAck(KeyedStateProcessor):
    """Never acks: state and outputs become durable, the batch's offsets are never committed."""

    async def _agent(self, stream) -> None:
        async for events in stream.noack_take(self.max_batch, within=self.within_s):
            await self.process_batch(events)


_CRASHING_PROCESS = """
import asyncio, sys
sys.path.insert(0, {tests!r})
from test_core_stateful import CrashesBeforeAck, new_app, rack_step, topic
from twin.core.faust_app import wait_ready
from twin.core.topics import Topic
from twin.telemetry.v1 import telemetry_pb2 as pb

async def main():
    src = Topic({src!r}, pb.RackTelemetryBatch, "rack_id", 2)
    out = Topic({out!r}, pb.RackTelemetryBatch, "rack_id", 2)
    app = new_app({bootstrap!r}, {group!r})
    racks = CrashesBeforeAck(app, "racks", input=src, output=out, step=rack_step)
    await app.start()
    await wait_ready(app)
    print("ready", flush=True)
    while racks.stats.records < 3:
        await asyncio.sleep(0.05)
    print("applied", flush=True)
    await asyncio.sleep(3600)  # killed here

asyncio.run(main())
"""


async def test_records_replayed_after_a_crash_are_not_applied_twice(kafka_bootstrap):
    """At-least-once: a process is killed after its state reached the changelog but before its offsets
    were committed; the next owner is handed the same records again and must not count them twice."""
    src, out = topic("in", "rack_id", 2), topic("out", "rack_id", 2)
    await ensure_topics(kafka_bootstrap, [src, out])
    group = f"stateful-b2-{uuid.uuid4().hex[:8]}"
    code = _CRASHING_PROCESS.format(tests=str(Path(__file__).parent), src=src.name, out=out.name,
                                    bootstrap=kafka_bootstrap, group=group)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), WAIT_S) == b"ready\n"
        await send(kafka_bootstrap, src, [reading("s", "r1", 100.0), reading("s", "r1", 200.0),
                                          reading("s", "r2", 50.0)])
        assert await asyncio.wait_for(proc.stdout.readline(), WAIT_S) == b"applied\n"
    finally:
        proc.kill()  # SIGKILL: no drain, no commit, no LeaveGroup
        await proc.wait()
    published = len(await read_all(kafka_bootstrap, out))
    assert published == 2  # r1 (its max) and r2, from the killed process

    app = new_app(kafka_bootstrap, group)
    racks = KeyedStateProcessor(app, "racks", input=src, output=out, step=rack_step)
    async with running(app):  # joins once the dead member's session (6 s) has expired
        await until(lambda: racks.stats.skipped_replayed == 3, "the 3 uncommitted records redelivered")
        assert racks.stats.records == 0
        assert racks.items() == {"r1": {"n": 2, "sum_w": 300.0, "max_w": 200.0},
                                 "r2": {"n": 1, "sum_w": 50.0, "max_w": 50.0}}
    assert len(await read_all(kafka_bootstrap, out)) == published  # nothing re-published either


# -- (c) two processes in one group; second stage totals ---------------------------------------


async def test_two_processes_split_partitions_take_over_and_site_total_matches_one_process(kafka_bootstrap):
    src = topic("in", "rack_id", 4)
    contributions = topic("contrib", "site_id", 2)
    totals = topic("total", "site_id", 2)
    await ensure_topics(kafka_bootstrap, [src, contributions, totals])
    group = f"stateful-c-{uuid.uuid4().hex[:8]}"

    def build():
        app = new_app(kafka_bootstrap, group)
        stage1 = KeyedStateProcessor(app, "rack-contrib", input=src, output=contributions,
                                     step=contribution_step)
        stage2 = KeyedStateProcessor(app, "site-total", input=contributions, output=totals, step=site_step)
        return app, stage1, stage2

    (app1, s1a, s2a), (app2, s1b, s2b) = build(), build()
    rng = np.random.default_rng(7)
    sites = {f"rack{i:02d}": ("site-a" if i % 3 else "site-b") for i in range(12)}
    ticks = [reading(sites[r], r, float(rng.uniform(5_000, 40_000)), seq=t)
             for t in range(3) for r in sorted(sites)]
    later = [reading(sites[r], r, float(rng.uniform(5_000, 40_000)), seq=9) for r in sorted(sites)[::3]]

    def reference(readings) -> dict[str, float]:
        """One process, no Kafka: the same pure steps over the whole input, one stage after the other."""
        def rec(key, msg, offset):
            return Record("", 0, offset, key, b"", [], 0, msg, None, None)  # type: ignore[arg-type]

        _, outs = contribution_step({}, [rec(m.rack_id, m, i) for i, m in enumerate(readings)])
        _, site_outs = site_step({}, [rec(e.key, e.message, i) for i, e in enumerate(outs.values())])
        return {k: m.rack.pdu_input_power_w[0] for k, m in site_outs.items()}

    def src_partitions(app) -> set[int]:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == src.name}

    async def totals_are(expected: dict[str, float]) -> None:
        async def published() -> bool:
            latest = {}
            for k, v, _ in await read_all(kafka_bootstrap, totals):
                latest[k] = pb.RackTelemetryBatch.FromString(v).rack.pdu_input_power_w[0]  # last per key wins
            return latest == pytest.approx(expected)

        await until_async(published, f"site totals {expected} on {totals.name}")

    expected = reference(ticks)
    assert set(expected) == {"site-a", "site-b"}
    async with running(app1):
        async with running(app2):
            await until(lambda: is_ready(app1) and is_ready(app2) and src_partitions(app1)
                        and src_partitions(app2), "the input partitions split over both processes")
            mine, theirs = src_partitions(app1), src_partitions(app2)
            assert not mine & theirs and mine | theirs == set(range(src.partitions))

            await send(kafka_bootstrap, src, ticks)
            await until(lambda: s1a.stats.records + s1b.stats.records == len(ticks), "all ticks applied")
            await totals_are(expected)
            assert s1a.stats.records > 0 and s1b.stats.records > 0  # both processes did stage-1 work
            assert s2a.stats.records + s2b.stats.records > 0
            taken_over = {r: s1b.get(r) for r in sites if s1b.get(r) is not None and s1a.get(r) is None}
            applied_by_1 = s1a.stats.records
        # process 2 left: process 1 takes over its partitions and restores their state from the changelog
        await until(lambda: is_ready(app1) and src_partitions(app1) == set(range(src.partitions)),
                    "process 1 owns every input partition, state recovered")
        assert taken_over and {r: s1a.get(r) for r in taken_over} == taken_over
        await send(kafka_bootstrap, src, later)  # a third of the racks: the others' totals must be restored
        await totals_are(reference(ticks + later))
        assert s1a.stats.records == applied_by_1 + len(later)  # nothing re-applied from the input


# -- (d) bad records go to the DLQ, the stream keeps going --------------------------------------


async def test_bad_records_go_to_dlq_with_reason_and_stream_continues(kafka_bootstrap):
    src, out = topic("in", "rack_id", 1), topic("out", "rack_id", 1)
    await ensure_topics(kafka_bootstrap, [src, out])
    app = new_app(kafka_bootstrap, f"stateful-d-{uuid.uuid4().hex[:8]}")
    racks = KeyedStateProcessor(app, "racks", input=src, output=out, step=rack_step)
    async with running(app), EventProducer(kafka_bootstrap, source="tests") as producer:
        await producer.send(src, "r1", reading("s", "r1", 100.0))
        good_headers = producer.headers_for(src)
        await producer.send_raw(src.name, b"r1", b"\x0a\xff\x01", good_headers)          # truncated protobuf
        await producer.send_raw(src.name, b"r2", reading("s", "r2", 1.0).SerializeToString(), [])  # no envelope
        await producer.send(src, "r3", reading("s", "r3", -5.0))                         # step raises
        await producer.send(src, "r1", reading("s", "r1", 400.0))
        await until(lambda: racks.stats.records == 2 and racks.stats.dead_lettered == 3, "2 applied, 3 DLQ")
        assert racks.get("r1") == {"n": 2, "sum_w": 500.0, "max_w": 400.0}
        assert racks.get("r2") is None and racks.get("r3") is None

    dead = await read_all(kafka_bootstrap, src.dlq, src.partitions)
    by_key = {k: (v, dict(h)) for k, v, h in dead}
    assert set(by_key) == {"r1", "r2", "r3"}
    assert by_key["r1"][0] == b"\x0a\xff\x01"  # original bytes kept
    assert by_key["r1"][1]["dlq_reason"].startswith(b"decode:")
    assert by_key["r1"][1]["ce_type"] == b"twin.telemetry.v1.RackTelemetryBatch"  # original headers kept
    assert by_key["r2"][1]["dlq_reason"].startswith(b"envelope: missing CloudEvents headers")
    assert by_key["r3"][1]["dlq_reason"].startswith(b"step: ValueError('negative power for r3')")
    for _, h in by_key.values():
        assert h["dlq_source_topic"] == src.name.encode() and h["dlq_partition"] == b"0"
        assert int(h["dlq_offset"]) in (1, 2, 3) and "dlq_time" in h
