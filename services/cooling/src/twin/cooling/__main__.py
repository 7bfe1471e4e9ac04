"""`python -m twin.cooling`: the cooling twin (live cooling state from the plant to the cold plate,
time-to-throttle and suspect-sensor alerts, CoolingService over gRPC).

Runs until SIGTERM/SIGINT, then drains (gRPC NOT_SERVING, consumers commit and leave).
COOLING_CONSUME=0 runs the gRPC server only (no Kafka consumers, no database).
"""

from twin.cooling.app import SERVICE, CoolingApp, CoolingConfig
from twin.core.runner import run_service

if __name__ == "__main__":
    run_service(SERVICE, CoolingConfig, lambda cfg, stop: CoolingApp(cfg).run(stop), __doc__)
