-- A digest of each stored batch's record value (issue 8: a re-sent Redfish report with a corrected
-- value was dropped as a duplicate with no record of it). A batch that arrives again under a stored
-- natural key (rack_id, sample_time, sequence) is compared by digest: the same digest is a plain
-- re-send (counted as a duplicate, dropped); a different digest carries other values and is
-- dead-lettered with a "conflict:" reason, so the correction is recorded, never silently lost.
-- NULL for batches stored before this migration: those conflicts count as plain duplicates.
ALTER TABLE telemetry_batches ADD COLUMN IF NOT EXISTS content_digest text;
