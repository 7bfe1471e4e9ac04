"""Process handles and polling helpers for the e2e tier (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM (graceful), then SIGKILL after `timeout_s`."""
        self.kill(signal.SIGTERM)
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.wait(10)

    def wait(self, timeout_s: float) -> int:
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"{self.name} did not exit within {timeout_s}s\n{self.log()[-4000:]}") from exc


@dataclass
class Procs:
    tmp: Path
    base_env: dict[str, str]
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, module: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        log_path = self.tmp / f"{name}-{len(self.started)}.log"
        out = open(log_path, "wb")  # noqa: SIM115 - handed to the child
        popen = subprocess.Popen([sys.executable, "-m", module, *args], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env={**self.base_env, **(env or {})})
        out.close()
        proc = Proc(name, popen, log_path)
        self.started.append(proc)
        return proc

    def dump(self) -> str:
        parts = []
        for p in self.started:
            parts.append(f"----- {p.name} (pid {p.popen.pid}, rc {p.popen.poll()}) {p.log_path} -----\n"
                         f"{p.log()[-6000:]}")
        return "\n".join(parts)


# -- helpers shared by the e2e tests ---------------------------------------------------------------


def scalar(url: str, query: str, default: int = -1) -> int:
    """One integer from PostgreSQL; `default` while the service has not created its tables yet."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return conn.execute(query).fetchone()[0]
    except psycopg.errors.UndefinedTable:
        return default


def rows(url: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(query, params).fetchall()


def wait_until(predicate, timeout_s: float, what: str, procs: Procs | None = None, interval_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        for p in procs.started if procs else ():
            if p.name == "ingest" and p.popen.poll() not in (None, -signal.SIGKILL):
                raise AssertionError(f"{p.name} exited with {p.popen.returncode} while waiting for {what}")
        time.sleep(interval_s)


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def topic_records(bootstrap: str, topic: str, partitions: int, timeout_s: float = 20.0) -> list:
    """Every record of `topic` up to its current end offsets (no consumer group)."""

    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            out = []
            deadline = asyncio.get_running_loop().time() + timeout_s
            while True:
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                    break
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"reading {topic} timed out after {timeout_s}s")
                got = await consumer.getmany(timeout_ms=200)
                for recs in got.values():
                    out += recs
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def end_offsets_total(bootstrap: str, topic: str, partitions: int) -> int:
    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            if topic not in await consumer.topics():
                return 0
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            try:
                return sum((await consumer.end_offsets(tps)).values())
            except Exception:  # noqa: BLE001 - topic does not exist yet
                return 0
        finally:
            await consumer.stop()

    return asyncio.run(run())
