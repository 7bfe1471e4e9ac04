-- Issue 13, TimescaleDB, after 011_link_rack_arrays: telemetry_link_rack becomes a hypertable like the table it
-- replaces (008: 1-day chunks, compressed after 2 days segmented by its key, dropped after 30 days); its
-- chunks carry the hypertable's default (time DESC) index. No rollups exist over links.
SELECT create_hypertable('telemetry_link_rack', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE,
                         migrate_data => TRUE);
ALTER TABLE telemetry_link_rack SET (timescaledb.compress, timescaledb.compress_segmentby = 'set_key',
                                     timescaledb.compress_orderby = 'time DESC');
SELECT add_compression_policy('telemetry_link_rack', INTERVAL '2 days', if_not_exists => TRUE);
SELECT add_retention_policy('telemetry_link_rack', INTERVAL '30 days', if_not_exists => TRUE);
