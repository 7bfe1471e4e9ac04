"""copy_columns' fast path for fixed-width text ids (issue 13): ids of one width are written as
fixed-width fields straight from a bytes array. Whatever the values, the table must hold exactly
what the general path writes: equal-width ASCII ids (str objects or a numpy bytes array) take the
fast path; mixed widths, NULLs, non-ASCII text and non-string objects take the general one."""

from __future__ import annotations

import numpy as np
import pytest

from twin.core import db
from twin.core.db.copy import _fixed_width_text

CASES = {
    "same width str": (np.array(["r1-n00", "r1-n01", "r2-n00"], dtype=object), True),
    "same width bytes": (np.array([b"r1-n00", b"r1-n01", b"r2-n00"]), True),
    "mixed widths": (np.array(["a", "bb", "ccc"], dtype=object), False),
    "null": (np.array(["aa", None, "bb"], dtype=object), False),
    "non-ascii": (np.array(["Ä1", "Ä2"], dtype=object), False),
    "ints": (np.array([10, 20, 30], dtype=object), True),
    "list": (["r1", "r2"], False),
}


@pytest.fixture
async def pool(fresh_database: str):
    p = await db.open_pool(fresh_database, max_size=1)
    try:
        yield p
    finally:
        await p.close()


@pytest.mark.parametrize("case", sorted(CASES))
async def test_text_fast_path_stores_what_the_general_path_stores(pool, case) -> None:
    values, fast = CASES[case]
    assert (isinstance(values, np.ndarray) and _fixed_width_text(values) is not None) == fast
    want = [None if v is None else v.decode() if isinstance(v, bytes) else str(v) for v in list(values)]
    async with pool.connection() as conn:
        await conn.execute("CREATE TABLE t (i int8, label text)")
        n = len(values)
        assert await db.copy_columns(conn, "t", ["i", "label"], ["int8", "text"],
                                     [np.arange(n, dtype=np.int64), values], chunk_rows=2) == n
        cur = await conn.execute("SELECT label FROM t ORDER BY i")
        assert [r[0] for r in await cur.fetchall()] == want
