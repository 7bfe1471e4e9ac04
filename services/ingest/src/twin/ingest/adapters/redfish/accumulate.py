"""Values collected per (rack, timestamp) while a document is parsed, flushed as domain RackBatches."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from twin.ingest.adapters import codec
from twin.ingest.adapters.redfish.results import RedfishResult, Rejection
from twin.ingest.domain.model import GpuColumns, RackBatch, RackEnv

SOURCE = "redfish"


_SCALARS = ("inlet_air_temp_c", "outlet_air_temp_c", "coolant_supply_temp_c", "coolant_return_temp_c",
            "coolant_flow_lpm")


@dataclass
class _RackAcc:
    scalars: dict[str, float] = field(default_factory=dict)
    power: list[list[float]] = field(default_factory=list)  # one entry per power resource


@dataclass
class _Ctx:
    racks: Any
    received_time: datetime
    site_id: str
    result: RedfishResult
    # (rack, timestamp) -> accumulated values
    acc: dict[tuple[str, datetime], _RackAcc] = field(default_factory=dict)

    def reject(self, where: str, reason: str) -> None:
        self.result.rejections.append(Rejection(where, reason))

    def racks_of(self, odata_id: str, *, load: bool = False) -> tuple[str, ...] | None:
        got = self.racks.resolve(odata_id)
        if got is None:
            self.reject(odata_id, "no rack mapping for this resource (rack_of_resource has no matching prefix)")
            return None
        racks, exact = got
        if load and not exact:
            self.reject(odata_id, "measures a load inside the rack (outlet/branch of a mapped PDU), not the rack "
                                  "input; map its @odata.id explicitly to use it as a rack feed")
            return None
        return racks

    def put(self, racks: Sequence[str], when: datetime, name: str, value: float) -> None:
        for rack in racks:
            self.acc.setdefault((rack, when), _RackAcc()).scalars[name] = value

    def put_power(self, racks: Sequence[str], when: datetime, phases: list[float]) -> None:
        for rack in racks:
            self.acc.setdefault((rack, when), _RackAcc()).power.append(list(phases))

    def flush(self) -> None:
        for (rack, when), acc in sorted(self.acc.items()):
            env = RackEnv(np.array(_sum_power(acc.power), dtype=np.float64),
                          *(acc.scalars.get(name, math.nan) for name in _SCALARS))
            self.result.rack_batches.append(
                RackBatch(self.site_id, rack, when, 0, SOURCE, GpuColumns.empty(), env, codec.no_links()))


def _sum_power(entries: list[list[float]]) -> list[float]:
    if not entries:
        return []
    if len(entries) == 1:
        return entries[0]
    if all(len(e) == 3 for e in entries):
        return [_nansum(e[i] for e in entries) for i in range(3)]
    return [_nansum(_nansum(e) for e in entries)]


def _nansum(values: Any) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return math.fsum(vals) if vals else math.nan
