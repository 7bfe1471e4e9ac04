"""`python -m twin.ingest`: run the ingest service until SIGTERM/SIGINT (graceful stop)."""

from __future__ import annotations

import asyncio
import logging
import signal

from twin.core.settings import Settings
from twin.core.telemetry import setup_telemetry
from twin.ingest.app import SERVICE, IngestApp, IngestConfig


async def main() -> None:
    settings = Settings.from_env(SERVICE)
    telemetry = setup_telemetry(SERVICE)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await IngestApp(IngestConfig.from_settings(settings)).run(stop)
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main())
