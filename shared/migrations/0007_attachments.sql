-- Files a user uploads, to send to a model with a chat message. The bytes live in the blob store
-- under a key made from the user and the attachment id; a row is `pending` from a presigned upload
-- until it is completed (checked), then `ready`. A ready attachment joins at most one message.
CREATE TABLE attachments (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL CHECK (size >= 0),
    sha256 TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ready')),
    conversation_id TEXT,
    message_id TEXT,
    created_at TEXT NOT NULL,
    -- a pending upload's deadline; the sweep removes rows (and blobs) past it
    expires_at TEXT
);
CREATE INDEX attachments_user ON attachments(user_id, id DESC);
CREATE INDEX attachments_message ON attachments(message_id) WHERE message_id IS NOT NULL;
CREATE INDEX attachments_conversation ON attachments(conversation_id) WHERE conversation_id IS NOT NULL;
CREATE INDEX attachments_pending ON attachments(expires_at) WHERE status = 'pending';
