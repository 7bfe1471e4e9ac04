"""Slurm into jobs.events.v1: a sacct export replayed, or a live Slurm followed through slurmrestd.

Both turn into the same ``JobEvent``s (``adapters/slurm.py`` parses), published keyed by job id in replay
order; records the parser refuses go to ``jobs.events.v1.dlq`` with the parser's reason (the record's text as
the value). The events themselves are validated once more by the consumer (the job book), whose rejects
also land in the DLQ.

slurmrestd: ``GET <JOBS_SLURMRESTD_URL>`` (the jobs endpoint, e.g.
``http://slurmctld:6820/slurm/v0.0.41/jobs``; ``/slurmdb/v0.0.4x/jobs`` works too) with
``X-SLURM-USER-TOKEN`` (a JWT from ``scontrol token``) and ``X-SLURM-USER-NAME`` when set, every
``JOBS_SLURMRESTD_INTERVAL_S`` (``twin.core.polling.poll_loop``: backoff on failure, never fatal). The list is
the whole job list each time: an event already published by this process (same job, kind and time) is not
published again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from twin.core.kafka import EventProducer, dlq_headers
from twin.core.topics import Topic
from twin.jobs.adapters import codec
from twin.jobs.adapters.slurm import (
    ParseResult,
    SlurmRecordRejected,
    parse_sacct,
    parse_slurm_json,
    sort_events,
)
from twin.jobs.domain.events import JobEvent


@dataclass
class FeedStats:
    published: int = 0
    duplicates: int = 0
    rejected: int = 0


@dataclass
class SlurmPublisher:
    producer: EventProducer
    topic: Topic
    source: str = "slurm"
    seen: set[tuple[str, str, float]] = field(default_factory=set)
    stats: FeedStats = field(default_factory=FeedStats)

    async def publish(self, result: ParseResult) -> int:
        """Publish the parse result's events (new ones, in replay order) and dead-letter its rejects."""
        futures = []
        for ev in sort_events(result.events):
            key = (ev.job_id, ev.kind.value, ev.time_s)
            if key in self.seen:
                self.stats.duplicates += 1
                continue
            self.seen.add(key)
            futures.append(await self.producer.enqueue(self.topic, ev.job_id, codec.event_to_proto(ev)))
        await self.dead_letter(result.rejected)
        if futures:
            await asyncio.gather(*futures)
        self.stats.published += len(futures)
        return len(futures)

    async def dead_letter(self, rejected: Iterable[SlurmRecordRejected]) -> None:
        for rej in rejected:
            headers = dlq_headers([("dlq_source", self.source.encode())], f"slurm: {rej.reason}", self.source, -1, -1,
                                  now=datetime.now(UTC))
            await self.producer.send_raw(self.topic.dlq, None, str(rej.record or "").encode(), headers)
            self.stats.rejected += 1


async def replay_sacct(text: str | bytes, publisher: SlurmPublisher, tz: tzinfo = UTC) -> list[JobEvent]:
    """A ``sacct --parsable2`` export (or ``sacct --json`` document) onto jobs.events.v1; returns the events."""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    result = parse_slurm_json(raw, tz) if raw.lstrip().startswith("{") else parse_sacct(raw, tz)
    await publisher.publish(result)
    return sort_events(result.events)


class SlurmRestPoller:
    """One poll of slurmrestd's job list -> events (for ``poll_loop``)."""

    def __init__(self, url: str, publisher: SlurmPublisher, *, token: str | None = None, user: str | None = None,
                 timeout_s: float = 10.0, tz: tzinfo = UTC) -> None:
        self.url, self.publisher, self.token, self.user = url, publisher, token, user
        self.timeout_s, self.tz = timeout_s, tz

    async def __call__(self) -> int:
        import aiohttp

        headers = {"Accept": "application/json"}
        if self.token:
            headers["X-SLURM-USER-TOKEN"] = self.token
        if self.user:
            headers["X-SLURM-USER-NAME"] = self.user
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(self.url, headers=headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"slurmrestd answered HTTP {resp.status}: {body[:200]!r}")
        return await self.publisher.publish(parse_slurm_json(body, self.tz))
