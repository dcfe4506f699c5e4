//! Attachments: files a user uploads to send to a model with a chat message.
//!
//! Two ways in, one result. Small files come inline (multipart, streamed to the blob store while
//! hashed and sniffed). Larger ones are PUT by the client to a presigned S3 URL (or, on the local
//! store, to a signed URL of the attachments function itself, so clients use one flow everywhere)
//! and then completed: the object is checked (exists, size, type sniffed from its first bytes,
//! sha256) before the attachment is `ready`. Whatever fails, nothing is kept: a blob written for
//! a refused upload is removed, and pending uploads that are never completed expire.

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::{
    auth::tokens::{TokenKeys, UploadGrant},
    blobs::{BlobError, BlobKey, BlobReader, BlobStore, BlobWriter},
    config::UploadConfig,
    error::{Error, FieldError, FieldErrors, Result},
    ids::{AttachmentId, UserId},
    kinds::{AttachmentStatus, UploadPurpose},
    pagination::{Page, Paginated},
    store::{Attachment, Conn, NewAttachment},
};

mod download;
mod for_message;
mod upload;
pub use download::*;
pub use for_message::*;
pub use upload::*;

/// The longest filename kept, in characters (display data only: the blob key never uses it).
/// How many leading bytes decide a file's type.
const SNIFF_BYTES: usize = 1024;
/// Pending uploads whose URL expired are swept a little later, so a PUT still in flight at the
/// deadline can be completed.
const UPLOAD_GRACE: Duration = Duration::from_secs(15 * 60);
/// Expired uploads removed per sweep: sweeps ride on new uploads and stay cheap.
const SWEEP_BATCH: u32 = 10;

/// Upload limits and the allowed types, from the configuration.
#[derive(Debug, Clone)]
pub struct UploadRules {
    pub max_inline_bytes: u64,
    pub max_upload_bytes: u64,
    pub allowed_types: Vec<String>,
    pub url_ttl: Duration,
    pub purpose: UploadPurpose,
    /// What the user may store in all; an upload past it is a 413 `storage-quota`.
    pub max_user_bytes: u64,
}

impl From<&UploadConfig> for UploadRules {
    fn from(config: &UploadConfig) -> Self {
        UploadRules {
            max_inline_bytes: config.max_inline_upload_bytes,
            max_upload_bytes: config.max_upload_bytes,
            allowed_types: config.allowed_upload_types.clone(),
            url_ttl: config.upload_url_ttl,
            purpose: UploadPurpose::Attachment,
            max_user_bytes: config.max_user_storage_bytes,
        }
    }
}

impl UploadRules {
    /// The rules of a project's zip upload: the same sizes and URL life, zip archives only.
    pub fn project_archives(config: &UploadConfig) -> Self {
        UploadRules {
            allowed_types: vec!["application/zip".into()],
            purpose: UploadPurpose::Project,
            ..UploadRules::from(config)
        }
    }
}

impl UploadRules {
    /// The declared type, normalised (lowercase, parameters dropped), if it is allowed; a
    /// `type/*` entry allows the whole family.
    pub fn content_type(&self, raw: &str) -> Result<String, FieldError> {
        let mime = raw
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let well_formed = mime.split_once('/').is_some_and(|(t, s)| {
            !t.is_empty()
                && !s.is_empty()
                && mime
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/.+-_".contains(&b))
        });
        if !well_formed {
            return Err(FieldError::new(
                "content_type",
                "must be a media type such as image/png",
            ));
        }
        let allowed = self
            .allowed_types
            .iter()
            .any(|a| match a.strip_suffix("/*") {
                Some(family) => mime.split('/').next() == Some(family),
                None => *a == mime,
            });
        if !allowed {
            return Err(FieldError::new(
                "content_type",
                format!(
                    "{mime} is not an allowed upload type (allowed: {})",
                    self.allowed_types.join(", ")
                ),
            ));
        }
        Ok(mime)
    }
}

/// An attachment (a project's zip upload is not one).
pub async fn get(conn: &Conn, user_id: UserId, id: AttachmentId) -> Result<Attachment> {
    conn.attachment(id, user_id)
        .await?
        .filter(|a| a.purpose == UploadPurpose::Attachment)
        .ok_or(Error::NotFound)
}

/// The user's attachments, newest first.
pub async fn list(
    conn: &Conn,
    user_id: UserId,
    page: Page<AttachmentId>,
) -> Result<Paginated<Attachment>> {
    let rows = conn
        .list_attachments(user_id, page.after, page.limit)
        .await?;
    Ok(Paginated::from_rows(rows, page.limit, |a| a.id))
}

/// Removes an attachment: the row, then the blob (an orphaned blob is harmless, a row without its
/// blob is not).
pub async fn delete(
    conn: &Conn,
    blobs: &BlobStore,
    user_id: UserId,
    id: AttachmentId,
) -> Result<()> {
    get(conn, user_id, id).await?;
    discard(conn, blobs, user_id, id).await
}

/// Removes an upload of any purpose, row then blob.
pub async fn discard(
    conn: &Conn,
    blobs: &BlobStore,
    user_id: UserId,
    id: AttachmentId,
) -> Result<()> {
    let gone = conn
        .delete_attachment(id, user_id)
        .await?
        .ok_or(Error::NotFound)?;
    remove_blob(blobs, &gone).await;
    Ok(())
}

/// Removes an attachment's blob, wherever it is in its life; failures are logged, not fatal (the
/// row is already gone, so nothing points at it).
pub async fn remove_blob(blobs: &BlobStore, attachment: &Attachment) {
    let key = match attachment.status {
        AttachmentStatus::Ready => {
            BlobKey::checked(attachment.user_id, attachment.id, attachment.purpose)
        }
        AttachmentStatus::Pending => BlobKey::upload(attachment.user_id, attachment.id),
    };
    if let Err(e) = blobs.delete(&key).await {
        tracing::warn!(attachment_id = %attachment.id, error = %e, "blob not removed");
    }
}

/// Removes a few pending uploads past their deadline (rows and blobs). Best effort: a failure
/// leaves them for the next sweep.
pub async fn sweep_expired(conn: &Conn, blobs: &BlobStore) {
    let now = crate::ids::now();
    let Ok(expired) = conn.expired_uploads(&now, SWEEP_BATCH).await else {
        return;
    };
    for attachment in expired {
        if let Ok(true) = conn.delete_expired_upload(attachment.id, &now).await {
            remove_blob(blobs, &attachment).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> UploadRules {
        UploadRules {
            max_inline_bytes: 10,
            max_upload_bytes: 100,
            allowed_types: crate::config::DEFAULT_ALLOWED_UPLOAD_TYPES
                .split(',')
                .map(str::to_string)
                .collect(),
            url_ttl: Duration::from_secs(60),
            purpose: UploadPurpose::Attachment,
            max_user_bytes: u64::MAX,
        }
    }

    #[test]
    fn types_are_normalised_and_checked_against_the_list() {
        let r = rules();
        assert_eq!(
            r.content_type("Text/Markdown; charset=utf-8").unwrap(),
            "text/markdown"
        );
        assert_eq!(r.content_type("image/png").unwrap(), "image/png");
        assert!(r.content_type("application/x-msdownload").is_err());
        assert!(r.content_type("image/svg+xml").is_err());
        assert!(r.content_type("nonsense").is_err());
        assert!(r.content_type("text/plain\r\nx: y").is_err());
    }

    #[test]
    fn dispositions_encode_any_name() {
        assert_eq!(
            content_disposition("a b\"é.txt"),
            "attachment; filename*=UTF-8''a%20b%22%C3%A9.txt"
        );
    }
}
