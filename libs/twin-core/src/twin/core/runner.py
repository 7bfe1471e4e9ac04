"""The one way a service process runs: logging, OpenTelemetry, signals, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from twin.core.settings import Settings
from twin.core.telemetry import setup_telemetry

ServiceMain = Callable[[Settings, asyncio.Event], Awaitable[None]]


async def _serve(service: str, main: ServiceMain) -> None:
    settings = Settings.from_env(service)
    telemetry = setup_telemetry(service)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await main(settings, stop)
    finally:
        telemetry.shutdown()


def run_service(service: str, main: ServiceMain) -> None:
    """Run `main(settings, stop_event)` until SIGTERM/SIGINT sets the event and it returns."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(service, main))
