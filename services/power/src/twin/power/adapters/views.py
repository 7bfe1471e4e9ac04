"""Read models every power process keeps of the other twins: running jobs (jobs.state.v1) and the
cooling plant's power (cooling.state.v1).

Each process tails both topics whole (every partition, from the beginning, no consumer group, nothing
committed): the planner, the power-cap what-if by job and stage 2's site total need every job and the
plant, whichever racks or site this process owns. Records the power twin cannot use are counted and
skipped here; dead-lettering them is the producing twin's consumers' business.

Jobs: a RUNNING job's GPUs (placement.gpu_ids, else every GPU of placement.node_ids), its priority
(spec.priority, floored at 0), checkpoint write time (spec.checkpoint_write_s) and interval; a job in
any other status leaves the book. The work at risk since the last checkpoint is taken as half the
checkpoint interval (its expectation when the event lands at a random time; the jobs twin does not
publish the last checkpoint time). Cooling: the plant's ``cooling_power_w`` (plant + CDU pumps + CRAH
fans), the newest by state time.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.core.topics import Topic
from twin.jobs.v1 import jobs_pb2 as jpb
from twin.power.adapters.codec import SiteIndex
from twin.power.domain.planner import Jobs

log = logging.getLogger("twin.power.views")

_COOLING_SOURCE = {cpb.VALUE_SOURCE_MEASURED: 1, cpb.VALUE_SOURCE_MODELLED: 2, cpb.VALUE_SOURCE_MIXED: 3}


@dataclass(frozen=True)
class JobView:
    job_id: str
    gpus: np.ndarray
    priority: float
    checkpoint_interval_s: float
    checkpoint_write_s: float


@dataclass
class ReadModel:
    index: SiteIndex
    n_gpus: int
    jobs: dict[str, JobView] = field(default_factory=dict)
    job_time: dict[str, float] = field(default_factory=dict)
    cooling_w: float = 0.0
    cooling_source: int = 0          # 0 = none seen (twin.power.live MEASURED/MODELLED/MIXED otherwise)
    cooling_time_s: float = -math.inf
    skipped: int = 0

    # -- jobs -------------------------------------------------------------------------------------
    def apply_job(self, msg: jpb.JobState) -> None:
        t = msg.state_time.ToNanoseconds() / 1e9
        if not msg.job_id or t < self.job_time.get(msg.job_id, -math.inf):
            self.skipped += not msg.job_id
            return
        self.job_time[msg.job_id] = t
        if msg.status != jpb.JOB_STATUS_RUNNING:
            self.jobs.pop(msg.job_id, None)
            return
        gpus = self._gpus(msg.placement)
        if gpus is None:
            self.skipped += 1
            self.jobs.pop(msg.job_id, None)
            return
        s = msg.spec
        self.jobs[msg.job_id] = JobView(msg.job_id, gpus, float(max(s.priority, 0)),
                                        max(float(s.checkpoint_interval_s), 0.0), max(float(s.checkpoint_write_s), 0.0))

    def _gpus(self, p: jpb.Placement) -> np.ndarray | None:
        if len(p.gpu_ids):
            g = np.unique(np.asarray(p.gpu_ids, dtype=np.int64))
            return g if g[-1] < self.n_gpus else None
        parts = []
        for node_id in p.node_ids:
            n = self.index.node_index.get(node_id)
            if n is None:
                return None
            first = int(self.index.node_first_gpu[n])
            parts.append(np.arange(first, first + int(self.index.node_gpus[n])))
        return np.unique(np.concatenate(parts)) if parts else None

    def planner_jobs(self) -> tuple[Jobs, np.ndarray]:
        """(Jobs, job index per GPU with -1 = none) for the curtailment planner. A GPU claimed by two
        jobs (stale placements) goes to the later one in id order."""
        ids = sorted(self.jobs)
        job = np.full(self.n_gpus, -1, dtype=np.int64)
        for j, jid in enumerate(ids):
            job[self.jobs[jid].gpus] = j
        v = [self.jobs[j] for j in ids]
        return Jobs(job_ids=tuple(ids), priority=np.array([x.priority for x in v]),
                    seconds_since_checkpoint=np.array([x.checkpoint_interval_s / 2 for x in v]),
                    checkpoint_s=np.array([x.checkpoint_write_s for x in v])), job

    # -- cooling ----------------------------------------------------------------------------------
    def apply_cooling(self, msg: cpb.CoolingState) -> None:
        if msg.scope != cpb.COOLING_SCOPE_PLANT or msg.site_id != self.index.site_id or not msg.HasField("plant"):
            return
        t = msg.state_time.ToNanoseconds() / 1e9
        w = msg.plant.cooling_power_w
        if t < self.cooling_time_s:
            return
        if not (math.isfinite(w) and w >= 0):
            self.skipped += 1
            return
        self.cooling_w, self.cooling_time_s = float(w), t
        self.cooling_source = _COOLING_SOURCE.get(msg.source, 2)


async def tail(bootstrap: str, topic: Topic, apply: Callable, stop: asyncio.Event, *, on_error: Callable[[], None],
               **client_options) -> None:
    """Apply every record of `topic` (all partitions, from the beginning, then as they come) until stop."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from twin.core.kafka import seek_to_start

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                **client_options)
    await consumer.start()
    try:
        tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(tps)
        await seek_to_start(consumer, tps)
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for raw in records:
                    try:
                        apply(topic.decode(raw.value))
                    except Exception:  # noqa: BLE001 - a record the view cannot use is skipped, never fatal
                        on_error()
    finally:
        await consumer.stop()
