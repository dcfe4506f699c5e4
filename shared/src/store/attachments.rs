//! Attachments: a file's metadata; its bytes are in the blob store.

use super::{col, collect, first, Conn, Row, StoreResult};
use crate::{
    ids::{AttachmentId, ConversationId, MessageId, ProjectId, UserId},
    kinds::{AttachmentStatus, UploadPurpose},
};

#[derive(Debug, Clone)]
pub struct Attachment {
    pub id: AttachmentId,
    pub user_id: UserId,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: Option<String>,
    pub status: AttachmentStatus,
    pub conversation_id: Option<ConversationId>,
    pub message_id: Option<MessageId>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub purpose: UploadPurpose,
    /// A project upload unpacked after its completion: the project it became…
    pub project_id: Option<ProjectId>,
    /// …or why it was refused.
    pub unpack_error: Option<String>,
}

pub struct NewAttachment<'a> {
    pub id: AttachmentId,
    pub user_id: UserId,
    pub filename: &'a str,
    pub content_type: &'a str,
    pub size: i64,
    /// Known for an inline upload (hashed on the way in); a presigned one learns it at completion.
    pub sha256: Option<&'a str>,
    pub status: AttachmentStatus,
    pub expires_at: Option<&'a str>,
    pub purpose: UploadPurpose,
}

const COLUMNS: &str = "id, user_id, filename, content_type, size, sha256, status, conversation_id, message_id, created_at, expires_at, purpose, project_id, unpack_error";

fn attachment_from_row(row: &Row) -> StoreResult<Attachment> {
    Ok(Attachment {
        id: col(row, 0, "attachments.id")?,
        user_id: col(row, 1, "attachments.user_id")?,
        filename: col(row, 2, "attachments.filename")?,
        content_type: col(row, 3, "attachments.content_type")?,
        size: col(row, 4, "attachments.size")?,
        sha256: col(row, 5, "attachments.sha256")?,
        status: col(row, 6, "attachments.status")?,
        conversation_id: col(row, 7, "attachments.conversation_id")?,
        message_id: col(row, 8, "attachments.message_id")?,
        created_at: col(row, 9, "attachments.created_at")?,
        expires_at: col(row, 10, "attachments.expires_at")?,
        purpose: col(row, 11, "attachments.purpose")?,
        project_id: col(row, 12, "attachments.project_id")?,
        unpack_error: col(row, 13, "attachments.unpack_error")?,
    })
}

/// `?n, ?n+1, …` for `count` values starting at parameter `from`.
fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Conn {
    /// Stores an attachment's row (its declared size counts at once), unless the user's files
    /// would then take more than `storage_cap` bytes ([`super::StoreError::StorageFull`]).
    pub async fn insert_attachment(
        &self,
        new: NewAttachment<'_>,
        storage_cap: u64,
    ) -> StoreResult<Attachment> {
        let used = super::user_storage_bytes("?2");
        let rows = self
            .query(
                &format!(
                    "INSERT INTO attachments (id, user_id, filename, content_type, size, sha256, status, created_at, expires_at, purpose)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE {used} + ?5 <= ?11
                     RETURNING {COLUMNS}"
                ),
                libsql::params![
                    new.id,
                    new.user_id,
                    new.filename,
                    new.content_type,
                    new.size,
                    new.sha256,
                    new.status.as_str(),
                    crate::ids::now(),
                    new.expires_at,
                    new.purpose.as_str(),
                    storage_cap.min(i64::MAX as u64) as i64
                ],
            )
            .await?;
        first(rows, attachment_from_row)?
            .ok_or(super::StoreError::StorageFull { limit: storage_cap })
    }

    /// The attachment if it exists and belongs to `user_id`.
    pub async fn attachment(
        &self,
        id: AttachmentId,
        user_id: UserId,
    ) -> StoreResult<Option<Attachment>> {
        let rows = self
            .query(
                &format!("SELECT {COLUMNS} FROM attachments WHERE id = ?1 AND user_id = ?2"),
                libsql::params![id, user_id],
            )
            .await?;
        first(rows, attachment_from_row)
    }

    /// Newest first; `after` is the id of the last item of the previous page (ids are time-ordered).
    pub async fn list_attachments(
        &self,
        user_id: UserId,
        after: Option<AttachmentId>,
        limit: u32,
    ) -> StoreResult<Vec<Attachment>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM attachments
                     WHERE user_id = ?1 AND purpose = 'attachment' AND (?2 IS NULL OR id < ?2)
                     ORDER BY id DESC LIMIT ?3"
                ),
                libsql::params![user_id, after, limit as i64 + 1],
            )
            .await?;
        collect(rows, attachment_from_row)
    }

    /// Marks a pending upload ready with what its bytes turned out to be; `None` if it is not a
    /// pending upload of `user_id` (already completed, or not theirs).
    pub async fn complete_attachment(
        &self,
        id: AttachmentId,
        user_id: UserId,
        sha256: &str,
    ) -> StoreResult<Option<Attachment>> {
        let rows = self
            .query(
                &format!(
                    "UPDATE attachments SET status = 'ready', sha256 = ?3, expires_at = NULL
                     WHERE id = ?1 AND user_id = ?2 AND status = 'pending' RETURNING {COLUMNS}"
                ),
                libsql::params![id, user_id, sha256],
            )
            .await?;
        first(rows, attachment_from_row)
    }

    /// Deletes the row and answers what it was, so the caller removes the blob it names.
    pub async fn delete_attachment(
        &self,
        id: AttachmentId,
        user_id: UserId,
    ) -> StoreResult<Option<Attachment>> {
        let rows = self
            .query(
                &format!(
                    "DELETE FROM attachments WHERE id = ?1 AND user_id = ?2 RETURNING {COLUMNS}"
                ),
                libsql::params![id, user_id],
            )
            .await?;
        first(rows, attachment_from_row)
    }

    /// Claims a completed project upload for unpacking until `until`: `false` when it is already
    /// unpacked or refused, or another run holds a claim that has not expired.
    pub async fn claim_unpack(
        &self,
        id: AttachmentId,
        now: &str,
        until: &str,
    ) -> StoreResult<bool> {
        let n = self
            .execute(
                "UPDATE attachments SET unpack_lease_until = ?3
                 WHERE id = ?1 AND purpose = 'project' AND status = 'ready'
                   AND project_id IS NULL AND unpack_error IS NULL
                   AND (unpack_lease_until IS NULL OR unpack_lease_until < ?2)",
                libsql::params![id, now, until],
            )
            .await?;
        Ok(n > 0)
    }

    /// Gives a claim back (the run failed for a reason that is not the archive's).
    pub async fn release_unpack(&self, id: AttachmentId) -> StoreResult<()> {
        self.execute(
            "UPDATE attachments SET unpack_lease_until = NULL WHERE id = ?1",
            [id],
        )
        .await?;
        Ok(())
    }

    /// Records how unpacking a completed project upload ended, once: `false` if it was recorded
    /// before (a repeated event).
    pub async fn record_unpack(
        &self,
        id: AttachmentId,
        project_id: Option<ProjectId>,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        let n = self
            .execute(
                "UPDATE attachments SET project_id = ?2, unpack_error = ?3
                 WHERE id = ?1 AND purpose = 'project' AND project_id IS NULL AND unpack_error IS NULL",
                libsql::params![id, project_id, error],
            )
            .await?;
        Ok(n > 0)
    }

    /// Completed project uploads, any user's, started before `started_before` and neither
    /// unpacked nor refused, that no run holds now (no claim, or one that ran out before `now`):
    /// work whose worker event was lost or whose runs all died. Oldest first.
    pub async fn stuck_unpacks(
        &self,
        started_before: &str,
        now: &str,
        limit: u32,
    ) -> StoreResult<Vec<Attachment>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM attachments
                     WHERE purpose = 'project' AND status = 'ready'
                       AND project_id IS NULL AND unpack_error IS NULL
                       AND created_at < ?1
                       AND (unpack_lease_until IS NULL OR unpack_lease_until < ?2)
                     ORDER BY created_at LIMIT ?3"
                ),
                libsql::params![started_before, now, limit as i64],
            )
            .await?;
        collect(rows, attachment_from_row)
    }

    /// Pending uploads past their deadline, any user's, oldest first: the sweep's work list.
    pub async fn expired_uploads(&self, now: &str, limit: u32) -> StoreResult<Vec<Attachment>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM attachments
                     WHERE status = 'pending' AND expires_at < ?1 ORDER BY expires_at LIMIT ?2"
                ),
                libsql::params![now, limit as i64],
            )
            .await?;
        collect(rows, attachment_from_row)
    }

    /// Removes an expired pending row; `false` if it was completed or removed meanwhile.
    pub async fn delete_expired_upload(&self, id: AttachmentId, now: &str) -> StoreResult<bool> {
        let n = self
            .execute(
                "DELETE FROM attachments WHERE id = ?1 AND status = 'pending' AND expires_at < ?2",
                libsql::params![id, now],
            )
            .await?;
        Ok(n > 0)
    }

    /// The given attachments of `user_id`, in any state (the caller checks each).
    pub async fn attachments_by_ids(
        &self,
        user_id: UserId,
        ids: &[AttachmentId],
    ) -> StoreResult<Vec<Attachment>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut params: Vec<libsql::Value> = vec![user_id.into()];
        params.extend(ids.iter().map(|&id| libsql::Value::from(id)));
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM attachments WHERE user_id = ?1 AND id IN ({})",
                    placeholders(2, ids.len())
                ),
                params,
            )
            .await?;
        collect(rows, attachment_from_row)
    }

    /// Joins ready, unattached attachments of `user_id` to a message; answers how many joined (a
    /// concurrent turn may have taken one first).
    pub async fn attach_to_message(
        &self,
        user_id: UserId,
        ids: &[AttachmentId],
        conversation_id: ConversationId,
        message_id: MessageId,
    ) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut params: Vec<libsql::Value> =
            vec![user_id.into(), conversation_id.into(), message_id.into()];
        params.extend(ids.iter().map(|&id| libsql::Value::from(id)));
        self.execute(
            &format!(
                "UPDATE attachments SET conversation_id = ?2, message_id = ?3
                 WHERE user_id = ?1 AND status = 'ready' AND message_id IS NULL
                   AND purpose = 'attachment' AND id IN ({})",
                placeholders(4, ids.len())
            ),
            params,
        )
        .await
    }

    /// Every attachment of a conversation: deleting it removes their rows and blobs too.
    pub async fn attachments_of_conversation(
        &self,
        conversation_id: ConversationId,
    ) -> StoreResult<Vec<Attachment>> {
        let rows = self
            .query(
                &format!("SELECT {COLUMNS} FROM attachments WHERE conversation_id = ?1"),
                libsql::params![conversation_id],
            )
            .await?;
        collect(rows, attachment_from_row)
    }
}
