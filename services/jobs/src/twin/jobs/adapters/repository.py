"""job_state: batched, idempotent writes of JobState rows, the latest state per job, history.

One statement per batch (``unnest`` of parallel arrays), ON CONFLICT (job_id, time) DO NOTHING: a redelivered
batch writes nothing. ``job_state_latest`` only moves forward in time. Reads: one job's latest state, the latest
of every job (optionally of one status), one job's history by (job_id, time).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from twin.jobs.v1 import jobs_pb2 as pb

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"

_INSERT = """
INSERT INTO job_state (time, job_id, status, n_gpus, predicted_step_time_s, measured_step_time_s,
                       step_time_error_ratio, predicted_tokens_per_s, mfu, power_w, goodput_fraction, energy_j,
                       risk_flags, message)
SELECT * FROM unnest(%(time)s::timestamptz[], %(job)s::text[], %(status)s::int2[], %(gpus)s::int4[],
                     %(pred)s::float8[], %(meas)s::float8[], %(err)s::float8[], %(tok)s::float8[], %(mfu)s::float8[],
                     %(power)s::float8[], %(good)s::float8[], %(energy)s::float8[], %(flags)s::int2[],
                     %(message)s::bytea[])
ON CONFLICT (job_id, time) DO NOTHING
"""
_LATEST = """
INSERT INTO job_state_latest (job_id, status, time, message)
SELECT * FROM unnest(%(job)s::text[], %(status)s::int2[], %(time)s::timestamptz[], %(message)s::bytea[])
ON CONFLICT (job_id) DO UPDATE SET status = EXCLUDED.status, time = EXCLUDED.time, message = EXCLUDED.message
 WHERE job_state_latest.time <= EXCLUDED.time
"""


def _time(ts) -> datetime:
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC)


def _params(states: list[pb.JobState]) -> dict:
    last: dict[tuple[str, int, int], pb.JobState] = {}
    for s in states:  # one row per (job, time) per statement: the last of a key in the batch wins
        last[(s.job_id, s.state_time.seconds, s.state_time.nanos)] = s
    rows = list(last.values())
    return {
        "time": [_time(s.state_time) for s in rows], "job": [s.job_id for s in rows],
        "status": [int(s.status) for s in rows], "gpus": [int(s.placement.n_gpus) for s in rows],
        "pred": [s.predicted_step_time_s for s in rows], "meas": [s.measured_step_time_s for s in rows],
        "err": [s.step_time_error_ratio for s in rows], "tok": [s.predicted_tokens_per_s for s in rows],
        "mfu": [s.mfu for s in rows], "power": [s.power_w for s in rows], "good": [s.goodput_fraction for s in rows],
        "energy": [s.energy_j for s in rows], "flags": [len(s.risk_flags) for s in rows],
        "message": [s.SerializeToString(deterministic=True) for s in rows],
    }


def _decode(blob: bytes) -> pb.JobState:
    msg = pb.JobState()
    msg.ParseFromString(bytes(blob))
    return msg


class JobStateRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def write(self, states: list[pb.JobState]) -> int:
        """Store the states (and move each job's latest forward); returns rows inserted."""
        if not states:
            return 0
        p = _params(states)
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_INSERT, p)
            n = max(cur.rowcount, 0)
            await conn.execute(_LATEST, {k: p[k] for k in ("job", "status", "time", "message")})
        return n

    async def latest_of(self, job_id: str) -> pb.JobState | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT message FROM job_state_latest WHERE job_id = %s", (job_id,))
            row = await cur.fetchone()
        return _decode(row[0]) if row else None

    async def latest(self, status: int | None = None) -> list[pb.JobState]:
        query, args = "SELECT message FROM job_state_latest", ()
        if status:
            query, args = query + " WHERE status = %s", (int(status),)
        async with self.pool.connection() as conn:
            cur = await conn.execute(query + " ORDER BY job_id", args)
            return [_decode(r[0]) for r in await cur.fetchall()]

    async def history(self, job_id: str, start: datetime, end: datetime, max_points: int) -> list[pb.JobState]:
        """States of one job in [start, end), oldest first; the newest ``max_points`` when there are more."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT message FROM (SELECT time, message FROM job_state WHERE job_id = %s AND time >= %s"
                " AND time < %s ORDER BY time DESC LIMIT %s) AS newest ORDER BY time",
                (job_id, start, end, max_points))
            return [_decode(r[0]) for r in await cur.fetchall()]


class InMemoryJobStore:
    """The same interface without a database (unit tests, JOBS_CONSUME=0)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], pb.JobState] = {}

    async def write(self, states: list[pb.JobState]) -> int:
        n = 0
        for s in states:
            key = (s.job_id, s.state_time.ToNanoseconds())
            if key not in self.rows:
                self.rows[key] = s
                n += 1
        return n

    async def latest_of(self, job_id: str) -> pb.JobState | None:
        found = [(t, s) for (j, t), s in self.rows.items() if j == job_id]
        return max(found, key=lambda x: x[0])[1] if found else None

    async def latest(self, status: int | None = None) -> list[pb.JobState]:
        best: dict[str, tuple[int, pb.JobState]] = {}
        for (j, t), s in self.rows.items():
            if j not in best or t >= best[j][0]:
                best[j] = (t, s)
        return [best[j][1] for j in sorted(best) if not status or best[j][1].status == status]

    async def history(self, job_id: str, start: datetime, end: datetime, max_points: int) -> list[pb.JobState]:
        lo, hi = start.timestamp() * 1e9, end.timestamp() * 1e9
        found = sorted((t, s) for (j, t), s in self.rows.items() if j == job_id and lo <= t < hi)
        return [s for _, s in found[-max_points:]] if max_points else []
