-- Job twin history: one row per job per published state (jobs.state.v1), the JobState exactly as published in
-- `message` plus its main numbers as columns for SQL and dashboards. Natural key (job_id, time): rows are
-- inserted with ON CONFLICT DO NOTHING, so a redelivered batch or a replay writes nothing twice.
-- See twin.jobs.adapters.repository.
CREATE TABLE IF NOT EXISTS job_state (
    time                    timestamptz      NOT NULL,
    job_id                  text             NOT NULL,
    status                  smallint         NOT NULL,   -- twin.jobs.v1.JobStatus
    n_gpus                  integer          NOT NULL,
    predicted_step_time_s   double precision NOT NULL,
    measured_step_time_s    double precision NOT NULL,
    step_time_error_ratio   double precision NOT NULL,
    predicted_tokens_per_s  double precision NOT NULL,
    mfu                     double precision NOT NULL,
    power_w                 double precision NOT NULL,
    goodput_fraction        double precision NOT NULL,
    energy_j                double precision NOT NULL,
    risk_flags              smallint         NOT NULL,   -- how many
    message                 bytea            NOT NULL,   -- twin.jobs.v1.JobState
    PRIMARY KEY (job_id, time)
);

-- The latest state of every job (what gRPC queries and a restarting process read): upserted with the rows
-- above, and only ever moved forward in time.
CREATE TABLE IF NOT EXISTS job_state_latest (
    job_id  text        PRIMARY KEY,
    status  smallint    NOT NULL,
    time    timestamptz NOT NULL,
    message bytea       NOT NULL
);

CREATE INDEX IF NOT EXISTS job_state_latest_status_idx ON job_state_latest (status, job_id);
