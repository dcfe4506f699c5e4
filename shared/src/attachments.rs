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
    config::Config,
    error::{Error, FieldError, FieldErrors, Result},
    ids::{AttachmentId, UserId},
    kinds::{AttachmentStatus, UploadPurpose},
    pagination::{Page, Paginated},
    store::{Attachment, Conn, NewAttachment},
};

/// The longest filename kept, in characters (display data only: the blob key never uses it).
const MAX_FILENAME_CHARS: usize = 255;
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
}

impl From<&Config> for UploadRules {
    fn from(config: &Config) -> Self {
        UploadRules {
            max_inline_bytes: config.max_inline_upload_bytes,
            max_upload_bytes: config.max_upload_bytes,
            allowed_types: config.allowed_upload_types.clone(),
            url_ttl: config.upload_url_ttl,
            purpose: UploadPurpose::Attachment,
        }
    }
}

impl UploadRules {
    /// The rules of a project's zip upload: the same sizes and URL life, zip archives only.
    pub fn project_archives(config: &Config) -> Self {
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

/// A client's filename made safe to show: the last path part only, control characters removed,
/// surrounding spaces and dots trimmed. Refused when nothing is left or it is absurdly long.
pub fn clean_filename(raw: &str) -> Result<String, FieldError> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim_matches(|c: char| c.is_whitespace() || c == '.');
    if cleaned.is_empty() {
        return Err(FieldError::new("filename", "must name a file"));
    }
    if cleaned.chars().count() > MAX_FILENAME_CHARS {
        return Err(FieldError::new(
            "filename",
            format!("must be at most {MAX_FILENAME_CHARS} characters"),
        ));
    }
    Ok(cleaned.to_string())
}

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Png,
    Jpeg,
    Gif,
    Webp,
    Pdf,
    Zip,
    /// UTF-8 without NUL bytes.
    Text,
    /// Anything else.
    Binary,
}

impl Sniffed {
    pub fn of(first: &[u8]) -> Sniffed {
        if first.starts_with(b"\x89PNG\r\n\x1a\n") {
            Sniffed::Png
        } else if first.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Sniffed::Jpeg
        } else if first.starts_with(b"GIF87a") || first.starts_with(b"GIF89a") {
            Sniffed::Gif
        } else if first.len() >= 12 && &first[..4] == b"RIFF" && &first[8..12] == b"WEBP" {
            Sniffed::Webp
        } else if first.starts_with(b"%PDF-") {
            Sniffed::Pdf
        } else if first.starts_with(b"PK\x03\x04") || first.starts_with(b"PK\x05\x06") {
            Sniffed::Zip
        } else if is_text(first) {
            Sniffed::Text
        } else {
            Sniffed::Binary
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Sniffed::Png => "a PNG image",
            Sniffed::Jpeg => "a JPEG image",
            Sniffed::Gif => "a GIF image",
            Sniffed::Webp => "a WebP image",
            Sniffed::Pdf => "a PDF document",
            Sniffed::Zip => "a zip archive",
            Sniffed::Text => "text",
            Sniffed::Binary => "binary data",
        }
    }
}

/// UTF-8 with no NUL byte; a multi-byte character cut by the end of the sample still counts.
fn is_text(sample: &[u8]) -> bool {
    if sample.contains(&0) {
        return false;
    }
    match std::str::from_utf8(sample) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && sample.len() - e.valid_up_to() < 4,
    }
}

/// Whether the bytes are what the declared type says. Types this service knows how to recognise
/// must match; others (an operator may allow more) pass when they are not text posing as binary.
pub fn check_type(declared: &str, sniffed: Sniffed) -> Result<(), FieldError> {
    let expected = match declared {
        "image/png" => Some(Sniffed::Png),
        "image/jpeg" => Some(Sniffed::Jpeg),
        "image/gif" => Some(Sniffed::Gif),
        "image/webp" => Some(Sniffed::Webp),
        "application/pdf" => Some(Sniffed::Pdf),
        "application/zip" => Some(Sniffed::Zip),
        t if is_text_type(t) => Some(Sniffed::Text),
        _ => None,
    };
    match expected {
        Some(e) if e != sniffed => Err(FieldError::new(
            "content_type",
            format!("is {declared}, but the file is {}", sniffed.describe()),
        )),
        _ => Ok(()),
    }
}

/// The type a filename's extension implies, for clients that label every file
/// `application/octet-stream` (the bytes are still sniffed).
pub fn guess_type(filename: &str) -> Option<&'static str> {
    let ext = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "csv" => "text/csv",
        "json" => "application/json",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "toml" => "application/toml",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" | "cjs" | "jsx" => "text/javascript",
        "ts" | "tsx" => "text/x-typescript",
        "py" => "text/x-python",
        "rs" => "text/x-rust",
        "go" => "text/x-go",
        "java" => "text/x-java",
        "kt" | "kts" => "text/x-kotlin",
        "c" | "h" => "text/x-c",
        "cc" | "cpp" | "cxx" | "hpp" => "text/x-c++",
        "cs" => "text/x-csharp",
        "rb" => "text/x-ruby",
        "php" => "text/x-php",
        "swift" => "text/x-swift",
        "sh" | "bash" => "text/x-shellscript",
        "sql" => "application/sql",
        _ => return None,
    })
}

/// A Content-Type's media type, without parameters, lowercase (`Text/Plain; charset=x` → `text/plain`).
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Text types: sent to models as text documents.
pub fn is_text_type(mime: &str) -> bool {
    mime.starts_with("text/")
        || matches!(
            mime,
            "application/json"
                | "application/xml"
                | "application/yaml"
                | "application/x-yaml"
                | "application/toml"
                | "application/javascript"
                | "application/typescript"
                | "application/x-sh"
                | "application/sql"
        )
}

/// Hashes, counts and samples the bytes of one file as they pass.
struct Inspector {
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
}

impl Inspector {
    fn new() -> Self {
        Inspector {
            hasher: Sha256::new(),
            size: 0,
            head: Vec::with_capacity(SNIFF_BYTES),
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        let room = SNIFF_BYTES - self.head.len();
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }

    fn sha256_hex(self) -> String {
        self.hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A source of one file's bytes, chunk by chunk (a multipart field, a request body, a blob).
pub trait Chunks: Send {
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<bytes::Bytes>>> + Send;
}

impl Chunks for BlobReader {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>> {
        self.chunk().await.map_err(Error::from)
    }
}

/// Streams `body` into `writer` through `seen` (hash, size, first bytes), refusing with `over`
/// as soon as more than `max` bytes came. The caller finishes or aborts the writer.
async fn pour(
    writer: &mut BlobWriter<'_>,
    body: &mut impl Chunks,
    seen: &mut Inspector,
    max: u64,
    over: impl Fn() -> Error,
) -> Result<()> {
    while let Some(chunk) = body.next_chunk().await? {
        seen.feed(&chunk);
        if seen.size > max {
            return Err(over());
        }
        writer.write(chunk).await?;
    }
    Ok(())
}

/// Keeps what `writer` wrote when `checked` passed, and leaves nothing when it did not.
async fn settle(writer: BlobWriter<'_>, checked: Result<()>) -> Result<()> {
    match checked {
        Ok(()) => Ok(writer.finish().await?),
        Err(e) => {
            writer.abort().await;
            Err(e)
        }
    }
}

/// Stores an inline upload: streamed to the blob store while hashed and sniffed, refused (with
/// nothing kept) when over the limit or not what it claims to be.
pub async fn upload_inline(
    conn: &Conn,
    blobs: &BlobStore,
    rules: &UploadRules,
    user_id: UserId,
    filename: &str,
    declared_type: &str,
    body: &mut impl Chunks,
) -> Result<Attachment> {
    let mut errors = FieldErrors::default();
    let filename = errors.take(clean_filename(filename));
    let content_type = errors.take(rules.content_type(declared_type));
    errors.finish()?;
    let (filename, content_type) = (
        filename.unwrap_or_default(),
        content_type.unwrap_or_default(),
    );

    let id = AttachmentId::new();
    let key = BlobKey::attachment(user_id, id);
    let mut writer = blobs
        .writer(&key, &content_type)
        .await
        .map_err(Error::from)?;
    let mut seen = Inspector::new();
    let limit = rules.max_inline_bytes;
    let over = || Error::PayloadTooLarge {
        limit: limit as usize,
    };
    let checked = match pour(&mut writer, body, &mut seen, limit, over).await {
        Ok(()) if seen.size == 0 => Err(Error::invalid("file", "is empty")),
        Ok(()) => check_type(&content_type, Sniffed::of(&seen.head)).map_err(Error::from),
        Err(e) => Err(e),
    };
    settle(writer, checked).await?;

    let size = seen.size;
    let sha256 = seen.sha256_hex();
    let stored = conn
        .insert_attachment(NewAttachment {
            id,
            user_id,
            filename: &filename,
            content_type: &content_type,
            size: size as i64,
            sha256: Some(&sha256),
            status: AttachmentStatus::Ready,
            expires_at: None,
            purpose: UploadPurpose::Attachment,
        })
        .await;
    match stored {
        Ok(a) => Ok(a),
        Err(e) => {
            // The row is the record: without it the blob would be an orphan.
            let _ = blobs.delete(&key).await;
            Err(e.into())
        }
    }
}

/// What a client asks for to upload a large file.
pub struct UploadRequest<'a> {
    pub filename: &'a str,
    pub content_type: &'a str,
    pub size: u64,
}

/// Where and how to PUT the bytes.
pub struct UploadTarget {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub expires_at: SystemTime,
}

/// Starts a presigned upload: a pending attachment, and a URL that accepts exactly the declared
/// size and type until it expires. `local_base` is where this function is reached (for the local
/// store's signed URL).
pub async fn start_upload(
    conn: &Conn,
    blobs: &BlobStore,
    keys: &TokenKeys,
    rules: &UploadRules,
    user_id: UserId,
    request: UploadRequest<'_>,
    local_base: &str,
) -> Result<(Attachment, UploadTarget)> {
    let mut errors = FieldErrors::default();
    let filename = errors.take(clean_filename(request.filename));
    let content_type = errors.take(rules.content_type(request.content_type));
    if request.size == 0 {
        errors.push(FieldError::new("size", "must be at least 1 byte"));
    } else if request.size > rules.max_upload_bytes {
        errors.push(FieldError::new(
            "size",
            format!("must be at most {} bytes", rules.max_upload_bytes),
        ));
    }
    errors.finish()?;
    let (filename, content_type) = (
        filename.unwrap_or_default(),
        content_type.unwrap_or_default(),
    );

    sweep_expired(conn, blobs).await;

    let id = AttachmentId::new();
    let expires_at = SystemTime::now() + rules.url_ttl;
    let key = BlobKey::upload(user_id, id);
    let target = match blobs
        .presign_put(&key, &content_type, request.size, rules.url_ttl)
        .await
        .map_err(Error::from)?
    {
        Some(put) => UploadTarget {
            url: put.url,
            headers: put.headers,
            expires_at,
        },
        None => {
            let grant = UploadGrant::new(user_id, id, request.size, &content_type, expires_at);
            UploadTarget {
                url: format!(
                    "{}/api/v1/attachments/uploads/{id}?token={}",
                    local_base.trim_end_matches('/'),
                    keys.sign_upload(&grant)?
                ),
                headers: vec![
                    ("content-type".into(), content_type.clone()),
                    ("content-length".into(), request.size.to_string()),
                ],
                expires_at,
            }
        }
    };
    let sweep_after = crate::ids::format_time((expires_at + UPLOAD_GRACE).into());
    let attachment = conn
        .insert_attachment(NewAttachment {
            id,
            user_id,
            filename: &filename,
            content_type: &content_type,
            size: request.size as i64,
            sha256: None,
            status: AttachmentStatus::Pending,
            expires_at: Some(&sweep_after),
            purpose: rules.purpose,
        })
        .await?;
    Ok((attachment, target))
}

/// The local store's stand-in for a presigned PUT: the grant in the URL names the attachment,
/// size and type; the body must match them exactly, as S3 would insist.
pub async fn receive_upload(
    conn: &Conn,
    blobs: &BlobStore,
    keys: &TokenKeys,
    id: AttachmentId,
    token: &str,
    content_type: Option<&str>,
    body: &mut impl Chunks,
) -> Result<()> {
    let grant = keys.verify_upload(token)?;
    if grant.aid != id {
        return Err(Error::Forbidden("the upload URL is for another upload"));
    }
    let sent_type = content_type.map(media_type).unwrap_or_default();
    if sent_type != grant.content_type {
        return Err(Error::Forbidden(
            "the Content-Type differs from the one the upload URL was made for",
        ));
    }
    match conn.attachment(id, grant.sub).await? {
        Some(a) if a.status == AttachmentStatus::Pending => {}
        Some(_) => return Err(Error::Conflict("the upload is already complete")),
        None => return Err(Error::NotFound),
    }
    let key = BlobKey::upload(grant.sub, id);
    let mut writer = blobs
        .writer(&key, &grant.content_type)
        .await
        .map_err(Error::from)?;
    let mut seen = Inspector::new();
    let over = || Error::Forbidden("the body is longer than the upload URL was made for");
    let checked = match pour(&mut writer, body, &mut seen, grant.size, over).await {
        Ok(()) if seen.size != grant.size => Err(Error::Forbidden(
            "the body is shorter than the upload URL was made for",
        )),
        other => other,
    };
    settle(writer, checked).await
}

/// Checks an uploaded object and makes the attachment ready. Completing a ready attachment again
/// answers it as it is (a retried request is safe). A refused upload is removed, row and blob.
pub async fn complete(
    conn: &Conn,
    blobs: &BlobStore,
    user_id: UserId,
    id: AttachmentId,
    purpose: UploadPurpose,
) -> Result<Attachment> {
    let pending = match conn.attachment(id, user_id).await? {
        Some(a) if a.purpose != purpose => return Err(Error::NotFound),
        Some(a) if a.status == AttachmentStatus::Ready => return Ok(a),
        Some(a) => a,
        None => return Err(Error::NotFound),
    };
    let key = BlobKey::upload(user_id, id);
    let mut reader = match blobs.read(&key).await {
        Ok(r) => r,
        Err(BlobError::Missing) => {
            return Err(Error::Conflict(
                "nothing has been uploaded yet: PUT the file to the upload URL first",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let mut seen = Inspector::new();
    while let Some(chunk) = reader.next_chunk().await? {
        seen.feed(&chunk);
        if seen.size > pending.size as u64 {
            break;
        }
    }
    let verdict = if seen.size != pending.size as u64 {
        Err(Error::invalid(
            "size",
            format!(
                "the upload was declared as {} bytes but {} arrived",
                pending.size, seen.size
            ),
        ))
    } else {
        check_type(&pending.content_type, Sniffed::of(&seen.head)).map_err(Error::from)
    };
    if let Err(e) = verdict {
        let _ = blobs.delete(&key).await;
        conn.delete_attachment(id, user_id).await?;
        return Err(e);
    }
    blobs
        .rename(&key, &BlobKey::attachment(user_id, id))
        .await
        .map_err(Error::from)?;
    match conn
        .complete_attachment(id, user_id, &seen.sha256_hex())
        .await?
    {
        Some(a) => Ok(a),
        // Completed by a concurrent request meanwhile.
        None => conn.attachment(id, user_id).await?.ok_or(Error::NotFound),
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
        AttachmentStatus::Ready => BlobKey::attachment(attachment.user_id, attachment.id),
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

/// How an attachment's bytes are served.
pub enum Content {
    /// A presigned GET (S3): the client fetches the bytes from the store directly.
    Redirect(String),
    /// The bytes, from the local store.
    Stream(BlobReader),
}

/// How long a presigned GET of an attachment stays valid.
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(5 * 60);

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
        }
    }

    #[test]
    fn filenames_are_display_data() {
        assert_eq!(clean_filename("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(
            clean_filename("C:\\Users\\me\\notes.md").unwrap(),
            "notes.md"
        );
        assert_eq!(clean_filename("re\u{0}port\n.pdf").unwrap(), "report.pdf");
        assert_eq!(clean_filename("  .hidden. ").unwrap(), "hidden");
        assert!(clean_filename("dir/").is_err());
        assert!(clean_filename("..").is_err());
        assert!(clean_filename(&"a".repeat(256)).is_err());
        assert!(clean_filename(&"é".repeat(255)).is_ok());
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
    fn bytes_must_be_what_the_type_says() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(Sniffed::of(png), Sniffed::Png);
        assert_eq!(Sniffed::of(b"%PDF-1.7\n"), Sniffed::Pdf);
        assert_eq!(Sniffed::of(b"RIFF\0\0\0\0WEBPVP8 "), Sniffed::Webp);
        assert_eq!(Sniffed::of("# Titre é".as_bytes()), Sniffed::Text);
        // A sample that ends inside a multi-byte character is still text.
        assert_eq!(Sniffed::of(&"é".as_bytes()[..1]), Sniffed::Text);
        assert_eq!(Sniffed::of(b"MZ\x90\0\x03"), Sniffed::Binary);
        assert!(check_type("image/png", Sniffed::of(png)).is_ok());
        assert!(check_type("image/png", Sniffed::Pdf).is_err());
        assert!(check_type("application/pdf", Sniffed::Text).is_err());
        assert!(check_type("text/plain", Sniffed::Binary).is_err());
        assert!(check_type("text/csv", Sniffed::Text).is_ok());
    }

    #[test]
    fn dispositions_encode_any_name() {
        assert_eq!(
            content_disposition("a b\"é.txt"),
            "attachment; filename*=UTF-8''a%20b%22%C3%A9.txt"
        );
    }
}
