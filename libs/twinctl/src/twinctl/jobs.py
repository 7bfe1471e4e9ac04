"""`twinctl jobs`: the job twin's JobService from the terminal, as readable tables.

    twinctl jobs list [--status running]                 every job: status, GPUs, predicted / measured step, risks
                                                         (pred ms marked * when from the own estimate; the energy
                                                         overhead factor: "s" site state, "p" JOBS_PUE)
    twinctl jobs show JOB                                one job: prediction, breakdown, power phases, risks, goodput,
                                                         where its communication and energy overhead came from
    twinctl jobs whatif-placement (--job JOB | --spec JSON) --candidate su1-0000,su1-0001 [--candidate ...]
                                                         candidates ranked (rack ids, or node ids: "<rack>-nNN")
    twinctl jobs whatif-cap JOB --gpu-power-cap-w 500      step time, power and energy per step under a GPU cap
    twinctl jobs whatif-failure (--node N | --link L | --cdu C | --ups U) [--duration-s 600]
                                                         which jobs stop or slow, by how much, goodput lost (a LINK
                                                         slowdown marked * when from the own estimate)

--spec takes a twin.jobs.v1.JobSpec as JSON (e.g. '{"model": {...}, "parallel": {"tp": 8, "dp": 4}, "gpuModel":
"H100-SXM", ...}'); --job reuses a known job's spec. Target: --target HOST:PORT, else env TWINCTL_JOBS_TARGET,
else 127.0.0.1:50056. --token / TWINCTL_TOKEN, --tls-ca [--tls-cert --tls-key] and --json as for `twinctl fabric`.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

import grpc
from google.protobuf.json_format import MessageToJson, Parse, ParseError

from twin.jobs.v1 import jobs_pb2 as pb
from twin.jobs.v1 import jobs_pb2_grpc as pb_grpc
from twinctl.errors import run_against_twin

DEFAULT_JOBS_TARGET = "127.0.0.1:50056"
_NODE = re.compile(r"-n\d+$")  # node ids are "<rack>-nNN" (twin.core.facility naming)
_STATUS = {name.removeprefix("JOB_STATUS_").lower(): value for name, value in pb.JobStatus.items() if value}


def _ids(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _status(text: str) -> int:
    if text.lower() not in _STATUS:
        raise argparse.ArgumentTypeError(f"unknown status {text!r} (one of {', '.join(_STATUS)})")
    return _STATUS[text.lower()]


def add_parser(sub) -> None:
    p = sub.add_parser("jobs", help="JobService (job twin)")
    p.add_argument("--target", default=None, help=f"host:port (env TWINCTL_JOBS_TARGET, default {DEFAULT_JOBS_TARGET})")
    p.add_argument("--timeout", type=float, default=30.0, help="RPC deadline in seconds")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--token", default=None, help="bearer token (env TWINCTL_TOKEN)")
    p.add_argument("--tls-ca", default=None, help="PEM CA of the server certificate: use TLS (env TWINCTL_TLS_CA)")
    p.add_argument("--tls-cert", default=None, help="PEM client certificate (mutual TLS)")
    p.add_argument("--tls-key", default=None, help="PEM client key (mutual TLS)")
    cmds = p.add_subparsers(dest="cmd", required=True)
    ls = cmds.add_parser("list", help="jobs with their current predictions")
    ls.add_argument("--status", type=_status, default=0, help=f"only jobs in this status ({', '.join(_STATUS)})")
    show = cmds.add_parser("show", help="one job in detail")
    show.add_argument("job_id")
    wp = cmds.add_parser("whatif-placement", help="rank candidate racks/nodes for a job spec")
    g = wp.add_mutually_exclusive_group(required=True)
    g.add_argument("--job", help="use this job's spec")
    g.add_argument("--spec", help="a twin.jobs.v1.JobSpec as JSON")
    wp.add_argument("--candidate", type=_ids, action="append", required=True,
                    help="comma-separated rack ids or node ids; repeat for each candidate")
    wc = cmds.add_parser("whatif-cap", help="a per-GPU power cap on one job: step time, power, energy per step")
    wc.add_argument("job_id")
    wc.add_argument("--gpu-power-cap-w", type=float, required=True, help="the cap per GPU, W")
    wf = cmds.add_parser("whatif-failure", help="a node, link, CDU or UPS fails: jobs stopped or slowed, goodput lost")
    target = wf.add_mutually_exclusive_group(required=True)
    for kind, what in _FAILURE_TARGETS.items():
        target.add_argument(f"--{kind}", metavar="ID", help=what)
    wf.add_argument("--duration-s", type=float, default=600.0, help="how long the failure lasts (goodput lost), s")


_FAILURE_TARGETS = {"node": "a node id", "link": "an uplink, leaf, spine or NIC id (as fabric.events.v1 takes them)",
                    "cdu": "a CDU or CRAH id", "ups": "a UPS id"}


def _risks(j: pb.JobState) -> str:
    shown = [f"{pb.RiskKind.Name(f.kind).removeprefix('RISK_KIND_').lower()}:{f.entity_id}"
             + (f"(+{f.slowdown_fraction:.0%})" if f.slowdown_fraction else "") for f in j.risk_flags]
    return ", ".join(shown) or "-"


def _ms(s: float) -> str:
    return f"{s * 1e3:10.1f}" if s else f"{'-':>10}"


def _own(j: pb.JobState) -> bool:
    return j.comm_source == pb.COMM_SOURCE_OWN_ESTIMATE


def _overhead(j: pb.JobState, long: bool = False) -> str:
    """The energy overhead factor and its source: "1.25 s" / "1.30 p" (list), "1.250 (site state)" (show)."""
    if j.energy_overhead_source == pb.ENERGY_OVERHEAD_SOURCE_UNSPECIFIED:
        return "-"
    site = j.energy_overhead_source == pb.ENERGY_OVERHEAD_SOURCE_SITE_STATE
    if long:
        return f"{j.energy_overhead_factor:.3f} ({'power twin site state' if site else 'JOBS_PUE setting'})"
    return f"{j.energy_overhead_factor:.2f} {'s' if site else 'p'}"


def _comm(j: pb.JobState) -> str:
    if j.comm_source == pb.COMM_SOURCE_FABRIC_TWIN:
        return "fabric twin" + (f" ({j.comm_source_detail})" if j.comm_source_detail else "")
    if _own(j):
        return "job twin's own estimate: " + (j.comm_source_detail or "fabric twin unreachable")
    return "-"


def render_list(jobs: list[pb.JobState]) -> str:
    lines = [f"{'job':<16} {'status':<10} {'GPUs':>5} {'pred ms':>10}  {'meas ms':>10} {'err':>6} {'tok/s':>11} "
             f"{'MFU':>6} {'kW':>7} {'goodput':>8} {'ovh':>6}  risks"]
    for j in jobs:
        status = pb.JobStatus.Name(j.status).removeprefix("JOB_STATUS_").lower()
        lines.append(f"{j.job_id:<16} {status:<10} {j.placement.n_gpus:>5} {_ms(j.predicted_step_time_s)}"
                     f"{'*' if _own(j) else ' '} {_ms(j.measured_step_time_s)} {j.step_time_error_ratio:>6.2f} "
                     f"{j.predicted_tokens_per_s:>11,.0f} {j.mfu:>6.1%} {j.power_w / 1e3:>7.1f} "
                     f"{j.goodput_fraction:>8.1%} {_overhead(j):>6}  {_risks(j)}")
    if not jobs:
        lines.append("(no jobs)")
    elif any(map(_own, jobs)):
        lines.append("* communication from the job twin's own estimate, not the fabric twin (`twinctl jobs show "
                     "JOB` says why)")
    return "\n".join(lines)


def render_job(j: pb.JobState) -> str:
    s, b = j.spec, j.breakdown
    m, par = s.model, s.parallel
    status = pb.JobStatus.Name(j.status).removeprefix("JOB_STATUS_").lower()
    nodes = list(j.placement.node_ids)
    lines = [
        f"job {j.job_id}  {status}  owner {s.owner or '-'}  at {j.state_time.ToDatetime().isoformat(timespec='seconds')}Z",
        f"  model     {m.layers} layers, hidden {m.hidden}, ffn {m.ffn_hidden}, heads {m.heads}/{m.kv_heads or m.heads}, "
        f"seq {m.seq_len_tokens}" + (f", {m.moe_experts} experts top-{m.moe_topk}" if m.moe_experts else ""),
        f"  parallel  tp {par.tp or 1} pp {par.pp or 1} dp {par.dp or 1} cp {par.cp or 1} ep {par.ep or 1}; "
        f"{s.n_gpus} x {s.gpu_model}; batch {s.micro_batch_sequences}/{s.global_batch_sequences}",
        f"  placement {len(nodes)} node(s): {', '.join(nodes[:6])}{' ...' if len(nodes) > 6 else ''}",
        f"  step      predicted {j.predicted_step_time_s * 1e3:.1f} ms, measured "
        + (f"{j.measured_step_time_s * 1e3:.1f} ms (running error {j.step_time_error_ratio:.2f}x)"
           if j.measured_step_time_s else "-"),
        f"  rate      {j.predicted_tokens_per_s:,.0f} tokens/s, MFU {j.mfu:.1%}, clock {j.clock_fraction:.0%}",
        f"  breakdown gemm {b.gemm_s * 1e3:.1f} attn {b.attention_s * 1e3:.1f} mem {b.memory_s * 1e3:.1f} "
        f"bubble {b.bubble_s * 1e3:.1f} opt {b.optimizer_s * 1e3:.1f} | exposed tp {b.exposed_tp_s * 1e3:.1f} "
        f"pp {b.exposed_pp_s * 1e3:.1f} dp {b.exposed_dp_s * 1e3:.1f} cp {b.exposed_cp_s * 1e3:.1f} "
        f"ep {b.exposed_ep_s * 1e3:.1f} ms",
        f"  power     {j.power_w / 1e3:.1f} kW (GPUs): " + ", ".join(
            f"{p.name} {p.duration_s * 1e3:.0f} ms @ {p.gpu_power_w:.0f} W" for p in j.phases if p.duration_s),
        f"  goodput   {j.goodput_fraction:.1%}; {j.failures_per_day:.2f} failures/day; optimal checkpoint every "
        f"{j.optimal_checkpoint_interval_s / 60:.0f} min",
        f"  energy    {j.energy_j / 3.6e6:.2f} kWh, {j.cost_usd:.2f} USD, {j.co2_kg:.1f} kg CO2"
        + (f"; measured {j.measured_energy_j / 3.6e6:.2f} kWh" if j.measured_energy_j else "")
        + f"; overhead factor {_overhead(j, long=True)}",
        f"  comm      {_comm(j)}",
    ]
    for f in j.risk_flags:
        kind = pb.RiskKind.Name(f.kind).removeprefix("RISK_KIND_").lower()
        lines.append(f"  risk      {kind} {f.entity_id} +{f.slowdown_fraction:.1%}: {f.detail}")
    return "\n".join(lines)


def render_placement(outcomes) -> str:
    lines = [f"{'rank':>4} {'candidate':<16} {'step ms':>10} {'tok/s':>11} {'kW':>7} {'thermal':>8} {'network':>8}  detail"]
    for o in outcomes:
        lines.append(f"{o.rank:>4} {o.candidate_id:<16} {_ms(o.predicted_step_time_s)} {o.predicted_tokens_per_s:>11,.0f} "
                     f"{o.power_w / 1e3:>7.1f} {o.thermal_risk:>8.2f} {o.network_risk:>8.2f}  {o.detail}")
    return "\n".join(lines)


def render_cap(job_id: str, cap_w: float, r: pb.WhatIfPowerCapResponse) -> str:
    def row(what: str, before: float, after: float, unit: str, scale: float = 1.0) -> str:
        change = f"{after / before - 1:+.1%}" if before else "-"
        return f"  {what:<16} {before * scale:>12,.1f} {after * scale:>12,.1f} {unit:<4} {change:>8}"

    return "\n".join([
        f"job {job_id} capped at {cap_w:.0f} W per GPU: SM clock {r.clock_fraction:.1%} of uncapped",
        f"  {'':<16} {'before':>12} {'after':>12} {'':<4} {'change':>8}",
        row("step time", r.step_time_before_s, r.step_time_after_s, "ms", 1e3),
        row("GPU power", r.power_before_w, r.power_after_w, "kW", 1e-3),
        row("energy / step", r.energy_per_step_before_j, r.energy_per_step_after_j, "kJ", 1e-3),
    ])


def render_failure(resp: pb.WhatIfFailureResponse) -> str:
    if not resp.impacts:
        return "no running job stops or slows"
    lines = [f"{'job':<20} {'effect':<8} {'step ms before':>14} {'after':>10} {'slower':>7} {'GPU-h lost':>10}"]
    own = False
    for i in resp.impacts:
        star = "*" if i.comm_source == pb.COMM_SOURCE_OWN_ESTIMATE else " "
        own |= star == "*"
        after = f"{'-':>10}" if i.stops else _ms(i.step_time_after_s)
        slower = f"{'-':>7}" if i.stops else f"{i.slowdown_fraction:>7.1%}"
        lines.append(f"{i.job_id:<20} {'stops' if i.stops else 'slows':<8} {_ms(i.step_time_before_s):>14} {after}"
                     f"{star}{slower} {i.goodput_lost_gpu_hours:>10.2f}")
    lines.append(f"goodput lost: {resp.goodput_lost_gpu_hours:.2f} GPU-hours")
    if own:
        lines.append("* step time after from the job twin's own estimate (the fabric twin could not answer: --json has why)")
    return "\n".join(lines)


def run_jobs(args: argparse.Namespace, stub: pb_grpc.JobServiceStub) -> str:
    kw = {"timeout": args.timeout}  # the channel carries the bearer token
    if args.cmd == "list":
        jobs: list[pb.JobState] = []
        token = ""
        while True:
            resp = stub.ListJobs(pb.ListJobsRequest(status=args.status, page_size=1000, page_token=token), **kw)
            jobs += resp.jobs
            token = resp.next_page_token
            if not token:
                break
        return MessageToJson(pb.ListJobsResponse(jobs=jobs)) if args.json else render_list(jobs)
    if args.cmd == "show":
        job = stub.GetJob(pb.GetJobRequest(job_id=args.job_id), **kw).job
        return MessageToJson(job) if args.json else render_job(job)
    if args.cmd == "whatif-placement":
        if args.job:
            spec = stub.GetJob(pb.GetJobRequest(job_id=args.job), **kw).job.spec
        else:
            try:
                spec = Parse(args.spec, pb.JobSpec())
            except ParseError as exc:
                raise SystemExit(f"twinctl: --spec is not a twin.jobs.v1.JobSpec: {exc}") from None
        candidates = [pb.PlacementCandidate(candidate_id=f"#{i + 1}",
                                            rack_ids=[x for x in ids if not _NODE.search(x)],
                                            node_ids=[x for x in ids if _NODE.search(x)])
                      for i, ids in enumerate(args.candidate)]
        resp = stub.WhatIfPlacement(pb.WhatIfPlacementRequest(spec=spec, candidates=candidates), **kw)
        return MessageToJson(resp) if args.json else render_placement(resp.outcomes)
    if args.cmd == "whatif-cap":
        resp = stub.WhatIfPowerCap(pb.WhatIfPowerCapRequest(job_id=args.job_id, gpu_power_cap_w=args.gpu_power_cap_w),
                                   **kw)
        return MessageToJson(resp) if args.json else render_cap(args.job_id, args.gpu_power_cap_w, resp)
    if args.cmd == "whatif-failure":
        kind, target_id = next((k, getattr(args, k)) for k in _FAILURE_TARGETS if getattr(args, k))
        req = pb.WhatIfFailureRequest(target_kind=pb.FailureTargetKind.Value(f"FAILURE_TARGET_KIND_{kind.upper()}"),
                                      target_id=target_id, duration_s=args.duration_s)
        resp = stub.WhatIfFailure(req, **kw)
        return MessageToJson(resp) if args.json else render_failure(resp)
    raise SystemExit(f"unknown command {args.cmd!r}")


def run(args: argparse.Namespace, open_channel: Callable[[str, argparse.Namespace], grpc.Channel]) -> int:
    return run_against_twin(args, open_channel, twin="job", env="TWINCTL_JOBS_TARGET",
                            default_target=DEFAULT_JOBS_TARGET, stub=pb_grpc.JobServiceStub, command=run_jobs)
