"""Per-process caches of what a rack sends tick after tick, bounded by entries and by the bytes they hold.

The decoder and validation remember, per rack, what its last batch looked like (layouts, port and node
ids), so the next tick's identical parts cost a dict hit. Their keys come from the feed before it is
validated, so a feed of ever new rack ids or port lists (a misconfigured collector, or a hostile one) would
fill them: a cap on entries alone let 4,000 records of 175 KB with distinct bogus rack ids keep 2.2 GB alive
in the decoder (each entry holds its rack's port ids), 65,536 of them ~36 GB. `BoundedCache` also caps the
bytes its entries hold, as the caller estimates them on insert (`held_bytes`), and empties itself when an
insert would pass either cap; the next tick fills it again with what is really sent.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable, Iterable

# What each such cache may hold. A rack's entries take a few KB (site-100k: 3,125 racks, ~10 MB in the decoder's
# largest cache), so this leaves room for sites an order of magnitude larger before a cache empties between ticks.
CACHE_BYTES = 64 << 20


class BoundedCache(dict):
    """A dict filled through `put(key, value, nbytes)`: emptied first when the insert would take it past
    `max_entries` entries or `max_bytes` bytes held. Reads are plain dict reads (C speed)."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        super().__init__()
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.held = 0                          # bytes held by the entries, as their `put` calls estimated
        self._sizes: dict[Hashable, int] = {}

    def put(self, key: Hashable, value: object, nbytes: int) -> None:
        """Keep `value` under `key`; `nbytes`: what it holds. An entry larger than `max_bytes` alone is not kept."""
        if nbytes > self.max_bytes:
            return
        held = self.held - self._sizes.get(key, 0)   # a key put again replaces its entry
        if key not in self and len(self) >= self.max_entries or held + nbytes > self.max_bytes:
            self.clear()
            held = 0
        self[key] = value
        self._sizes[key] = nbytes
        self.held = held + nbytes

    def clear(self) -> None:
        super().clear()
        self._sizes.clear()
        self.held = 0


def held_bytes(*parts: object, each: Iterable[object] = ()) -> int:
    """What `parts` and the items of `each` take in memory (sys.getsizeof of each object: bytes and str
    count their contents; a tuple its slots, not the items, which go in `each`)."""
    return sum(map(sys.getsizeof, parts)) + sum(map(sys.getsizeof, each))
