-- Live link health of the scale-out fabric, one row per link per change (fabric service).
-- Idempotent sink: the natural key (link_id, time) with ON CONFLICT DO NOTHING on insert.
-- Becomes a hypertable (compression, retention) where TimescaleDB is present: see
-- twin.fabric.adapters.repository.FabricStateRepository.setup (twin.core.db.ensure_hypertable).
CREATE TABLE IF NOT EXISTS fabric_state (
    time              timestamptz      NOT NULL,
    site_id           text             NOT NULL,
    link_id           text             NOT NULL,
    capacity_fraction double precision NOT NULL CHECK (capacity_fraction >= 0 AND capacity_fraction <= 1),
    utilization       double precision NOT NULL CHECK (utilization >= 0 AND utilization <= 1),
    flapping          boolean          NOT NULL,
    PRIMARY KEY (link_id, time)
);

CREATE INDEX IF NOT EXISTS fabric_state_site_time_idx ON fabric_state (site_id, time DESC);
