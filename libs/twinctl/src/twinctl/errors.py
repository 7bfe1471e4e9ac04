"""Errors that say what to fix: a gRPC failure becomes one line naming the twin, the address tried and
the flag or environment variable that changes it (the stack, `make run`, prints every port and token)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import grpc

EXIT_CODES = {grpc.StatusCode.INVALID_ARGUMENT: 2, grpc.StatusCode.NOT_FOUND: 3}


def explain(exc: grpc.RpcError, twin: str, target: str, env: str, timeout_s: float | None = None) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    name = code.name if code is not None else "ERROR"
    if code == grpc.StatusCode.UNAVAILABLE:
        return (f"twinctl: cannot reach the {twin} twin at {target} ({details}). Is the stack running? "
                f"`make run` prints each twin's gRPC port; point twinctl at it with --target HOST:PORT or {env}.")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return (f"twinctl: the {twin} twin at {target} refused the token ({details}). Pass --token or set "
                f"TWINCTL_TOKEN to the stack's token (`make run` prints TWINCTL_TOKEN=...).")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return (f"twinctl: the {twin} twin at {target} did not answer within "
                f"{'--timeout ' + format(timeout_s, 'g') + ' s' if timeout_s else 'the deadline'}; raise --timeout, "
                f"or check that {target} is the {twin} twin's gRPC port.")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return (f"twinctl: {name}: {details} (the {twin} twin has no data for this yet: is the facility simulator "
                f"or telemetry running?)")
    return f"twinctl: {name}: {details}"


def exit_code(exc: grpc.RpcError) -> int:
    return EXIT_CODES.get(exc.code(), 1) if hasattr(exc, "code") else 1


def run_against_twin(args: argparse.Namespace, open_channel: Callable[[str, argparse.Namespace], grpc.Channel], *,
                     twin: str, env: str, default_target: str, stub: Callable[[grpc.Channel], Any],
                     command: Callable[[argparse.Namespace, Any], str],
                     refused: tuple[type[Exception], ...] = ()) -> int:
    """One twinctl command against a twin's gRPC: the target from --target, then ``env``, then the default;
    the command's output printed; a gRPC error explained (exit 2 for INVALID_ARGUMENT, 3 NOT_FOUND, else 1);
    a ValueError (a refused sweep point, nothing to plot) printed as one line (exit 2 for ``refused`` kinds)."""
    target = args.target or os.environ.get(env) or default_target
    with open_channel(target, args) as channel:
        try:
            print(command(args, stub(channel)))
        except grpc.RpcError as exc:
            print(explain(exc, twin, target, env, args.timeout), file=sys.stderr)
            return exit_code(exc)
        except ValueError as exc:
            print(f"twinctl: {exc}", file=sys.stderr)
            return 2 if isinstance(exc, refused) else 1
    return 0
