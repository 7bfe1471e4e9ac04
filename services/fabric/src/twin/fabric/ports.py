"""The fabric twin's ports: what its live state needs from storage, defined apart from the adapters
that implement them (adapters.repository: PostgreSQL; InMemoryStateStore: tests and gRPC-only mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class LinkRows:
    """Columnar link-state rows (one per changed link)."""

    time_s: np.ndarray  # float64 epoch seconds
    link_ids: list[str]
    capacity_fraction: np.ndarray
    utilization: np.ndarray
    flapping: np.ndarray

    def __len__(self) -> int:
        return len(self.link_ids)

    @classmethod
    def empty(cls) -> LinkRows:
        return cls(np.zeros(0), [], np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))


class StateStore(Protocol):
    async def write(self, site_id: str, rows: LinkRows) -> int: ...
    async def latest(self, site_id: str) -> LinkRows: ...
