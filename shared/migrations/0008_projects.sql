-- Code workspaces. A project's files are rows keyed by their normalised path: text files keep
-- their content here (the tree, search and the coding agent read it), binaries live in the blob
-- store under a key made from ids. The project's counters move with its files in the same
-- statement (triggers), so a listing never disagrees with the files.
CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    file_count INTEGER NOT NULL DEFAULT 0,
    total_bytes INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX projects_user ON projects(user_id, id DESC);

CREATE TABLE project_files (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    size INTEGER NOT NULL CHECK (size >= 0),
    sha256 TEXT NOT NULL,
    -- exactly one of the two: the text, or where the bytes are
    text TEXT,
    blob_key TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (project_id, path),
    CHECK ((text IS NULL) != (blob_key IS NULL))
) WITHOUT ROWID;

CREATE TRIGGER project_files_added AFTER INSERT ON project_files BEGIN
    UPDATE projects SET file_count = file_count + 1, total_bytes = total_bytes + NEW.size,
        updated_at = NEW.updated_at
    WHERE id = NEW.project_id;
END;
CREATE TRIGGER project_files_changed AFTER UPDATE ON project_files BEGIN
    UPDATE projects SET total_bytes = total_bytes - OLD.size + NEW.size, updated_at = NEW.updated_at
    WHERE id = NEW.project_id;
END;
CREATE TRIGGER project_files_removed AFTER DELETE ON project_files BEGIN
    UPDATE projects SET file_count = file_count - 1, total_bytes = total_bytes - OLD.size,
        updated_at = strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')
    WHERE id = OLD.project_id;
END;
