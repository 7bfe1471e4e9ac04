"""The ingest service in-process against the real broker (Tansu or TWIN_KAFKA_BOOTSTRAP) and real PostgreSQL.

Isolation: every test uses its own topic names (unique suffix, registry message type and partitions),
its own consumer group and a fresh database.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from ingest_factory import gpus_in, inventory, rack_batch

from twin.core import topics
from twin.core.envelope import header
from twin.core.kafka import EventProducer
from twin.core.topics_admin import ensure_topics
from twin.ingest.adapters.repository import StoreOutcome, TelemetryRepository
from twin.ingest.app import IngestApp, IngestConfig
from twin.telemetry.v1 import telemetry_pb2 as pb

pytestmark = pytest.mark.timeout(180)


async def read_all(bootstrap: str, topic: str, expected: int, partitions: int = 12, timeout_s: float = 30.0,
                   settle_s: float = 1.0):
    """Every record of `topic` from the beginning (no group); waits for `expected`, then `settle_s` more."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        settle_until = None
        while loop.time() < deadline:
            got = await consumer.getmany(timeout_ms=200)
            for recs in got.values():
                out += recs
            if len(out) >= expected:
                settle_until = settle_until or loop.time() + settle_s
                if loop.time() >= settle_until:
                    break
        return out
    finally:
        await consumer.stop()


async def wait_for(predicate, timeout_s: float = 60.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(app: IngestApp):
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        yield task
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 30)
        except asyncio.CancelledError:
            pass


def rows(url: str, query: str, params=()):
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture
def env(kafka_bootstrap, fresh_database, unique_topic):
    src = unique_topic(topics.FACILITY_TELEMETRY)
    samples = unique_topic(topics.TELEMETRY_SAMPLES)
    config = IngestConfig(kafka_bootstrap=kafka_bootstrap, database_url=fresh_database, facility="dgx-h100-su",
                          group_id=f"ingest-{uuid.uuid4().hex[:8]}", source_topic=src, samples_topic=samples,
                          max_records=50, status_interval_s=5.0)
    return config


async def test_valid_invalid_and_duplicate_records(env: IngestConfig):
    inv = inventory()
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(seconds=30)
    await ensure_topics(env.kafka_bootstrap, [env.source_topic, env.samples_topic])

    valid = [rack_batch(inv, r, t0 + timedelta(seconds=tick), tick) for tick in range(3) for r in range(len(inv.racks))]
    hot = rack_batch(inv, 2, t0 + timedelta(seconds=10), 10)
    hot.nodes[1].gpus.gpu_temp_c[3] = 400.0
    short = rack_batch(inv, 3, t0 + timedelta(seconds=10), 10)
    del short.nodes[0].gpus.power_w[-1]
    stranger = rack_batch(inv, 0, t0, 11)
    stranger.rack_id = "nowhere-0001"
    old = rack_batch(inv, 4, now - timedelta(days=8), 12)
    invalid = {"hot": hot, "short": short, "stranger": stranger, "old": old}
    garbage = b"\xff\xff\xff\xff not a protobuf"

    async with EventProducer(env.kafka_bootstrap, source="test") as producer:
        # invalid records first, keyed like valid ones that follow in the same partition
        for msg in invalid.values():
            await producer.send(env.source_topic, msg.rack_id, msg)
        garbage_headers = producer.headers_for(env.source_topic)
        await producer.send_raw(env.source_topic.name, valid[0].rack_id.encode(), garbage, garbage_headers)
        no_envelope = valid[1].SerializeToString()
        await producer.send_raw(env.source_topic.name, valid[1].rack_id.encode(), no_envelope, [])
        for msg in valid:
            await producer.send(env.source_topic, msg.rack_id, msg)
        # the source re-sends two ticks (new ce_id, same rack/time/sequence): duplicates
        for msg in valid[:2]:
            await producer.send(env.source_topic, msg.rack_id, msg)

    total = len(invalid) + 2 + len(valid) + 2
    app = IngestApp(env)
    async with running(app):
        await wait_for(lambda: app.consumer_stats.consumed >= total and app.consumer_stats.commits > 0
                       and app.consumer_stats.total_lag == 0, what="all records consumed")
        await wait_for(lambda: app.ingest_stats.stored_batches + app.ingest_stats.duplicates
                       + app.consumer_stats.dlq_sent >= total, what="all records handled")

    n_gpu = sum(gpus_in(m) for m in valid)
    assert n_gpu == 24 * 32
    assert rows(env.database_url, "SELECT count(*) FROM telemetry_gpu") == [(n_gpu,)]
    assert rows(env.database_url, "SELECT count(*) FROM telemetry_batches") == [(len(valid),)]
    assert rows(env.database_url, "SELECT count(*) FROM telemetry_rack") == [(len(valid),)]
    assert rows(env.database_url, "SELECT count(*) FROM telemetry_link") == [(len(valid) * 4,)]
    assert app.ingest_stats.duplicates == 2

    # spot-check one stored GPU row against the message it came from
    msg = valid[13]
    node = msg.nodes[2]
    got = rows(env.database_url,
               "SELECT time, power_w, gpu_temp_c, mem_temp_c, sm_clock_mhz, tensor_active, ecc_sbe_total "
               "FROM telemetry_gpu WHERE node_id = %s AND gpu_index = 5 AND time = %s",
               (node.node_id, msg.sample_time.ToDatetime(tzinfo=UTC)))
    g = node.gpus
    assert got == [(msg.sample_time.ToDatetime(tzinfo=UTC), g.power_w[5], g.gpu_temp_c[5], g.mem_temp_c[5],
                    g.sm_clock_mhz[5], g.tensor_active[5], g.ecc_sbe_total[5])]
    rack_row = rows(env.database_url, "SELECT pdu_l1_power_w, pdu_l3_power_w, coolant_flow_lpm FROM telemetry_rack "
                                      "WHERE rack_id = %s AND time = %s",
                    (msg.rack_id, msg.sample_time.ToDatetime(tzinfo=UTC)))
    assert rack_row == [(msg.rack.pdu_input_power_w[0], msg.rack.pdu_input_power_w[2], 120.0)]

    # every bad record is in the DLQ with its original bytes and a reason
    dlq = await read_all(env.kafka_bootstrap, env.source_topic.dlq, expected=len(invalid) + 2)
    assert len(dlq) == len(invalid) + 2
    by_value = {r.value: r for r in dlq}
    expect = {
        "hot": "gpu_temp_c=400.0 outside [-10, 130] °C at node su1-0002-n01 gpu 3",
        "short": "node su1-0003-n00: power_w has 7 values for 8 gpu_index entries",
        "stranger": "unknown rack_id 'nowhere-0001'",
        "old": "more than 7 days before now",
    }
    for name, bad in invalid.items():
        rec = by_value[bad.SerializeToString()]
        reason = header(rec.headers, "dlq_reason").decode()
        assert reason.startswith("validation: ") and expect[name] in reason, (name, reason)
        assert header(rec.headers, "dlq_source_topic") == env.source_topic.name.encode()
        assert header(rec.headers, "ce_type") == b"twin.telemetry.v1.RackTelemetryBatch"  # original headers kept
        assert int(header(rec.headers, "dlq_offset")) >= 0 and header(rec.headers, "dlq_time")
    assert header(by_value[garbage].headers, "dlq_reason").startswith(b"decode: ")
    assert header(by_value[no_envelope].headers, "dlq_reason").startswith(b"envelope: missing CloudEvents headers")

    # normalized records: one per stored batch, keyed by rack, with the batch as received
    out = await read_all(env.kafka_bootstrap, env.samples_topic.name, expected=len(valid))
    assert len(out) == len(valid)
    decoded = {}
    for rec in out:
        s = pb.TelemetrySamples.FromString(rec.value)
        assert rec.key == s.batch.rack_id.encode()
        assert header(rec.headers, "ce_type") == b"twin.telemetry.v1.TelemetrySamples"
        decoded[(s.batch.rack_id, s.batch.sequence)] = s
    assert set(decoded) == {(m.rack_id, m.sequence) for m in valid}
    assert decoded[(msg.rack_id, msg.sequence)].batch == msg
    assert decoded[(msg.rack_id, msg.sequence)].rejected_values == 0


class FailingRepository:
    """The real repository, except that the batch with `poison_sequence` fails with a data error."""

    def __init__(self, inner: TelemetryRepository, poison_sequence: int) -> None:
        self.inner, self.poison_sequence = inner, poison_sequence

    async def store(self, items) -> StoreOutcome:
        if any(it.batch.sequence == self.poison_sequence for it in items):
            raise ValueError(f"cannot store sequence {self.poison_sequence}")
        return await self.inner.store(items)


async def test_poison_record_is_isolated_and_later_records_flow(env: IngestConfig):
    from twin.core.db import apply_migrations, open_pool
    from twin.ingest.adapters.repository import MIGRATIONS_DIR

    inv = inventory()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    await ensure_topics(env.kafka_bootstrap, [env.source_topic, env.samples_topic])
    msgs = [rack_batch(inv, 0, t0 + timedelta(seconds=i), i) for i in range(9)]  # one rack: one partition
    async with EventProducer(env.kafka_bootstrap, source="test") as producer:
        for m in msgs:
            await producer.send(env.source_topic, m.rack_id, m)

    pool = await open_pool(env.database_url)
    try:
        await apply_migrations(pool, "ingest", MIGRATIONS_DIR)
        app = IngestApp(env, repository=FailingRepository(TelemetryRepository(pool), poison_sequence=4))
        async with running(app):
            await wait_for(lambda: app.consumer_stats.dlq_sent == 1 and app.ingest_stats.stored_batches == 8,
                           what="poison dead-lettered and the other 8 stored")
    finally:
        await pool.close()
    assert rows(env.database_url, "SELECT sequence FROM telemetry_batches ORDER BY sequence") == [
        (i,) for i in range(9) if i != 4]
    dlq = await read_all(env.kafka_bootstrap, env.source_topic.dlq, expected=1)
    assert [r.value for r in dlq] == [msgs[4].SerializeToString()]
    assert header(dlq[0].headers, "dlq_reason") == b"handler: ValueError: cannot store sequence 4"


class CrashAfterCommit:
    """Stores for real, then 'crashes' (hangs until cancelled) before the offsets can be committed."""

    def __init__(self, inner: TelemetryRepository, crash_after: int) -> None:
        self.inner, self.crash_after, self.calls = inner, crash_after, 0
        self.crashed = asyncio.Event()

    async def store(self, items) -> StoreOutcome:
        outcome = await self.inner.store(items)
        self.calls += 1
        if self.calls >= self.crash_after:
            self.crashed.set()
            await asyncio.Event().wait()  # never returns: the task is cancelled here
        return outcome


async def test_restart_after_crash_stores_nothing_twice(env: IngestConfig):
    from twin.core.db import apply_migrations, open_pool
    from twin.ingest.adapters.repository import MIGRATIONS_DIR

    env = replace(env, max_records=8)  # several polls, so the crash lands mid-stream

    inv = inventory()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=120)
    await ensure_topics(env.kafka_bootstrap, [env.source_topic, env.samples_topic])
    msgs = [rack_batch(inv, r, t0 + timedelta(seconds=tick), tick) for tick in range(6) for r in range(8)]
    async with EventProducer(env.kafka_bootstrap, source="test") as producer:
        for m in msgs:
            await producer.send(env.source_topic, m.rack_id, m)

    pool = await open_pool(env.database_url)
    try:
        await apply_migrations(pool, "ingest", MIGRATIONS_DIR)
        crashing = CrashAfterCommit(TelemetryRepository(pool), crash_after=2)
        first = IngestApp(env, repository=crashing)
        task = asyncio.create_task(first.run(asyncio.Event()))
        await asyncio.wait_for(crashing.crashed.wait(), 60)
        task.cancel()  # crash: the stored batches' offsets were never committed
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        stored_before = rows(env.database_url, "SELECT count(*) FROM telemetry_batches")[0][0]
        assert 0 < stored_before < len(msgs)
        assert first.consumer_stats.commits == crashing.calls - 1
    finally:
        await pool.close()

    second = IngestApp(env)  # a new instance, same group
    async with running(second):
        await wait_for(lambda: second.ingest_stats.stored_batches + second.ingest_stats.redelivered
                       >= len(msgs) - (stored_before - second.ingest_stats.redelivered) and
                       second.consumer_stats.total_lag == 0 and second.consumer_stats.commits > 0,
                       what="the rest stored after restart")
        await wait_for(lambda: rows(env.database_url, "SELECT count(*) FROM telemetry_batches")[0][0] == len(msgs),
                       what="all batches in the ledger")
    assert second.ingest_stats.redelivered > 0, "uncommitted records must be redelivered to the new instance"
    n_gpu = sum(gpus_in(m) for m in msgs)
    assert rows(env.database_url, "SELECT count(*) FROM telemetry_gpu") == [(n_gpu,)]
    assert rows(env.database_url, "SELECT count(*) FROM (SELECT DISTINCT node_id, gpu_index, time "
                                  "FROM telemetry_gpu) d") == [(n_gpu,)]
    assert rows(env.database_url, "SELECT count(*) FROM telemetry_rack") == [(len(msgs),)]
    # every batch reached telemetry.samples.v1 at least once, under one deterministic ce_id each
    out = await read_all(env.kafka_bootstrap, env.samples_topic.name, expected=len(msgs))
    ce_ids = {}
    for rec in out:
        s = pb.TelemetrySamples.FromString(rec.value)
        ce_ids.setdefault((s.batch.rack_id, s.batch.sequence), set()).add(header(rec.headers, "ce_id"))
    assert set(ce_ids) == {(m.rack_id, m.sequence) for m in msgs}
    assert all(len(ids) == 1 for ids in ce_ids.values())
