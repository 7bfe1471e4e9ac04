-- With TimescaleDB: job_state becomes a hypertable (1-day chunks), compressed after 7 days (segmented by job,
-- newest first) and dropped after 180 days.
SELECT create_hypertable('job_state', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE job_state SET (timescaledb.compress, timescaledb.compress_segmentby = 'job_id',
                           timescaledb.compress_orderby = 'time DESC');
SELECT add_compression_policy('job_state', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('job_state', INTERVAL '180 days', if_not_exists => TRUE);
