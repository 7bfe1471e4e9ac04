"""The power chain of the facility spec, explicit and declarative (issue 9 item 1, DESIGN §3, §8).

    utility feeds (cap MW, max ramp MW/min) + on-site sources (battery: MW, MWh; genset: MW, start
    delay, ramp) → transformers (kVA, no-load + load losses) → UPS (kW, losses vs load, redundancy
    groups N / N+1 / 2N) → PDUs (kW, phases) → racks (one PDU, or two: A/B feeds)

Every component lists its ``inputs`` (the ids upstream of it); a component with several healthy
inputs draws equally from each (parallel UPS modules on one bus, a dual-corded rack's A and B
cords). A UPS group is a bus: its inputs are its member UPS units, and PDUs name the group.

Conversion stages are data (``ConversionStage``), at node (PSU, DC-DC), rack (rectifier, power
shelf) and facility level: affine ``P_in = (P_out + units*c) / η``, an efficiency-vs-load curve
(points, linear between them), or a loss polynomial ``loss = R (a + b x + c x²)``, x = P_out / R
for R = units × rated_w (UPS, transformer).

Specs that only give counts (``transformers``, ``ups_units``, ``racks_per_pdu`` ...) get a
generated chain (``resolved_topology``); an explicit ``topology`` replaces it. Validation (run when
the spec loads) rejects a rack with no path to a utility feed, a component carrying more than its
rating at nameplate, and a dangling reference, and names the offending path.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # pragma: no cover
    from twin.core.facility.spec import FacilitySpec

# --- sourced defaults ----------------------------------------------------------------------------
#: DOE minimum efficiency of low-voltage dry-type distribution transformers at 35 % load
#: (10 CFR 431.196(a), 2016 standard; DESIGN §8): 300 kVA 99.02 %, 1,000 kVA 99.28 %. Sizes above
#: the table use the 1,000 kVA value (larger units are at least as efficient).
DOE_TRANSFORMER_EFFICIENCY_AT_35PCT = ((300.0, 0.9902), (1000.0, 0.9928))
#: DOE rates these transformers at 35 % load because that is near their peak-efficiency point, where
#: no-load loss = load loss (10 CFR 431 App. A; NEMA TP-1). So at 35 %: no-load = load loss =
#: half the total; load loss scales with (P / P_rated)².
DOE_TEST_LOAD_FRACTION = 0.35
#: Double-conversion UPS losses are no-load + proportional + square-law (Schneider Electric White
#: Paper 108, "Making Large UPS Systems More Efficient"; DESIGN §8 "a + bP + cP²"). Split of the
#: full-load loss between the three (assumption, stated: no-load and proportional dominate).
UPS_LOSS_SPLIT = (0.4, 0.4, 0.2)
#: Genset start: NFPA 110 "Type 10" emergency power systems carry load within 10 s of an outage.
GENSET_START_DELAY_S = 10.0
#: Genset ramp: ISO 8528-5 load acceptance in 3-4 steps within about a minute (assumption: full
#: rating per minute).
GENSET_RAMP_FRACTION_PER_MIN = 1.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConversionStage(_Strict):
    """One conversion stage (data, not code). ``units`` identical converters share the load equally."""

    name: str
    kind: Literal["affine", "curve", "loss_polynomial"]
    units: int = Field(1, ge=1)
    constant_w: float = Field(0.0, ge=0, description="affine: c per unit, W")
    efficiency: float = Field(1.0, gt=0, le=1, description="affine: η")
    rated_w: float | None = Field(None, gt=0, description="curve / loss_polynomial: output rating per unit, W")
    load_points: tuple[float, ...] = Field((), description="curve: load fractions (P_out / units*rated_w), rising")
    efficiency_points: tuple[float, ...] = Field((), description="curve: efficiency at each load point (0..1]")
    loss_coefficients: tuple[float, float, float] = Field((0.0, 0.0, 0.0), description="a, b, c (fractions of R)")

    @model_validator(mode="after")
    def _complete(self) -> ConversionStage:
        if self.kind in ("curve", "loss_polynomial") and self.rated_w is None:
            raise ValueError(f"stage {self.name!r}: kind {self.kind} needs rated_w")
        if self.kind == "curve":
            lp, ep = self.load_points, self.efficiency_points
            if len(lp) < 1 or len(lp) != len(ep):
                raise ValueError(f"stage {self.name!r}: load_points and efficiency_points need the same, non-zero length")
            if any(b <= a for a, b in zip(lp, lp[1:], strict=False)) or lp[0] <= 0:
                raise ValueError(f"stage {self.name!r}: load_points must be positive and rising")
            if any(not 0 < e <= 1 for e in ep):
                raise ValueError(f"stage {self.name!r}: efficiency_points must be in (0, 1]")
        if self.kind == "loss_polynomial" and any(c < 0 for c in self.loss_coefficients):
            raise ValueError(f"stage {self.name!r}: loss coefficients must be >= 0 (losses never negative)")
        return self

    def input_w(self, out_w: float) -> float:
        """Scalar input power for an output power (used by spec validation; the twin's vectorized
        version lives in twin.power.domain.conversion)."""
        if out_w <= 0:
            out_w = 0.0
        if self.kind == "affine":
            return (out_w + self.units * self.constant_w) / self.efficiency
        rated = self.units * float(self.rated_w or 1.0)
        x = out_w / rated
        if self.kind == "loss_polynomial":
            a, b, c = self.loss_coefficients
            return out_w + rated * (a + b * x + c * x * x)
        lp, ep = self.load_points, self.efficiency_points
        if x <= lp[0]:
            eff = ep[0]
        elif x >= lp[-1]:
            eff = ep[-1]
        else:
            i = next(k for k in range(1, len(lp)) if x <= lp[k])
            eff = ep[i - 1] + (ep[i] - ep[i - 1]) * (x - lp[i - 1]) / (lp[i] - lp[i - 1])
        return out_w / eff


#: 80 PLUS Titanium (230 V internal redundant): 90 / 94 / 96 / 91 % at 10 / 20 / 50 / 100 % load
#: (CLEAResult 80 PLUS program requirements; DESIGN §8).
TITANIUM_LOAD_POINTS = (0.1, 0.2, 0.5, 1.0)
TITANIUM_EFFICIENCY = (0.90, 0.94, 0.96, 0.91)


def titanium_psu(name: str, rated_w: float, units: int) -> ConversionStage:
    """A bank of 80 PLUS Titanium PSUs sharing the load."""
    return ConversionStage(name=name, kind="curve", units=units, rated_w=rated_w,
                           load_points=TITANIUM_LOAD_POINTS, efficiency_points=TITANIUM_EFFICIENCY)


class UtilityFeed(_Strict):
    id: str
    capacity_mw: float = Field(gt=0)
    max_ramp_mw_per_min: float | None = Field(None, gt=0, description="the grid operator's ramp limit; None = none")


class OnSiteSource(_Strict):
    id: str
    kind: Literal["genset", "battery", "solar"]
    capacity_mw: float = Field(gt=0)
    energy_mwh: float | None = Field(None, gt=0, description="battery energy")
    start_delay_s: float | None = Field(None, ge=0, description="genset: None = NFPA 110 Type 10 (10 s)")
    ramp_mw_per_min: float | None = Field(None, gt=0, description="genset: None = rating per minute")

    @model_validator(mode="after")
    def _battery_energy(self) -> OnSiteSource:
        if self.kind == "battery" and self.energy_mwh is None:
            raise ValueError(f"on_site.{self.id}: a battery needs energy_mwh")
        return self

    @property
    def effective_start_delay_s(self) -> float:
        if self.start_delay_s is not None:
            return self.start_delay_s
        return GENSET_START_DELAY_S if self.kind == "genset" else 0.0

    @property
    def effective_ramp_mw_per_min(self) -> float:
        if self.ramp_mw_per_min is not None:
            return self.ramp_mw_per_min
        # batteries answer in under a second (inverter-limited): treat as unlimited ramp
        return self.capacity_mw * GENSET_RAMP_FRACTION_PER_MIN if self.kind == "genset" else math.inf


class Transformer(_Strict):
    id: str
    rating_kva: float = Field(gt=0)
    no_load_loss_w: float = Field(ge=0)
    load_loss_w: float = Field(ge=0, description="load (copper) loss at rated load; scales with (P/P_rated)²")
    inputs: list[str] = Field(min_length=1, description="utility feed ids")


class Ups(_Strict):
    id: str
    rating_kw: float = Field(gt=0)
    efficiency: ConversionStage = Field(description="losses vs load (loss_polynomial or curve)")
    inputs: list[str] = Field(min_length=1, description="transformer ids")


class UpsGroup(_Strict):
    """A UPS bus: its members share the load equally. N: no spare; N+1: carries nameplate with one
    member failed; 2N: one side of a 2N pair (racks fed from it need a path that avoids it)."""

    id: str
    redundancy: Literal["N", "N+1", "2N"]
    members: list[str] = Field(min_length=1)


class Pdu(_Strict):
    id: str
    rating_kw: float = Field(gt=0)
    phases: int = Field(3, ge=1, le=3)
    inputs: list[str] = Field(min_length=1, description="UPS, UPS group or transformer ids")
    racks: list[str] = Field(min_length=1, description="rack ids, or 'row:<row id>' for a whole row")


class SiteLoad(_Strict):
    """A fixed facility load (CDUs, CRAHs, lighting) on a component, or on the site when input is None."""

    id: str
    power_kw: float = Field(ge=0)
    count: int = Field(1, ge=1)
    input: str | None = None


class PowerTopology(_Strict):
    transformers: list[Transformer] = Field(min_length=1)
    ups: list[Ups] = []
    ups_groups: list[UpsGroup] = []
    pdus: list[Pdu] = Field(min_length=1)
    facility_stages: list[ConversionStage] = Field([], description="applied to the site total, innermost first")
    site_loads: list[SiteLoad] = []


class PowerChain(_Strict):
    utility_feeds: list[UtilityFeed] = Field(min_length=1)
    on_site: list[OnSiteSource] = []
    # counts (generate the chain when `topology` is absent)
    transformer_mva: float | None = Field(None, gt=0)
    transformers: int | None = Field(None, ge=1)
    ups_kw: float | None = Field(None, gt=0)
    ups_units: int | None = Field(None, ge=1)
    ups_efficiency: float = Field(0.96, gt=0, le=1, description="at full load")
    racks_per_pdu: int = Field(1, ge=1)
    pdu_kw: float | None = Field(None, gt=0)
    topology: PowerTopology | None = None

    @model_validator(mode="before")
    @classmethod
    def _pdu_kw_from_topology(cls, data: object) -> object:
        # readers of the count form (ingest's plausibility limits) still find a PDU rating
        if isinstance(data, dict) and data.get("pdu_kw") is None and isinstance(data.get("topology"), dict):
            ratings = [p.get("rating_kw") for p in data["topology"].get("pdus") or [] if isinstance(p, dict)]
            ratings = [r for r in ratings if isinstance(r, int | float)]
            if ratings:
                data = {**data, "pdu_kw": max(ratings)}
        return data

    @model_validator(mode="after")
    def _counts_or_topology(self) -> PowerChain:
        if self.topology is None:
            missing = [k for k in ("transformer_mva", "transformers", "ups_kw", "ups_units", "pdu_kw")
                       if getattr(self, k) is None]
            if missing:
                raise ValueError(f"power: give either topology or the counts ({', '.join(missing)} missing)")
        return self


# --- generation from counts ------------------------------------------------------------------------
def doe_transformer(tid: str, rating_kva: float, inputs: list[str]) -> Transformer:
    """A transformer at the DOE minimum efficiency for its size (power factor 1)."""
    eff = DOE_TRANSFORMER_EFFICIENCY_AT_35PCT[0][1]
    for kva, e in DOE_TRANSFORMER_EFFICIENCY_AT_35PCT:
        if rating_kva >= kva:
            eff = e
    p35_w = DOE_TEST_LOAD_FRACTION * rating_kva * 1000.0
    total_w = p35_w * (1.0 / eff - 1.0)
    return Transformer(id=tid, rating_kva=rating_kva, no_load_loss_w=total_w / 2,
                       load_loss_w=total_w / 2 / DOE_TEST_LOAD_FRACTION**2, inputs=inputs)


def ups_loss_stage(name: str, rating_kw: float, full_load_efficiency: float) -> ConversionStage:
    """a + b x + c x² losses whose sum at full load matches the full-load efficiency (UPS_LOSS_SPLIT)."""
    full_loss = 1.0 / full_load_efficiency - 1.0
    a, b, c = (s * full_loss for s in UPS_LOSS_SPLIT)
    return ConversionStage(name=name, kind="loss_polynomial", rated_w=rating_kw * 1000.0, loss_coefficients=(a, b, c))


def rack_ids_by_row(spec: FacilitySpec) -> dict[str, list[str]]:
    """Rack ids per row in inventory order (`<row>-<NNNN>`, see twin.core.facility.inventory)."""
    return {row.id: [f"{row.id}-{i:04d}" for i in range(row.count)] for hall in spec.halls for row in hall.rows}


def generated_topology(spec: FacilitySpec) -> PowerTopology:
    """The explicit chain implied by a count-only spec: transformer t on feed t mod F; UPS unit u
    dual-fed from transformers u and u+1 (mod T: rectifier and bypass inputs on different
    transformers, so one transformer or feed can fail; assumption for generated chains); all UPS
    units on one bus (N+1 when there are 2+ units); consecutive racks, racks_per_pdu at a time, on one
    PDU each, the PDUs on the bus."""
    pc = spec.power
    assert pc.transformers and pc.transformer_mva and pc.ups_units and pc.ups_kw and pc.pdu_kw
    feeds = [f.id for f in pc.utility_feeds]
    txs = [doe_transformer(f"tx-{t + 1}", pc.transformer_mva * 1000.0, [feeds[t % len(feeds)]])
           for t in range(pc.transformers)]
    ups = [Ups(id=f"ups-{u + 1}", rating_kw=pc.ups_kw,
               inputs=list(dict.fromkeys([txs[u % len(txs)].id, txs[(u + 1) % len(txs)].id])),
               efficiency=ups_loss_stage(f"ups-{u + 1}", pc.ups_kw, pc.ups_efficiency)) for u in range(pc.ups_units)]
    group = UpsGroup(id="ups-bus", redundancy="N+1" if len(ups) > 1 else "N", members=[u.id for u in ups])
    racks = [r for ids in rack_ids_by_row(spec).values() for r in ids]
    phases = {row.id: spec.rack_types[row.rack_type].pdu_phases for hall in spec.halls for row in hall.rows}
    pdus = []
    for p, start in enumerate(range(0, len(racks), pc.racks_per_pdu)):
        chunk = racks[start:start + pc.racks_per_pdu]
        pdus.append(Pdu(id=f"pdu-{p + 1}", rating_kw=pc.pdu_kw, phases=phases[chunk[0].rsplit("-", 1)[0]],
                        inputs=[group.id], racks=chunk))
    return PowerTopology(transformers=txs, ups=ups, ups_groups=[group], pdus=pdus)


def resolved_topology(spec: FacilitySpec) -> PowerTopology:
    return spec.power.topology if spec.power.topology is not None else generated_topology(spec)


# --- checks ----------------------------------------------------------------------------------------
def expand_rack_selectors(selectors: Iterable[str], by_row: dict[str, list[str]], known: set[str],
                          where: str) -> list[str]:
    out: list[str] = []
    for s in selectors:
        if s.startswith("row:"):
            row = s[4:]
            if row not in by_row:
                raise ValueError(f"{where}: unknown row {row!r}")
            out += by_row[row]
        elif s in known:
            out.append(s)
        else:
            raise ValueError(f"{where}: unknown rack {s!r}")
    return out


def rack_nameplate_w(spec: FacilitySpec, rack_type: str) -> float:
    """Rack input power at nameplate: every node at its rating plus the rack's own loads, through
    the rack's conversion stages."""
    rt = spec.rack_types[rack_type]
    nt = spec.node_types[rt.node_type]
    p = rt.nodes * nt.max_w + rt.other_loads_w
    for stage in rt.conversion:
        p = stage.input_w(p)
    return p


def check_power_chain(spec: FacilitySpec) -> None:
    """Raise ValueError naming the offending path: dangling references, racks without a path to a
    utility feed, components above their rating at nameplate (all racks at their rated power, every
    component healthy, loads shared equally between a child's inputs)."""
    topo = resolved_topology(spec)
    where = "power.topology" if spec.power.topology is not None else "power (generated chain)"
    feeds = {f.id for f in spec.power.utility_feeds}
    on_site = {s.id for s in spec.power.on_site}
    tx = {t.id: t for t in topo.transformers}
    ups = {u.id: u for u in topo.ups}
    groups = {g.id: g for g in topo.ups_groups}
    pdus = {p.id: p for p in topo.pdus}
    ids: list[str] = [*feeds, *on_site, *tx, *ups, *groups, *pdus, *(s.id for s in topo.site_loads)]
    dup = sorted(i for i, n in Counter(ids).items() if n > 1)   # list.count per id: quadratic (site-100k: ~0.2 s)
    if dup:
        raise ValueError(f"{where}: component ids must be unique across the chain, repeated: {', '.join(dup)}")

    def need(kind: str, cid: str, ref: str, allowed: dict[str, object] | set[str], what: str) -> None:
        if ref not in allowed:
            raise ValueError(f"{where}.{kind}.{cid}: dangling reference {ref!r} (not a {what})")

    for t in topo.transformers:
        for ref in t.inputs:
            need("transformers", t.id, ref, feeds, "utility feed")
    for u in topo.ups:
        for ref in u.inputs:
            need("ups", u.id, ref, tx, "transformer")
    for g in topo.ups_groups:
        for ref in g.members:
            need("ups_groups", g.id, ref, ups, "UPS")
    upstream_of_pdu = {**ups, **groups, **tx}
    for p in topo.pdus:
        for ref in p.inputs:
            need("pdus", p.id, ref, upstream_of_pdu, "UPS, UPS group or transformer")
    for s in topo.site_loads:
        if s.input is not None:
            need("site_loads", s.id, s.input, {**upstream_of_pdu, **pdus}, "component")

    by_row = rack_ids_by_row(spec)
    row_type = {row.id: row.rack_type for hall in spec.halls for row in hall.rows}
    known = {r for rs in by_row.values() for r in rs}
    rack_pdus: dict[str, list[str]] = {}
    for p in topo.pdus:
        for r in expand_rack_selectors(p.racks, by_row, known, f"{where}.pdus.{p.id}.racks"):
            rack_pdus.setdefault(r, []).append(p.id)
    for r, ps in rack_pdus.items():
        if len(ps) > 2 or len(set(ps)) != len(ps):
            raise ValueError(f"{where}: rack {r} is on PDUs {ps}; a rack takes one PDU or two distinct (A/B)")
    for row, rs in by_row.items():
        for r in rs:
            if r not in rack_pdus:
                raise ValueError(f"{where}: rack {r} (row {row}) has no power path: no PDU lists it")

    # nameplate loads, tier by tier (racks -> PDUs -> groups -> UPS -> transformers -> feeds)
    out_w: dict[str, float] = {}
    for r, ps in rack_pdus.items():
        w = rack_nameplate_w(spec, row_type[r.rsplit("-", 1)[0]])
        for p in ps:
            out_w[p] = out_w.get(p, 0.0) + w / len(ps)
    for s in topo.site_loads:
        if s.input is not None:
            out_w[s.input] = out_w.get(s.input, 0.0) + s.power_kw * 1000.0 * s.count
    example_rack: dict[str, str] = {}
    for r, ps in rack_pdus.items():
        for p in ps:
            example_rack.setdefault(p, r)

    def path_of(cid: str) -> str:
        return f"rack {example_rack.get(cid, '?')} -> {cid}" if cid in pdus else cid

    def over(kind: str, cid: str, load_w: float, rating_w: float, extra: str = "") -> None:
        if load_w > rating_w * (1 + 1e-9):
            raise ValueError(f"{where}.{kind}.{cid}: carries {load_w / 1000:.1f} kW at nameplate{extra}, above its "
                             f"rating {rating_w / 1000:.1f} kW (path {path_of(cid)})")

    def push(cid: str, in_w: float, inputs: Sequence[str]) -> None:
        for ref in inputs:
            out_w[ref] = out_w.get(ref, 0.0) + in_w / len(inputs)

    for p in topo.pdus:
        load = out_w.get(p.id, 0.0)
        over("pdus", p.id, load, p.rating_kw * 1000.0)
        push(p.id, load, p.inputs)
    for g in topo.ups_groups:
        load = out_w.get(g.id, 0.0)
        members = [ups[m] for m in g.members]
        n = len(members)
        if g.redundancy == "N+1":
            if n < 2:
                raise ValueError(f"{where}.ups_groups.{g.id}: N+1 needs at least 2 members")
            spare = min(m.rating_kw for m in members) * 1000.0
            over("ups_groups", g.id, load, sum(m.rating_kw for m in members) * 1000.0 - spare,
                 " with one member failed (N+1)")
        push(g.id, load, g.members)
    for u in topo.ups:
        load = out_w.get(u.id, 0.0)
        over("ups", u.id, load, u.rating_kw * 1000.0)
        push(u.id, u.efficiency.input_w(load), u.inputs)
    for t in topo.transformers:
        load = out_w.get(t.id, 0.0)
        over("transformers", t.id, load, t.rating_kva * 1000.0)
        x = load / (t.rating_kva * 1000.0)
        push(t.id, load + t.no_load_loss_w + t.load_loss_w * x * x, t.inputs)
    for f in spec.power.utility_feeds:
        over("utility_feeds", f.id, out_w.get(f.id, 0.0), f.capacity_mw * 1e6)
    # 2N sides: every rack fed through a 2N group also needs a path around it
    for g in topo.ups_groups:
        if g.redundancy != "2N":
            continue
        for r, ps in rack_pdus.items():
            through = [p for p in ps if g.id in pdus[p].inputs]
            if through and len(through) == len(ps):
                raise ValueError(f"{where}.ups_groups.{g.id}: 2N, but rack {r} has no path avoiding it "
                                 f"(PDUs {', '.join(ps)})")
