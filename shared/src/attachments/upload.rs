//! Uploads: inline (checked as they stream to the blob store) and presigned (started, received, completed).

use super::*;
use crate::media::{check_type, clean_filename, media_type, Sniffed};

/// Hashes, counts and samples the bytes of one file as they pass.
pub(super) struct Inspector {
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
pub(super) async fn pour(
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
pub(super) async fn settle(writer: BlobWriter<'_>, checked: Result<()>) -> Result<()> {
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
        .insert_attachment(
            NewAttachment {
                id,
                user_id,
                filename: &filename,
                content_type: &content_type,
                size: size as i64,
                sha256: Some(&sha256),
                status: AttachmentStatus::Ready,
                expires_at: None,
                purpose: UploadPurpose::Attachment,
            },
            rules.max_user_bytes,
        )
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
        .insert_attachment(
            NewAttachment {
                id,
                user_id,
                filename: &filename,
                content_type: &content_type,
                size: request.size as i64,
                sha256: None,
                status: AttachmentStatus::Pending,
                expires_at: Some(&sweep_after),
                purpose: rules.purpose,
            },
            rules.max_user_bytes,
        )
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
    let (mut reader, version) = match blobs.read_tagged(&key).await {
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
    // The upload URL stays valid until it expires: only the version checked is moved, so a PUT
    // after the check (unchecked bytes) makes this a 409 and a retried completion checks it.
    let moved = blobs
        .rename_if_unchanged(
            &key,
            &BlobKey::checked(user_id, id, pending.purpose),
            version.as_deref(),
        )
        .await;
    match moved {
        Ok(()) => {}
        Err(BlobError::Changed) => {
            return Err(Error::Conflict(
                "the upload changed while it was checked; complete it again",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    match conn
        .complete_attachment(id, user_id, &seen.sha256_hex())
        .await?
    {
        Some(a) => Ok(a),
        // Completed by a concurrent request meanwhile.
        None => conn.attachment(id, user_id).await?.ok_or(Error::NotFound),
    }
}
