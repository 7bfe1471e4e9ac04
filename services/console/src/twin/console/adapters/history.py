"""History the page charts, read from the power twin's table `power_state` (the console owns no tables).

Site power and PUE over the last N minutes: the site row (scope SITE) of every state time, averaged
per bucket (`date_bin`, which plain PostgreSQL and TimescaleDB both have). For the site, input power is
the import from the grid (facility power) and output power the IT power delivered to racks, so
PUE = facility / IT per bucket (twin.power.adapters.codec documents the columns per scope).
Also the last stored state of every power and cooling entity and of every job not yet ended
(`power_state_latest`, `cooling_state_latest`, `job_state_latest`, kept by those twins), which a
starting console shows until live events arrive.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from google.protobuf.message import Message
from psycopg import sql

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.jobs.v1 import jobs_pb2 as jpb
from twin.power.v1 import power_pb2 as ppb

SCOPE_SITE = ppb.POWER_SCOPE_SITE
#: (table, message type, filter) of the twins' last-state tables a starting console shows
LATEST = (
    ("power_state_latest", ppb.PowerState, "site_id = %(site)s"),
    ("cooling_state_latest", cpb.CoolingState, "site_id = %(site)s"),
    ("job_state_latest", jpb.JobState,
     f"status IN ({jpb.JOB_STATUS_PENDING}, {jpb.JOB_STATUS_RUNNING}, {jpb.JOB_STATUS_PREEMPTED})"),
)
MAX_POINTS = 240

SITE_HISTORY_SQL = """
SELECT extract(epoch FROM date_bin(%(step)s, time, TIMESTAMPTZ '2000-01-01'))::float8 AS t,
       avg(input_power_w) AS site_w, avg(output_power_w) AS it_w,
       avg(input_power_w) / NULLIF(avg(output_power_w), 0) AS pue, count(*) AS states
FROM power_state
WHERE site_id = %(site)s AND scope = %(scope)s AND time > now() - %(window)s
GROUP BY 1 ORDER BY 1
"""


class HistoryUnavailable(Exception):
    """The database cannot answer (down, or the power twin's tables do not exist yet)."""


class History:
    def __init__(self, pool, site_id: str) -> None:
        self.pool = pool
        self.site_id = site_id

    async def site_power(self, minutes: int) -> dict[str, Any]:
        import psycopg

        window = timedelta(minutes=minutes)
        step = timedelta(seconds=max(1, round(window.total_seconds() / MAX_POINTS)))
        try:
            async with self.pool.connection() as conn:
                exists = await (await conn.execute("SELECT to_regclass('power_state') IS NOT NULL")).fetchone()
                if not exists or not exists[0]:
                    raise HistoryUnavailable("no power_state table yet (the power twin has not started)")
                cur = await conn.execute(SITE_HISTORY_SQL, {"step": step, "site": self.site_id, "scope": SCOPE_SITE,
                                                            "window": window})
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise HistoryUnavailable(f"database: {type(exc).__name__}") from exc
        return {"site_id": self.site_id, "window_s": window.total_seconds(), "step_s": step.total_seconds(),
                "points": [{"t": t, "site_w": site_w, "it_w": it_w, "pue": pue, "states": n}
                           for t, site_w, it_w, pue, n in rows]}

    async def latest(self) -> list[Message]:
        """The stored last state of every power and cooling entity of this site and of every job not yet
        ended, as the twins keep them in their `*_latest` tables (a table that does not exist is skipped)."""
        out: list[Message] = []
        async with self.pool.connection() as conn:
            for table, message_type, where in LATEST:
                exists = await (await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))).fetchone()
                if not exists or not exists[0]:
                    continue
                query = sql.SQL("SELECT message FROM {} WHERE " + where).format(sql.Identifier(table))
                cur = await conn.execute(query, {"site": self.site_id})
                for (raw,) in await cur.fetchall():
                    msg = message_type()
                    msg.ParseFromString(bytes(raw))
                    out.append(msg)
        return out
