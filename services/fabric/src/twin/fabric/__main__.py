"""`python -m twin.fabric`: run the fabric service until SIGTERM/SIGINT (graceful stop).

FABRIC_CONSUME=0 runs the gRPC server only (no Kafka, no database). See twin.fabric.app for settings.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from twin.core.settings import Settings
from twin.core.telemetry import setup_telemetry
from twin.fabric.app import SERVICE, FabricApp, FabricConfig


async def main() -> None:
    settings = Settings.from_env(SERVICE)
    telemetry = setup_telemetry(SERVICE)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await FabricApp(FabricConfig.from_settings(settings)).run(stop)
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main())
