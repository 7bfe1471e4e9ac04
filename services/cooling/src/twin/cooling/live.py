"""The live cooling twin of one site, as plain numpy over the domain (no Kafka, SQL or protobuf here).

Inputs, each applied as it arrives:
- rack IT power (``apply_power``, from power.state.v1 rack states): all of it becomes heat. A rack's
  value is replaced only by a newer one (by state time), so a replay never moves it backwards.
  Racks never heard from count at 0 W (they are not evaluated as busy).
- GPU telemetry of one rack (``apply_telemetry``): measured board power (used by the tick instead of
  the rack's share), memory activity, and GPU / HBM temperatures, which calibrate that rack's GPUs
  online (``thermal.calibrate_step``: one Kalman bank per rack, a few dozen GPUs per call, so the
  cost follows the telemetry a process receives and never needs the whole site at once). The
  calibrated parameters replace the spec defaults in every later tick. The rack's measured coolant
  flow, supply and return give ṁ·c_p·ΔT, which is checked against the model's liquid heat.
- equipment events (``apply_event``): failures, repairs, setpoints, ambient -> ``Conditions``
  (``EventRejected`` for the DLQ: unknown ids, absurd values, events older than the entity's last).
- equipment telemetry (``apply_equipment``): CDU secondary supply / flow / heat / dp, CRAH return air, and
  the plant's outdoor dry bulb, wet bulb, tower and chiller power. Measured beats assumed: each tick runs
  on ``conditions_at(t)``, the event conditions with every reading younger than ``measured_max_age_s``
  laid over them (a loop's supply and flow from its CDUs, the ambient, the plant's fan and compressor
  power); an older reading expires and the value falls back to the event's or the spec's. The source of
  each value is in ``Evaluation.sources`` (and the published loop and plant states).

``evaluate(time_s)`` runs one ``cooling_tick`` with all of it: every GPU's thermal state advanced
from the previous evaluation, temperatures, time-to-throttle under the present conditions, the
network (loops, CRAHs, plant power for the power twin) and the alerts.

Two stages (adapters/stream.py): a stage-1 instance sees only the telemetry of its racks; it calibrates
them with the racks' IT power and coolant from ``set_rack_view`` (the site owner's last evaluation or
the stored rack states) and reports what it fitted (``apply_telemetry(..., fitted=[...])``). The
stage-2 instance (the site's) takes those as ``apply_rack_gpus``: the same measured values and the
calibrated parameters, without calibrating again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from twin.cooling.domain.alerts import (
    SENSOR_ABS_TOL_W,
    SENSOR_REL_TOL,
    SUSPECT_SENSOR,
    WARNING,
    CoolingAlert,
    suspect_heat_sensors,
)
from twin.cooling.domain.events import EquipmentEvent, apply_event
from twin.cooling.domain.network import Conditions, design_conditions, evaluate, keep_measured
from twin.cooling.domain.thermal import (
    Calibration,
    CoolantPath,
    GpuThermal,
    ThermalState,
    calibrate_step,
    calibrated,
    split_power,
    start_calibration,
    steady_state,
    time_to_throttle,
)
from twin.cooling.domain.tick import CoolingTick, cooling_tick, gpu_power
from twin.cooling.domain.whatif import HORIZON_S, ThrottleForecast, coolant_paths
from twin.cooling.site import CoolingSite


@dataclass(frozen=True)
class GpuReading:
    """One rack's telemetry batch, decoded (GPU ids global; NaN = no value)."""

    rack: int
    time_s: float
    gpu: np.ndarray
    power_w: np.ndarray
    gpu_temp_c: np.ndarray
    hbm_temp_c: np.ndarray
    dram_active: np.ndarray
    coolant_flow_lpm: float = math.nan  # the rack's measured secondary flow (NaN: not reported)
    coolant_supply_c: float = math.nan
    coolant_return_c: float = math.nan


@dataclass(frozen=True)
class RackGpus:
    """One rack's telemetry batch after stage 1: its measured values (``reading``, temperatures not needed) and
    the calibrated parameters of the rack's GPUs that have enough samples (``gpus`` global, may be empty)."""

    reading: GpuReading
    gpus: np.ndarray
    params: GpuThermal | None = None


@dataclass(frozen=True)
class EquipmentReading:
    """One equipment batch, decoded: per CDU / CRAH (``net.cdu_ids`` / ``crah_ids`` order), NaN = not reported."""

    time_s: float
    cdu_heat_w: np.ndarray
    cdu_flow_lpm: np.ndarray  # secondary
    cdu_supply_c: np.ndarray
    cdu_return_c: np.ndarray
    cdu_dp_kpa: np.ndarray
    crah_return_air_c: np.ndarray
    # the plant (NaN: not reported)
    dry_bulb_c: float = math.nan
    wet_bulb_c: float = math.nan
    tower_power_w: float = math.nan
    chiller_power_w: float = math.nan


#: A measured condition older than this expires (back to the event's or the spec's value): equipment is
#: polled every 10-60 s (Redfish / BMS polling, DESIGN §8), so 300 s is five missed polls of the slowest
#: (assumption, stated; setting ``measured_max_age_s``).
MEASURED_MAX_AGE_S = 300.0
SPEC, EVENT, MEASURED = "spec", "event", "measured"


@dataclass(frozen=True)
class Sources:
    """Where each condition of an evaluation comes from."""

    dry_bulb: str = SPEC  # spec | event | measured
    wet_bulb: str = SPEC
    facility_setpoint: str = SPEC  # spec | event
    loop_supply_measured: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    loop_flow_measured: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    fan_power_measured: bool = False
    compressor_power_measured: bool = False


@dataclass
class Evaluation:
    time_s: float
    tick: CoolingTick
    cond: Conditions  # what the tick ran on: the event conditions with fresh measurements laid over them
    sources: Sources = field(default_factory=Sources)
    sensor_alerts: list[CoolingAlert] = field(default_factory=list)
    sensor_values: dict[str, tuple[float, float]] = field(default_factory=dict)  # rack -> (measured, model) W


class CoolingLive:
    def __init__(
        self,
        site: CoolingSite,
        *,
        horizon_s: float = HORIZON_S,
        sensor_rel_tol: float = SENSOR_REL_TOL,
        sensor_abs_tol_w: float = SENSOR_ABS_TOL_W,
        min_calibration_samples: int = 5,
        calibrate_interval_s: float = 0.0,
        measured_max_age_s: float = MEASURED_MAX_AGE_S,
    ) -> None:
        self.site = site
        net = site.network
        self.net = net
        self.horizon_s = horizon_s
        self.sensor_rel_tol, self.sensor_abs_tol_w = sensor_rel_tol, sensor_abs_tol_w
        self.min_calibration_samples = min_calibration_samples
        self.calibrate_interval_s = calibrate_interval_s
        self.measured_max_age_s = measured_max_age_s
        n_racks, n_gpus = net.n_racks, len(site.gpus.gpu_rack)
        self.rack_it_w = np.full(n_racks, np.nan)
        self.rack_time = np.full(n_racks, -np.inf)
        self.cond: Conditions = design_conditions(net)
        self.event_time: dict[str, float] = {}
        self.board_w = np.full(n_gpus, np.nan)
        self.mem_act = np.zeros(n_gpus)
        self.gpu_time = np.full(n_gpus, -np.inf)
        self.params = GpuThermal(
            **{f.name: np.array(getattr(site.gpu, f.name), dtype=float) for f in fields(site.gpu)}
        )
        self.calibrated_gpus = np.zeros(n_gpus, dtype=bool)
        self.params_time = np.full(n_racks, -np.inf)  # sample time of each rack's latest calibrated parameters
        self.cal: dict[int, Calibration] = {}
        self.cal_time: dict[int, float] = {}
        # stage 1: the racks' IT power and coolant its calibration uses (None: this instance's own)
        self.view_it_w: np.ndarray | None = None
        self.view_coolant_c: np.ndarray | None = None
        self.rack_flow = np.full(n_racks, np.nan)
        self.rack_supply = np.full(n_racks, np.nan)
        self.rack_return = np.full(n_racks, np.nan)
        n_cdu, n_crah = len(net.cdu_ids), len(net.crah_ids)
        self.cdu_meas = {k: np.full(n_cdu, np.nan) for k in ("heat", "flow", "supply", "return", "dp")}
        self.cdu_meas_time = np.full(n_cdu, -np.inf)
        self.crah_return_air = np.full(n_crah, np.nan)
        # plant readings, each with its own time (a sample may carry only some of them)
        self.plant_meas = {k: math.nan for k in ("dry_bulb", "wet_bulb", "tower", "chiller")}
        self.plant_meas_time = dict.fromkeys(self.plant_meas, -math.inf)
        self.thermal: ThermalState | None = None
        self.last: Evaluation | None = None
        gr = site.gpus.gpu_rack
        order = np.argsort(gr, kind="stable")
        counts = np.bincount(gr, minlength=n_racks)
        self._rack_gpus = np.split(order, np.cumsum(counts)[:-1])

    # -- inputs -----------------------------------------------------------------------------------
    def apply_power(self, updates: list[tuple[int, float, float]]) -> int:
        """(rack, state time, IT W) each; returns how many moved a rack forward."""
        n = 0
        for rack, t, w in updates:
            if t > self.rack_time[rack] or (t == self.rack_time[rack] and w != self.rack_it_w[rack]):
                self.rack_it_w[rack], self.rack_time[rack] = w, t
                n += 1
        return n

    def apply_event(self, ev: EquipmentEvent) -> Conditions:
        """Raises EventRejected (field, reason) for a bad event; the conditions after it otherwise."""
        self.cond = apply_event(self.net, self.cond, ev, self.event_time.get(ev.entity_id))
        self.event_time[ev.entity_id] = ev.time_s
        return self.cond

    def restore(
        self, racks: list[tuple[int, float, float]], cond: Conditions | None, event_time: dict[str, float]
    ) -> int:
        n = self.apply_power(racks)
        if cond is not None:
            self.cond = cond
        for k, t in event_time.items():
            self.event_time[k] = max(t, self.event_time.get(k, -math.inf))
        return n

    def gpus_of(self, rack: int) -> np.ndarray:
        return self._rack_gpus[rack]

    def set_rack_view(self, it_w: np.ndarray | None, coolant_c: np.ndarray | None) -> None:
        """Stage 1: every rack's IT power (W) and GPU coolant (°C, NaN: unknown) for the calibration, from
        the stage that holds the site; None: this instance's own (one live twin doing both)."""
        self.view_it_w, self.view_coolant_c = it_w, coolant_c

    def _apply_measured(self, r: GpuReading) -> np.ndarray:
        """A reading's rack sensors, measured power and memory activity; the mask of its GPUs it moved forward."""
        if np.isfinite(r.coolant_flow_lpm):
            self.rack_flow[r.rack], self.rack_supply[r.rack] = r.coolant_flow_lpm, r.coolant_supply_c
            self.rack_return[r.rack] = r.coolant_return_c
        newer = r.time_s >= self.gpu_time[r.gpu]
        g = r.gpu[newer]
        if len(g):
            p, act = r.power_w[newer], r.dram_active[newer]
            ok = np.isfinite(p) & (p >= 0)
            self.board_w[g[ok]] = p[ok]
            a_ok = np.isfinite(act)
            self.mem_act[g[a_ok]] = np.clip(act[a_ok], 0.0, 1.0)
            self.gpu_time[g] = r.time_s
        return newer

    def apply_rack_gpus(self, records: list[RackGpus]) -> int:
        """Stage 2: what stage 1 made of racks' telemetry (measured values, calibrated parameters; a rack's
        parameters are replaced only by newer ones). Returns the number of GPUs whose parameters changed."""
        n = 0
        for rec in sorted(records, key=lambda x: x.reading.time_s):
            r = rec.reading
            self._apply_measured(r)
            if rec.params is None or not len(rec.gpus) or r.time_s < self.params_time[r.rack]:
                continue
            for f in fields(self.params):
                getattr(self.params, f.name)[rec.gpus] = np.asarray(getattr(rec.params, f.name))
            self.calibrated_gpus[rec.gpus] = True
            self.params_time[r.rack] = r.time_s
            n += len(rec.gpus)
        return n

    def apply_telemetry(self, readings: list[GpuReading], fitted: list[RackGpus] | None = None) -> int:
        """Measured power and activity for the next ticks; calibrate each rack's GPUs (per rack, in order).
        Returns the number of GPU temperature samples used. ``fitted``: one ``RackGpus`` per reading is
        appended (the reading and the GPUs it calibrated to ready, with their parameters), for stage 2."""
        used = 0
        none = np.zeros(0, dtype=np.int64)
        for r in sorted(readings, key=lambda x: x.time_s):
            sel, params = none, None
            newer = self._apply_measured(r)
            if newer.any() and np.isfinite(r.gpu_temp_c[newer]).any():
                n, sel, params = self._calibrate(r, newer)
                used += n
            if fitted is not None:
                fitted.append(RackGpus(r, sel, params))
        return used

    def _calibrate(self, r: GpuReading, newer: np.ndarray) -> tuple[int, np.ndarray, GpuThermal | None]:
        """One calibration step over the reading's rack: this sample's values where the batch has them, NaN
        elsewhere. (temperature samples used, GPUs whose calibrated model is now used, their parameters)."""
        gpus = self.site.gpus
        g = r.gpu[newer]
        p, gt, ht = r.power_w[newer], r.gpu_temp_c[newer], r.hbm_temp_c[newer]
        ok = np.isfinite(p) & (p >= 0)
        idx = self.gpus_of(r.rack)
        pos = np.searchsorted(idx, g)
        n = len(idx)
        board = np.full(n, np.nan)
        temp = np.full(n, np.nan)
        htemp = np.full(n, np.nan)
        board[pos] = np.where(ok, p, np.nan)
        temp[pos], htemp[pos] = gt, ht
        it_w = self.rack_it_w if self.view_it_w is None else self.view_it_w
        fill, _ = gpu_power(gpus, np.nan_to_num(it_w), None)
        board = np.where(np.isfinite(board), board, fill[idx])
        core, hbm = split_power(board, self.mem_act[idx], gpus.hbm_peak_TBps[idx])
        coolant = self._coolant_of(idx)
        none = np.zeros(0, dtype=np.int64)
        cal = self.cal.get(r.rack)
        if cal is not None and r.time_s - self.cal_time[r.rack] < self.calibrate_interval_s:
            return 0, none, None  # calibrated recently: this sample only updates the measured power
        if cal is None:
            prior = self.site.gpu.take(idx)
            self.cal[r.rack] = start_calibration(prior, core, hbm, coolant)
            self.cal_time[r.rack] = r.time_s
            cal = self.cal[r.rack]
        dt = max(r.time_s - self.cal_time[r.rack], 0.0)
        cal = calibrate_step(cal, dt, core, hbm, coolant, temp, htemp)
        self.cal[r.rack], self.cal_time[r.rack] = cal, r.time_s
        used = int(np.isfinite(temp).sum())
        ready = cal.samples >= self.min_calibration_samples
        if not ready.any():
            return used, none, None
        fitted, _ = calibrated(cal)
        sel = idx[ready]
        params = fitted.take(np.flatnonzero(ready))
        for f in fields(self.params):
            getattr(self.params, f.name)[sel] = np.asarray(getattr(params, f.name))
        self.calibrated_gpus[sel] = True
        self.params_time[r.rack] = max(self.params_time[r.rack], r.time_s)
        return used, sel, params

    def apply_equipment(self, readings: list[EquipmentReading]) -> int:
        """The latest measured CDU / CRAH values (a value is replaced only by a newer reading); returns the
        number of CDUs whose readings moved forward."""
        n = 0
        for r in sorted(readings, key=lambda x: x.time_s):
            has = np.isfinite(
                np.c_[r.cdu_heat_w, r.cdu_flow_lpm, r.cdu_supply_c, r.cdu_return_c, r.cdu_dp_kpa]
            ).any(1)
            newer = has & (r.time_s >= self.cdu_meas_time)
            for key, v in (
                ("heat", r.cdu_heat_w),
                ("flow", r.cdu_flow_lpm),
                ("supply", r.cdu_supply_c),
                ("return", r.cdu_return_c),
                ("dp", r.cdu_dp_kpa),
            ):
                self.cdu_meas[key][newer] = v[newer]
            self.cdu_meas_time[newer] = r.time_s
            n += int(newer.sum())
            ok = np.isfinite(r.crah_return_air_c)
            self.crah_return_air[ok] = r.crah_return_air_c[ok]
            for key, v in (
                ("dry_bulb", r.dry_bulb_c),
                ("wet_bulb", r.wet_bulb_c),
                ("tower", r.tower_power_w),
                ("chiller", r.chiller_power_w),
            ):
                if math.isfinite(v) and r.time_s >= self.plant_meas_time[key]:
                    self.plant_meas[key], self.plant_meas_time[key] = float(v), r.time_s
        return n

    def conditions_at(self, time_s: float) -> tuple[Conditions, Sources]:
        """The event conditions with the readings no older than ``measured_max_age_s`` at ``time_s`` laid
        over them, and where each value comes from. A loop's measured supply is the flow-weighted mean of its
        healthy CDUs' fresh secondary supply readings (any of them); its measured flow the sum of their fresh
        flow readings, only when every healthy CDU of the loop reports one (a partial sum is not the loop's).
        A CDU reading older than the last event on its loop or the site (failure, repair, setpoint), and plant
        power older than the last plant-unit or site event, do not count (they describe the plant before it)."""
        net, cond, age = self.net, self.cond, self.measured_max_age_s
        n_loops = len(net.loop_ids)

        def fresh(t: float) -> bool:
            return time_s - t <= age

        # a reading taken before the last event on its loop (a CDU failed or was repaired, a pump slowed) or before
        # a facility setpoint change describes the loop as it was, not as it is: it does not count
        ev = self.event_time
        site_t = ev.get(net.site_id, -math.inf)
        cdu_ev = (
            np.array([ev.get(c, -math.inf) for c in net.cdu_ids])
            if ev
            else np.full(len(net.cdu_ids), -np.inf)
        )
        loop_ev = np.full(n_loops, site_t)
        if len(net.cdu_ids):
            np.maximum.at(loop_ev, np.maximum(net.cdu_loop, 0), np.where(net.cdu_loop >= 0, cdu_ev, -np.inf))
        after_ev = self.cdu_meas_time >= loop_ev[np.maximum(net.cdu_loop, 0)]
        with np.errstate(invalid="ignore"):  # never-read CDUs sit at -inf: their age is inf or nan, never fresh
            ok = cond.cdu_up & (time_s - self.cdu_meas_time <= age) & (net.cdu_loop >= 0) & after_ev
        loop = np.where(ok, net.cdu_loop, 0)
        supply, flow = self.cdu_meas["supply"], self.cdu_meas["flow"]
        s_ok = ok & np.isfinite(supply)
        weight = np.where(np.isfinite(flow) & (flow > 0), flow, net.cdu_flow_lpm)
        w_sum = np.bincount(loop[s_ok], weights=weight[s_ok], minlength=n_loops)
        t_sum = np.bincount(loop[s_ok], weights=(weight * supply)[s_ok], minlength=n_loops)
        with np.errstate(divide="ignore", invalid="ignore"):
            loop_supply = np.where(w_sum > 0, t_sum / np.where(w_sum > 0, w_sum, 1.0), np.nan)
        up = cond.cdu_up & (net.cdu_loop >= 0)
        f_ok = ok & np.isfinite(flow) & (flow >= 0)
        n_up = np.bincount(net.cdu_loop[up], minlength=n_loops)
        n_rep = np.bincount(loop[f_ok], minlength=n_loops)
        f_sum = np.bincount(loop[f_ok], weights=flow[f_ok], minlength=n_loops)
        loop_flow = np.where((n_up > 0) & (n_rep == n_up), f_sum, np.nan)
        m, mt = self.plant_meas, self.plant_meas_time

        def ambient(key: str, event_value: float, design: float) -> tuple[float, str]:
            if fresh(mt[key]):
                return m[key], MEASURED
            return event_value, SPEC if event_value == design else EVENT

        dry, dry_src = ambient("dry_bulb", cond.dry_bulb_c, net.design_dry_bulb_c)
        wet, wet_src = ambient("wet_bulb", cond.wet_bulb_c, net.design_wet_bulb_c)
        if wet > dry:  # one fresh, the other not: a wet bulb never exceeds its dry bulb
            wet = dry
        # plant power read before the last plant-unit event or setpoint change no longer describes the plant
        plant_ev = max([ev.get(u, -math.inf) for u in net.plant_ids] + [site_t])
        fan = m["tower"] if fresh(mt["tower"]) and mt["tower"] >= plant_ev else math.nan
        comp = m["chiller"] if fresh(mt["chiller"]) and mt["chiller"] >= plant_ev else math.nan
        eff = cond.with_(
            dry_bulb_c=dry,
            wet_bulb_c=wet,
            loop_supply_meas_c=loop_supply,
            loop_flow_meas_lpm=loop_flow,
            plant_fan_meas_w=fan,
            plant_compressor_meas_w=comp,
        )
        src = Sources(
            dry_bulb=dry_src,
            wet_bulb=wet_src,
            facility_setpoint=SPEC if cond.facility_supply_c == net.facility_supply_c else EVENT,
            loop_supply_measured=np.isfinite(loop_supply),
            loop_flow_measured=np.isfinite(loop_flow),
            fan_power_measured=math.isfinite(fan),
            compressor_power_measured=math.isfinite(comp),
        )
        return eff, src

    def present_conditions(self) -> Conditions:
        """The event conditions in force with the readings fresh at the last evaluation's time: the base of a
        what-if (before any evaluation, no reading counts)."""
        return self.conditions_at(-math.inf if self.last is None else self.last.time_s)[0]

    def _coolant_of(self, idx: np.ndarray) -> np.ndarray:
        if self.view_coolant_c is not None:
            c = self.view_coolant_c[self.site.gpus.gpu_rack[idx]]
            return np.where(np.isfinite(c), c, self.cond.facility_supply_c)
        if self.last is None:
            return np.full(len(idx), self.cond.facility_supply_c)
        c = self.last.tick.state.rack_coolant_c[self.site.gpus.gpu_rack[idx]]
        return np.where(np.isfinite(c), c, self.cond.facility_supply_c)

    # -- evaluation -------------------------------------------------------------------------------
    @property
    def time_s(self) -> float | None:
        return None if self.last is None else self.last.time_s

    def current_rack_it_w(self) -> np.ndarray:
        return np.nan_to_num(self.rack_it_w)

    def evaluate(self, time_s: float) -> Evaluation:
        prev = self.last
        dt = 0.0 if prev is None else max(time_s - prev.time_s, 0.0)
        board = np.where(self.gpu_time > -np.inf, self.board_w, np.nan)
        cond, sources = self.conditions_at(time_s)
        tick = cooling_tick(
            self.net,
            self.site.gpus,
            self.params,
            self.thermal,
            cond,
            self.current_rack_it_w(),
            dt,
            board_w=board,
            mem_activity=self.mem_act,
            horizon_s=self.horizon_s,
        )
        self.thermal = tick.thermal
        ev = Evaluation(time_s=time_s, tick=tick, cond=cond, sources=sources)
        self._sensor_checks(ev)
        self.last = ev
        return ev

    def _sensor_checks(self, ev: Evaluation) -> None:
        self._cdu_checks(ev)
        st = ev.tick.state
        model = st.rack_liquid_w
        has = np.isfinite(self.rack_flow) & (self.net.rack_liquid_fraction > 0)
        if not has.any():
            return
        bad, q = suspect_heat_sensors(
            self.net.secondary_coolant,
            np.where(has, model, np.nan),
            self.rack_flow,
            self.rack_supply,
            self.rack_return,
            self.sensor_rel_tol,
            self.sensor_abs_tol_w,
        )
        for r in np.flatnonzero(has):
            rid = self.net.rack_ids[r]
            ev.sensor_values[rid] = (float(q[r]), float(model[r]))
        for r in np.flatnonzero(bad):
            rid = self.net.rack_ids[r]
            ev.sensor_alerts.append(
                CoolingAlert(
                    SUSPECT_SENSOR,
                    WARNING,
                    rid,
                    f"rack {rid} coolant sensors give {q[r] / 1e3:.1f} kW (flow {self.rack_flow[r]:.0f} L/min, "
                    f"{self.rack_supply[r]:.1f} -> {self.rack_return[r]:.1f} °C); the model's liquid heat from its IT "
                    f"power is {model[r] / 1e3:.1f} kW (tolerance {self.sensor_rel_tol:.0%} + "
                    f"{self.sensor_abs_tol_w / 1e3:.1f} kW)",
                    value=float(q[r]),
                )
            )

    def _cdu_checks(self, ev: Evaluation) -> None:
        """A CDU's reported heat against ṁ·c_p·ΔT of its own flow and temperatures, else against the heat its
        racks make (the model), beyond the tolerance (domain ``sensor_alerts``)."""
        m = self.cdu_meas
        if not np.isfinite(m["heat"]).any():
            return
        st = ev.tick.state
        bad, q = suspect_heat_sensors(
            self.net.secondary_coolant,
            m["heat"],
            m["flow"],
            m["supply"],
            m["return"],
            self.sensor_rel_tol,
            self.sensor_abs_tol_w,
        )
        model = st.cdu_heat_w
        for i in np.flatnonzero(np.isfinite(m["heat"])):
            cid = self.net.cdu_ids[i]
            rep = float(m["heat"][i])
            if bad[i]:
                other, what = float(q[i]), "its flow and temperatures give"
            else:
                other, what = float(model[i]), "the IT power of its racks gives"
                tol = self.sensor_rel_tol * max(abs(other), abs(rep)) + self.sensor_abs_tol_w
                if not abs(rep - other) > tol:
                    continue
            ev.sensor_values[cid] = (rep, other)
            ev.sensor_alerts.append(
                CoolingAlert(
                    SUSPECT_SENSOR,
                    WARNING,
                    cid,
                    f"CDU {cid} reports {rep / 1e3:.1f} kW removed; {what} {other / 1e3:.1f} kW (tolerance "
                    f"{self.sensor_rel_tol:.0%} + {self.sensor_abs_tol_w / 1e3:.1f} kW)",
                    value=rep,
                )
            )

    # -- what-ifs ---------------------------------------------------------------------------------
    def what_if(
        self, cond_after: Conditions, horizon_s: float, before: Conditions | None = None
    ) -> ThrottleForecast:
        """Time-to-throttle of every GPU with its present power held, from its present thermal state, after the
        change (numpy reads of the live arrays only: safe in a worker thread). Racks that have no flow now
        (their coolant undefined) start from the coolant their GPUs last saw, as in the tick. The present
        runs on the measured conditions of the last evaluation; the change keeps a measurement only where it
        leaves that measurement's inputs alone (``network.keep_measured``)."""
        gpus, net = self.site.gpus, self.net
        rack_w = self.current_rack_it_w()
        board, _ = gpu_power(gpus, rack_w, np.where(self.gpu_time > -np.inf, self.board_w, np.nan))
        core, hbm = split_power(board, self.mem_act, gpus.hbm_peak_TBps)
        now = self.present_conditions() if before is None else before
        cond_after = keep_measured(net, now, cond_after)
        before = evaluate(net, rack_w, now)
        after = evaluate(net, rack_w, cond_after)
        state = self.thermal
        if state is None:
            coolant = before.rack_coolant_c[gpus.gpu_rack]
            state = steady_state(
                core, hbm, np.where(np.isfinite(coolant), coolant, self.cond.facility_supply_c)
            )
        p0 = coolant_paths(net, gpus, before, after)
        now = np.where(np.isfinite(p0.now_c), p0.now_c, state.coolant_c)
        path = CoolantPath(
            now_c=now,
            final_c=np.where(np.isfinite(p0.final_c), p0.final_c, now),
            tau_s=p0.tau_s,
            ramp_k_per_s=p0.ramp_k_per_s,
        )
        t, which = time_to_throttle(
            self.params, state, core, hbm, path, gpus.slowdown_c, gpus.hbm_max_c, horizon_s
        )
        rack_t = np.full(net.n_racks, np.inf)
        np.minimum.at(rack_t, gpus.gpu_rack, t)
        affected = np.bincount(gpus.gpu_rack, weights=np.isfinite(t), minlength=net.n_racks).astype(np.int64)
        return ThrottleForecast(
            before=before,
            after=after,
            gpu_time_s=t,
            gpu_which=which,
            rack_time_s=rack_t,
            rack_gpus_affected=affected,
            horizon_s=horizon_s,
            gpu_rack=gpus.gpu_rack,
        )
