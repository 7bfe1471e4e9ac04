"""StoreItem.direct (the handler's, one per batch of a poll) builds what the dataclass constructor builds."""

from __future__ import annotations

import dataclasses

import pytest

from twin.ingest.adapters.repository import StoreItem


def test_store_item_direct_is_the_constructors_item() -> None:
    values = [object() for _ in dataclasses.fields(StoreItem)]   # one distinct value per field: a swap shows
    a, b = StoreItem(*values), StoreItem.direct(*values)
    assert type(b) is StoreItem and vars(a) == vars(b) and list(vars(b)) == [f.name for f in dataclasses.fields(a)]
    assert a == b and hash(a) == hash(b)   # frozen, eq: by value, hashed alike
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.offset = 1
    short = values[:-1]   # the digest defaults to None, as in the constructor
    assert vars(StoreItem.direct(*short)) == vars(StoreItem(*short))
