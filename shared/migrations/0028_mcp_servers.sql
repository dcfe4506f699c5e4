-- Users' MCP tool servers (Streamable HTTP). `headers_sealed` holds the request headers (API keys,
-- bearer tokens) as one AES-256-GCM message (`shared/src/sealed.rs`), bound to the row's id and
-- owner, so a sealed value copied into another row does not open; `header_names` (a JSON list) is
-- what the API shows of them. A server's name is how agents name it (`mcp:<name>`), one per user.
CREATE TABLE mcp_servers (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    header_names TEXT NOT NULL DEFAULT '[]',
    headers_sealed BLOB,
    created_at TEXT NOT NULL,
    UNIQUE (user_id, name)
);
