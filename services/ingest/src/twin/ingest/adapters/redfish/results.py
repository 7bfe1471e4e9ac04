"""What parsing a Redfish document gives: rack batches (domain form) and rejections with reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

from twin.ingest.adapters import codec
from twin.ingest.domain.model import RackBatch


@dataclass(frozen=True)
class Rejection:
    where: str  # @odata.id (or MetricProperty) of the rejected part, or "body"
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class RedfishResult:
    resource_type: str = ""
    odata_id: str = ""
    rack_batches: list[RackBatch] = field(default_factory=list)  # domain form, one per rack and timestamp
    equipment_batches: list = field(default_factory=list)  # domain EquipmentBatch (a CoolingUnit's readings)
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def batches(self) -> list:
        """The rack batches as RackTelemetryBatch protobufs (made by the codec), ready to publish."""
        return [codec.encode_batch(b) for b in self.rack_batches] + [
            codec.encode_equipment(b) for b in self.equipment_batches]

    @property
    def reason(self) -> str:
        """All rejection reasons in one line (for the DLQ and HTTP 400 bodies)."""
        return "; ".join(str(r) for r in self.rejections)


class RedfishError(ValueError):
    pass
