"""Connection pool, errors and names: `open_pool`, `DatabaseUnavailable`, `describe_conninfo`, `ident`.

`open_pool(url)` returns an opened `AsyncConnectionPool`; failures name host/port/db, never the password.
Names given as `schema.table` are split on the dot and quoted part by part (`ident`).
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

log = logging.getLogger("twin.core.db")


class DatabaseUnavailable(ConnectionError):
    """The database could not be reached (message names host/port/db, never the password)."""


def ident(name: str) -> sql.Identifier:
    """`table` or `schema.table` as a quoted identifier."""
    parts = name.split(".")
    if not all(parts):
        raise ValueError(f"invalid SQL name {name!r}")
    return sql.Identifier(*parts)


def describe_conninfo(url: str) -> str:
    """`user@host:port/dbname` for messages: never includes the password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable connection string>"
    host = info.get("host") or info.get("hostaddr") or "<default socket>"
    port = info.get("port") or "5432"
    user = info.get("user") or "<default user>"
    return f"{user}@{host}:{port}/{info.get('dbname') or '<default db>'}"


def _redact(message: str, url: str) -> str:
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.ProgrammingError:
        password = None
    if password:
        message = message.replace(str(password), "***")
    return message


async def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 4, name: str | None = None, timeout: float = 10.0
) -> AsyncConnectionPool:
    """An opened pool; waits until `min_size` connections are ready, else `DatabaseUnavailable`."""
    where = describe_conninfo(url)
    pool = AsyncConnectionPool(url, min_size=min_size, max_size=max_size, name=name, open=False)
    try:
        await pool.open(wait=True, timeout=timeout)
    except PoolTimeout:
        await pool.close()
        reason = "timed out"
        try:  # one direct attempt to learn why (the pool only logs its failures)
            conn = await psycopg.AsyncConnection.connect(url, connect_timeout=max(2, int(timeout)))
            await conn.close()
        except psycopg.Error as exc:
            reason = _redact(str(exc).strip(), url)
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {where} within {timeout:g}s: {reason}"
        ) from None
    log.debug("pool %s open on %s", pool.name, where)
    return pool
