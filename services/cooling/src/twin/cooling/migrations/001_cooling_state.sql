-- Cooling twin history: one row per entity (rack, CDU, loop, CRAH, air group, plant = site id) per state
-- time, the CoolingState exactly as published on cooling.state.v1 in `message` plus its main numbers as
-- columns for SQL and dashboards. Natural key (entity_id, time), written ON CONFLICT DO NOTHING: a
-- redelivered batch writes nothing (each tick is evaluated once, see twin.cooling.adapters.stream).
CREATE TABLE IF NOT EXISTS cooling_state (
    time                 timestamptz      NOT NULL,
    site_id              text             NOT NULL,
    entity_id            text             NOT NULL,
    scope                smallint         NOT NULL,   -- twin.cooling.v1.CoolingScope
    heat_w               double precision,            -- rack IT heat, CDU / CRAH heat removed, loop / group heat,
                                                      -- plant heat load
    temp_c               double precision,            -- rack coolant, CDU / loop supply, CRAH supply air,
                                                      -- plant facility supply
    power_w              double precision,            -- pump / fan power; plant: cooling power (for PUE)
    time_to_throttle_s   double precision,            -- racks: NULL when none within the horizon
    source               smallint         NOT NULL,   -- twin.cooling.v1.ValueSource
    message              bytea            NOT NULL,   -- twin.cooling.v1.CoolingState
    PRIMARY KEY (entity_id, time)
);

CREATE INDEX IF NOT EXISTS cooling_state_site_scope_time_idx ON cooling_state (site_id, scope, time DESC);

-- The latest state of every entity (gRPC GetState, a restarting process): upserted with the rows
-- above and only ever moved forward in time.
CREATE TABLE IF NOT EXISTS cooling_state_latest (
    entity_id text        PRIMARY KEY,
    site_id   text        NOT NULL,
    scope     smallint    NOT NULL,
    time      timestamptz NOT NULL,
    message   bytea       NOT NULL
);

CREATE INDEX IF NOT EXISTS cooling_state_latest_site_scope_idx ON cooling_state_latest (site_id, scope);

-- The equipment conditions in force per site (what cooling.events.v1 built: CDUs / CRAHs / plant units
-- up, pump flow factors, setpoints, ambient) and the time of the last event applied per entity, so a
-- restarted process neither forgets a failure nor accepts an event for the past. Written before the
-- events' offsets are committed.
CREATE TABLE IF NOT EXISTS cooling_conditions (
    site_id      text        PRIMARY KEY,
    time         timestamptz NOT NULL,
    conditions   jsonb       NOT NULL,
    event_times  jsonb       NOT NULL
);
