-- Branches, and full-text search over history (issue 31).
--
-- Messages form a tree: `parent_seq` is the parent's seq, 0 for a root. Messages stored before this
-- migration keep NULL there: their conversations were flat lists, so each one's parent is the
-- message before it. Filling that in here would rewrite every message (about 7.6 s per million in a
-- SQLite copy, past the 5 s a remote store allows a write); it is filled per conversation instead,
-- when a conversation first branches (`conversations_branch` below).
--
-- A conversation is `branched` once it is more than one path. Until then every message is on its
-- path (`on_path` NULL). Once branched, `on_path` is 1 on the active path and 0 elsewhere, and the
-- active leaf is the path's newest message: a child is always stored after its parent, so a path in
-- seq order is the path from the root. Flat conversations (all of them at this migration) stay out
-- of both partial indexes below, so building them here costs nothing.
ALTER TABLE messages ADD COLUMN parent_seq INTEGER;
ALTER TABLE messages ADD COLUMN on_path INTEGER;
ALTER TABLE conversations ADD COLUMN branched INTEGER NOT NULL DEFAULT 0;

CREATE INDEX messages_children ON messages(conversation_id, parent_seq, seq)
    WHERE parent_seq IS NOT NULL;
CREATE INDEX messages_active_path ON messages(conversation_id, seq) WHERE on_path = 1;

-- Becoming a tree: the flat list is the active path, and each message stored before this migration
-- learns its parent (one statement over this conversation's messages only).
CREATE TRIGGER conversations_branch AFTER UPDATE OF branched ON conversations
WHEN OLD.branched = 0 AND NEW.branched = 1
BEGIN
    UPDATE messages SET parent_seq = COALESCE(
        (SELECT max(p.seq) FROM messages p WHERE p.conversation_id = NEW.id AND p.seq < messages.seq), 0)
    WHERE conversation_id = NEW.id AND parent_seq IS NULL;
    UPDATE messages SET on_path = 1 WHERE conversation_id = NEW.id AND on_path IS NULL;
END;

-- A new message becomes the active leaf when its parent is on the active path (or it is a root):
-- the path's messages after its parent leave the path. Under a message off the path it is stored
-- off the path too (the caller moves the path first when it means to answer there). The same
-- statement that stores the message does this, so a branch turn costs no more round trips than a
-- plain one. A message stored without a parent joins a flat conversation as the one after the last
-- (a copied share link's messages).
CREATE TRIGGER messages_active_path AFTER INSERT ON messages
BEGIN
    UPDATE conversations SET branched = 1
    WHERE id = NEW.conversation_id AND branched = 0 AND NEW.parent_seq IS NOT NULL
      AND NEW.parent_seq IS NOT COALESCE(
          (SELECT max(seq) FROM messages WHERE conversation_id = NEW.conversation_id AND seq < NEW.seq), 0);
    UPDATE messages SET on_path = 0
    WHERE conversation_id = NEW.conversation_id AND on_path = 1
      AND seq > NEW.parent_seq AND seq < NEW.seq
      AND (NEW.parent_seq = 0 OR EXISTS (SELECT 1 FROM messages p WHERE p.seq = NEW.parent_seq AND p.on_path = 1));
    UPDATE messages
    SET on_path = (NEW.parent_seq = 0
                   OR EXISTS (SELECT 1 FROM messages p WHERE p.seq = NEW.parent_seq AND p.on_path = 1))
    WHERE seq = NEW.seq AND (SELECT branched FROM conversations WHERE id = NEW.conversation_id) = 1;
END;

-- A conversation's first message is a root.
DROP TRIGGER conversation_starts_insert;
CREATE TRIGGER conversation_starts_insert INSTEAD OF INSERT ON conversation_starts
BEGIN
    INSERT INTO conversations (id, user_id, title, model, agent_id, project_id, created_at,
                               updated_at, activity_at)
    VALUES (NEW.conversation_id, NEW.user_id, NEW.title, NEW.model, NEW.agent_id, NEW.project_id,
            NEW.created_at, NEW.created_at, NEW.created_at);
    INSERT INTO messages (id, conversation_id, role, content, status, created_at, parent_seq)
    VALUES (NEW.message_id, NEW.conversation_id, 'user', NEW.content, 'complete', NEW.created_at, 0);
END;

-- The answer's statement (`messages_with_usage`) learns `parent_seq` in migration 27, which
-- recreates it once for both issues' columns.

-- Search over history: messages' text with their owner as one token of its own column, spelled as
-- the knowledge index spells it (`store::knowledge_search::owner_token`), so a search matches and
-- ranks the caller's messages only. The index reads its text from the messages (an external-content
-- table over this view), so no message's text is stored twice.
CREATE VIEW messages_fts_source AS
SELECT m.seq, m.content, replace(c.user_id, '-', '') || '0' AS owner_token
FROM messages m JOIN conversations c ON c.id = m.conversation_id;

CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, owner_token,
    content = 'messages_fts_source', content_rowid = 'seq', tokenize = 'porter unicode61'
);
INSERT INTO messages_fts (messages_fts, rank) VALUES ('rank', 'bm25(1.0, 0.0)');

-- Messages stored before this migration are indexed afterwards in bounded steps, as the knowledge
-- chunks were (migration 23): the index holds exactly the messages with `seq < next` or
-- `seq >= stop`.
CREATE TABLE messages_fts_backfill (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    next INTEGER NOT NULL,
    stop INTEGER NOT NULL
);
INSERT INTO messages_fts_backfill (only, next, stop)
SELECT 1, COALESCE(min(seq), 1), COALESCE(max(seq), 0) + 1 FROM messages;

CREATE TRIGGER messages_fts_backfill_step AFTER UPDATE OF next ON messages_fts_backfill
BEGIN
    INSERT INTO messages_fts (rowid, content, owner_token)
    SELECT seq, content, owner_token FROM messages_fts_source WHERE seq >= OLD.next AND seq < NEW.next;
END;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN NEW.seq < (SELECT next FROM messages_fts_backfill) OR NEW.seq >= (SELECT stop FROM messages_fts_backfill)
BEGIN
    INSERT INTO messages_fts (rowid, content, owner_token)
    SELECT seq, content, owner_token FROM messages_fts_source WHERE seq = NEW.seq;
END;

-- Removing an entry needs the text and owner it was indexed with. A conversation's messages leave
-- the index just before the conversation goes (its delete cascades to them after, when the owner can
-- no longer be read); a message deleted on its own leaves it when its conversation is still there.
CREATE TRIGGER conversations_fts_delete BEFORE DELETE ON conversations
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content, owner_token)
    SELECT 'delete', m.seq, m.content, replace(OLD.user_id, '-', '') || '0'
    FROM messages m
    WHERE m.conversation_id = OLD.id
      AND (m.seq < (SELECT next FROM messages_fts_backfill) OR m.seq >= (SELECT stop FROM messages_fts_backfill));
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN (OLD.seq < (SELECT next FROM messages_fts_backfill) OR OLD.seq >= (SELECT stop FROM messages_fts_backfill))
     AND EXISTS (SELECT 1 FROM conversations WHERE id = OLD.conversation_id)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content, owner_token)
    SELECT 'delete', OLD.seq, OLD.content, replace(user_id, '-', '') || '0'
    FROM conversations WHERE id = OLD.conversation_id;
END;

-- Share links: a snapshot of a conversation's active path, read without signing in by its token.
-- The messages are copied, so later turns and edits never change what a link shows. Revoking
-- deletes the share; so does deleting the conversation (its owner means it gone). The token is kept
-- so the owner can copy the link again: it opens only what the snapshot already holds.
CREATE TABLE shares (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    token TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    message_count INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX shares_conversation ON shares(conversation_id, created_at);

CREATE TABLE share_messages (
    share_id TEXT NOT NULL REFERENCES shares(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (share_id, position)
) WITHOUT ROWID;

-- A share's messages go with it (revoked, or its conversation deleted).
CREATE TRIGGER shares_delete AFTER DELETE ON shares
BEGIN
    DELETE FROM share_messages WHERE share_id = OLD.id;
END;
