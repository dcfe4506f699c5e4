-- Conversations started through the OpenAI-compatible endpoint: kept out of the conversation list
-- by default (`?source=api` lists them), so scripted calls do not clutter the app.
CREATE TABLE api_conversations (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL
);
CREATE INDEX api_conversations_user ON api_conversations(user_id);
