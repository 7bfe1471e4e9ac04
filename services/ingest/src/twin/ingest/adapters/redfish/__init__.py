"""Redfish resources (DMTF DSP0268 / DSP2046) → rack batches (RackSamples values).

Pure: a decoded JSON document in, domain ``RackBatch`` objects plus reasons out; no I/O, no protobuf
(``RedfishResult.batches`` hands them to ``codec.encode_batch`` for publishing).

Modules (one per section): ``racks`` (rack mapping), ``results`` (RedfishResult, Rejection),
``parse`` (entry points and the resource-type dispatch), ``accumulate`` (per rack/timestamp values),
``values`` (numbers, MetricValue strings, timestamps), ``metric_report``, ``power``, ``thermal``,
``sensor``.

Which rack a resource measures is never guessed: the caller gives ``rack_of_resource``, a mapping
from Redfish ``@odata.id`` prefixes to rack ids (``RedfishRackMap``; a plain dict or a callable
works too, see ``as_rack_map``). The longest prefix that matches on a path-segment boundary
wins, e.g. ``{"/redfish/v1/PowerEquipment/RackPDUs/1": "su1-0003",
"/redfish/v1/ThermalEquipment/CDUs/1": ["su1-0003", "su1-0004"]}`` (a CDU serving two racks gives
one batch per rack). A MetricReport value is mapped through the resource part of its
``MetricProperty`` (before ``#``).

What a mapped resource means: **every power value of a mapped resource is taken as that rack's
input power**, so map the resources that measure whole-rack input: a rack PDU (its Mains circuits,
its PowerDistributionMetrics), a floor-PDU branch/outlet that feeds the rack, a rack-level chassis.
One guard: an ``Outlet``, a ``Branch`` circuit or an outlet power Sensor (PhysicalContext
PowerOutlet) reached only through a *prefix* (its rack PDU was mapped) measures a load inside the
rack, so it is rejected; map its own ``@odata.id`` to declare it a rack feed.

Field mapping (RackSamples):

    pdu_input_power_w        PowerDistributionMetrics/Outlet/Circuit/EnvironmentMetrics
                             ``PowerWatts.Reading``; Circuit/Outlet ``PolyPhasePowerWatts``
                             (LineNToNeutral, else the line-to-line pairs); legacy Power
                             ``PowerControl[].PowerConsumedWatts``; Sensor ReadingType Power [W];
                             MetricReport ``PowerConsumedWatts``/``AverageConsumedWatts``/``PowerWatts/Reading``
    inlet_air_temp_c         ThermalMetrics ``TemperatureSummaryCelsius.Intake``; legacy Thermal
                             Temperatures[PhysicalContext=Intake]; Sensor Temperature [Cel] Intake
    outlet_air_temp_c        the same with Exhaust
    coolant_supply_temp_c    CoolantConnector ``SupplyTemperatureCelsius``; Sensor Temperature LiquidInlet
    coolant_return_temp_c    CoolantConnector ``ReturnTemperatureCelsius``; Sensor Temperature LiquidOutlet
    coolant_flow_lpm         CoolantConnector ``FlowLitersPerMinute``; Sensor LiquidFlowLPM [L/min]

Cooling equipment (not RackSamples): a ``CoolingUnit`` (``/redfish/v1/ThermalEquipment/CDUs/{id}``) POSTed
with its ``PrimaryCoolantConnectors``, ``SecondaryCoolantConnectors`` and ``Pumps`` expanded gives one CDU
sample (``RedfishResult.equipment_batches``: supply/return temperatures and flow per side,
``DeltaPressurekPa``, ``HeatRemovedkW``, mean ``PumpSpeedPercent``); its ``Id`` is the facility's CDU id.
Without expanded readings a CoolingUnit is links and status only and is rejected.

``pdu_input_power_w`` shape: length 3 = lines L1, L2, L3 (NaN for a line the resource does not
report); length 1 = a total whose phase split is unknown. When a resource gives only a total
``PowerWatts`` plus ``PolyPhaseCurrentAmps`` for two or more lines, the total is split in
proportion to the line currents (assumes equal voltage and power factor per line: an
approximation). Several mapped power resources of one rack inside one document (a MetricReport
with two feeds at one timestamp) are summed. RackSamples scalars the document does not carry are
NaN (proto3 has no presence; NaN = "not in this batch"), never 0.

Rejections (each with a reason; nothing is dropped silently): a body that is not a JSON object,
a missing/unknown ``@odata.type``, resources without telemetry (collections, definitions,
pumps, filters, leak detectors: their reason says why), non-numeric readings (MetricValue is a
JSON *string* per the schema and must parse as a finite decimal number), unit mismatches
(Sensor ``ReadingUnits`` must be the UCUM unit of its ReadingType: ``Cel``, ``W``, ``L/min``; the
DMTF mockups' ``C`` is UCUM for coulomb and is rejected), resources with no rack mapping, and a
CDU's primary (facility-side) coolant connector. A result can hold batches *and* rejections
(e.g. a MetricReport with one unmapped chassis).
"""

from __future__ import annotations

from twin.ingest.adapters.redfish.accumulate import SOURCE
from twin.ingest.adapters.redfish.parse import parse_redfish, parse_redfish_bytes
from twin.ingest.adapters.redfish.racks import RackOfResource, RedfishRackMap, as_rack_map
from twin.ingest.adapters.redfish.results import RedfishError, RedfishResult, Rejection
from twin.ingest.adapters.redfish.values import _Bad, parse_timestamp

__all__ = [
    "SOURCE",
    "RackOfResource",
    "RedfishError",
    "RedfishRackMap",
    "RedfishResult",
    "Rejection",
    "_Bad",
    "as_rack_map",
    "parse_redfish",
    "parse_redfish_bytes",
    "parse_timestamp",
]
