-- Admins' changes to catalog entries (`PATCH /admin/models/{id}`): a partial entry merged over the
-- deployment's catalog (built-in and MODELS_FILE) as the file's entries are, by every instance
-- within about a second. `changes` is a JSON object of `enabled`, `pricing` and `fallbacks`.
CREATE TABLE model_settings (
    id TEXT PRIMARY KEY,
    changes TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
