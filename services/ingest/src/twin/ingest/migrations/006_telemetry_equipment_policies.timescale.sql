-- With TimescaleDB: telemetry_equipment becomes a hypertable (1-day chunks), compressed after 7 days
-- (segmented by equipment) and dropped after 90 days.
SELECT create_hypertable('telemetry_equipment', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE,
                         migrate_data => TRUE);
ALTER TABLE telemetry_equipment SET (timescaledb.compress, timescaledb.compress_segmentby = 'equipment_id',
                                     timescaledb.compress_orderby = 'time DESC');
SELECT add_compression_policy('telemetry_equipment', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_equipment', INTERVAL '90 days', if_not_exists => TRUE);
