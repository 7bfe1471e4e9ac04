-- Issue 13, plain PostgreSQL. Rack-wide time ranges are served by a BRIN on time, not a text B-tree:
-- the B-tree telemetry_gpu (rack_id, time DESC) took every GPU row into a randomly-placed leaf page
-- (COPY of 50k GPU rows: 301 ms with it, 221 ms with a BRIN instead, same box). History by
-- (node_id, gpu_index, time) keeps its B-tree; a rack's GPUs are its nodes' GPUs.
DROP INDEX IF EXISTS telemetry_gpu_rack_time;
CREATE INDEX IF NOT EXISTS telemetry_gpu_time_brin ON telemetry_gpu USING brin (time);
CREATE INDEX IF NOT EXISTS telemetry_link_sample_time_brin ON telemetry_link_sample USING brin (time);
