"""`python -m twin.power`: the power twin (live power state, alerts, curtailment plans, PowerService over
gRPC, OpenADR 3 events over HTTP when POWER_OPENADR_TOKEN is set).

Runs until SIGTERM/SIGINT, then drains (gRPC NOT_SERVING, HTTP closed, consumers commit and leave).
POWER_CONSUME=0 runs the servers only (no Kafka consumers, no database).
"""

from twin.core.runner import run_service
from twin.power.app import SERVICE, PowerApp, PowerConfig

if __name__ == "__main__":
    run_service(SERVICE, PowerConfig, lambda cfg, stop: PowerApp(cfg).run(stop), __doc__)
