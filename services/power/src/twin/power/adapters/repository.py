"""power_state: batched, idempotent writes of PowerState rows, the latest state per entity, history.

One statement per batch (``unnest`` of parallel arrays): rack rows ON CONFLICT DO NOTHING (natural key
(entity_id, time): a redelivered batch writes nothing); aggregate rows (PDU ... site) ON CONFLICT DO
UPDATE, because stage 2 re-evaluates a tick as more of its racks arrive and the latest evaluation of
a tick is the right one (a replay writes the same values). ``power_state_latest`` only moves forward
in time. Reads: latest per entity of a site and scope, one entity's history by (entity_id, time).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from twin.power.v1 import power_pb2 as pb

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
SERVICE = "power"

_COLUMNS = """time, site_id, entity_id, scope, input_power_w, output_power_w, loss_w, rating_w, utilization,
              source, message"""
_SELECT = """
SELECT t, s, e, sc, i, o, l, r, u, src, m
  FROM unnest(%(time)s::timestamptz[], %(site)s::text[], %(entity)s::text[], %(scope)s::int2[],
              %(input)s::float8[], %(output)s::float8[], %(loss)s::float8[], %(rating)s::float8[],
              %(util)s::float8[], %(source)s::int2[], %(message)s::bytea[])
       AS r(t, s, e, sc, i, o, l, r, u, src, m)
"""
_INSERT_NEW = f"INSERT INTO power_state ({_COLUMNS}) {_SELECT} ON CONFLICT (entity_id, time) DO NOTHING"
_INSERT_REFINE = f"""
INSERT INTO power_state ({_COLUMNS}) {_SELECT}
ON CONFLICT (entity_id, time) DO UPDATE SET
    input_power_w = EXCLUDED.input_power_w, output_power_w = EXCLUDED.output_power_w, loss_w = EXCLUDED.loss_w,
    rating_w = EXCLUDED.rating_w, utilization = EXCLUDED.utilization, source = EXCLUDED.source,
    message = EXCLUDED.message
"""
_LATEST_UPSERT = """
INSERT INTO power_state_latest (entity_id, site_id, scope, time, message)
SELECT e, s, sc, t, m
  FROM unnest(%(entity)s::text[], %(site)s::text[], %(scope)s::int2[], %(time)s::timestamptz[], %(message)s::bytea[])
       AS r(e, s, sc, t, m)
ON CONFLICT (entity_id) DO UPDATE SET site_id = EXCLUDED.site_id, scope = EXCLUDED.scope, time = EXCLUDED.time,
                                      message = EXCLUDED.message
 WHERE power_state_latest.time <= EXCLUDED.time
"""


def _time(ts) -> datetime:
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC)


def _params(states: list[pb.PowerState]) -> dict:
    # one row per (entity, time) per statement: the last state of a key in the batch wins
    last: dict[tuple[str, int, int], pb.PowerState] = {}
    for s in states:
        last[(s.entity_id, s.state_time.seconds, s.state_time.nanos)] = s
    rows = list(last.values())
    return {
        "time": [_time(s.state_time) for s in rows], "site": [s.site_id for s in rows],
        "entity": [s.entity_id for s in rows], "scope": [int(s.scope) for s in rows],
        "input": [s.input_power_w for s in rows], "output": [s.output_power_w for s in rows],
        "loss": [s.loss_w for s in rows], "rating": [s.rating_w for s in rows],
        "util": [s.utilization for s in rows], "source": [int(s.source) for s in rows],
        "message": [s.SerializeToString(deterministic=True) for s in rows],
    }


def _decode(blob: bytes) -> pb.PowerState:
    msg = pb.PowerState()
    msg.ParseFromString(bytes(blob))
    return msg


class PowerStateRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def write(self, states: list[pb.PowerState]) -> int:
        """Store the states (and move the latest per entity forward); returns rows inserted or refined."""
        if not states:
            return 0
        racks = [s for s in states if s.scope == pb.POWER_SCOPE_RACK]
        aggregates = [s for s in states if s.scope != pb.POWER_SCOPE_RACK]
        n = 0
        async with self.pool.connection() as conn, conn.transaction():
            for rows, statement in ((racks, _INSERT_NEW), (aggregates, _INSERT_REFINE)):
                if rows:
                    cur = await conn.execute(statement, _params(rows))
                    n += max(cur.rowcount, 0)
            p = _params(states)
            await conn.execute(_LATEST_UPSERT, {k: p[k] for k in ("entity", "site", "scope", "time", "message")})
        return n

    async def latest(self, site_id: str, scope: int | None = None) -> list[pb.PowerState]:
        """The latest state of every entity of the site (of one scope when given)."""
        query = "SELECT message FROM power_state_latest WHERE site_id = %s"
        args: tuple = (site_id,)
        if scope is not None:
            query += " AND scope = %s"
            args += (int(scope),)
        async with self.pool.connection() as conn:
            cur = await conn.execute(query + " ORDER BY entity_id", args)
            return [_decode(r[0]) for r in await cur.fetchall()]

    async def latest_of(self, entity_id: str) -> pb.PowerState | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT message FROM power_state_latest WHERE entity_id = %s", (entity_id,))
            row = await cur.fetchone()
        return _decode(row[0]) if row else None

    async def history(self, entity_id: str, start: datetime, end: datetime, max_points: int) -> list[pb.PowerState]:
        """States of one entity in [start, end), oldest first; the newest ``max_points`` when there are more."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT message FROM (SELECT time, message FROM power_state WHERE entity_id = %s AND time >= %s"
                " AND time < %s ORDER BY time DESC LIMIT %s) AS newest ORDER BY time",
                (entity_id, start, end, max_points))
            return [_decode(r[0]) for r in await cur.fetchall()]


class InMemoryPowerStore:
    """The same interface without a database (tests, POWER_CONSUME=0)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, float], pb.PowerState] = {}

    async def write(self, states: list[pb.PowerState]) -> int:
        n = 0
        for s in states:
            key = (s.entity_id, s.state_time.ToNanoseconds() / 1e9)
            if key not in self.rows or s.scope != pb.POWER_SCOPE_RACK:
                self.rows[key] = s
                n += 1
        return n

    async def latest(self, site_id: str, scope: int | None = None) -> list[pb.PowerState]:
        best: dict[str, tuple[float, pb.PowerState]] = {}
        for (entity, t), s in self.rows.items():
            if s.site_id == site_id and (scope is None or s.scope == scope) and (entity not in best or t >= best[entity][0]):
                best[entity] = (t, s)
        return [best[k][1] for k in sorted(best)]

    async def latest_of(self, entity_id: str) -> pb.PowerState | None:
        found = [(t, s) for (e, t), s in self.rows.items() if e == entity_id]
        return max(found, key=lambda x: x[0])[1] if found else None

    async def history(self, entity_id: str, start: datetime, end: datetime, max_points: int) -> list[pb.PowerState]:
        lo, hi = start.timestamp(), end.timestamp()
        found = sorted((t, s) for (e, t), s in self.rows.items() if e == entity_id and lo <= t < hi)
        return [s for _, s in found[-max_points:]] if max_points else []
