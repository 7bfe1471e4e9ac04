"""cooling_state: batched, idempotent writes of CoolingState rows, the latest state per entity, history,
and the equipment conditions in force (cooling_conditions).

One statement per batch (``unnest`` of parallel arrays), ON CONFLICT (entity_id, time) DO NOTHING: a
redelivered batch writes nothing. ``cooling_state_latest`` only moves forward in time. Reads: the
latest per entity of a site (and scope), one entity's history by (entity_id, time).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from twin.cooling.domain.network import Conditions
from twin.cooling.v1 import cooling_pb2 as pb

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"

_INSERT = """
INSERT INTO cooling_state (time, site_id, entity_id, scope, heat_w, temp_c, power_w, time_to_throttle_s, source,
                           message)
SELECT t, s, e, sc, h, tc, p, ttt, src, m
  FROM unnest(%(time)s::timestamptz[], %(site)s::text[], %(entity)s::text[], %(scope)s::int2[],
              %(heat)s::float8[], %(temp)s::float8[], %(power)s::float8[], %(ttt)s::float8[], %(source)s::int2[],
              %(message)s::bytea[])
       AS r(t, s, e, sc, h, tc, p, ttt, src, m)
ON CONFLICT (entity_id, time) DO NOTHING
"""
_LATEST_UPSERT = """
INSERT INTO cooling_state_latest (entity_id, site_id, scope, time, message)
SELECT e, s, sc, t, m
  FROM unnest(%(entity)s::text[], %(site)s::text[], %(scope)s::int2[], %(time)s::timestamptz[], %(message)s::bytea[])
       AS r(e, s, sc, t, m)
ON CONFLICT (entity_id) DO UPDATE SET site_id = EXCLUDED.site_id, scope = EXCLUDED.scope, time = EXCLUDED.time,
                                      message = EXCLUDED.message
 WHERE cooling_state_latest.time <= EXCLUDED.time
"""
_CONDITIONS_UPSERT = """
INSERT INTO cooling_conditions (site_id, time, conditions, event_times) VALUES (%s, %s, %s, %s)
ON CONFLICT (site_id) DO UPDATE SET time = GREATEST(cooling_conditions.time, EXCLUDED.time),
                                    conditions = EXCLUDED.conditions, event_times = EXCLUDED.event_times
"""


def _time(ts) -> datetime:
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC)


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def columns(s: pb.CoolingState) -> tuple[float | None, float | None, float | None, float | None]:
    """(heat W, temperature °C, power W, time-to-throttle s) of a state, for SQL and dashboards."""
    which = s.WhichOneof("detail")
    d = getattr(s, which) if which else None
    if which == "rack":
        ttt = d.time_to_throttle_s if d.HasField("time_to_throttle_s") else None
        return _num(d.it_power_w), _num(d.coolant_temp_c), None, ttt
    if which == "cdu":
        return _num(d.heat_removed_w), _num(d.supply_temp_c), _num(d.pump_power_w), None
    if which == "loop":
        return _num(d.heat_w), _num(d.supply_temp_c), None, None
    if which == "crah":
        return _num(d.heat_removed_w), _num(d.supply_air_temp_c), _num(d.fan_power_w), None
    if which == "air_group":
        return _num(d.heat_w), None, None, None
    if which == "plant":
        return _num(d.heat_load_w), _num(d.facility_supply_temp_c), _num(d.cooling_power_w), None
    return None, None, None, None


def _params(states: list[pb.CoolingState]) -> dict:
    last: dict[tuple[str, int, int], pb.CoolingState] = {}
    for s in states:
        last[(s.entity_id, s.state_time.seconds, s.state_time.nanos)] = s
    rows = list(last.values())
    cols = [columns(s) for s in rows]
    return {
        "time": [_time(s.state_time) for s in rows],
        "site": [s.site_id for s in rows],
        "entity": [s.entity_id for s in rows],
        "scope": [int(s.scope) for s in rows],
        "heat": [c[0] for c in cols],
        "temp": [c[1] for c in cols],
        "power": [c[2] for c in cols],
        "ttt": [c[3] for c in cols],
        "source": [int(s.source) for s in rows],
        "message": [s.SerializeToString(deterministic=True) for s in rows],
    }


def _decode(blob: bytes) -> pb.CoolingState:
    msg = pb.CoolingState()
    msg.ParseFromString(bytes(blob))
    return msg


# -- conditions as JSON -----------------------------------------------------------------------------
_ARRAYS = ("cdu_up", "cdu_flow_factor", "crah_up", "crah_supply_c", "plant_up", "rack_flow_factor")
_SCALARS = ("facility_supply_c", "dry_bulb_c", "wet_bulb_c")


def conditions_to_json(c: Conditions) -> dict:
    out: dict = {k: float(getattr(c, k)) for k in _SCALARS}
    out.update({k: np.asarray(getattr(c, k)).tolist() for k in _ARRAYS})
    return out


def conditions_from_json(d: dict, like: Conditions) -> Conditions | None:
    """None when the stored arrays do not fit this facility spec (it changed: start from design)."""
    try:
        arrays = {}
        for k in _ARRAYS:
            ref = np.asarray(getattr(like, k))
            a = np.asarray(d[k], dtype=ref.dtype)
            if a.shape != ref.shape:
                return None
            arrays[k] = a
        return like.with_(**arrays, **{k: float(d[k]) for k in _SCALARS})
    except (KeyError, TypeError, ValueError):
        return None


class CoolingStateRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def write(self, states: list[pb.CoolingState]) -> int:
        """Store the states (and move the latest per entity forward); returns rows inserted."""
        if not states:
            return 0
        p = _params(states)
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_INSERT, p)
            n = max(cur.rowcount, 0)
            await conn.execute(
                _LATEST_UPSERT, {k: p[k] for k in ("entity", "site", "scope", "time", "message")}
            )
        return n

    async def latest(self, site_id: str, scope: int | None = None) -> list[pb.CoolingState]:
        query = "SELECT message FROM cooling_state_latest WHERE site_id = %s"
        args: tuple = (site_id,)
        if scope:
            query += " AND scope = %s"
            args += (int(scope),)
        async with self.pool.connection() as conn:
            cur = await conn.execute(query + " ORDER BY entity_id", args)
            return [_decode(r[0]) for r in await cur.fetchall()]

    async def history(
        self, entity_id: str, start: datetime, end: datetime, max_points: int
    ) -> list[pb.CoolingState]:
        """States of one entity in [start, end), oldest first; the newest ``max_points`` when there are more."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT message FROM (SELECT time, message FROM cooling_state WHERE entity_id = %s AND time >= %s"
                " AND time < %s ORDER BY time DESC LIMIT %s) AS newest ORDER BY time",
                (entity_id, start, end, max_points),
            )
            return [_decode(r[0]) for r in await cur.fetchall()]

    async def save_conditions(
        self, site_id: str, time_s: float, cond: Conditions, event_times: dict[str, float]
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                _CONDITIONS_UPSERT,
                (
                    site_id,
                    datetime.fromtimestamp(time_s, UTC),
                    Jsonb(conditions_to_json(cond)),
                    Jsonb(event_times),
                ),
            )

    async def load_conditions(self, site_id: str) -> tuple[dict, dict[str, float]] | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT conditions, event_times FROM cooling_conditions WHERE site_id = %s", (site_id,)
            )
            row = await cur.fetchone()
        if row is None:
            return None
        cond, times = row
        if isinstance(cond, str):
            cond = json.loads(cond)
        if isinstance(times, str):
            times = json.loads(times)
        return cond, {k: float(v) for k, v in times.items()}


class InMemoryCoolingStore:
    """The same interface without a database (tests, COOLING_CONSUME=0)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, float], pb.CoolingState] = {}
        self.conditions: dict[str, tuple[float, dict, dict[str, float]]] = {}

    async def write(self, states: list[pb.CoolingState]) -> int:
        n = 0
        for s in states:
            key = (s.entity_id, s.state_time.ToNanoseconds() / 1e9)
            if key not in self.rows:
                self.rows[key] = s
                n += 1
        return n

    async def latest(self, site_id: str, scope: int | None = None) -> list[pb.CoolingState]:
        best: dict[str, tuple[float, pb.CoolingState]] = {}
        for (entity, t), s in self.rows.items():
            if (
                s.site_id == site_id
                and (not scope or s.scope == scope)
                and (entity not in best or t >= best[entity][0])
            ):
                best[entity] = (t, s)
        return [best[k][1] for k in sorted(best)]

    async def history(
        self, entity_id: str, start: datetime, end: datetime, max_points: int
    ) -> list[pb.CoolingState]:
        lo, hi = start.timestamp(), end.timestamp()
        found = sorted(
            ((t, s) for (e, t), s in self.rows.items() if e == entity_id and lo <= t < hi), key=lambda x: x[0]
        )
        return [s for _, s in found[-max_points:]] if max_points else []

    async def save_conditions(
        self, site_id: str, time_s: float, cond: Conditions, event_times: dict[str, float]
    ) -> None:
        self.conditions[site_id] = (time_s, conditions_to_json(cond), dict(event_times))

    async def load_conditions(self, site_id: str) -> tuple[dict, dict[str, float]] | None:
        got = self.conditions.get(site_id)
        return None if got is None else (got[1], got[2])
