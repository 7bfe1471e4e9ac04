"""`python -m twin.jobs`: the job twin (every training job's predicted vs measured step time, throughput, power,
goodput, risks and recommendations from scheduler events and the fabric, power and cooling twins; JobService over
gRPC; optionally follows a live Slurm through slurmrestd).

Runs until SIGTERM/SIGINT, then drains (gRPC NOT_SERVING, consumers commit and leave).
JOBS_CONSUME=0 runs gRPC only (no Kafka consumers, no database).
"""

from twin.core.runner import run_service
from twin.jobs.app import SERVICE, JobsApp, JobsConfig

if __name__ == "__main__":
    run_service(SERVICE, JobsConfig, lambda cfg, stop: JobsApp(cfg).run(stop), __doc__)
