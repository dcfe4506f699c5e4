-- A run that unpacks a completed project upload first claims it until this time (past the
-- worker's timeout), so two deliveries of its event, or a retried completion beside the worker,
-- never unpack it twice; a run that died leaves a claim that simply expires.
ALTER TABLE attachments ADD COLUMN unpack_lease_until TEXT;
