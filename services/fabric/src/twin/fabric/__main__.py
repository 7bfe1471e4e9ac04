"""`python -m twin.fabric`: the fabric twin (live link state + FabricSimulationService over gRPC).

Runs until SIGTERM/SIGINT, then drains (gRPC NOT_SERVING, consumers commit and leave). FABRIC_CONSUME=0
runs the gRPC server only (no Kafka, no database).
"""

from twin.core.runner import run_service
from twin.fabric.app import SERVICE, FabricApp, FabricConfig

if __name__ == "__main__":
    run_service(SERVICE, FabricConfig, lambda cfg, stop: FabricApp(cfg).run(stop), __doc__)
