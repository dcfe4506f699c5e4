-- A project made from many files (a zip, an import) is written in bounded batches, each its own
-- short write, instead of one transaction holding the database's write lock for the whole archive:
-- it is `importing` (seen by no read) until its last batch lands. A run that dies part-way leaves
-- an `importing` project whose lease has run out; the sweep removes it with its blobs.
ALTER TABLE projects ADD COLUMN status TEXT NOT NULL DEFAULT 'ready'
    CHECK (status IN ('importing', 'ready'));
ALTER TABLE projects ADD COLUMN import_lease_until TEXT;
CREATE INDEX projects_importing ON projects(import_lease_until) WHERE status = 'importing';

-- Knowledge documents are written the same way (chunks in batches behind `indexing`); the sweep
-- finds the ones whose run died by their lease.
CREATE INDEX documents_indexing ON documents(index_lease_until) WHERE status = 'indexing';
