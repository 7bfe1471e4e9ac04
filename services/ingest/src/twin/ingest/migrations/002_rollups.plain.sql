-- Without TimescaleDB: the same rollup names as plain views over date_bin (computed at query time).

CREATE OR REPLACE VIEW telemetry_gpu_1m AS
SELECT date_bin('1 minute', time, TIMESTAMPTZ '2000-01-01') AS bucket, rack_id, node_id, gpu_index,
       avg(power_w) AS power_w_avg, max(power_w) AS power_w_max,
       avg(gpu_temp_c) AS gpu_temp_c_avg, max(gpu_temp_c) AS gpu_temp_c_max,
       max(mem_temp_c) AS mem_temp_c_max, avg(util_gpu_pct) AS util_gpu_pct_avg,
       avg(tensor_active) AS tensor_active_avg, count(*) AS samples
FROM telemetry_gpu GROUP BY 1, 2, 3, 4;

CREATE OR REPLACE VIEW telemetry_gpu_1h AS
SELECT date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01') AS bucket, rack_id, node_id, gpu_index,
       avg(power_w) AS power_w_avg, max(power_w) AS power_w_max,
       avg(gpu_temp_c) AS gpu_temp_c_avg, max(gpu_temp_c) AS gpu_temp_c_max,
       max(mem_temp_c) AS mem_temp_c_max, avg(util_gpu_pct) AS util_gpu_pct_avg,
       avg(tensor_active) AS tensor_active_avg, count(*) AS samples
FROM telemetry_gpu GROUP BY 1, 2, 3, 4;

CREATE OR REPLACE VIEW telemetry_rack_1m AS
SELECT date_bin('1 minute', time, TIMESTAMPTZ '2000-01-01') AS bucket, rack_id,
       avg(pdu_input_power_w) AS pdu_power_w_avg,
       max(pdu_input_power_w) AS pdu_power_w_max,
       avg(inlet_air_temp_c) AS inlet_air_temp_c_avg, avg(coolant_supply_temp_c) AS coolant_supply_temp_c_avg,
       avg(coolant_return_temp_c) AS coolant_return_temp_c_avg, avg(coolant_flow_lpm) AS coolant_flow_lpm_avg,
       count(*) AS samples
FROM telemetry_rack GROUP BY 1, 2;

CREATE OR REPLACE VIEW telemetry_rack_1h AS
SELECT date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01') AS bucket, rack_id,
       avg(pdu_input_power_w) AS pdu_power_w_avg,
       max(pdu_input_power_w) AS pdu_power_w_max,
       avg(inlet_air_temp_c) AS inlet_air_temp_c_avg, avg(coolant_supply_temp_c) AS coolant_supply_temp_c_avg,
       avg(coolant_return_temp_c) AS coolant_return_temp_c_avg, avg(coolant_flow_lpm) AS coolant_flow_lpm_avg,
       count(*) AS samples
FROM telemetry_rack GROUP BY 1, 2;
