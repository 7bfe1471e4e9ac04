"""twinctl — ops CLI for the twin's gRPC services.

  twinctl fabric estimate --collective all_reduce --size 1GiB --ranks 256 [--policy spread]
  twinctl fabric estimate --collective all_gather --size 64MiB --gpus 0-63
  twinctl fabric estimate --collective alltoall --size 16MiB --job JOB_ID
  twinctl fabric sweep --collective all_reduce --min 8 --max 1GiB [--steps 2] --ranks 64
  twinctl fabric step --params 70e9 --layers 80 --hidden 8192 --seq 4096 --dp 4 --tp 8 --pp 8 [--ranks/--gpus/--job]
  twinctl fabric links [--all]
  twinctl fabric moe --tokens 4096 --hidden 7168 --top-k 8 --experts 256 --ranks 64 [--max-nodes 4] [--kernel ...]
  twinctl power state [--components | --rack ID | --component ID]      site, rack, component power
  twinctl power plan --limit-kw 250 [--deadline-s 600] [--duration-s 1800]
  twinctl power whatif-cap --cap-w 400 (--gpus 0-63 | --racks A,B | --job ID)
  twinctl power whatif-failure ups-1 [...]
  twinctl cooling state [--scope plant|loop|cdu|crah|air_group|rack] [--ids A,B]   cooling (TWINCTL_COOLING_TARGET)
  twinctl cooling whatif-failure --cdus cdu-a-1,cdu-a-2 | whatif-setpoint --dry-bulb-c 42 --wet-bulb-c 26
  twinctl jobs list [--status running] | show JOB | whatif-placement --job JOB --candidate su1-0004 [...]
  twinctl scenario list | run NAME [--keep] [--json] | restore NAME   scenarios against the running twin
  twinctl dlq list [--topic facility.telemetry.v1] [--reason TEXT]      dead letters and why
  twinctl dlq replay --topic facility.telemetry.v1 [--reason TEXT]      re-publish after a fix
  twinctl power history ID | cooling history ID | cooling sweep --dry-bulb-c 20:45:5   [--plot out.png]
  twinctl fabric sweep ... --plot out.png                               time and bus bandwidth vs size
  twinctl completion bash|zsh                                           shell completion script

Target: --target HOST:PORT, else env TWINCTL_FABRIC_TARGET, else 127.0.0.1:50053 (power:
TWINCTL_POWER_TARGET, else 127.0.0.1:50054). Access: --token (or
TWINCTL_TOKEN) sends a bearer token; --tls-ca [--tls-cert --tls-key] use TLS / mutual TLS. --json prints the
answer as JSON, before or after the subcommand's name (`twinctl dlq --json list`, `twinctl dlq list --json`).
--plot OUT.png draws time series and sweeps (matplotlib). A progress bar goes to stderr on long operations when it is a
terminal. Exit codes: 0 ok, 2 bad arguments / INVALID_ARGUMENT, 3 NOT_FOUND, 1 other errors.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import grpc
from google.protobuf.json_format import MessageToJson

from twin.core import limits
from twin.fabric.v1 import fabric_pb2 as pb
from twin.fabric.v1 import fabric_pb2_grpc as pb_grpc
from twinctl import completion, dlq, fabric_moe
from twinctl import cooling as cooling_cli
from twinctl import jobs as jobs_cli
from twinctl import power as power_cli
from twinctl import scenario as scenario_cli
from twinctl.errors import exit_code, explain

DEFAULT_FABRIC_TARGET = "127.0.0.1:50053"
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_size(text: str) -> int:
    """'1GiB' -> 1073741824, '8' -> 8, '1.5MB' -> 1500000."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8, 64KiB, 1MB, 1GiB)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bytes")
    return int(value)


def parse_gpus(text: str) -> list[int]:
    """'0-63' or '0,2,4-7' -> ids."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a GPU list: {text!r} (e.g. 0-63 or 0,2,4-7)") from None
    return out


def collective(text: str) -> int:
    name = "COLLECTIVE_" + text.strip().upper().replace("-", "_")
    name = {"COLLECTIVE_ALLREDUCE": "COLLECTIVE_ALL_REDUCE", "COLLECTIVE_ALLGATHER": "COLLECTIVE_ALL_GATHER",
            "COLLECTIVE_REDUCESCATTER": "COLLECTIVE_REDUCE_SCATTER", "COLLECTIVE_ALL_TO_ALL": "COLLECTIVE_ALLTOALL",
            "COLLECTIVE_SENDRECV": "COLLECTIVE_SEND_RECV"}.get(name, name)
    if name not in pb.Collective.keys() or name == "COLLECTIVE_UNSPECIFIED":
        known = ", ".join(k.removeprefix("COLLECTIVE_").lower() for k in pb.Collective.keys()[1:])
        raise argparse.ArgumentTypeError(f"unknown collective {text!r} (one of {known})")
    return pb.Collective.Value(name)


def placement(args: argparse.Namespace, required: bool = True) -> pb.Placement | None:
    if args.gpus is not None:
        return pb.Placement(gpus=pb.GpuList(gpu_ids=args.gpus))
    if args.job is not None:
        return pb.Placement(job_id=args.job)
    if args.ranks is not None:
        policy = pb.PACKING_POLICY_SPREAD if args.policy == "spread" else pb.PACKING_POLICY_PACK
        return pb.Placement(ranks=pb.RankCount(n_ranks=args.ranks, policy=policy))
    if required:
        raise SystemExit("twinctl: give a placement: --ranks N [--policy pack|spread], --gpus LIST or --job ID")
    return None


def _add_placement(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ranks", type=int, help="number of ranks placed by --policy")
    g.add_argument("--gpus", type=parse_gpus, help="explicit global GPU ids, e.g. 0-63 or 0,8,16")
    g.add_argument("--job", help="a job id registered with the fabric service")
    p.add_argument("--policy", choices=("pack", "spread"), default="pack")


def _fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:9.2f} us"
    if s < 1:
        return f"{s * 1e3:9.3f} ms"
    return f"{s:9.3f} s "


def _fmt_size(n: int) -> str:
    for unit, f in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= f and n % f == 0:
            return f"{n // f}{unit}"
    return f"{n}B"


def _table(estimates) -> str:
    lines = [f"{'collective':<15} {'size':>10} {'time':>12} {'algbw GB/s':>11} {'busbw GB/s':>11} "
             f"{'algorithm':<10} {'proto':<6} {'latency':>12} {'bandwidth':>12}"]
    for e in estimates:
        lines.append(f"{pb.Collective.Name(e.collective).removeprefix('COLLECTIVE_').lower():<15} "
                     f"{_fmt_size(e.size_bytes):>10} {_fmt_time(e.time_s):>12} {e.algbw_gbps:11.2f} "
                     f"{e.busbw_gbps:11.2f} {e.algorithm:<10} {e.protocol:<6} {_fmt_time(e.latency_s):>12} "
                     f"{_fmt_time(e.bandwidth_s):>12}")
    return "\n".join(lines)


def run_fabric(args: argparse.Namespace, stub: pb_grpc.FabricSimulationServiceStub) -> str:
    t = args.timeout
    if args.cmd == "estimate":
        resp = stub.EstimateCollective(pb.EstimateCollectiveRequest(
            collective=args.collective, size_bytes=args.size, placement=placement(args),
            nccl_version=args.nccl_version), timeout=t)
        if args.json:
            return MessageToJson(resp)
        return f"{resp.n_ranks} ranks on {resp.n_nodes} nodes\n" + _table([resp.estimate])
    if args.cmd == "sweep":
        resp = stub.SweepSizes(pb.SweepSizesRequest(collective=args.collective, min_bytes=args.min, max_bytes=args.max,
                                                    steps_per_doubling=args.steps, placement=placement(args),
                                                    nccl_version=args.nccl_version), timeout=t)
        if getattr(args, "plot", None):
            sweep_plot(resp, args.plot)
        if args.json:
            return MessageToJson(resp)
        return f"{resp.n_ranks} ranks on {resp.n_nodes} nodes\n" + _table(resp.estimates)
    if args.cmd == "step":
        resp = stub.EstimateTrainingStep(pb.EstimateTrainingStepRequest(
            model=pb.ModelSpec(parameters=args.params, layers=args.layers, hidden_size=args.hidden,
                               sequence_length=args.seq, micro_batch_size=args.micro_batch,
                               bytes_per_value=args.bytes_per_value, moe_layers=args.moe_layers,
                               micro_batches_per_step=args.micro_batches),
            parallelism=pb.Parallelism(data_parallel=args.dp, tensor_parallel=args.tp, pipeline_parallel=args.pp,
                                       expert_parallel=args.ep, sequence_parallel=args.sequence_parallel,
                                       distributed_optimizer=args.distributed_optimizer),
            placement=placement(args, required=False)), timeout=t)
        if args.json:
            return MessageToJson(resp)
        lines = [f"communication per step: {_fmt_time(resp.comm_time_s).strip()} "
                 f"({resp.n_ranks} ranks on {resp.n_nodes} nodes)",
                 f"{'kind':<5} {'collective':<15} {'calls':>6} {'bytes/call':>12} {'per call':>12} {'per step':>12} "
                 f"{'ranks':>6} {'algorithm':<10} {'proto':<6}"]
        for b in resp.breakdown:
            lines.append(f"{b.kind:<5} {pb.Collective.Name(b.collective).removeprefix('COLLECTIVE_').lower():<15} "
                         f"{b.calls:6d} {b.size_bytes:12d} {_fmt_time(b.time_per_call_s):>12} "
                         f"{_fmt_time(b.time_s):>12} {b.group_ranks:6d} {b.algorithm:<10} {b.protocol:<6}")
        return "\n".join(lines)
    if args.cmd == "moe":
        return fabric_moe.run(args, stub, placement(args), _fmt_time)
    if args.cmd == "links":
        resp = stub.GetFabricState(pb.GetFabricStateRequest(include_healthy=args.all), timeout=t)
        if args.json:
            return MessageToJson(resp)
        s = resp.state
        lines = [f"site {s.site_id}: {s.links_down} down, {s.links_degraded} degraded, {s.links_flapping} flapping"
                 + (" (list truncated)" if s.truncated else "")]
        for link in s.links:
            lines.append(f"  {link.link_id:<32} capacity {link.capacity_fraction:5.2f}  utilization "
                         f"{link.utilization:5.2f}{'  FLAPPING' if link.flapping else ''}")
        return "\n".join(lines)
    raise SystemExit(f"unknown command {args.cmd!r}")


def sweep_plot(resp: pb.SweepSizesResponse, out: str):
    """Time (log-log) and bus bandwidth against message size, nccl-tests style."""
    from twinctl.plot import Series, plot

    xs = [e.size_bytes for e in resp.estimates]
    name = pb.Collective.Name(resp.estimates[0].collective).removeprefix("COLLECTIVE_").lower() if xs else "sweep"
    return plot([Series("time (us)", xs, [e.time_s * 1e6 for e in resp.estimates], marker="."),
                 Series("bus bandwidth (GB/s)", xs, [e.busbw_gbps for e in resp.estimates], axis="right", marker=".")],
                out, title=f"{name} on {resp.n_ranks} ranks / {resp.n_nodes} nodes (fabric twin)",
                xlabel="message size (bytes)", ylabel="time (us)", ylabel_right="GB/s", xlog=True, ylog=True, xbase=2)


def add_json_everywhere(parser: argparse.ArgumentParser, root: bool = True) -> None:
    """--json before or after a subcommand's name (`twinctl dlq --json list`, `twinctl dlq list --json`): every
    command group below the root has the flag (default False) and every leaf too, with its default suppressed
    so that the leaf's parse does not overwrite the group's value."""
    own = [a for a in parser._actions if "--json" in a.option_strings]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            if not root and not own:
                parser.add_argument("--json", action="store_true", help="print the answer as JSON")
            for child in action.choices.values():
                add_json_everywhere(child, root=False)
            return
    for a in own:
        a.default = argparse.SUPPRESS
    if not own:
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the answer as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twinctl", description="AI Factory Twin ops CLI")
    sub = parser.add_subparsers(dest="service", required=True)
    fabric = sub.add_parser("fabric", help="FabricSimulationService (collective-latency twin)")
    fabric.add_argument("--target", default=None, help=f"host:port (env TWINCTL_FABRIC_TARGET, default "
                                                       f"{DEFAULT_FABRIC_TARGET})")
    fabric.add_argument("--timeout", type=float, default=30.0, help="RPC deadline in seconds")
    fabric.add_argument("--json", action="store_true", help="print the answer as JSON")
    fabric.add_argument("--token", default=None, help="bearer token (env TWINCTL_TOKEN)")
    fabric.add_argument("--tls-ca", default=None, help="PEM CA of the server certificate: use TLS (env TWINCTL_TLS_CA)")
    fabric.add_argument("--tls-cert", default=None, help="PEM client certificate (mutual TLS)")
    fabric.add_argument("--tls-key", default=None, help="PEM client key (mutual TLS)")
    cmds = fabric.add_subparsers(dest="cmd", required=True)
    dlq.add_parser(sub)
    power_cli.add_parser(sub)
    cooling_cli.add_parser(sub)
    jobs_cli.add_parser(sub)
    scenario_cli.add_parser(sub)

    est = cmds.add_parser("estimate", help="one collective")
    est.add_argument("--collective", type=collective, required=True)
    est.add_argument("--size", type=parse_size, required=True, help="bytes, e.g. 8, 1MiB, 1GiB")
    est.add_argument("--nccl-version", default="", help="the job's NCCL version, e.g. 2.27.3 (default: newest)")
    _add_placement(est)

    sw = cmds.add_parser("sweep", help="a size sweep (nccl-tests style)")
    sw.add_argument("--collective", type=collective, required=True)
    sw.add_argument("--min", type=parse_size, default=8)
    sw.add_argument("--max", type=parse_size, default=1 << 30)
    sw.add_argument("--steps", type=int, default=1, help="points per doubling (1 = powers of two)")
    sw.add_argument("--nccl-version", default="", help="the job's NCCL version, e.g. 2.27.3 (default: newest)")
    _add_placement(sw)

    st = cmds.add_parser("step", help="communication time of one training step")
    st.add_argument("--params", type=float, required=True, help="total parameters, e.g. 70e9")
    st.add_argument("--layers", type=int, default=80)
    st.add_argument("--hidden", type=int, default=8192)
    st.add_argument("--seq", type=int, default=4096)
    st.add_argument("--micro-batch", type=int, default=1)
    st.add_argument("--micro-batches", type=int, default=1, help="micro-batches per step")
    st.add_argument("--bytes-per-value", type=int, default=2)
    st.add_argument("--moe-layers", type=int, default=0)
    st.add_argument("--dp", type=int, default=1)
    st.add_argument("--tp", type=int, default=1)
    st.add_argument("--pp", type=int, default=1)
    st.add_argument("--ep", type=int, default=1)
    st.add_argument("--sequence-parallel", action="store_true")
    st.add_argument("--distributed-optimizer", action="store_true")
    _add_placement(st)

    ln = cmds.add_parser("links", help="live link state the estimates use")
    ln.add_argument("--all", action="store_true", help="include healthy, idle links")
    sw.add_argument("--plot", metavar="OUT.png", default=None, help="also draw time and bus bandwidth vs size (PNG)")
    fabric_moe.add_parser(cmds, _add_placement)
    completion.add_parser(sub)
    return parser


class _BearerToken(grpc.UnaryUnaryClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call (the services' token interceptor checks it)."""

    def __init__(self, token: str) -> None:
        self.metadata = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, continuation, details, request):
        metadata = [*(details.metadata or ()), self.metadata]
        details = details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready,
            details.compression)
        return continuation(details, request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression) -> None:
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


def open_channel(target: str, args: argparse.Namespace) -> grpc.Channel:
    """Plaintext, TLS (--tls-ca) or mutual TLS (+ --tls-cert/--tls-key); bearer token from --token or
    TWINCTL_TOKEN. The token is never printed."""
    options = [("grpc.max_receive_message_length", limits.GRPC_MAX_MESSAGE_BYTES)]
    ca = args.tls_ca or os.environ.get("TWINCTL_TLS_CA")
    if ca:
        cert, key = args.tls_cert, args.tls_key
        creds = grpc.ssl_channel_credentials(
            open(ca, "rb").read(), open(key, "rb").read() if key else None, open(cert, "rb").read() if cert else None)
        channel = grpc.secure_channel(target, creds, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    token = args.token or os.environ.get("TWINCTL_TOKEN")
    return grpc.intercept_channel(channel, _BearerToken(token)) if token else channel


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:   # `twinctl ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    add_json_everywhere(parser)
    args = parser.parse_args(argv)
    if args.service == "completion":
        return completion.run(args, parser)
    if args.service == "dlq":
        return dlq.run(args)
    if args.service == "scenario":
        return scenario_cli.run(args)
    if args.service == "power":
        return power_cli.run(args, open_channel)
    if args.service == "cooling":
        return cooling_cli.run(args, open_channel)
    if args.service == "jobs":
        return jobs_cli.run(args, open_channel)
    target = args.target or os.environ.get("TWINCTL_FABRIC_TARGET") or DEFAULT_FABRIC_TARGET
    with open_channel(target, args) as channel:
        try:
            print(run_fabric(args, pb_grpc.FabricSimulationServiceStub(channel)))
        except grpc.RpcError as exc:
            print(explain(exc, "fabric", target, "TWINCTL_FABRIC_TARGET", args.timeout), file=sys.stderr)
            return exit_code(exc)
        except ValueError as exc:   # e.g. nothing to plot
            print(f"twinctl: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
