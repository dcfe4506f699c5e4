-- A presigned upload can carry a project's zip as well as an attachment: one pending-upload
-- machinery (the URL, the completion checks, the expiry sweep), told apart so that a zip never
-- lists, reads or goes to a model as an attachment.
ALTER TABLE attachments ADD COLUMN purpose TEXT NOT NULL DEFAULT 'attachment'
    CHECK (purpose IN ('attachment', 'project'));
