"""`twinctl dlq`: look at dead-lettered records and re-publish them once the cause is fixed.

    twinctl dlq list   [--topic facility.telemetry.v1] [--reason TEXT] [--limit 20] [--json]
    twinctl dlq replay  --topic facility.telemetry.v1  [--reason TEXT] [--limit N] [--dry-run] [--json]

`list` reads `<topic>.dlq` from the beginning (it joins no group and commits nothing) and prints each
record's DLQ offset, time, source (topic, partition, offset or the feed), size and reason. `replay`
sends the original key, value and headers (the `dlq_*` headers removed) back to `<topic>`, where the
consumer validates them again: a record that is still bad lands in the DLQ again with its reason.
Replays are safe to repeat because every sink is idempotent (ingest's batch ledger, natural keys).
Records dead-lettered as references (oversized: only a prefix of the payload was kept) cannot be
replayed and are counted as skipped. Broker: --bootstrap, else TWIN_KAFKA_BOOTSTRAP, else
127.0.0.1:9092.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass

from twin.core import topics

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


@dataclass(frozen=True)
class DeadLetter:
    dlq_partition: int
    dlq_offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace")
        return ""

    @property
    def is_reference(self) -> bool:
        """Only a reference was kept (`dlq_payload` = prefix or none: the record was oversized)."""
        return self.header("dlq_payload") not in ("", "full")

    def summary(self) -> dict:
        return {
            "dlq_partition": self.dlq_partition, "dlq_offset": self.dlq_offset,
            "time": self.header("dlq_time"), "source_topic": self.header("dlq_source_topic"),
            "source_partition": self.header("dlq_partition"), "source_offset": self.header("dlq_offset"),
            "size_bytes": int(self.header("dlq_original_size") or len(self.value or b"")),
            "replayable": not self.is_reference, "reason": self.header("dlq_reason"),
        }


def add_parser(sub: argparse._SubParsersAction) -> None:
    dlq = sub.add_parser("dlq", help="dead-letter topics: list records and their reasons, replay them")
    dlq.add_argument("--bootstrap", default=None, help=f"Kafka bootstrap (env TWIN_KAFKA_BOOTSTRAP, default "
                                                       f"{DEFAULT_BOOTSTRAP})")
    cmds = dlq.add_subparsers(dest="cmd", required=True)
    for name, help_ in (("list", "print dead-lettered records"), ("replay", "re-publish them to their topic")):
        p = cmds.add_parser(name, help=help_)
        p.add_argument("--topic", default=topics.FACILITY_TELEMETRY.name, choices=[t.name for t in topics.ALL],
                       help="the topic whose DLQ to read")
        p.add_argument("--reason", default="", help="only records whose reason contains this text")
        p.add_argument("--limit", type=int, default=20 if name == "list" else 0, help="at most N records (0: all)")
        if name == "list":
            p.add_argument("--json", action="store_true", help="one JSON object per record")
        else:
            p.add_argument("--dry-run", action="store_true", help="say what would be replayed, send nothing")
            p.add_argument("--json", action="store_true", help="the outcome as one JSON object")


async def read_dead_letters(bootstrap: str, topic: topics.Topic, reason: str = "", limit: int = 0,
                            timeout_s: float = 10.0) -> list[DeadLetter]:
    """Every record of `<topic>.dlq` up to its end offsets (read without a group)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from twin.core.kafka import seek_to_start

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    try:
        parts = consumer.partitions_for_topic(topic.dlq) or set(range(topic.partitions))
        tps = [TopicPartition(topic.dlq, p) for p in sorted(parts)]
        consumer.assign(tps)
        await seek_to_start(consumer, tps)
        ends = await consumer.end_offsets(tps)
        out: list[DeadLetter] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while remaining and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    letter = DeadLetter(tp.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
                    if reason in letter.header("dlq_reason"):
                        out.append(letter)
                    if r.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if limit and len(out) >= limit:
                break
        out.sort(key=lambda d: (d.header("dlq_time"), d.dlq_partition, d.dlq_offset))
        return out[:limit] if limit else out
    finally:
        await consumer.stop()


async def replay(bootstrap: str, topic: topics.Topic, letters: list[DeadLetter]) -> tuple[int, int]:
    """Re-publish replayable letters to `topic`; returns (sent, skipped as references). A progress bar on
    stderr (a terminal only) counts the acknowledged records."""
    from aiokafka import AIOKafkaProducer

    from twinctl.progress import Progress

    sendable = [d for d in letters if not d.is_reference and d.value is not None]
    if not sendable:
        return 0, len(letters)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="twinctl-dlq-replay")
    await producer.start()
    try:
        with Progress(len(sendable), f"replay to {topic.name}") as bar:
            futures = []
            for d in sendable:
                headers = [(k, v) for k, v in d.headers if not k.startswith("dlq_")]
                fut = await producer.send(topic.name, d.value, key=d.key, headers=headers)
                fut.add_done_callback(lambda _: bar.step())
                futures.append(fut)
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(sendable), len(letters) - len(sendable)


def run(args: argparse.Namespace) -> int:
    bootstrap = args.bootstrap or os.environ.get("TWIN_KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP
    try:
        return _run(args, bootstrap)
    except BrokenPipeError:   # stdout's reader left (`twinctl dlq list | head`): main's handler, not Kafka's
        raise
    except Exception as exc:  # noqa: BLE001 - aiokafka's connection errors: say what to fix
        if exc.__class__.__module__.startswith("aiokafka") or isinstance(exc, OSError):
            print(f"twinctl: cannot reach Kafka at {bootstrap} ({exc.__class__.__name__}: {exc}). Is the stack "
                  f"running? Pass --bootstrap HOST:PORT (before the subcommand) or set TWIN_KAFKA_BOOTSTRAP; "
                  f"`make run` prints the broker's address.", file=sys.stderr)
            return 1
        raise


def _run(args: argparse.Namespace, bootstrap: str) -> int:
    topic = topics.BY_NAME[args.topic]
    letters = asyncio.run(read_dead_letters(bootstrap, topic, args.reason, args.limit))
    if args.cmd == "list":
        if args.json:
            for d in letters:
                print(json.dumps(d.summary()))
            return 0
        print(f"{len(letters)} record(s) in {topic.dlq}" + (f" with reason containing {args.reason!r}" if args.reason
                                                             else ""))
        for d in letters:
            s = d.summary()
            source = (f"{s['source_topic']}[{s['source_partition']}]@{s['source_offset']}"
                      if s["source_partition"] not in ("", "-1") else s["source_topic"])
            print(f"  {s['dlq_partition']}@{s['dlq_offset']:<6} {s['time'][:19]:<19} {source:<36} "
                  f"{s['size_bytes']:>9} B{'' if s['replayable'] else ' (reference)'}  {s['reason'][:120]}")
        return 0
    if args.dry_run:
        refs = sum(d.is_reference for d in letters)
        if args.json:
            print(json.dumps({"topic": topic.name, "dry_run": True, "would_replay": len(letters) - refs,
                              "references": refs}))
        else:
            print(f"would replay {len(letters) - refs} record(s) to {topic.name}; {refs} reference(s) cannot be "
                  f"replayed")
        return 0
    sent, skipped = asyncio.run(replay(bootstrap, topic, letters))
    if args.json:
        print(json.dumps({"topic": topic.name, "dry_run": False, "replayed": sent, "skipped_references": skipped}))
    else:
        print(f"replayed {sent} record(s) to {topic.name}; skipped {skipped} reference(s) (payload not kept)")
    return 0
