-- ingest owns the raw telemetry tables (DESIGN §5). Float columns are NULL where the source had no
-- measurement (NaN on the wire, e.g. a DCGM field missing from a scrape). Plain tables here; 002_*.timescale.sql turns them
-- into hypertables when the timescaledb extension is present.

CREATE TABLE IF NOT EXISTS telemetry_gpu (
    time            timestamptz      NOT NULL,
    rack_id         text             NOT NULL,
    node_id         text             NOT NULL,
    gpu_index       smallint         NOT NULL,
    power_w         double precision,
    gpu_temp_c      double precision,
    mem_temp_c      double precision,
    sm_clock_mhz    double precision,
    mem_clock_mhz   double precision,
    util_gpu_pct    double precision,
    util_mem_pct    double precision,
    sm_active       double precision,
    tensor_active   double precision,
    dram_active     double precision,
    xid_errors      bigint           NOT NULL,
    ecc_sbe_total   bigint           NOT NULL,
    ecc_dbe_total   bigint           NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_gpu_node_time ON telemetry_gpu (node_id, gpu_index, time DESC);
CREATE INDEX IF NOT EXISTS telemetry_gpu_rack_time ON telemetry_gpu (rack_id, time DESC);

CREATE TABLE IF NOT EXISTS telemetry_rack (
    time                  timestamptz      NOT NULL,
    rack_id               text             NOT NULL,
    pdu_l1_power_w        double precision,            -- NULL when the rack has fewer phases or the
                                                       -- feed gave only a total
    pdu_l2_power_w        double precision,
    pdu_l3_power_w        double precision,
    inlet_air_temp_c      double precision,
    outlet_air_temp_c     double precision,
    coolant_supply_temp_c double precision,
    coolant_return_temp_c double precision,
    coolant_flow_lpm      double precision,
    pdu_input_power_w     double precision             -- total input: sum of phases, or the feed's total
);
CREATE INDEX IF NOT EXISTS telemetry_rack_rack_time ON telemetry_rack (rack_id, time DESC);

CREATE TABLE IF NOT EXISTS telemetry_link (
    time        timestamptz NOT NULL,
    rack_id     text        NOT NULL,
    port_id     text        NOT NULL,
    tx_bytes    bigint      NOT NULL,
    rx_bytes    bigint      NOT NULL,
    tx_errors   bigint      NOT NULL,
    rx_errors   bigint      NOT NULL,
    link_state  smallint    NOT NULL    -- twin.telemetry.v1.LinkState
);
CREATE INDEX IF NOT EXISTS telemetry_link_port_time ON telemetry_link (port_id, time DESC);
-- One text B-tree only: the port is the link table's entity and port ids start with their rack id.
-- Rack-wide time ranges use a cheap BRIN on time. (A 350k-row INSERT was 27 % faster without the
-- second text B-tree; the ingest bench showed no measurable change, its link COPY cost lies elsewhere.)
CREATE INDEX IF NOT EXISTS telemetry_link_time_brin ON telemetry_link USING brin (time);

-- The batch ledger: one row per stored RackTelemetryBatch. Inserted in the same transaction as the
-- batch's sample rows, so a redelivered or duplicated batch finds its row and is skipped
-- (exactly-once effect on the tables under at-least-once delivery).
CREATE TABLE IF NOT EXISTS telemetry_batches (
    rack_id          text        NOT NULL,
    sample_time      timestamptz NOT NULL,
    sequence         bigint      NOT NULL,
    ce_id            text        NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    gpu_rows         integer     NOT NULL,
    ingested_time    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rack_id, sample_time, sequence)
);
CREATE INDEX IF NOT EXISTS telemetry_batches_ingested ON telemetry_batches (ingested_time);
