"""array_param (issue 13): one-dimensional array query parameters built with numpy in PostgreSQL's binary array
format. Whatever the values, PostgreSQL must read exactly what it reads from psycopg's own list dumping (the
path it replaces): NULL elements, non-ASCII and empty text, equal instants in other time zones, naive datetimes
(UTC), integer extremes, NaN and infinities, empty arrays; values a type cannot hold raise before anything is sent.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from twin.core import db
from twin.core.db.copy import ArrayParam, array_param

UTC = dt.UTC
T = dt.datetime(2026, 11, 30, 1, 2, 3, 456789, tzinfo=UTC)
CASES = {
    "text": ["r1", "räck-é", "", None, "x" * 300, "r1", "nœud/1"],
    "text all equal width": ["r0001-n0", "r0001-n1", "r0002-n0"],
    "text only nulls": [None, None],
    "timestamptz": [T, T.astimezone(dt.timezone(dt.timedelta(hours=5))), None,
                    dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), T, dt.datetime(2000, 1, 1, tzinfo=UTC)],
    "int8": [0, -1, 2**63 - 1, -(2**63), None, 7],
    "int4": [2**31 - 1, -(2**31), 0, None],
    "int2": [32767, -32768, 1],
    "float8": [1.5, math.nan, -math.inf, math.inf, -0.0, None, 1e-300],
    "bool": [True, False, None],
}


@pytest.fixture
async def pool(fresh_database: str):
    p = await db.open_pool(fresh_database, max_size=1)
    try:
        yield p
    finally:
        await p.close()


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("case", sorted(CASES))
async def test_array_param_reads_back_as_psycopg_lists_do(pool, case) -> None:
    values = CASES[case]
    pgtype = case.split()[0]
    async with pool.connection() as conn:
        for given in (values, values[:1], []):
            param = array_param(pgtype, given)
            assert isinstance(param, ArrayParam)
            cur = await conn.execute(f"SELECT %b::{pgtype}[], %b::{pgtype}[], array_ndims(%b), array_lower(%b, 1), "
                                     "pg_typeof(%b)::text", (param, given, param, param, param))
            ours, theirs, ndims, lower, typ = await cur.fetchone()
            assert len(ours) == len(theirs) == len(given)
            assert all(same(a, b) for a, b in zip(ours, theirs, strict=True)), (ours, theirs)
            assert (ndims, lower) == ((1, 1) if given else (None, None))
            assert typ == {"int8": "bigint", "int4": "integer", "int2": "smallint", "float8": "double precision",
                           "bool": "boolean", "timestamptz": "timestamp with time zone"}.get(pgtype, pgtype) + "[]"


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_joined_paths_of_lists_write_the_bytes_of_the_general_path(case) -> None:
    # lists of str and datetimes are joined in C and lists of numbers become one typed array; an object array
    # of the same values takes the general (copy_columns) path: the parameter's bytes must be the same
    values = CASES[case]
    pgtype = case.split()[0]
    for given in (values, values[::-1], values[:1], [v for v in values if v is not None] or values):
        general = np.empty(len(given), dtype=object)
        general[:] = given
        assert array_param(pgtype, given).data == array_param(pgtype, general).data, given
        assert array_param(pgtype, tuple(given)).data == array_param(pgtype, general).data
    assert array_param("text", ["é" * 5000]).data == array_param("text", np.array(["é" * 5000], dtype=object)).data
    naive = [T.replace(tzinfo=None), None]
    assert array_param("timestamptz", naive).data == array_param("timestamptz", [T, None]).data


async def test_array_param_from_numpy_and_its_errors(pool) -> None:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT %b, %b, %b", (array_param("int4", np.arange(3, dtype=np.int64)),
                                                       array_param("bigint", np.array([2**40], dtype=np.uint64)),
                                                       array_param("text", np.array(["a", "bc"], dtype=object))))
        assert await cur.fetchone() == ([0, 1, 2], [2**40], ["a", "bc"])
        cur = await conn.execute("SELECT %b::timestamptz[]", (array_param("timestamptz", [T.replace(tzinfo=None), T]),))
        assert await cur.fetchone() == ([T, T],)
    with pytest.raises(ValueError, match="outside"):
        array_param("int4", [2**31])
    with pytest.raises(ValueError, match="timestamp column got"):
        array_param("timestamptz", [T, "2026-01-01"])
    with pytest.raises(ValueError, match="timestamp column got list"):
        array_param("timestamptz", [[1]])
    with pytest.raises(ValueError, match="timestamp column got date"):
        array_param("timestamptz", [T, T.date()])
    with pytest.raises(ValueError, match="non-integral"):
        array_param("int8", [1, 2.5])
    with pytest.raises(UnicodeEncodeError):
        array_param("text", ["\udc80"])
    with pytest.raises(ValueError, match="does not support"):
        array_param("int4[]", [[1]])
