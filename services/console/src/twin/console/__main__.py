"""`python -m twin.console`: the live web console of the twin (read-only), on http://127.0.0.1:8080/ by default.

A floor plan of halls and racks coloured by power, temperature or time-to-throttle, the power chain
with headroom, the cooling plant and CDUs, jobs, alerts, plans and recommendations as they arrive, and
charts of site power and PUE from the database. Runs until SIGTERM/SIGINT, then drains (the page's
event streams end, the Kafka tails stop).
"""

from twin.console.app import SERVICE, ConsoleApp, ConsoleConfig
from twin.core.runner import run_service

if __name__ == "__main__":
    run_service(SERVICE, ConsoleConfig, lambda cfg, stop: ConsoleApp(cfg).run(stop), __doc__)
