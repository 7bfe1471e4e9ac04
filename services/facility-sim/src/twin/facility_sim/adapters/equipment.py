"""The simulated site's cooling equipment readings on facility.telemetry.v1 (``RackTelemetryBatch.equipment``,
keyed by site_id, ``source`` facility-sim): one batch every ``every_ticks`` ticks with every CDU and CRAH that
serves a simulated rack, and the plant.

Ids and ratings come from the facility spec's cooling topology (``twin.core.facility.cooling``: the same ids
ingest validates against); the readings from the simulator's own heat model (``domain.equipment``) driven by
the racks' power of the tick. Equipment serving only racks outside a ``--racks`` subset is not reported.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from twin.core.facility import inventory as inv_mod
from twin.core.facility.cooling import COOLANTS, expand_cooling_racks, resolved_cooling
from twin.facility_sim.domain import equipment as model
from twin.facility_sim.domain.model import Tick
from twin.telemetry.v1 import telemetry_pb2 as pb

NAN = math.nan


class EquipmentFeed:
    def __init__(self, layout, *, every_ticks: int = 1, source: str = "facility-sim") -> None:
        if every_ticks < 1:
            raise ValueError("every_ticks must be >= 1")
        self.layout = layout
        self.every_ticks = every_ticks
        self.source = source
        spec = layout.spec
        topo = resolved_cooling(spec)
        self.site_id = layout.site_id
        pos = {rid: i for i, rid in enumerate(layout.rack_ids)}
        n = len(layout.rack_ids)
        inventory = inv_mod.Inventory(spec)
        rack_type = {r.rack_id: r.rack_type for r in inventory.racks}
        rc = topo.rack_cooling
        self.rack_flow_lpm = np.array([rc[rack_type[rid]].flow_lpm if rack_type[rid] in rc else 0.0
                                       for rid in layout.rack_ids])
        self.rack_liquid_fraction = np.asarray(layout.arrays.rack_liquid_fraction, dtype=float)

        def groups(gs) -> tuple[np.ndarray, list[int]]:
            of_rack = np.full(n, -1, dtype=np.int64)
            for gi, g in enumerate(gs):
                for rid in expand_cooling_racks(g.racks, spec, g.id):
                    if rid in pos:
                        of_rack[pos[rid]] = gi
            return of_rack, sorted(set(of_rack[of_rack >= 0].tolist()))

        # CDU groups (secondary loops) with a simulated rack, and their CDUs
        self.rack_loop, loops = groups(topo.cdu_groups)
        loop_of = {m: gi for gi, g in enumerate(topo.cdu_groups) for m in g.members}
        cdus = [c for c in topo.cdus if loop_of.get(c.id, -1) in loops]
        self.cdu_ids = [c.id for c in cdus]
        self.cdu_loop = np.array([loop_of[c.id] for c in cdus], dtype=np.int64)
        self.cdu_capacity_w = np.array([c.capacity_kw * 1e3 for c in cdus])
        self.cdu_flow_lpm = np.array([c.flow_lpm for c in cdus])
        facility_c = spec.cooling.facility_supply_temp_c
        self.facility_supply_c = facility_c
        self.loop_supply_c = np.array([g.supply_temp_c if g.supply_temp_c is not None else facility_c +
                                       model.CDU_APPROACH_K for g in topo.cdu_groups])
        secondary = COOLANTS[topo.secondary_coolant]
        mean_c = facility_c + model.CDU_APPROACH_K + 5.0
        self.density, self.cp = secondary.density_at(mean_c), secondary.cp_at(mean_c)
        # CRAH groups with a simulated rack, and their CRAHs
        self.rack_air_group, air = groups(topo.crah_groups)
        air_of = {m: gi for gi, g in enumerate(topo.crah_groups) for m in g.members}
        crahs = [c for c in topo.crahs if air_of.get(c.id, -1) in air]
        self.crah_ids = [c.id for c in crahs]
        self.crah_group = np.array([air_of[c.id] for c in crahs], dtype=np.int64)
        self.crah_capacity_w = np.array([c.capacity_kw * 1e3 for c in crahs])
        self.crah_supply_c = np.array([c.supply_air_temp_c for c in crahs])
        self.n_air_groups = len(topo.crah_groups)
        # the plant
        plant = topo.plant
        self.plant_capacity_w = np.array([u.capacity_kw * 1e3 for u in plant])
        self.plant_fan_w = np.array([u.fan_kw * 1e3 for u in plant])
        self.plant_cop = np.array([u.cop if u.cop is not None else NAN for u in plant])
        self.plant_chiller = np.array([u.kind == "chiller" for u in plant], dtype=bool)
        self.dry_bulb_c = spec.cooling.design_dry_bulb_c
        self.wet_bulb_c = min(spec.cooling.design_wet_bulb_c, self.dry_bulb_c)
        self.batches = 0

    def due(self, tick_index: int) -> bool:
        return tick_index % self.every_ticks == 0

    def message(self, tick: Tick, sample_time: datetime, sequence: int) -> pb.RackTelemetryBatch:
        """The equipment batch of this tick (the racks' heat: their electrical input power)."""
        heat = np.asarray(tick.rack_input_w, dtype=float)
        msg = pb.RackTelemetryBatch(site_id=self.site_id, sequence=sequence, source=self.source)
        msg.sample_time.FromDatetime(sample_time)
        eq = msg.equipment
        if self.cdu_ids:
            c = model.cdu_readings(heat, self.rack_liquid_fraction, self.rack_flow_lpm, self.rack_loop, self.cdu_loop,
                                   self.cdu_capacity_w, self.cdu_flow_lpm, self.loop_supply_c, self.facility_supply_c,
                                   self.density, self.cp)
            for i, cid in enumerate(self.cdu_ids):
                eq.cdus.add(cdu_id=cid, primary_supply_temp_c=c.primary_supply_c[i],
                            primary_return_temp_c=c.primary_return_c[i], primary_flow_lpm=c.primary_flow_lpm[i],
                            secondary_supply_temp_c=c.secondary_supply_c[i],
                            secondary_return_temp_c=c.secondary_return_c[i],
                            secondary_flow_lpm=c.secondary_flow_lpm[i], differential_pressure_kpa=c.dp_kpa[i],
                            pump_speed_pct=c.pump_speed_pct[i], heat_removed_w=c.heat_w[i])
        if self.crah_ids:
            a = model.crah_readings(heat, self.rack_liquid_fraction, self.rack_air_group, self.crah_group,
                                    self.crah_capacity_w, self.crah_supply_c, self.n_air_groups)
            for i, cid in enumerate(self.crah_ids):
                eq.crahs.add(crah_id=cid, supply_air_temp_c=a.supply_c[i], return_air_temp_c=a.return_c[i],
                             fan_speed_pct=a.fan_speed_pct[i])
        fans, chillers = model.plant_power(float(heat.sum()), self.plant_capacity_w, self.plant_fan_w, self.plant_cop,
                                           self.plant_chiller)
        eq.plant.CopyFrom(pb.PlantSample(
            outdoor_temp_c=self.dry_bulb_c, wet_bulb_temp_c=self.wet_bulb_c,
            tower_power_w=fans if (~self.plant_chiller).any() else NAN,
            chiller_power_w=chillers if self.plant_chiller.any() else NAN))
        self.batches += 1
        return msg
