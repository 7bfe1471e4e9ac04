"""Duplicate detection inside one poll (the database ledger catches duplicates across polls).

Two batches are duplicates when they share the natural key (rack_id, sample_time, sequence): the
source re-sent the same tick. The first occurrence wins; later ones are counted, not dead-lettered.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def split_duplicates(keys: Sequence[Hashable]) -> tuple[list[int], list[int]]:
    """(indexes of first occurrences, indexes of repeats), both in input order."""
    seen: set[Hashable] = set()
    first: list[int] = []
    repeats: list[int] = []
    for i, key in enumerate(keys):
        if key in seen:
            repeats.append(i)
        else:
            seen.add(key)
            first.append(i)
    return first, repeats
