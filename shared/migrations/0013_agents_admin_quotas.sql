-- Agents: a user's configured assistants. Conversations and answers name them by id without a
-- foreign key, so deleting an agent leaves history readable (new turns on it are refused).
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    system_prompt TEXT NOT NULL,
    model TEXT NOT NULL,
    temperature REAL,
    max_tokens INTEGER,
    -- a JSON array of tool names
    tools TEXT NOT NULL DEFAULT '[]',
    knowledge INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX agents_user_created ON agents(user_id, created_at DESC, id DESC);

-- A running turn's reservation of its maximum cost. The answer's statement deletes it; a turn
-- whose process died leaves one that stops counting at `expires_at`.
CREATE TABLE quota_holds (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    day TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX quota_holds_user_day ON quota_holds(user_id, day, expires_at);

-- The agent in force when an answer was made.
ALTER TABLE messages ADD COLUMN agent_id TEXT;

DROP TRIGGER messages_with_usage_insert;
DROP VIEW messages_with_usage;

-- `holds` is a JSON array of the turn's quota hold ids: the answer settles them in its statement.
CREATE VIEW messages_with_usage AS
SELECT m.id, m.conversation_id, u.user_id, m.role, m.content, m.status, m.model, m.error,
       m.created_at, m.changes, m.agent_id, NULL AS usage, NULL AS holds
FROM messages m JOIN usage u ON u.message_id = m.id
WHERE 0;

CREATE TRIGGER messages_with_usage_insert INSTEAD OF INSERT ON messages_with_usage
BEGIN
    INSERT INTO messages (id, conversation_id, role, content, status, model, error, created_at,
                          changes, agent_id)
    VALUES (NEW.id, NEW.conversation_id, NEW.role, NEW.content, NEW.status, NEW.model, NEW.error,
            NEW.created_at, NEW.changes, NEW.agent_id);
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

-- Tokens (input + output) billed to each user per UTC day, kept by a trigger on usage so that the
-- quota check reads one row instead of summing the day's usage.
CREATE TABLE token_days (
    user_id TEXT NOT NULL,
    day TEXT NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (user_id, day)
) WITHOUT ROWID;

INSERT INTO token_days (user_id, day, used)
SELECT user_id, substr(created_at, 1, 10), SUM(input_tokens + output_tokens)
FROM usage GROUP BY user_id, substr(created_at, 1, 10);

CREATE TRIGGER usage_counts_tokens AFTER INSERT ON usage
BEGIN
    INSERT INTO token_days (user_id, day, used)
    VALUES (NEW.user_id, substr(NEW.created_at, 1, 10), NEW.input_tokens + NEW.output_tokens)
    ON CONFLICT (user_id, day) DO UPDATE SET used = used + excluded.used;
END;

-- Turns started per user per minute (the optional rate limit).
CREATE TABLE turn_rate (
    user_id TEXT NOT NULL,
    minute TEXT NOT NULL,
    turns INTEGER NOT NULL,
    PRIMARY KEY (user_id, minute)
) WITHOUT ROWID;

-- What admins did: who, what, to what, when.
CREATE TABLE admin_audit (
    id TEXT PRIMARY KEY,
    actor_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT,
    target_id TEXT,
    details TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX admin_audit_created ON admin_audit(created_at DESC, id DESC);

-- The usage report: whole UTC days come from this rollup (one row per day, user and model, kept by
-- triggers equal to the usage rows, deletions included), the partial days at a window's ends from
-- the usage rows through a covering index. Its cost follows the groups, not the rows.
CREATE TABLE usage_days (
    day TEXT NOT NULL,
    user_id TEXT NOT NULL,
    model TEXT NOT NULL,
    calls INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    PRIMARY KEY (day, user_id, model)
) WITHOUT ROWID;

INSERT INTO usage_days
SELECT substr(created_at, 1, 10), user_id, model, COUNT(*), SUM(input_tokens), SUM(output_tokens),
       SUM(cached_tokens), SUM(cost_usd)
FROM usage GROUP BY 1, 2, 3;

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

-- A deleted conversation's usage leaves the report (as its rows leave the table); it stays billed
-- against the day's budget (token_days), or deleting would give budget back.
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

CREATE INDEX usage_report ON usage(created_at, user_id, model, input_tokens, output_tokens,
                                   cached_tokens, cost_usd);

-- The admin's user list, newest first.
CREATE INDEX users_created ON users(created_at DESC, id DESC);
