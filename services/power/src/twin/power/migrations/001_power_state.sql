-- Power twin history: one row per entity (rack, PDU, UPS group, UPS, transformer, feed, site) per state
-- time, the PowerState exactly as published on power.state.v1 in `message` plus its main numbers as
-- columns for SQL and dashboards. Natural key (entity_id, time): rack rows are inserted with ON CONFLICT
-- DO NOTHING (a redelivered batch writes nothing); aggregate rows of the same tick are refined as more
-- racks of that tick arrive, so they use ON CONFLICT DO UPDATE (the latest evaluation of a tick wins;
-- replays write the same values). See twin.power.adapters.repository.
CREATE TABLE IF NOT EXISTS power_state (
    time                    timestamptz      NOT NULL,
    site_id                 text             NOT NULL,
    entity_id               text             NOT NULL,
    scope                   smallint         NOT NULL,   -- twin.power.v1.PowerScope
    input_power_w           double precision NOT NULL,
    output_power_w          double precision NOT NULL,
    loss_w                  double precision NOT NULL,
    rating_w                double precision NOT NULL,
    utilization             double precision NOT NULL,
    source                  smallint         NOT NULL,   -- twin.power.v1.ValueSource
    message                 bytea            NOT NULL,   -- twin.power.v1.PowerState
    PRIMARY KEY (entity_id, time)
);

CREATE INDEX IF NOT EXISTS power_state_site_scope_time_idx ON power_state (site_id, scope, time DESC);

-- The latest state of every entity (what gRPC state queries and a restarting process read): upserted
-- with the rows above, and only ever moved forward in time.
CREATE TABLE IF NOT EXISTS power_state_latest (
    entity_id text        PRIMARY KEY,
    site_id   text        NOT NULL,
    scope     smallint    NOT NULL,
    time      timestamptz NOT NULL,
    message   bytea       NOT NULL
);

CREATE INDEX IF NOT EXISTS power_state_latest_site_scope_idx ON power_state_latest (site_id, scope);
