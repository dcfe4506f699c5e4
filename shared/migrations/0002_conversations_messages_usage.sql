CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    model TEXT NOT NULL,
    agent_id TEXT,
    project_id TEXT,
    summary TEXT,
    -- messages with seq <= summary_through_seq are covered by the summary
    summary_through_seq INTEGER,
    message_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_message_at TEXT,
    -- the list's sort key: last_message_at, or created_at before the first message
    activity_at TEXT NOT NULL
);
CREATE INDEX conversations_user_activity ON conversations(user_id, activity_at DESC, id DESC);

-- seq (the rowid) orders messages; ids are for clients.
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('complete', 'incomplete', 'failed')),
    model TEXT,
    error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX messages_conversation ON messages(conversation_id, seq);

CREATE TABLE usage (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('chat', 'summary')),
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX usage_message ON usage(message_id);
CREATE INDEX usage_conversation ON usage(conversation_id, model);
CREATE INDEX usage_user_time ON usage(user_id, created_at);

-- One row per (user, Idempotency-Key): the request it was first used with and, once the turn
-- is over, the answer to replay.
CREATE TABLE idempotency_keys (
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request TEXT NOT NULL,
    status_code INTEGER,
    response TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);
