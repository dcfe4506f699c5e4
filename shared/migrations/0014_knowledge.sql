-- Knowledge: a user's documents, cut into chunks that carry their position and heading path.
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    -- the embedder whose vectors the chunks hold (vectors of two embedders are not comparable)
    embedder TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX documents_user_created ON documents(user_id, created_at DESC, id DESC);

-- `user_id` is copied onto each chunk so that retrieval filters by owner inside the query, in the
-- same statement that ranks, for full-text and vector search alike.
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    ord INTEGER NOT NULL,
    heading TEXT NOT NULL,
    content TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    -- 256 dimensions: the offline embedder's size, and a size Titan v2 and OpenAI's
    -- text-embedding-3 models produce on request (`dimensions`).
    embedding F32_BLOB(256)
);
CREATE INDEX chunks_document ON chunks(document_id, ord);
CREATE INDEX chunks_user ON chunks(user_id);
-- DiskANN tuned for insertion: neighbours compressed to float8, 48 of them, a shorter insert
-- search. Measured on 20k random 256-d vectors (the hardest case): the default options insert 98
-- rows/s with recall@10 0.80 and a 9.5 ms query; these insert 471/s, recall@10 0.77, 5.8 ms.
-- (float16 neighbours insert at 87/s; 16 neighbours at 795/s but recall 0.42.)
CREATE INDEX chunks_embedding ON chunks(libsql_vector_idx(embedding, 'metric=cosine',
    'max_neighbors=48', 'compress_neighbors=float8', 'insert_l=40'));

-- Porter stemming over unicode61: questions are prose ("indexing" should find "indexed"); trigram
-- would find substrings but triples the index and does not stem. Code search is the projects'.
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    heading, content, content = 'chunks', content_rowid = 'id', tokenize = 'porter unicode61'
);

-- `ORDER BY rank` lets FTS5 order its own matches (faster than bm25() in ORDER BY); a heading
-- match weighs double.
INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('rank', 'bm25(2.0, 1.0)');

-- Terms and the number of chunks holding each: a search leaves out words that are everywhere.
CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');

CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks
BEGIN
    INSERT INTO chunks_fts (rowid, heading, content) VALUES (NEW.id, NEW.heading, NEW.content);
END;

CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks
BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, heading, content)
    VALUES ('delete', OLD.id, OLD.heading, OLD.content);
END;

-- The sources an answer was given (JSON array of citations), shown with the message.
ALTER TABLE messages ADD COLUMN citations TEXT;

DROP TRIGGER messages_with_usage_insert;
DROP VIEW messages_with_usage;

-- Embedding calls are billed as usage rows too: kind `embedding`, with the document they indexed
-- (or none, for a query) instead of a message and conversation. SQLite cannot change a column's
-- constraints, so the table is rebuilt with its indexes and triggers.
CREATE TABLE usage_rebuilt (
    id TEXT PRIMARY KEY,
    message_id TEXT,
    conversation_id TEXT,
    user_id TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('chat', 'summary', 'embedding')),
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    created_at TEXT NOT NULL,
    document_id TEXT,
    CHECK ((kind = 'embedding') OR (message_id IS NOT NULL AND conversation_id IS NOT NULL))
);
INSERT INTO usage_rebuilt (id, message_id, conversation_id, user_id, model, kind, input_tokens,
                           output_tokens, cached_tokens, cost_usd, created_at)
SELECT id, message_id, conversation_id, user_id, model, kind, input_tokens, output_tokens,
       cached_tokens, cost_usd, created_at
FROM usage;
DROP TABLE usage;
ALTER TABLE usage_rebuilt RENAME TO usage;
CREATE INDEX usage_message ON usage(message_id);
CREATE INDEX usage_conversation ON usage(conversation_id, model);
CREATE INDEX usage_user_time ON usage(user_id, created_at);
CREATE INDEX usage_report ON usage(created_at, user_id, model, input_tokens, output_tokens,
                                   cached_tokens, cost_usd);

CREATE TRIGGER usage_counts_tokens AFTER INSERT ON usage
BEGIN
    INSERT INTO token_days (user_id, day, used)
    VALUES (NEW.user_id, substr(NEW.created_at, 1, 10), NEW.input_tokens + NEW.output_tokens)
    ON CONFLICT (user_id, day) DO UPDATE SET used = used + excluded.used;
END;

CREATE TRIGGER usage_days_insert AFTER INSERT ON usage
BEGIN
    INSERT INTO usage_days
    VALUES (substr(NEW.created_at, 1, 10), NEW.user_id, NEW.model, 1, NEW.input_tokens,
            NEW.output_tokens, NEW.cached_tokens, NEW.cost_usd)
    ON CONFLICT (day, user_id, model) DO UPDATE SET
        calls = calls + 1,
        input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cached_tokens = cached_tokens + excluded.cached_tokens,
        cost_usd = cost_usd + excluded.cost_usd;
END;

CREATE TRIGGER usage_days_delete AFTER DELETE ON usage
BEGIN
    UPDATE usage_days SET
        calls = calls - 1,
        input_tokens = input_tokens - OLD.input_tokens,
        output_tokens = output_tokens - OLD.output_tokens,
        cached_tokens = cached_tokens - OLD.cached_tokens,
        cost_usd = cost_usd - OLD.cost_usd
    WHERE day = substr(OLD.created_at, 1, 10) AND user_id = OLD.user_id AND model = OLD.model;
    DELETE FROM usage_days
    WHERE day = substr(OLD.created_at, 1, 10) AND user_id = OLD.user_id AND model = OLD.model
      AND calls <= 0;
END;

CREATE VIEW messages_with_usage AS
SELECT m.id, m.conversation_id, u.user_id, m.role, m.content, m.status, m.model, m.error,
       m.created_at, m.changes, m.agent_id, m.citations, NULL AS usage, NULL AS holds
FROM messages m JOIN usage u ON u.message_id = m.id
WHERE 0;

CREATE TRIGGER messages_with_usage_insert INSTEAD OF INSERT ON messages_with_usage
BEGIN
    INSERT INTO messages (id, conversation_id, role, content, status, model, error, created_at,
                          changes, agent_id, citations)
    VALUES (NEW.id, NEW.conversation_id, NEW.role, NEW.content, NEW.status, NEW.model, NEW.error,
            NEW.created_at, NEW.changes, NEW.agent_id, NEW.citations);
    INSERT INTO usage (id, message_id, conversation_id, user_id, model, kind, input_tokens,
                       output_tokens, cached_tokens, cost_usd, created_at)
    SELECT json_extract(value, '$.id'), NEW.id, NEW.conversation_id, NEW.user_id,
           json_extract(value, '$.model'), json_extract(value, '$.kind'),
           json_extract(value, '$.input_tokens'), json_extract(value, '$.output_tokens'),
           json_extract(value, '$.cached_tokens'), json_extract(value, '$.cost_usd'),
           NEW.created_at
    FROM json_each(NEW.usage);
    DELETE FROM quota_holds WHERE id IN (SELECT value FROM json_each(COALESCE(NEW.holds, '[]')));
END;
