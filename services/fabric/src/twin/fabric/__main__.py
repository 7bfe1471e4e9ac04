"""`python -m twin.fabric`: run the fabric service until SIGTERM/SIGINT (graceful stop).

FABRIC_CONSUME=0 runs the gRPC server only (no Kafka, no database). See twin.fabric.app for settings.
"""

from twin.core.runner import run_service
from twin.fabric.app import SERVICE, FabricApp, FabricConfig

if __name__ == "__main__":
    run_service(SERVICE, lambda settings, stop: FabricApp(FabricConfig.from_settings(settings)).run(stop))
