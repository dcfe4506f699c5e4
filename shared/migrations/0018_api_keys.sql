-- Personal API keys (`cc_` + 32 random bytes, base64url). Only a SHA-256 of the key is kept: keys
-- are high-entropy, so a fast hash is right. `prefix` (the key's first 12 characters) finds the row
-- in one indexed read; the hash is then compared in constant time.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    last_used_at TEXT
);
CREATE INDEX api_keys_user_created ON api_keys(user_id, created_at DESC, id DESC);
