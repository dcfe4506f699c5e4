-- A project zip too large to unpack inside the completing request is unpacked afterwards (by the
-- unpacker worker, or a background task locally); its upload row records how that ended, for the
-- status URL: the new project, or why it was refused.
ALTER TABLE attachments ADD COLUMN project_id TEXT;
ALTER TABLE attachments ADD COLUMN unpack_error TEXT;
