"""The one way a service process runs: settings, `--help`, logging, OpenTelemetry, signals, exit code.

    # services/<name>/src/twin/<pkg>/__main__.py
    run_service("fabric", FabricConfig, lambda cfg, stop: FabricApp(cfg).run(stop), __doc__)

`python -m twin.<pkg> --help` prints the doc and every setting (variable, default, help; secrets
masked). A malformed setting exits with status 2 and names the variable. SIGTERM/SIGINT set the stop
event; the service drains (twin.core.service) and the process exits 0. A service that fails exits 1
after logging why, so a supervisor (make run, compose, Kubernetes) restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from twin.core.settings import ServiceConfig, SettingError, describe, load_config
from twin.core.telemetry import setup_telemetry

C = TypeVar("C", bound=ServiceConfig)
log = logging.getLogger("twin.core.runner")


def usage(service: str, config_cls: type[ServiceConfig], doc: str | None) -> str:
    head = (doc or "").strip()
    return (f"{head}\n\nusage: python -m twin.{service.replace('-', '_')} [--help]\n\n"
            f"Settings (environment variables; OTEL_* configure OpenTelemetry):\n"
            f"{describe(config_cls, service)}\n")


async def _serve(service: str, config: C, main: Callable[[C, asyncio.Event], Awaitable[None]]) -> None:
    telemetry = setup_telemetry(service)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await main(config, stop)
    finally:
        telemetry.shutdown()


def run_service(service: str, config_cls: type[C], main: Callable[[C, asyncio.Event], Awaitable[None]],
                doc: str | None = None, argv: Sequence[str] | None = None,
                parse: Callable[[list[str]], C] | None = None) -> None:
    """Parse settings, then run `main(config, stop_event)` until it returns; exits the process.

    A service with command-line flags passes `parse(argv) -> config` (it reads the environment
    itself, e.g. with `load_config`, and handles --help); the others take settings from the
    environment only."""
    args = list(sys.argv[1:] if argv is None else argv)
    if parse is not None:
        try:
            config = parse(args)
        except (SettingError, ValueError) as exc:
            print(f"{service}: bad setting: {exc}", file=sys.stderr)
            sys.exit(2)
        _start(service, config, main)
        return
    if any(a in ("-h", "--help") for a in args):
        print(usage(service, config_cls, doc))
        sys.exit(0)
    if args:
        print(f"unexpected arguments {args}; settings come from the environment (see --help)", file=sys.stderr)
        sys.exit(2)
    try:
        config = load_config(config_cls, service)
    except (SettingError, ValueError) as exc:
        print(f"{service}: bad setting: {exc}", file=sys.stderr)
        sys.exit(2)
    _start(service, config, main)


def _start(service: str, config: C, main: Callable[[C, asyncio.Event], Awaitable[None]]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(service, config, main))
    except Exception:
        log.exception("%s failed", service)
        sys.exit(1)
