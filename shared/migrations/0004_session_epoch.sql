-- Every token carries the epoch it was issued under; bumping it (password change, "log out
-- everywhere", deactivation) ends every outstanding token of the user at once.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
