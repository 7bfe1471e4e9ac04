"""`python -m twin.ingest`: rack telemetry ingestion (facility feeds, DCGM scrapes, Redfish push).

Runs until SIGTERM/SIGINT, then drains: the HTTP receiver stops, the consumer finishes its batch,
commits and leaves its group.
"""

from twin.core.runner import run_service
from twin.ingest.app import SERVICE, IngestApp, IngestConfig

if __name__ == "__main__":
    run_service(SERVICE, IngestConfig, lambda cfg, stop: IngestApp(cfg).run(stop), __doc__)
