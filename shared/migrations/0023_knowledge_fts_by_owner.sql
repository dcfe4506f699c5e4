-- The full-text index learns each chunk's owner, so that a search counts and matches words among
-- the user's own chunks only: term statistics over all users let one user's uploads drop a word from
-- everyone's search, and let anyone probe which words are common in others' documents.
--
-- The owner is one token in a column of its own. The user id's dashes are removed (unicode61 would
-- cut it into five tokens) and a digit ends it: the porter stemmer rewrites only letter endings
-- ("ed", "e", ...), so a token ending in a digit is indexed and matched exactly as written, and two
-- users' tokens can never stem alike. `store::knowledge_search::owner_token` spells it the same way.
ALTER TABLE chunks ADD COLUMN owner_token TEXT
    GENERATED ALWAYS AS (replace(user_id, '-', '') || '0') VIRTUAL;

DROP TRIGGER chunks_fts_insert;
DROP TRIGGER chunks_fts_delete;
DROP TABLE chunks_fts;

CREATE VIRTUAL TABLE chunks_fts USING fts5(
    heading, content, owner_token,
    content = 'chunks', content_rowid = 'id', tokenize = 'porter unicode61'
);
-- A heading match weighs double; the owner token, which every match holds, weighs nothing.
INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('rank', 'bm25(2.0, 1.0, 0.0)');

-- Rebuilding the index in this migration would hold the write lock for about 3 s per 100k chunks,
-- and a remote store interrupts a write held for 5 s. So the chunks already stored are indexed
-- afterwards in bounded steps (`Conn::index_backfill_step`), lowest id first. The index holds
-- exactly the chunks with `id < next` or `id >= stop`: the triggers below keep that range in step,
-- and each step moves `next` up and indexes what it passed over in the same statement.
CREATE TABLE chunks_fts_backfill (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    next INTEGER NOT NULL,
    stop INTEGER NOT NULL
);
INSERT INTO chunks_fts_backfill (only, next, stop)
SELECT 1, COALESCE(min(id), 1), COALESCE(max(id), 0) + 1 FROM chunks;

CREATE TRIGGER chunks_fts_backfill_step AFTER UPDATE OF next ON chunks_fts_backfill
BEGIN
    INSERT INTO chunks_fts (rowid, heading, content, owner_token)
    SELECT id, heading, content, owner_token FROM chunks WHERE id >= OLD.next AND id < NEW.next;
END;

CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks
WHEN NEW.id < (SELECT next FROM chunks_fts_backfill) OR NEW.id >= (SELECT stop FROM chunks_fts_backfill)
BEGIN
    INSERT INTO chunks_fts (rowid, heading, content, owner_token)
    VALUES (NEW.id, NEW.heading, NEW.content, NEW.owner_token);
END;

CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks
WHEN OLD.id < (SELECT next FROM chunks_fts_backfill) OR OLD.id >= (SELECT stop FROM chunks_fts_backfill)
BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, heading, content, owner_token)
    VALUES ('delete', OLD.id, OLD.heading, OLD.content, OLD.owner_token);
END;
