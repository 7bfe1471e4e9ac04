"""The frozen domain classes' `direct` constructors (the decoder's, without the per-field object.__setattr__):
the same instance as the dataclass constructor, still frozen, its cached properties working."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest

from twin.ingest.domain.model import BatchKey, GpuColumns, Links, RackBatch, RackEnv


def _values(cls) -> list:
    return [object() for _ in dataclasses.fields(cls)]   # one distinct value per field: a swap shows


@pytest.mark.parametrize("cls", [GpuColumns, RackEnv, Links, RackBatch, BatchKey])
def test_direct_builds_what_the_constructor_builds(cls) -> None:
    values = _values(cls)
    a, b = cls(*values), cls.direct(*values)
    names = [f.name for f in dataclasses.fields(cls)]
    if cls is RackBatch:   # its key is made at once (a cached_property otherwise)
        assert "key" not in vars(a) and b.key == a.key and type(b.key) is BatchKey and vars(b.key) == vars(a.key)
        names.append("key")
    assert type(b) is cls and vars(a) == vars(b) and list(vars(b)) == names
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.sequence = None
    if cls is BatchKey:   # eq=True: by value, hashed alike
        assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    else:
        assert a != b and b == b   # eq=False: identity, as before


def test_direct_defaults_and_cached_properties() -> None:
    g = GpuColumns.direct(("n",), np.array([0, 1]), np.zeros(1, np.uint32), np.zeros(10), np.zeros(3, np.uint64))
    assert g.value_offsets is None and g.float_block().shape == (10, 1)
    t = datetime(2026, 1, 2, tzinfo=UTC)
    batch = RackBatch.direct("s", "r", t, 5, "src", g, None, Links.direct((), {}, np.empty(0, np.int64)))
    assert batch.key == BatchKey("r", t, 5) and batch.key is batch.key
