"""The live twin's two stages, as plain numpy over the domain (no Kafka, SQL or protobuf here).

Stage 1, keyed by rack (``RackStage``): a telemetry batch of one rack -> that rack's power. Measured
values win: a GPU's DCGM power where it has a sample, the rack's PDU reading where there is one. The
model fills the rest (GPUs without a power sample, racks without a PDU reading) from the GPUs'
activity; a GPU with no sample at all keeps its last activity seen by this process (idle until
then). Every result says what was measured and what was modelled, and whether the PDU reading
disagrees with the model beyond the sensor tolerance (a suspect sensor). Telemetry carries no CPU load,
so the model's rack input assumes busy CPUs (the upper end, what headroom must allow for) and a PDU
reading is suspect only outside [model with idle CPUs x (1 - tolerance), model with busy CPUs x
(1 + tolerance)].

Stage 2, keyed by site (``SiteStage``): the latest input power of every rack of the site -> the
chain (PDUs, UPS groups, UPS, transformers, feeds, site) and its alerts. Racks that never reported
count at their modelled idle power. A rack's value is replaced only by a newer one (by sample time),
so a replayed or late record never moves the total backwards. Because each rack contributes an
absolute value (not a delta), the total is the same however many processes share stage 1.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from twin.core.alert_state import AlertKey, transitions
from twin.power.domain.alerts import DEFAULT_THRESHOLD, RAMP_WINDOW_S, Alert, power_alerts
from twin.power.domain.gpu import gpu_power
from twin.power.domain.network import KINDS, ChainState, evaluate
from twin.power.domain.node import rack_power
from twin.power.site import SiteModel

#: value sources (numbers match twin.power.v1.ValueSource; the codec maps them)
MEASURED, MODELLED, MIXED = 1, 2, 3
#: default relative disagreement between a PDU reading and the model that flags a suspect sensor
DEFAULT_SENSOR_TOLERANCE = 0.15


@dataclass(frozen=True)
class RackReading:
    """One rack's telemetry batch, decoded (GPU ids are global; NaN = no value in the batch)."""

    site_id: str
    rack: int
    time_s: float
    gpu: np.ndarray                  # global GPU ids with a sample
    power_w: np.ndarray
    tensor_active: np.ndarray
    sm_active: np.ndarray
    dram_active: np.ndarray
    pdu_w: float                     # NaN = the PDU was not read


@dataclass(frozen=True)
class RackResult:
    rack: int
    rack_id: str
    site_id: str
    time_s: float
    input_w: float                   # used: the PDU reading when there is one, else the model
    modelled_input_w: float
    output_w: float                  # delivered to nodes and rack loads (input - rack stage losses)
    loss_w: float                    # rack stage losses (modelled)
    gpu_w: float
    node_dc_w: float
    node_loss_w: float
    measured_gpus: int
    modelled_gpus: int
    mean_sm_clock_mhz: float
    power_capped_gpus: int
    source: int                      # MEASURED | MODELLED | MIXED
    suspect: bool                    # PDU reading outside the model's band beyond the tolerance
    modelled_min_input_w: float = 0.0  # the model with idle CPUs (the band's lower end)


class RackStage:
    """Stage 1 state of one process: last activity per GPU, GPU power used per GPU."""

    def __init__(self, model: SiteModel, *, sensor_tolerance: float = DEFAULT_SENSOR_TOLERANCE) -> None:
        self.model = model
        self.sensor_tolerance = sensor_tolerance
        inv = model.inventory
        n = inv.n_gpus
        self.tensor = np.zeros(n)
        self.sm = np.zeros(n)
        self.dram = np.zeros(n)
        self.limit_w = np.asarray(model.gpu.default_limit_w, dtype=np.float64).copy()
        idle = gpu_power(model.gpu, tensor_active=self.tensor, sm_active=self.sm, dram_active=self.dram,
                         power_limit_w=self.limit_w)
        self.gpu_w = idle.power_w.copy()
        self.clock_mhz = idle.sm_clock_mhz.copy()
        self.seen = np.zeros(n, dtype=bool)      # GPUs this process has had any sample of
        rack_first_node = np.array([r.first_node for r in inv.racks], dtype=np.int64)
        self.rack_first_gpu = inv.node_first_gpu[rack_first_node]
        self.rack_n_gpus = np.bincount(inv.node_rack[inv.gpu_node], minlength=len(inv.racks))

    def gpus_of(self, racks: np.ndarray) -> np.ndarray:
        """Global GPU ids of the racks, rack by rack (each rack's GPUs are contiguous)."""
        racks = np.asarray(racks, dtype=np.int64)
        n = self.rack_n_gpus[racks]
        if not n.sum():
            return np.zeros(0, dtype=np.int64)
        starts = np.repeat(self.rack_first_gpu[racks] - np.r_[0, np.cumsum(n)[:-1]], n)
        return starts + np.arange(int(n.sum()))

    def apply(self, readings: list[RackReading]) -> list[RackResult]:
        """The racks' power after these readings (the latest reading per rack wins within a batch)."""
        latest: dict[int, RackReading] = {}
        for r in readings:
            if r.rack not in latest or r.time_s >= latest[r.rack].time_s:
                latest[r.rack] = r
        if not latest:
            return []
        chosen = [latest[k] for k in sorted(latest)]
        racks = np.array([r.rack for r in chosen], dtype=np.int64)
        idx = self.gpus_of(racks)
        gpu = np.concatenate([r.gpu for r in chosen])
        for name, dst in (("tensor_active", self.tensor), ("sm_active", self.sm), ("dram_active", self.dram)):
            values = np.concatenate([getattr(r, name) for r in chosen])
            ok = ~np.isnan(values)
            dst[gpu[ok]] = np.minimum(np.maximum(values[ok], 0.0), 1.0)
        self.seen[gpu] = True
        power = np.concatenate([r.power_w for r in chosen])
        ok = power >= 0                                        # False for NaN
        measured = np.full(len(self.gpu_w), np.nan)
        measured[gpu[ok]] = power[ok]
        g = gpu_power(self.model.gpu.take(idx), tensor_active=self.tensor[idx], sm_active=self.sm[idx],
                      dram_active=self.dram[idx], power_limit_w=self.limit_w[idx])
        meas = measured[idx]
        gpu_modelled = np.isnan(meas)
        self.gpu_w[idx] = np.where(gpu_modelled, g.power_w, meas)
        self.clock_mhz[idx] = g.sm_clock_mhz
        rp = rack_power(self.model.layout, self.gpu_w)
        n_per = self.rack_n_gpus[racks]
        starts = np.r_[0, np.cumsum(n_per)[:-1]]

        def per_rack(values: np.ndarray) -> np.ndarray:
            return np.add.reduceat(values, starts) if len(values) else np.zeros(len(racks))

        gpu_sum = per_rack(self.gpu_w[idx])
        n_modelled = per_rack(gpu_modelled.astype(np.float64)).astype(np.int64)
        clock = per_rack(g.sm_clock_mhz) / np.maximum(n_per, 1)
        capped = per_rack(g.power_capped.astype(np.float64)).astype(np.int64)
        node_rack = self.model.layout.node_rack
        node_dc = np.bincount(node_rack, weights=rp.node_dc_w, minlength=rp.rack_dc_w.size)[racks]
        node_loss = np.bincount(node_rack, weights=rp.node_loss_w, minlength=rp.rack_dc_w.size)[racks]
        model_in = rp.rack_input_w[racks]
        loss = rp.rack_loss_w[racks]
        pdu = np.array([r.pdu_w for r in chosen], dtype=np.float64)
        pdu = np.where(np.isfinite(pdu) & (pdu >= 0), pdu, np.nan)
        has_pdu = ~np.isnan(pdu)
        used = np.where(has_pdu, pdu, model_in)
        source = np.where(has_pdu, MEASURED, np.where(n_modelled == n_per, MODELLED, MIXED))
        if has_pdu.any():
            model_lo = rack_power(self.model.layout, self.gpu_w, 0.0).rack_input_w[racks]
        else:
            model_lo = model_in
        model_lo_w = model_lo * (1.0 - self.sensor_tolerance)
        with np.errstate(invalid="ignore"):
            suspect = has_pdu & ((pdu < model_lo_w) | (pdu > model_in * (1.0 + self.sensor_tolerance)))
        out_w = np.maximum(used - loss, 0.0)
        ids = self.model.network.rack_ids
        return [RackResult(rack=k, rack_id=ids[k], site_id=rd.site_id, time_s=rd.time_s, input_w=u, modelled_input_w=mi,
                           output_w=o, loss_w=lo, gpu_w=gw, node_dc_w=nd, node_loss_w=nl, measured_gpus=npr - nm,
                           modelled_gpus=nm, mean_sm_clock_mhz=c, power_capped_gpus=cp, source=src, suspect=sus,
                           modelled_min_input_w=mlo)
                for k, rd, u, mi, o, lo, gw, nd, nl, npr, nm, c, cp, src, sus, mlo in zip(
                    racks.tolist(), chosen, used.tolist(), model_in.tolist(), out_w.tolist(), loss.tolist(),
                    gpu_sum.tolist(), node_dc.tolist(), node_loss.tolist(), n_per.tolist(), n_modelled.tolist(),
                    clock.tolist(), capped.tolist(), source.tolist(), suspect.tolist(), model_lo.tolist(),
                    strict=True)]

    def modelled_rack_input_w(self) -> np.ndarray:
        """Every rack's input power from the GPU power this process holds (idle where never seen)."""
        return rack_power(self.model.layout, self.gpu_w).rack_input_w

    def gpu_load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(tensor, sm, dram activity, power limit) of every GPU as this process knows them."""
        return self.tensor.copy(), self.sm.copy(), self.dram.copy(), self.limit_w.copy()


@dataclass(frozen=True)
class RackUpdate:
    """A rack's contribution to stage 2 (what stage 1 published)."""

    rack: int
    time_s: float
    input_w: float
    source: int


@dataclass(frozen=True)
class SiteResult:
    time_s: float
    chain: ChainState
    rack_w: np.ndarray               # used per rack (idle model for racks never heard from)
    comp_source: np.ndarray          # MEASURED | MODELLED | MIXED per component
    site_source: int
    ramp_w_per_s: float
    new_alerts: list[Alert]          # alerts that were not active at the previous evaluation
    reported_racks: int
    cooling_w: float = 0.0
    cooling_source: int = 0
    #: alerts whose condition ended at this evaluation (one per entity and kind, the last alert raised)
    cleared_alerts: list[Alert] = field(default_factory=list)
    #: the last minute's average import minus the minute's before, W (None until two minutes were seen)
    minute_ramp_w: float | None = None


@dataclass
class SiteStage:
    """Stage 2 state of one site: the latest input power of every rack, and the alerts in force."""

    model: SiteModel
    threshold: float = DEFAULT_THRESHOLD
    rack_w: np.ndarray = field(init=False)
    rack_time: np.ndarray = field(init=False)
    rack_source: np.ndarray = field(init=False)
    idle_rack_w: np.ndarray = field(init=False)
    prev_site_w: float | None = None
    prev_time_s: float | None = None
    #: (time_s, site_w) of the ticks of the last two RAMP_WINDOW_S (the ramp alert compares their averages), and the
    #: first tick's time (no ramp is judged before two whole windows were seen)
    site_history: deque[tuple[float, float]] = field(default_factory=deque)
    first_tick_s: float | None = None
    minute_ramp_w: float | None = None   # the last tick's (kept through same-tick re-evaluations)
    active: dict[AlertKey, Alert] = field(default_factory=dict)   # (entity, kind, severity) -> alert in force
    dirty: bool = False              # restored values (or a new cooling power) not yet evaluated
    cooling_w: float = 0.0           # cooling power on the site bus (cooling twin's plant), W
    cooling_source: int = 0          # 0 = no cooling state; else MEASURED / MODELLED / MIXED

    def __post_init__(self) -> None:
        n = self.model.network.n_racks
        self.rack_w = np.full(n, np.nan)
        self.rack_time = np.full(n, -np.inf)
        self.rack_source = np.full(n, MODELLED)
        g = self.model.gpu
        zeros = np.zeros(len(self.model.layout.gpu_node))
        idle = gpu_power(g, tensor_active=zeros, sm_active=zeros, dram_active=zeros)
        self.idle_rack_w = rack_power(self.model.layout, idle.power_w).rack_input_w

    def restore(self, updates: list[RackUpdate]) -> int:
        """Load stored rack values (a process taking the site over); returns how many were newer. The
        next ``apply`` evaluates the site even if its own updates bring nothing newer."""
        n = self._merge(updates)
        self.dirty = self.dirty or n > 0
        return n

    def _merge(self, updates: list[RackUpdate]) -> int:
        changed = 0
        for u in updates:
            if u.time_s > self.rack_time[u.rack] or (u.time_s == self.rack_time[u.rack]
                                                     and u.input_w != self.rack_w[u.rack]):
                self.rack_w[u.rack] = u.input_w
                self.rack_time[u.rack] = u.time_s
                self.rack_source[u.rack] = u.source
                changed += 1
        return changed

    def set_cooling(self, cooling_w: float, source: int) -> None:
        """The cooling twin's latest plant power; a change is evaluated at the next ``apply``."""
        if (cooling_w, source) != (self.cooling_w, self.cooling_source):
            self.cooling_w, self.cooling_source = cooling_w, source
            self.dirty = True

    def _minute_change(self, time_s: float, site_w: float) -> float | None:
        """The average site import over the RAMP_WINDOW_S ending at `time_s` (this tick included) minus the average
        over the window before it; None until two whole windows have been seen (from the first tick)."""
        history = self.site_history
        history.append((time_s, site_w))
        if self.first_tick_s is None:
            self.first_tick_s = time_s
        while history and history[0][0] <= time_s - 2 * RAMP_WINDOW_S:
            history.popleft()
        if time_s - self.first_tick_s < 2 * RAMP_WINDOW_S:
            return None
        last = [w for t, w in history if t > time_s - RAMP_WINDOW_S]
        before = [w for t, w in history if t <= time_s - RAMP_WINDOW_S]
        if not before:   # a gap of a minute or more in the ticks: nothing to compare with
            return None
        return sum(last) / len(last) - sum(before) / len(before)

    def current_rack_w(self) -> np.ndarray:
        return np.where(np.isnan(self.rack_w), self.idle_rack_w, self.rack_w)

    def apply(self, updates: list[RackUpdate]) -> SiteResult | None:
        """None when no update was newer than what the stage holds (a replay)."""
        if not self._merge(updates) and not self.dirty:
            return None
        self.dirty = False
        net = self.model.network
        rack_w = self.current_rack_w()
        chain = evaluate(net, rack_w, site_extra_w=self.cooling_w)
        time_s = float(np.max(self.rack_time))
        if not np.isfinite(time_s):      # only a cooling change so far: no rack time yet
            return None
        ramp, interval = 0.0, None   # the state's ramp: since the previous tick
        if self.prev_time_s is not None and time_s > self.prev_time_s:
            interval = time_s - self.prev_time_s
            ramp = (chain.site_w - self.prev_site_w) / interval
        minute_change = self._minute_change(time_s, chain.site_w) if interval is not None else None
        if interval is not None:
            self.minute_ramp_w = minute_change
        alerts = power_alerts(net, chain, threshold=self.threshold, minute_change_w=minute_change)
        current = {(a.entity_id, a.kind, a.severity): a for a in alerts}
        if interval is None:
            # the ramp alert is about one step: it stays in force while the ramp lasts, and a re-evaluation of
            # the same tick (more racks, no interval) cannot judge it, so it keeps what the tick's ramp said
            current.update({k: a for k, a in self.active.items() if k[1] == "ramp_too_fast"})
        new, cleared = transitions(self.active, current)
        self.active = current
        if interval is not None:
            self.prev_site_w, self.prev_time_s = chain.site_w, time_s
        elif self.prev_time_s is None:
            self.prev_site_w, self.prev_time_s = chain.site_w, time_s
            self._minute_change(time_s, chain.site_w)   # the first tick: held, nothing to judge
        else:
            self.prev_site_w = chain.site_w  # same tick, more racks: the tick's latest total
            if self.site_history and self.site_history[-1][0] == time_s:
                self.site_history[-1] = (time_s, chain.site_w)
        measured = np.where(np.isnan(self.rack_w), False, self.rack_source == MEASURED)
        modelled = np.isnan(self.rack_w) | (self.rack_source == MODELLED)
        comp_source = _component_sources(self.model, measured, modelled)
        site_source = MEASURED if measured.all() else MODELLED if modelled.all() else MIXED
        return SiteResult(time_s=time_s, chain=chain, rack_w=rack_w, comp_source=comp_source, site_source=site_source,
                          ramp_w_per_s=float(ramp), new_alerts=new, cleared_alerts=cleared,
                          reported_racks=int((~np.isnan(self.rack_w)).sum()), cooling_w=self.cooling_w,
                          cooling_source=self.cooling_source, minute_ramp_w=self.minute_ramp_w)


def _component_sources(model: SiteModel, measured: np.ndarray, modelled: np.ndarray) -> np.ndarray:
    """MEASURED when every rack below a component was measured, MODELLED when every one was modelled."""
    net = model.network
    n = net.n_comp
    all_meas = np.ones(n, dtype=bool)
    all_mod = np.ones(n, dtype=bool)
    np.logical_and.at(all_meas, net.rack_edge_comp, measured[net.rack_edge_rack])
    np.logical_and.at(all_mod, net.rack_edge_comp, modelled[net.rack_edge_rack])
    for kind in range(len(KINDS)):
        e = np.flatnonzero(net.comp_kind[net.edge_child] == kind)
        np.logical_and.at(all_meas, net.edge_parent[e], all_meas[net.edge_child[e]])
        np.logical_and.at(all_mod, net.edge_parent[e], all_mod[net.edge_child[e]])
    return np.where(all_meas, MEASURED, np.where(all_mod, MODELLED, MIXED))


def suspect_alert(r: RackResult, tolerance: float) -> Alert:
    """The suspect-sensor alert of a rack whose PDU reading disagrees with the model (same wording as
    twin.power.domain.alerts.power_alerts)."""
    return Alert(r.rack_id, "rack", "suspect_sensor", "warning", r.input_w, r.modelled_input_w,
                 f"rack {r.rack_id} PDU reads {r.input_w / 1e3:.1f} kW, the model expects "
                 f"{r.modelled_min_input_w / 1e3:.1f}-{r.modelled_input_w / 1e3:.1f} kW (idle to busy CPUs, "
                 f"±{tolerance:.0%})")
