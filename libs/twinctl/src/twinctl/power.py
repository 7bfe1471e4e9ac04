"""`twinctl power`: the power twin's PowerService from the terminal, as readable tables.

    twinctl power state [--components]                 site power, PUE, headroom (+ every PDU/UPS/transformer/feed)
    twinctl power state --rack su1-0000                one rack (measured / modelled split)
    twinctl power state --component ups-1              one chain component
    twinctl power plan --limit-kw 250 [--deadline-s 600] [--duration-s 1800]     curtailment what-if
    twinctl power whatif-cap --cap-w 400 (--gpus 0-63 | --racks su1-0000,su1-0001 | --job JOB)
    twinctl power whatif-failure ups-1 [tx-2 ...]      loads that move, components over rating, racks lost
    twinctl power history su-h100 [--minutes 60] [--plot out.png]   stored states of the site / a rack / a component

Target: --target HOST:PORT, else env TWINCTL_POWER_TARGET, else 127.0.0.1:50054. --token / TWINCTL_TOKEN,
--tls-ca [--tls-cert --tls-key] and --json as for `twinctl fabric`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import grpc
from google.protobuf.json_format import MessageToJson

from twin.power.v1 import power_pb2 as pb
from twin.power.v1 import power_pb2_grpc as pb_grpc
from twinctl import series
from twinctl.errors import run_against_twin

DEFAULT_POWER_TARGET = "127.0.0.1:50054"


def _ids(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _gpus(text: str) -> list[int]:
    out: list[int] = []
    try:
        for part in _ids(text):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a GPU list: {text!r} (e.g. 0-63 or 0,2,4-7)") from None
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("power", help="PowerService (power and grid twin)")
    p.add_argument("--target", default=None,
                   help=f"host:port (env TWINCTL_POWER_TARGET, default {DEFAULT_POWER_TARGET})")
    p.add_argument("--timeout", type=float, default=30.0, help="RPC deadline in seconds")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--token", default=None, help="bearer token (env TWINCTL_TOKEN)")
    p.add_argument("--tls-ca", default=None, help="PEM CA of the server certificate: use TLS (env TWINCTL_TLS_CA)")
    p.add_argument("--tls-cert", default=None, help="PEM client certificate (mutual TLS)")
    p.add_argument("--tls-key", default=None, help="PEM client key (mutual TLS)")
    cmds = p.add_subparsers(dest="cmd", required=True)
    st = cmds.add_parser("state", help="site, rack or component power")
    g = st.add_mutually_exclusive_group()
    g.add_argument("--components", action="store_true", help="also every PDU, UPS group, UPS, transformer, feed")
    g.add_argument("--rack", help="one rack id")
    g.add_argument("--component", help="one PDU, UPS group, UPS, transformer or feed id")
    pl = cmds.add_parser("plan", help="curtailment plan for an import limit (what-if: nothing is published)")
    pl.add_argument("--limit-kw", type=float, required=True, help="site import limit, kW")
    pl.add_argument("--deadline-s", type=float, default=600.0, help="seconds from now until the limit applies")
    pl.add_argument("--duration-s", type=float, default=1800.0, help="how long the limit lasts, seconds")
    cap = cmds.add_parser("whatif-cap", help="cap GPUs: power saved, clock and throughput cost")
    cap.add_argument("--cap-w", type=float, required=True, help="power limit per GPU, W (raised to its minimum)")
    t = cap.add_mutually_exclusive_group(required=True)
    t.add_argument("--gpus", type=_gpus, help="global GPU ids, e.g. 0-63")
    t.add_argument("--racks", type=_ids, help="comma-separated rack ids")
    t.add_argument("--job", help="a job id")
    fail = cmds.add_parser("whatif-failure", help="components fail: loads that move, overloads, racks lost")
    fail.add_argument("component_ids", nargs="+", help="PDU, UPS group, UPS, transformer or feed ids")
    hist = cmds.add_parser("history", help="stored power states of one entity over time (table, --plot PNG)")
    series.add_history_args(hist, "site, rack or component id")


def _kw(w: float) -> str:
    return f"{w / 1e3:10.1f}"


_SOURCE = {pb.VALUE_SOURCE_MEASURED: "measured", pb.VALUE_SOURCE_MODELLED: "modelled",
           pb.VALUE_SOURCE_MIXED: "mixed", pb.VALUE_SOURCE_UNSPECIFIED: "-"}


def _scope(s: int) -> str:
    return pb.PowerScope.Name(s).removeprefix("POWER_SCOPE_").lower()


def state_table(states: list[pb.PowerState]) -> str:
    lines = [f"{'entity':<16} {'scope':<11} {'input kW':>10} {'output kW':>10} {'loss kW':>10} {'rating kW':>10} "
             f"{'headroom kW':>11} {'util':>6} {'if partner fails kW':>19} {'source':<9} powered"]
    for s in states:
        rated = s.rating_w > 0          # racks have no rating in the spec
        lines.append(f"{s.entity_id:<16} {_scope(s.scope):<11} {_kw(s.input_power_w)} {_kw(s.output_power_w)} "
                     f"{_kw(s.loss_w)} {_kw(s.rating_w) if rated else '-':>10} "
                     f"{_kw(s.headroom_w) if rated else '-':>11} {f'{s.utilization:6.1%}' if rated else '-':>6} "
                     f"{_kw(s.load_if_partner_fails_w) if rated else '-':>19} {_SOURCE.get(s.source, '?'):<9} "
                     f"{'yes' if s.powered else 'NO'}")
    return "\n".join(lines)


def _time(s: pb.PowerState) -> str:
    return s.state_time.ToDatetime().isoformat(timespec="seconds") + "Z"


def _minute_ramp(d: pb.SitePowerDetail) -> str:
    """The ramp a MW/min limit bounds (minute averages), and the last tick's change as a rate beside it."""
    tick = f"last tick {d.ramp_w_per_s * 60 / 1e6:+.3f} MW/min as a rate"
    if not d.HasField("minute_ramp_w"):
        return f"? MW/min over minute averages (two minutes not seen yet; {tick})"
    return f"{d.minute_ramp_w / 1e6:+.3f} MW/min over minute averages ({tick})"


def render_state(resp) -> str:
    if isinstance(resp, pb.GetSiteStateResponse):
        s, d = resp.site, resp.site.site
        head = (f"site {s.site_id} at {_time(s)}: import {s.input_power_w / 1e6:.3f} MW, IT {d.it_power_w / 1e6:.3f} MW, "
                f"PUE {d.pue:.3f}, chain losses {d.chain_loss_w / 1e3:.1f} kW, feeds {s.rating_w / 1e6:.2f} MW "
                f"(headroom {s.headroom_w / 1e6:.3f} MW), ramp {_minute_ramp(d)}, {_SOURCE.get(s.source, '?')}")
        return head + ("\n" + state_table(list(resp.components)) if resp.components else "")
    s = resp.state
    out = f"{_scope(s.scope)} {s.entity_id} at {_time(s)}\n" + state_table([s])
    if s.scope == pb.POWER_SCOPE_RACK:
        r = s.rack
        out += (f"\nGPUs {r.gpu_power_w / 1e3:.1f} kW ({r.measured_gpus} measured, {r.modelled_gpus} modelled, "
                f"{r.power_capped_gpus} at their power limit, mean SM clock {r.mean_sm_clock_mhz:.0f} MHz); "
                f"node losses {r.node_loss_w / 1e3:.2f} kW, rack stage losses {r.rack_loss_w / 1e3:.2f} kW; "
                f"model says {r.modelled_input_power_w / 1e3:.1f} kW")
    return out


def render_plan(p: pb.CurtailmentPlan) -> str:
    lines = [f"limit {p.limit_w / 1e6:.3f} MW from t+{p.deadline_offset_s:.0f} s for {p.duration_s:.0f} s; "
             f"now {p.baseline_site_power_w / 1e6:.3f} MW",
             ("MEETS the limit" + (f" from t+{p.meets_at_offset_s:.0f} s" if p.HasField("meets_at_offset_s") else ""))
             if p.meets_limit else f"CANNOT meet the limit: short by {p.shortfall_w / 1e6:.3f} MW",
             f"throughput cost {p.throughput_cost:.1%}, work lost {p.lost_work_gpu_s:.0f} GPU-s"]
    if p.cap_w:
        lines.append(f"cap {len(p.cap_w)} GPUs: {min(p.cap_w):.0f}-{max(p.cap_w):.0f} W")
    for s in p.sources:
        lines.append(f"{pb.SourceKind.Name(s.kind).removeprefix('SOURCE_KIND_').lower():<8} {s.source_id:<12} "
                     f"{s.power_w / 1e3:10.1f} kW from t+{s.start_offset_s:.0f} s")
    if p.paused_job_ids:
        lines.append("checkpoint and pause: " + ", ".join(p.paused_job_ids))
    lines.append("steps:")
    lines += [f"  {i + 1}. {step}" for i, step in enumerate(p.steps)]
    if p.timeline_offset_s:
        lines.append(f"{'t (s)':>8} {'import MW':>10}")
        n = len(p.timeline_offset_s)
        for i in sorted({0, n // 4, n // 2, 3 * n // 4, n - 1}):
            lines.append(f"{p.timeline_offset_s[i]:8.0f} {p.timeline_site_import_w[i] / 1e6:10.3f}")
    return "\n".join(lines)


def run_power(args: argparse.Namespace, stub: pb_grpc.PowerServiceStub) -> str:
    t = args.timeout
    if args.cmd == "state":
        if args.rack:
            resp = stub.GetRackState(pb.GetRackStateRequest(rack_id=args.rack), timeout=t)
        elif args.component:
            resp = stub.GetComponentState(pb.GetComponentStateRequest(component_id=args.component), timeout=t)
        else:
            resp = stub.GetSiteState(pb.GetSiteStateRequest(include_components=args.components), timeout=t)
        return MessageToJson(resp) if args.json else render_state(resp)
    if args.cmd == "plan":
        resp = stub.PlanCurtailment(pb.PlanCurtailmentRequest(limit_kw=args.limit_kw, deadline_s=args.deadline_s,
                                                              duration_s=args.duration_s), timeout=t)
        return MessageToJson(resp) if args.json else render_plan(resp.plan)
    if args.cmd == "whatif-cap":
        req = pb.WhatIfPowerCapRequest(cap_w=args.cap_w)
        if args.gpus is not None:
            req.gpus.gpu_ids.extend(args.gpus)
        elif args.racks is not None:
            req.racks.rack_ids.extend(args.racks)
        else:
            req.job_id = args.job
        r = stub.WhatIfPowerCap(req, timeout=t)
        if args.json:
            return MessageToJson(r)
        return (f"{'GPUs':>6} {'GPU saved kW':>13} {'site saved kW':>14} {'clock before MHz':>17} "
                f"{'clock after MHz':>16} {'throughput cost':>16}\n"
                f"{r.gpus:6d} {r.gpu_power_saved_w / 1e3:13.1f} {r.site_power_saved_w / 1e3:14.1f} "
                f"{r.mean_sm_clock_before_mhz:17.0f} {r.mean_sm_clock_after_mhz:16.0f} {r.throughput_cost:16.1%}")
    if args.cmd == "whatif-failure":
        r = stub.WhatIfComponentFailure(pb.WhatIfComponentFailureRequest(component_ids=args.component_ids), timeout=t)
        if args.json:
            return MessageToJson(r)
        over = set(r.over_rating_ids)
        lines = [f"failed: {', '.join(args.component_ids)}; site {r.site_power_before_w / 1e6:.3f} -> "
                 f"{r.site_power_after_w / 1e6:.3f} MW",
                 f"{'component':<16} {'scope':<11} {'before kW':>10} {'after kW':>10} {'rating kW':>10} {'after/rating':>12}"]
        for m in r.moved:
            ratio = m.after_w / m.rating_w if m.rating_w else 0.0
            lines.append(f"{m.component_id:<16} {_scope(m.scope):<11} {_kw(m.before_w)} {_kw(m.after_w)} "
                         f"{_kw(m.rating_w)} {ratio:12.0%}{'  OVER RATING' if m.component_id in over else ''}")
        lines.append("over rating: " + (", ".join(r.over_rating_ids) or "none"))
        lines.append("racks without power: " + (", ".join(r.unpowered_rack_ids) or "none"))
        return "\n".join(lines)
    if args.cmd == "history":
        return series.history_command(args, stub, pb.GetHistoryRequest, "power", t)
    raise SystemExit(f"unknown command {args.cmd!r}")


def run(args: argparse.Namespace, open_channel: Callable[[str, argparse.Namespace], grpc.Channel]) -> int:
    return run_against_twin(args, open_channel, twin="power", env="TWINCTL_POWER_TARGET",
                            default_target=DEFAULT_POWER_TARGET, stub=pb_grpc.PowerServiceStub, command=run_power)
