-- Resumable streams (issue 32): a streamed answer is stored as it grows, so any instance can send a
-- client what it missed and tail the rest.
--
-- One row per streamed answer (its id is the answer message's, known from the turn's start), and
-- its text in chunks, each holding the deltas `first_seq`..`last_seq` (numbered from 1 within the
-- answer, as the stream's `id:` fields are), starting at byte `start_at` of the answer, with where
-- each delta ends in the answer (`ends`, a JSON array of byte offsets), so a client that saw delta
-- N gets exactly what follows it. Each chunk is
-- one bounded write (at most 500 ms or 2 000 characters of deltas), which opens the stream too
-- (`answer_chunk_writes`); the last chunk goes in the statement that stores the answer itself, at
-- its end, as before (`messages_with_usage`). `stop` asks the turn to end its answer where it is.
CREATE TABLE answer_streams (
    message_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    stop INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE answer_chunks (
    message_id TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    start_at INTEGER NOT NULL,
    text TEXT NOT NULL,
    ends TEXT NOT NULL,
    written_at TEXT NOT NULL,
    PRIMARY KEY (message_id, last_seq)
) WITHOUT ROWID;

-- A conversation keeps the chunks of its answers until its next answer is stored (a client resuming
-- a finished answer finds them), and none once it is deleted.
CREATE TRIGGER answer_streams_finished AFTER INSERT ON messages
WHEN NEW.role = 'assistant'
BEGIN
    DELETE FROM answer_chunks WHERE message_id IN (
        SELECT s.message_id FROM answer_streams s
        WHERE s.conversation_id = NEW.conversation_id AND s.message_id <> NEW.id
          AND EXISTS (SELECT 1 FROM messages m WHERE m.id = s.message_id));
    DELETE FROM answer_streams
    WHERE conversation_id = NEW.conversation_id AND message_id <> NEW.id
      AND EXISTS (SELECT 1 FROM messages m WHERE m.id = answer_streams.message_id);
END;

CREATE TRIGGER answer_streams_conversation_deleted AFTER DELETE ON conversations
BEGIN
    DELETE FROM answer_chunks WHERE message_id IN (
        SELECT message_id FROM answer_streams WHERE conversation_id = OLD.id);
    DELETE FROM answer_streams WHERE conversation_id = OLD.id;
END;

-- A chunk's write, opening its stream the first time.
CREATE VIEW answer_chunk_writes AS
SELECT c.message_id, s.user_id, s.conversation_id, c.last_seq, c.first_seq, c.start_at, c.text,
       c.ends, c.written_at
FROM answer_chunks c JOIN answer_streams s ON s.message_id = c.message_id
WHERE 0;

CREATE TRIGGER answer_chunk_writes_insert INSTEAD OF INSERT ON answer_chunk_writes
BEGIN
    INSERT OR IGNORE INTO answer_streams (message_id, user_id, conversation_id, created_at)
    VALUES (NEW.message_id, NEW.user_id, NEW.conversation_id, NEW.written_at);
    INSERT OR IGNORE INTO answer_chunks (message_id, last_seq, first_seq, start_at, text, ends,
                                         written_at)
    VALUES (NEW.message_id, NEW.last_seq, NEW.first_seq, NEW.start_at, NEW.text, NEW.ends,
            NEW.written_at);
END;

-- The answer's statement takes its parent (`parent_seq`, migration 26) and stores its last chunk
-- (`final_chunk`, JSON: the deltas not yet stored), so a streamed answer costs no write at its end
-- beyond the answer's own.
DROP TRIGGER messages_with_usage_insert;
DROP VIEW messages_with_usage;

CREATE VIEW messages_with_usage AS
SELECT m.id, m.conversation_id, u.user_id, m.role, m.content, m.status, m.model, m.error,
       m.created_at, m.changes, m.agent_id, m.citations, m.tool_calls, m.fallback_from,
       m.parent_seq, NULL AS usage, NULL AS holds, NULL AS final_chunk
FROM messages m JOIN usage u ON u.message_id = m.id
WHERE 0;

CREATE TRIGGER messages_with_usage_insert INSTEAD OF INSERT ON messages_with_usage
BEGIN
    INSERT INTO messages (id, conversation_id, role, content, status, model, error, created_at,
                          changes, agent_id, citations, tool_calls, fallback_from, parent_seq)
    VALUES (NEW.id, NEW.conversation_id, NEW.role, NEW.content, NEW.status, NEW.model, NEW.error,
            NEW.created_at, NEW.changes, NEW.agent_id, NEW.citations, NEW.tool_calls,
            NEW.fallback_from, NEW.parent_seq);
    INSERT INTO usage (id, message_id, conversation_id, user_id, model, kind, input_tokens,
                       output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens,
                       cost_usd, created_at)
    SELECT json_extract(value, '$.id'), NEW.id, NEW.conversation_id, NEW.user_id,
           json_extract(value, '$.model'), json_extract(value, '$.kind'),
           json_extract(value, '$.input_tokens'), json_extract(value, '$.output_tokens'),
           json_extract(value, '$.cached_tokens'), json_extract(value, '$.cache_write_tokens'),
           json_extract(value, '$.reasoning_tokens'), json_extract(value, '$.cost_usd'),
           NEW.created_at
    FROM json_each(NEW.usage);
    DELETE FROM quota_holds WHERE id IN (SELECT value FROM json_each(COALESCE(NEW.holds, '[]')));
    INSERT INTO answer_chunk_writes (message_id, user_id, conversation_id, last_seq, first_seq,
                                     start_at, text, ends, written_at)
    SELECT NEW.id, NEW.user_id, NEW.conversation_id,
           json_extract(NEW.final_chunk, '$.last_seq'), json_extract(NEW.final_chunk, '$.first_seq'),
           json_extract(NEW.final_chunk, '$.start'), json_extract(NEW.final_chunk, '$.text'),
           json_extract(NEW.final_chunk, '$.ends'), NEW.created_at
    WHERE NEW.final_chunk IS NOT NULL;
END;
