-- Resumable streams (issue 32): a streamed answer is stored as it grows, so any instance can send a
-- client what it missed and tail the rest.
--
-- One row per streamed answer (its id is the answer message's, known from the turn's start), and
-- its text in chunks, each holding the deltas `first_seq`..`last_seq` (numbered from 1 within the
-- answer, as the stream's `id:` fields are), starting at byte `start_at` of the answer, with where
-- each delta ends in the answer (`ends`, a JSON array of byte offsets), so a client that saw delta
-- N gets exactly what follows it. Each chunk is
-- one bounded write (at most 500 ms or 2 000 characters of deltas); the answer itself is stored
-- once, at its end, as before. `stop` asks the turn to end its answer where it is.
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
