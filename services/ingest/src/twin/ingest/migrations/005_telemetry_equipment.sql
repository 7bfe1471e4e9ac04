-- Cooling equipment telemetry (issue 10 item 3): one row per CDU, CRAH or plant (equipment_id = site id)
-- per sample time, from facility.telemetry.v1 equipment batches (protobuf) and Redfish
-- ThermalEquipment/CDUs resources. NULL = not measured. Natural key (equipment_id, time): a redelivered
-- or re-sent batch writes nothing (ON CONFLICT DO NOTHING).
CREATE TABLE IF NOT EXISTS telemetry_equipment (
    time                        timestamptz      NOT NULL,
    site_id                     text             NOT NULL,
    equipment_id                text             NOT NULL,
    kind                        text             NOT NULL CHECK (kind IN ('cdu', 'crah', 'plant')),
    source                      text             NOT NULL,
    supply_temp_c               double precision,   -- CDU secondary supply; CRAH supply air
    return_temp_c               double precision,   -- CDU secondary return; CRAH return air
    flow_lpm                    double precision,   -- CDU secondary flow
    primary_supply_temp_c       double precision,   -- CDU facility-water side
    primary_return_temp_c       double precision,
    primary_flow_lpm            double precision,
    differential_pressure_kpa   double precision,
    speed_pct                   double precision,   -- CDU pump; CRAH fan
    heat_removed_w              double precision,   -- the CDU's own heat figure
    outdoor_temp_c              double precision,   -- plant: dry bulb
    wet_bulb_temp_c             double precision,
    tower_power_w               double precision,
    chiller_power_w             double precision,
    PRIMARY KEY (equipment_id, time)
);
CREATE INDEX IF NOT EXISTS telemetry_equipment_site_kind_time ON telemetry_equipment (site_id, kind, time DESC);
