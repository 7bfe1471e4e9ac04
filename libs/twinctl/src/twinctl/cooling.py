"""`twinctl cooling`: the cooling twin's CoolingService from the terminal, as readable tables.

    twinctl cooling state [--scope rack|cdu|loop|crah|air_group|plant] [--ids A,B]    latest states
    twinctl cooling whatif-failure [--cdus A,B] [--crahs A,B] [--plant-units A,B] [--pump CDU=0.5 ...]
                                   [--rack-flow RACK=0.3 ...] [--horizon-s 3600]
    twinctl cooling whatif-setpoint [--facility-supply-c 40] [--supply-air-c 27] [--dry-bulb-c 42]
                                    [--wet-bulb-c 26] [--horizon-s 3600]
    twinctl cooling sweep --dry-bulb-c 20:45:5 [--wet-bulb-c 24] [--plot out.png]   time-to-throttle vs a setting
    twinctl cooling history a-0003 [--minutes 60] [--plot out.png]     stored states of one rack / CDU / loop / plant

A what-if answers per rack the time-to-throttle and the GPUs affected, whether the redundant equipment
carries the load, and the plant's power and PUE (cooling part) before and after. Nothing is published.

Target: --target HOST:PORT, else env TWINCTL_COOLING_TARGET, else 127.0.0.1:50055. --token / TWINCTL_TOKEN,
--tls-ca [--tls-cert --tls-key] and --json as for `twinctl fabric`.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable

import grpc
from google.protobuf.json_format import MessageToJson

from twin.cooling.v1 import cooling_pb2 as pb
from twin.cooling.v1 import cooling_pb2_grpc as pb_grpc
from twinctl import series
from twinctl.errors import run_against_twin
from twinctl.plot import Series, plot
from twinctl.progress import Progress

SWEEP_SETTINGS = {"dry_bulb_c": "dry_bulb_temp_c", "wet_bulb_c": "wet_bulb_temp_c",
                  "facility_supply_c": "facility_supply_temp_c", "supply_air_c": "supply_air_temp_c"}
MAX_SWEEP_POINTS = 200

DEFAULT_COOLING_TARGET = "127.0.0.1:50055"
_SCOPES = {k.removeprefix("COOLING_SCOPE_").lower(): v for k, v in pb.CoolingScope.items() if v}



def pue_text(msg, field: str) -> str:
    """A PUE field (proto3 `optional`, absent when there is no IT load to divide by) for a table."""
    return f"{getattr(msg, field):.3f}" if msg.HasField(field) else "n/a (no IT load)"

def _ids(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _fraction(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    try:
        if not sep or not key.strip():
            raise ValueError
        return key.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not ID=FRACTION: {text!r} (e.g. cdu-a-1=0.5)") from None


def _scope(text: str) -> int:
    if text not in _SCOPES:
        raise argparse.ArgumentTypeError(f"unknown scope {text!r}; one of {', '.join(_SCOPES)}")
    return _SCOPES[text]


def add_parser(sub) -> None:
    p = sub.add_parser("cooling", help="CoolingService (cooling twin)")
    p.add_argument("--target", default=None,
                   help=f"host:port (env TWINCTL_COOLING_TARGET, default {DEFAULT_COOLING_TARGET})")
    p.add_argument("--timeout", type=float, default=30.0, help="RPC deadline in seconds")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--token", default=None, help="bearer token (env TWINCTL_TOKEN)")
    p.add_argument("--tls-ca", default=None, help="PEM CA of the server certificate: use TLS (env TWINCTL_TLS_CA)")
    p.add_argument("--tls-cert", default=None, help="PEM client certificate (mutual TLS)")
    p.add_argument("--tls-key", default=None, help="PEM client key (mutual TLS)")
    cmds = p.add_subparsers(dest="cmd", required=True)
    st = cmds.add_parser("state", help="latest cooling state: plant, loops, CDUs, CRAHs, racks")
    st.add_argument("--scope", type=_scope, default=0, help=f"one of {', '.join(_SCOPES)} (default: every scope)")
    st.add_argument("--ids", type=_ids, default=[], help="comma-separated entity ids")
    f = cmds.add_parser("whatif-failure", help="equipment fails: time-to-throttle per rack, redundancy, plant power")
    f.add_argument("--cdus", type=_ids, default=[], help="CDUs lost")
    f.add_argument("--crahs", type=_ids, default=[], help="CRAHs lost")
    f.add_argument("--plant-units", type=_ids, default=[], help="cooling towers / dry coolers / chillers lost")
    f.add_argument("--pump", type=_fraction, action="append", default=[], help="CDU=FRACTION of rated flow left")
    f.add_argument("--rack-flow", type=_fraction, action="append", default=[], help="RACK=FRACTION of design flow")
    f.add_argument("--horizon-s", type=float, default=0.0, help="forecast horizon (0: the server's, 3600 s)")
    s = cmds.add_parser("whatif-setpoint", help="setpoint or weather change: time-to-throttle, plant power, PUE")
    s.add_argument("--facility-supply-c", type=float, default=None, help="facility water supply setpoint")
    s.add_argument("--supply-air-c", type=float, default=None, help="every CRAH's supply air")
    s.add_argument("--dry-bulb-c", type=float, default=None, help="outdoor dry bulb")
    s.add_argument("--wet-bulb-c", type=float, default=None, help="outdoor wet bulb")
    s.add_argument("--horizon-s", type=float, default=0.0, help="forecast horizon (0: the server's, 3600 s)")
    sw = cmds.add_parser("sweep", help="a what-if per value of one setting: time to throttle, GPUs, plant power")
    g = sw.add_mutually_exclusive_group(required=True)
    for flag, what in (("dry-bulb-c", "outdoor dry bulb"), ("wet-bulb-c", "outdoor wet bulb"),
                       ("facility-supply-c", "facility water supply setpoint"), ("supply-air-c", "CRAH supply air")):
        g.add_argument(f"--{flag}", dest=f"sweep_{flag.replace('-', '_')}", type=value_range, metavar="FROM:TO:STEP",
                       help=f"sweep the {what}, °C")
    for flag in ("dry-bulb-c", "wet-bulb-c", "facility-supply-c", "supply-air-c"):
        sw.add_argument(f"--fixed-{flag}", type=float, default=None, help=f"hold {flag} at this value meanwhile")
    sw.add_argument("--horizon-s", type=float, default=0.0, help="forecast horizon (0: the server's, 3600 s)")
    sw.add_argument("--plot", metavar="OUT.png", default=None, help="also draw the sweep into a PNG file")
    h = cmds.add_parser("history", help="stored cooling states of one entity over time (table, --plot PNG)")
    series.add_history_args(h, "rack, CDU, loop, CRAH, air group or site id")


def _kw(w: float) -> str:
    return f"{w / 1e3:9.1f}" if math.isfinite(w) else f"{'-':>9}"


def _c(t: float) -> str:
    return f"{t:6.1f}" if math.isfinite(t) else f"{'-':>6}"


def _ttt(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.0f} s" if s < 600 else f"{s / 60:.0f} min"


def render_state(resp: pb.GetStateResponse) -> str:
    if not resp.states:
        return "no cooling state yet (the twin has not received power states)"
    out = []
    by = {}
    for s in resp.states:
        by.setdefault(s.WhichOneof("detail"), []).append(s)
    for s in by.get("plant", []):
        p = s.plant
        out.append(f"plant {s.entity_id} at {s.state_time.ToDatetime().isoformat(timespec='seconds')}Z: "
                   f"cooling {p.cooling_power_w / 1e3:.1f} kW for {p.heat_load_w / 1e6:.3f} MW of heat "
                   f"(capacity {p.capacity_w / 1e6:.2f} MW), PUE cooling part "
                   f"{pue_text(p, 'pue_cooling')}, facility supply "
                   f"{p.facility_supply_temp_c:.1f} °C (setpoint {p.facility_supply_setpoint_c:.1f}), "
                   f"ambient {p.dry_bulb_temp_c:.1f} / {p.wet_bulb_temp_c:.1f} °C wet bulb")
    if by.get("loop"):
        out.append(f"{'loop':<12} {'redund.':<7} {'heat kW':>9} {'cap kW':>9} {'if 1 fails':>10} {'flow':>7} "
                   f"{'demand':>7} {'sup °C':>6} {'ret °C':>6} carries  survives-one-more")
        for s in by["loop"]:
            d = s.loop
            out.append(f"{s.entity_id:<12} {pb.Redundancy.Name(d.redundancy).removeprefix('REDUNDANCY_'):<7} "
                       f"{_kw(d.heat_w)} {_kw(d.capacity_w)} {_kw(d.capacity_if_one_fails_w):>10} "
                       f"{d.flow_lpm:7.0f} {d.flow_demand_lpm:7.0f} {_c(d.supply_temp_c)} {_c(d.return_temp_c)} "
                       f"{'yes' if d.carries else 'NO':<8} {'yes' if d.survives_one_more else 'no'}")
    if by.get("cdu"):
        out.append(f"{'CDU':<12} {'loop':<10} {'up':<4} {'heat kW':>9} {'load':>6} {'flow':>7} {'pump kW':>9}")
        for s in by["cdu"]:
            d = s.cdu
            out.append(f"{s.entity_id:<12} {d.loop_id:<10} {'yes' if d.up else 'DOWN':<4} {_kw(d.heat_removed_w)} "
                       f"{d.load_fraction:6.0%} {d.flow_lpm:7.0f} {_kw(d.pump_power_w)}")
    if by.get("air_group"):
        out.append(f"{'air group':<12} {'heat kW':>9} {'cap kW':>9} {'inlet +K':>8} carries")
        for s in by["air_group"]:
            d = s.air_group
            out.append(f"{s.entity_id:<12} {_kw(d.heat_w)} {_kw(d.capacity_w)} {d.inlet_rise_k:8.1f} "
                       f"{'yes' if d.carries else 'NO'}")
    if by.get("crah"):
        out.append(f"{'CRAH':<12} {'group':<10} {'up':<4} {'heat kW':>9} {'load':>6} {'fan kW':>9}")
        for s in by["crah"]:
            d = s.crah
            out.append(f"{s.entity_id:<12} {d.air_group_id:<10} {'yes' if d.up else 'DOWN':<4} "
                       f"{_kw(d.heat_removed_w)} {d.load_fraction:6.0%} {_kw(d.fan_power_w)}")
    if by.get("rack"):
        out.append(f"{'rack':<12} {'IT kW':>9} {'liquid kW':>9} {'air kW':>9} {'flow':>7} {'cool °C':>7} "
                   f"{'GPU °C':>6} {'HBM °C':>6} {'throttle in':>11} {'GPUs':>5}")
        for s in by["rack"]:
            d = s.rack
            ttt = d.time_to_throttle_s if d.HasField("time_to_throttle_s") else None
            out.append(f"{s.entity_id:<12} {_kw(d.it_power_w)} {_kw(d.liquid_heat_w)} {_kw(d.air_heat_w)} "
                       f"{d.coolant_flow_lpm:7.0f} {_c(d.coolant_temp_c):>7} {_c(d.max_gpu_temp_c)} "
                       f"{_c(d.max_hbm_temp_c)} {_ttt(ttt):>11} {d.gpus_at_risk:5d}")
    return "\n".join(out)


def render_outcome(what: str, o: pb.WhatIfOutcome) -> str:
    lines = [f"{what}: horizon {o.horizon_s:.0f} s",
             f"redundancy carries the load: {'yes' if o.redundancy_carries else 'NO'}"
             + (f" (loops not carrying: {', '.join(o.loops_not_carrying)})" if o.loops_not_carrying else "")
             + (f" (air groups not carrying: {', '.join(o.air_groups_not_carrying)})"
                if o.air_groups_not_carrying else ""),
             f"plant power {o.plant_power_before_w / 1e3:.1f} -> {o.plant_power_after_w / 1e3:.1f} kW, cooling power "
             f"{o.cooling_power_before_w / 1e3:.1f} -> {o.cooling_power_after_w / 1e3:.1f} kW, PUE cooling part "
             f"{pue_text(o, 'pue_cooling_before')} -> {pue_text(o, 'pue_cooling_after')}, facility supply after "
             f"{o.facility_supply_temp_after_c:.1f} °C",
             f"GPUs throttling within the horizon: {o.gpus_affected}"]
    if o.racks:
        lines.append(f"{'rack':<12} {'throttle in':>11} {'GPUs':>5} {'coolant before °C':>17} {'after °C':>8}")
        for r in sorted(o.racks, key=lambda r: r.time_to_throttle_s):
            ttt = r.time_to_throttle_s if r.HasField("time_to_throttle_s") else None
            lines.append(f"{r.rack_id:<12} {_ttt(ttt):>11} {len(r.gpu_ids):5d} {_c(r.coolant_temp_before_c):>17} "
                         f"{_c(r.coolant_temp_after_c):>8}")
    return "\n".join(lines)


class SweepRefused(ValueError):
    """A sweep point the twin calls invalid (exit code 2, like INVALID_ARGUMENT)."""


def value_range(text: str) -> list[float]:
    """'20:45:5' -> [20, 25, ..., 45] (FROM:TO:STEP, both ends included)."""
    try:
        lo, hi, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not FROM:TO:STEP: {text!r} (e.g. 20:45:5)") from None
    if step <= 0 or hi < lo:
        raise argparse.ArgumentTypeError(f"{text!r}: need FROM <= TO and STEP > 0")
    n = int(math.floor((hi - lo) / step + 1e-9)) + 1
    if n > MAX_SWEEP_POINTS:
        raise argparse.ArgumentTypeError(f"{text!r} is {n} points; at most {MAX_SWEEP_POINTS}")
    return [round(lo + i * step, 9) for i in range(n)]


def sweep_rows(args: argparse.Namespace, stub: pb_grpc.CoolingServiceStub) -> tuple[str, list[dict]]:
    """(the swept setting, one row per value: first time to throttle, GPUs affected, plant power, PUE part)."""
    name = next(k for k in SWEEP_SETTINGS if getattr(args, f"sweep_{k}") is not None)
    values = getattr(args, f"sweep_{name}")
    fixed = {SWEEP_SETTINGS[k]: getattr(args, f"fixed_{k}") for k in SWEEP_SETTINGS
             if k != name and getattr(args, f"fixed_{k}") is not None}
    rows = []
    with Progress(len(values), f"sweep {name}") as bar:
        for v in values:
            req = pb.WhatIfSetpointRequest(horizon_s=args.horizon_s, **fixed)
            setattr(req, SWEEP_SETTINGS[name], v)
            try:
                o = stub.WhatIfSetpoint(req, timeout=args.timeout).outcome
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                others = ", ".join(f"--fixed-{k.replace('_', '-')}" for k in SWEEP_SETTINGS if k != name)
                raise SweepRefused(f"the cooling twin refused {name} = {v:g} °C: {exc.details()}; hold the other "
                                   f"settings with {others} (e.g. a wet bulb below the lowest dry bulb)") from None
            ttts = [r.time_to_throttle_s for r in o.racks if r.HasField("time_to_throttle_s")]
            rows.append({name: v, "first_throttle_s": min(ttts) if ttts else None, "racks_throttling": len(ttts),
                         "gpus_affected": o.gpus_affected, "plant_power_w": o.plant_power_after_w,
                         "cooling_power_w": o.cooling_power_after_w, "pue_cooling": (o.pue_cooling_after if o.HasField("pue_cooling_after")
                                                                        else None),
                         "redundancy_carries": o.redundancy_carries, "horizon_s": o.horizon_s})
            bar.step(f"{name} {v:g}")
    return name, rows


def sweep_table(name: str, rows: list[dict]) -> str:
    lines = [f"{name:>18} {'first throttle':>14} {'racks':>6} {'GPUs':>6} {'plant kW':>9} {'cooling kW':>10} "
             f"{'PUE part':>8} {'carries':>7}"]
    for r in rows:
        lines.append(f"{r[name]:18g} {_ttt(r['first_throttle_s']):>14} {r['racks_throttling']:6d} "
                     f"{r['gpus_affected']:6d} {r['plant_power_w'] / 1e3:9.1f} {r['cooling_power_w'] / 1e3:10.1f} "
                     f"{'-' if r['pue_cooling'] is None else format(r['pue_cooling'], '.3f'):>8} "
                     f"{'yes' if r['redundancy_carries'] else 'NO':>7}")
    return "\n".join(lines)


def sweep_plot(name: str, rows: list[dict], out: str):
    xs = [r[name] for r in rows]
    horizon = max((r["horizon_s"] for r in rows), default=0.0)
    return plot([Series("first rack throttles in (min)", xs,
                        [None if r["first_throttle_s"] is None else r["first_throttle_s"] / 60 for r in rows],
                        marker="o"),
                 Series("GPUs throttling within the horizon", xs, [r["gpus_affected"] for r in rows], axis="right",
                        marker="s")],
                out, title=f"cooling what-if: {name.replace('_', ' ')} sweep (horizon {horizon / 60:.0f} min; "
                           "no point: nothing throttles)",
                xlabel=name.replace("_c", " (°C)").replace("_", " "), ylabel="minutes", ylabel_right="GPUs")


def run_cooling(args: argparse.Namespace, stub: pb_grpc.CoolingServiceStub) -> str:
    t = args.timeout
    if args.cmd == "state":
        resp = stub.GetState(pb.GetStateRequest(scope=args.scope, entity_ids=args.ids), timeout=t)
        return MessageToJson(resp) if args.json else render_state(resp)
    if args.cmd == "whatif-failure":
        req = pb.WhatIfFailureRequest(cdu_ids=args.cdus, crah_ids=args.crahs, plant_unit_ids=args.plant_units,
                                      horizon_s=args.horizon_s)
        req.pumps.extend(pb.PumpFlow(cdu_id=k, flow_fraction=v) for k, v in args.pump)
        req.rack_flows.extend(pb.RackFlow(rack_id=k, flow_fraction=v) for k, v in args.rack_flow)
        resp = stub.WhatIfFailure(req, timeout=t)
        lost = args.cdus + args.crahs + args.plant_units + [f"{k} pump at {v:.0%}" for k, v in args.pump] + [
            f"{k} flow at {v:.0%}" for k, v in args.rack_flow]
        return MessageToJson(resp) if args.json else render_outcome("failed: " + ", ".join(lost), resp.outcome)
    if args.cmd == "whatif-setpoint":
        req = pb.WhatIfSetpointRequest(horizon_s=args.horizon_s)
        changes = []
        for name, value in (("facility_supply_temp_c", args.facility_supply_c), ("supply_air_temp_c", args.supply_air_c),
                            ("dry_bulb_temp_c", args.dry_bulb_c), ("wet_bulb_temp_c", args.wet_bulb_c)):
            if value is not None:
                setattr(req, name, value)
                changes.append(f"{name} {value:g}")
        resp = stub.WhatIfSetpoint(req, timeout=t)
        return MessageToJson(resp) if args.json else render_outcome(", ".join(changes) or "no change", resp.outcome)
    if args.cmd == "sweep":
        name, rows = sweep_rows(args, stub)
        if args.plot:
            sweep_plot(name, rows, args.plot)
        if args.json:
            return json.dumps({"setting": name, "points": rows})
        return sweep_table(name, rows) + (f"\nplot: {args.plot}" if args.plot else "")
    if args.cmd == "history":
        return series.history_command(args, stub, pb.GetHistoryRequest, "cooling", t)
    raise SystemExit(f"unknown command {args.cmd!r}")


def run(args: argparse.Namespace, open_channel: Callable[[str, argparse.Namespace], grpc.Channel]) -> int:
    return run_against_twin(args, open_channel, twin="cooling", env="TWINCTL_COOLING_TARGET",
                            default_target=DEFAULT_COOLING_TARGET, stub=pb_grpc.CoolingServiceStub,
                            command=run_cooling, refused=(SweepRefused,))
