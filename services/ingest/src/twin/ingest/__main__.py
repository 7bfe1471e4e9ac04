"""`python -m twin.ingest`: run the ingest service until SIGTERM/SIGINT (graceful stop)."""

from twin.core.runner import run_service
from twin.ingest.app import SERVICE, IngestApp, IngestConfig

if __name__ == "__main__":
    run_service(SERVICE, lambda settings, stop: IngestApp(IngestConfig.from_settings(settings)).run(stop))
