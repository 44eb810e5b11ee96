-- The alerts rules read, per batch, every alert of the subjects the batch's events name (any
-- rule): an index led by the subject, so that read does not scan the whole table.
create index alerts_v1_by_subject_any_rule on alerts_v1 (subject, status);
