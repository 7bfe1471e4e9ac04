"""fabric_state table: idempotent writes of link-state changes and the latest state per link.

Rows are keyed (link_id, time) and inserted with ON CONFLICT DO NOTHING, so a redelivered Kafka
batch writes nothing new. `time` is the event/sample time that caused the change (not wall-clock),
which keeps replays idempotent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from psycopg_pool import AsyncConnectionPool

from twin.core.db import apply_migrations, ensure_hypertable
from twin.fabric.ports import LinkRows

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"  # package data: same path installed or editable
SERVICE = "fabric"


def _datetimes(time_s: np.ndarray) -> list[datetime]:
    return [datetime.fromtimestamp(float(t), UTC) for t in time_s]


_INSERT = """
INSERT INTO fabric_state (time, site_id, link_id, capacity_fraction, utilization, flapping)
SELECT t, %(site_id)s, l, c, u, f
  FROM unnest(%(time)s::timestamptz[], %(link)s::text[], %(cap)s::float8[], %(util)s::float8[], %(flap)s::bool[])
       AS r(t, l, c, u, f)
ON CONFLICT (link_id, time) DO NOTHING
"""

_LATEST = """
SELECT DISTINCT ON (link_id) link_id, time, capacity_fraction, utilization, flapping
  FROM fabric_state
 WHERE site_id = %s
 ORDER BY link_id, time DESC
"""


class FabricStateRepository:
    """PostgreSQL/TimescaleDB implementation of StateStore."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def setup(self) -> list[str]:
        applied = await apply_migrations(self.pool, SERVICE, MIGRATIONS_DIR)
        async with self.pool.connection() as conn:
            await ensure_hypertable(conn, "fabric_state", chunk_interval="1 day", compress_after="7 days",
                                    retain="90 days", segment_by="link_id")
        return applied

    async def write(self, site_id: str, rows: LinkRows) -> int:
        """Insert rows; returns how many were new (0 on a redelivery)."""
        if len(rows) == 0:
            return 0
        params = {
            "site_id": site_id,
            "time": _datetimes(rows.time_s),
            "link": list(rows.link_ids),
            "cap": np.asarray(rows.capacity_fraction, dtype=np.float64).tolist(),
            "util": np.asarray(rows.utilization, dtype=np.float64).tolist(),
            "flap": np.asarray(rows.flapping, dtype=bool).tolist(),
        }
        async with self.pool.connection() as conn:
            cur = await conn.execute(_INSERT, params)
            return cur.rowcount

    async def latest(self, site_id: str) -> LinkRows:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_LATEST, (site_id,))
            found = await cur.fetchall()
        if not found:
            return LinkRows.empty()
        link, time, cap, util, flap = zip(*found, strict=True)
        return LinkRows(np.array([t.timestamp() for t in time]), list(link), np.array(cap, dtype=np.float64),
                        np.array(util, dtype=np.float64), np.array(flap, dtype=bool))


class InMemoryStateStore:
    """StateStore for tests and DB-less runs (FABRIC_STORE=memory)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, float], tuple[float, float, bool]] = {}

    async def write(self, site_id: str, rows: LinkRows) -> int:
        new = 0
        for i, link in enumerate(rows.link_ids):
            key = (site_id, link, float(rows.time_s[i]))
            if key not in self.rows:
                self.rows[key] = (float(rows.capacity_fraction[i]), float(rows.utilization[i]), bool(rows.flapping[i]))
                new += 1
        return new

    async def latest(self, site_id: str) -> LinkRows:
        best: dict[str, tuple[float, tuple[float, float, bool]]] = {}
        for (site, link, t), value in self.rows.items():
            if site == site_id and (link not in best or t > best[link][0]):
                best[link] = (t, value)
        links = sorted(best)
        return LinkRows(np.array([best[k][0] for k in links]), links,
                        np.array([best[k][1][0] for k in links]), np.array([best[k][1][1] for k in links]),
                        np.array([best[k][1][2] for k in links], dtype=bool))
