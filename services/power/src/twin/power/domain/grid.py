"""Grid events as the twin understands them (decoded from OpenADR 3 or grid.events.v1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

IMPORT_CAPACITY_LIMIT = "IMPORT_CAPACITY_LIMIT"
SIMPLE = "SIMPLE"


@dataclass(frozen=True)
class GridInterval:
    interval_id: int
    start: datetime
    duration_s: float
    import_limit_kw: float | None = None   # IMPORT_CAPACITY_LIMIT payload (site import cap)
    simple_level: int | None = None        # SIMPLE payload, 0 (normal) .. 3 (maximum shed)

    @property
    def end_s(self) -> float:
        return self.start.timestamp() + self.duration_s


@dataclass(frozen=True)
class GridEvent:
    event_id: str
    program_id: str
    event_name: str
    intervals: tuple[GridInterval, ...]
    created: datetime | None = None
    modified: datetime | None = None

    def limit_at(self, when: datetime) -> float | None:
        """The import limit (kW) in force at ``when`` (None: no limit)."""
        t = when.timestamp()
        for iv in self.intervals:
            if iv.import_limit_kw is not None and iv.start.timestamp() <= t < iv.end_s:
                return iv.import_limit_kw
        return None


def upsert(events: tuple[GridEvent, ...], new: GridEvent) -> tuple[GridEvent, ...]:
    """The event book after ``new`` arrives: an event with the same id replaces the old one (and moves
    to the end: the latest)."""
    return tuple(e for e in events if e.event_id != new.event_id) + (new,)


def import_limit_at(events: tuple[GridEvent, ...], when: datetime) -> tuple[float | None, str | None]:
    """(limit kW, event id) in force at ``when``. Overlapping limits resolve to the latest event: the
    last one in the book (``upsert`` order)."""
    for e in reversed(events):
        limit = e.limit_at(when)
        if limit is not None:
            return limit, e.event_id
    return None, None
