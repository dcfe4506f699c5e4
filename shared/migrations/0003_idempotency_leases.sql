-- Idempotency records get a lease (a claim whose turn died is taken over once it lapses), an expiry,
-- and the conversation they belong to (deleted with it). Records are short-lived replays, so the old
-- table is replaced rather than migrated.
DROP TABLE idempotency_keys;
CREATE TABLE idempotency_keys (
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    -- the canonical request the key was first used with
    request TEXT NOT NULL,
    conversation_id TEXT,
    status_code INTEGER,
    response TEXT,
    created_at TEXT NOT NULL,
    -- while no response is recorded, the claim is held until then
    lease_until TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_conversation ON idempotency_keys(conversation_id);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys(expires_at);
