-- Fallbacks and what usage rows carry (issue 30).
--
-- The model a turn asked for, on an answer another model gave because that one's provider failed
-- before answering (its `fallbacks`); NULL for every other message. `model` is the one that answered.
ALTER TABLE messages ADD COLUMN fallback_from TEXT;

-- What the provider reported beyond input and output, where it does: input tokens written to its
-- prompt cache (a part of input_tokens, priced at the catalog's cache-write rate) and reasoning
-- tokens (a part of output_tokens, priced as output).
ALTER TABLE usage ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER messages_with_usage_insert;
DROP VIEW messages_with_usage;

CREATE VIEW messages_with_usage AS
SELECT m.id, m.conversation_id, u.user_id, m.role, m.content, m.status, m.model, m.error,
       m.created_at, m.changes, m.agent_id, m.citations, m.tool_calls, m.fallback_from,
       NULL AS usage, NULL AS holds
FROM messages m JOIN usage u ON u.message_id = m.id
WHERE 0;

CREATE TRIGGER messages_with_usage_insert INSTEAD OF INSERT ON messages_with_usage
BEGIN
    INSERT INTO messages (id, conversation_id, role, content, status, model, error, created_at,
                          changes, agent_id, citations, tool_calls, fallback_from)
    VALUES (NEW.id, NEW.conversation_id, NEW.role, NEW.content, NEW.status, NEW.model, NEW.error,
            NEW.created_at, NEW.changes, NEW.agent_id, NEW.citations, NEW.tool_calls,
            NEW.fallback_from);
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
END;
