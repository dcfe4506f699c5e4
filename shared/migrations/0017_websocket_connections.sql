-- WebSocket connections (API Gateway's connectionId, or the local adapter's): whose they are and
-- which session of theirs authorised them at `$connect`, so each later frame is checked against the
-- same session (logged out, deactivated → refused at once), and the inbound frame rate per second.
CREATE TABLE ws_connections (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    session_epoch INTEGER NOT NULL,
    connected_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    -- the second (Unix time) the frame count is for
    rate_second INTEGER NOT NULL DEFAULT 0,
    rate_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ws_connections_user ON ws_connections(user_id);
-- `$disconnect` is not guaranteed: rows not seen for longer than API Gateway keeps a connection
-- are swept.
CREATE INDEX ws_connections_last_seen ON ws_connections(last_seen_at);
