-- With TimescaleDB: cooling_state becomes a hypertable (1-day chunks), compressed after 7 days
-- (segmented by entity, newest first) and dropped after 90 days.
SELECT create_hypertable('cooling_state', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE,
                         migrate_data => TRUE);
ALTER TABLE cooling_state SET (timescaledb.compress, timescaledb.compress_segmentby = 'entity_id',
                               timescaledb.compress_orderby = 'time DESC');
SELECT add_compression_policy('cooling_state', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('cooling_state', INTERVAL '90 days', if_not_exists => TRUE);
