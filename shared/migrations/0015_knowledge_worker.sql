-- A document whose text is too large to index inside the request that adds it waits as `indexing`
-- (its text in the blob store) until a worker indexes it; a failed run leaves `failed` and why.
-- A run claims the document until `index_lease_until` (past the worker's timeout), so two
-- deliveries of its event never index it twice, and a run that died leaves a claim that expires.
ALTER TABLE documents ADD COLUMN status TEXT NOT NULL DEFAULT 'ready'
    CHECK (status IN ('indexing', 'ready', 'failed'));
ALTER TABLE documents ADD COLUMN error TEXT;
ALTER TABLE documents ADD COLUMN index_lease_until TEXT;
