-- Runs once when the TimescaleDB container initializes its data directory (docker-entrypoint-initdb.d).
-- Services create their own tables through their migrations; this only makes sure the extension is there.
CREATE EXTENSION IF NOT EXISTS timescaledb;
