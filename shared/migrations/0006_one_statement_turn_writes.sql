-- A chat turn's writes as single statements, so each is one round trip to a remote libSQL server
-- (every statement is one, and a transaction adds BEGIN and COMMIT) and atomic without a
-- transaction: triggers do the rest of the write inside the statement.

-- Every stored message moves its conversation's counters and activity.
CREATE TRIGGER messages_bump_conversation AFTER INSERT ON messages
BEGIN
    UPDATE conversations
    SET message_count = message_count + 1,
        last_message_at = NEW.created_at,
        activity_at = NEW.created_at,
        updated_at = NEW.created_at
    WHERE id = NEW.conversation_id;
END;

-- A new conversation with its first (user) message.
CREATE VIEW conversation_starts AS
SELECT c.id AS conversation_id, c.user_id, c.title, c.model, c.agent_id, c.project_id,
       m.id AS message_id, m.content, m.created_at
FROM conversations c JOIN messages m ON m.conversation_id = c.id
WHERE 0;

CREATE TRIGGER conversation_starts_insert INSTEAD OF INSERT ON conversation_starts
BEGIN
    INSERT INTO conversations (id, user_id, title, model, agent_id, project_id, created_at,
                               updated_at, activity_at)
    VALUES (NEW.conversation_id, NEW.user_id, NEW.title, NEW.model, NEW.agent_id, NEW.project_id,
            NEW.created_at, NEW.created_at, NEW.created_at);
    INSERT INTO messages (id, conversation_id, role, content, status, created_at)
    VALUES (NEW.message_id, NEW.conversation_id, 'user', NEW.content, 'complete', NEW.created_at);
END;

-- A message with the usage rows billed to it: `usage` is a JSON array of
-- {id, model, kind, input_tokens, output_tokens, cached_tokens, cost_usd}.
CREATE VIEW messages_with_usage AS
SELECT m.id, m.conversation_id, u.user_id, m.role, m.content, m.status, m.model, m.error,
       m.created_at, NULL AS usage
FROM messages m JOIN usage u ON u.message_id = m.id
WHERE 0;

CREATE TRIGGER messages_with_usage_insert INSTEAD OF INSERT ON messages_with_usage
BEGIN
    INSERT INTO messages (id, conversation_id, role, content, status, model, error, created_at)
    VALUES (NEW.id, NEW.conversation_id, NEW.role, NEW.content, NEW.status, NEW.model, NEW.error,
            NEW.created_at);
    INSERT INTO usage (id, message_id, conversation_id, user_id, model, kind, input_tokens,
                       output_tokens, cached_tokens, cost_usd, created_at)
    SELECT json_extract(value, '$.id'), NEW.id, NEW.conversation_id, NEW.user_id,
           json_extract(value, '$.model'), json_extract(value, '$.kind'),
           json_extract(value, '$.input_tokens'), json_extract(value, '$.output_tokens'),
           json_extract(value, '$.cached_tokens'), json_extract(value, '$.cost_usd'),
           NEW.created_at
    FROM json_each(NEW.usage);
END;
