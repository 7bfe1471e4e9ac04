"""`twinctl fabric moe`: MoE expert-parallel dispatch/combine times from the fabric twin (EstimateMoe).

    twinctl fabric moe --tokens 4096 --hidden 7168 --top-k 8 --experts 256 --ranks 64 \\
        [--kernel all|nccl|deepep-normal|deepep-ll] [--dispatch fp8|bf16] [--combine bf16|fp8] [--max-nodes 4]
"""

from __future__ import annotations

import argparse

from google.protobuf.json_format import MessageToJson

from twin.fabric.v1 import fabric_pb2 as pb

KERNELS = {"nccl": pb.MOE_KERNEL_NCCL_ALLTOALL, "deepep-normal": pb.MOE_KERNEL_DEEPEP_NORMAL,
           "deepep-ll": pb.MOE_KERNEL_DEEPEP_LOW_LATENCY}
PRECISIONS = {"fp8": pb.MOE_PRECISION_FP8, "bf16": pb.MOE_PRECISION_BF16}


def add_parser(cmds, add_placement) -> None:
    moe = cmds.add_parser("moe", help="MoE expert-parallel token dispatch and combine times of an EP group")
    moe.add_argument("--tokens", type=int, required=True, help="tokens per rank")
    moe.add_argument("--hidden", type=int, required=True, help="hidden size (elements per token)")
    moe.add_argument("--top-k", type=int, required=True, help="experts per token")
    moe.add_argument("--experts", type=int, required=True, help="routed experts in the EP group")
    moe.add_argument("--kernel", choices=("all", *KERNELS), default="all")
    moe.add_argument("--dispatch", choices=tuple(PRECISIONS), default="fp8", help="dispatch precision")
    moe.add_argument("--combine", choices=tuple(PRECISIONS), default="bf16", help="combine precision")
    moe.add_argument("--max-nodes", type=int, default=0, help="node-limited routing (DeepSeek-V3: 4); 0 = none")
    add_placement(moe)


def request(args: argparse.Namespace, placement: pb.Placement) -> pb.EstimateMoeRequest:
    kernels = list(KERNELS) if args.kernel == "all" else [args.kernel]
    for name in ("tokens", "hidden", "top_k", "experts", "max_nodes"):
        if getattr(args, name) < 0:
            raise SystemExit(f"twinctl: --{name.replace('_', '-')} must be >= 0")
    return pb.EstimateMoeRequest(cases=[pb.MoeCase(
        kernel=KERNELS[k], tokens_per_rank=args.tokens, hidden_size=args.hidden, top_k=args.top_k,
        num_experts=args.experts, dispatch_precision=PRECISIONS[args.dispatch],
        combine_precision=PRECISIONS[args.combine], max_nodes_per_token=args.max_nodes) for k in kernels],
        placement=placement)


def run(args: argparse.Namespace, stub, placement: pb.Placement, fmt_time) -> str:
    req = request(args, placement)
    resp = stub.EstimateMoe(req, timeout=args.timeout)
    if args.json:
        return MessageToJson(resp)
    names = {v: k for k, v in KERNELS.items()}
    lines = [f"EP group of {resp.ep_ranks} ranks on {resp.n_nodes} nodes ({resp.n_domains} NVLink domains); "
             f"{args.tokens} tokens/rank, hidden {args.hidden}, top-{args.top_k} of {args.experts} experts, "
             f"dispatch {args.dispatch}, combine {args.combine}",
             f"{'kernel':<14} {'dispatch':>12} {'combine':>12} {'NVLink MB':>10} {'network MB':>11} "
             f"{'nodes/token':>12} {'ranks/token':>12}"]
    for case, e in zip(req.cases, resp.estimates, strict=True):
        lines.append(f"{names[case.kernel]:<14} {fmt_time(e.dispatch_time_s):>12} {fmt_time(e.combine_time_s):>12} "
                     f"{e.dispatch_nvlink_bytes / 1e6:10.2f} {e.dispatch_network_bytes / 1e6:11.2f} "
                     f"{e.domains_per_token:12.2f} {e.ranks_per_token:12.2f}")
    return "\n".join(lines)
