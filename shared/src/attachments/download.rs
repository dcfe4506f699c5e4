//! Serving an attachment's bytes: inline or through a short-lived presigned URL.

use super::*;

/// How an attachment's bytes are served.
pub enum Content {
    /// A presigned GET (S3): the client fetches the bytes from the store directly.
    Redirect(String),
    /// The bytes, from the local store.
    Stream(BlobReader),
}

/// How long a presigned GET of an attachment stays valid.
pub(super) const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(5 * 60);

/// `attachment; filename*=UTF-8''…`, percent-encoded (RFC 6266/8187), so any name is safe in a header.
pub fn content_disposition(filename: &str) -> String {
    let encoded: String = filename
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("attachment; filename*=UTF-8''{encoded}")
}

pub async fn content(blobs: &BlobStore, attachment: &Attachment) -> Result<Content> {
    if attachment.status != AttachmentStatus::Ready {
        return Err(Error::Conflict("the upload is not complete yet"));
    }
    let key = BlobKey::attachment(attachment.user_id, attachment.id);
    let disposition = content_disposition(&attachment.filename);
    if let Some(url) = blobs
        .presign_get(
            &key,
            &attachment.content_type,
            &disposition,
            DOWNLOAD_URL_TTL,
        )
        .await
        .map_err(Error::from)?
    {
        return Ok(Content::Redirect(url));
    }
    match blobs.read(&key).await {
        Ok(reader) => Ok(Content::Stream(reader)),
        Err(BlobError::Missing) => Err(Error::NotFound),
        Err(e) => Err(e.into()),
    }
}
