//! A blob written or read in chunks, on the local directory or S3 (multipart).

use super::*;

/// Writes one blob chunk by chunk; nothing is visible under the key until [`BlobWriter::finish`],
/// and [`BlobWriter::abort`] (or an error) leaves nothing behind.
pub struct BlobWriter<'a> {
    pub(super) store: &'a BlobStore,
    pub(super) key: BlobKey,
    pub(super) content_type: String,
    pub(super) sink: Sink,
}

pub(super) enum Sink {
    /// A temporary file beside the target, renamed into place at the end.
    File {
        temp: PathBuf,
        target: PathBuf,
        file: tokio::fs::File,
    },
    /// S3: the chunks are kept as they came (a file that arrives in one chunk, a Lambda event's
    /// body, is sent without a copy) and go in one PUT at the end, unless they grow past
    /// [`PART_BYTES`]: then they go as parts of a multipart upload as they come, so no more than
    /// about one part is ever held (an export of any size in a 128 MB function).
    Memory {
        chunks: Vec<Bytes>,
        buffered: usize,
        multipart: Option<Multipart>,
    },
}

/// A multipart upload under way: its id and the parts sent so far.
pub(super) struct Multipart {
    id: String,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
}

/// Each part but the last (S3 takes 5 MiB at least).
const PART_BYTES: usize = 8 * 1024 * 1024;

impl Sink {
    pub(super) fn memory() -> Sink {
        Sink::Memory {
            chunks: Vec::new(),
            buffered: 0,
            multipart: None,
        }
    }
}

impl BlobWriter<'_> {
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        use tokio::io::AsyncWriteExt;
        match &mut self.sink {
            Sink::File { file, .. } => file.write_all(&chunk).await.map_err(io),
            Sink::Memory {
                chunks,
                buffered,
                multipart,
            } => {
                *buffered += chunk.len();
                chunks.push(chunk);
                if *buffered < PART_BYTES {
                    return Ok(());
                }
                let part = std::mem::take(chunks).concat();
                *buffered = 0;
                let (client, bucket) = self.store.s3().await?;
                if multipart.is_none() {
                    let started = client
                        .create_multipart_upload()
                        .bucket(bucket)
                        .key(self.key.as_str())
                        .content_type(&self.content_type)
                        .send()
                        .await
                        .map_err(s3_error)?;
                    let id = started.upload_id().ok_or_else(|| io("no upload id"))?;
                    *multipart = Some(Multipart {
                        id: id.to_string(),
                        parts: Vec::new(),
                    });
                }
                let upload = multipart.as_mut().expect("started above");
                upload_part(client, bucket, &self.key, upload, part.into()).await
            }
        }
    }

    pub async fn finish(self) -> Result<(), BlobError> {
        use tokio::io::AsyncWriteExt;
        match self.sink {
            Sink::File {
                temp,
                target,
                mut file,
            } => {
                let done = async {
                    file.flush().await?;
                    drop(file);
                    tokio::fs::rename(&temp, &target).await
                }
                .await;
                if done.is_err() {
                    let _ = tokio::fs::remove_file(&temp).await;
                }
                done.map_err(io)
            }
            Sink::Memory {
                mut chunks,
                multipart: None,
                ..
            } => {
                let whole = match chunks.len() {
                    1 => chunks.remove(0),
                    _ => chunks.concat().into(),
                };
                self.store
                    .put_object(&self.key, &self.content_type, whole)
                    .await
            }
            Sink::Memory {
                chunks,
                multipart: Some(mut upload),
                ..
            } => {
                let (client, bucket) = self.store.s3().await?;
                let done = async {
                    if !chunks.is_empty() {
                        let last = chunks.concat();
                        upload_part(client, bucket, &self.key, &mut upload, last.into()).await?;
                    }
                    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
                        .set_parts(Some(upload.parts.clone()))
                        .build();
                    client
                        .complete_multipart_upload()
                        .bucket(bucket)
                        .key(self.key.as_str())
                        .upload_id(&upload.id)
                        .multipart_upload(parts)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(s3_error)
                }
                .await;
                if done.is_err() {
                    abort_multipart(client, bucket, &self.key, &upload.id).await;
                }
                done
            }
        }
    }

    pub async fn abort(self) {
        match self.sink {
            Sink::File { temp, file, .. } => {
                drop(file);
                let _ = tokio::fs::remove_file(&temp).await;
            }
            Sink::Memory {
                multipart: Some(upload),
                ..
            } => {
                if let Ok((client, bucket)) = self.store.s3().await {
                    abort_multipart(client, bucket, &self.key, &upload.id).await;
                }
            }
            Sink::Memory { .. } => {}
        }
    }
}

async fn upload_part(
    client: &S3Client,
    bucket: &str,
    key: &BlobKey,
    upload: &mut Multipart,
    body: Bytes,
) -> Result<(), BlobError> {
    let number = upload.parts.len() as i32 + 1;
    let sent = client
        .upload_part()
        .bucket(bucket)
        .key(key.as_str())
        .upload_id(&upload.id)
        .part_number(number)
        .content_length(body.len() as i64)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(s3_error)?;
    upload.parts.push(
        aws_sdk_s3::types::CompletedPart::builder()
            .part_number(number)
            .set_e_tag(sent.e_tag().map(str::to_string))
            .build(),
    );
    Ok(())
}

/// Gives up a multipart upload, so its parts are not kept (and billed); the bucket's lifecycle
/// rule aborts any left after a day.
async fn abort_multipart(client: &S3Client, bucket: &str, key: &BlobKey, id: &str) {
    let aborted = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key.as_str())
        .upload_id(id)
        .send()
        .await;
    if let Err(e) = aborted {
        tracing::warn!(error = %s3_error(e), "a multipart upload was not aborted");
    }
}

/// Reads a blob chunk by chunk, whatever the backend.
pub enum BlobReader {
    File(tokio::fs::File),
    S3(ByteStream),
}

pub(super) const FILE_CHUNK: usize = 64 * 1024;

impl BlobReader {
    /// The next chunk, or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BlobError> {
        match self {
            BlobReader::File(file) => {
                let mut buf = vec![0u8; FILE_CHUNK];
                let n = file.read(&mut buf).await.map_err(io)?;
                buf.truncate(n);
                Ok((n > 0).then(|| Bytes::from(buf)))
            }
            BlobReader::S3(body) => body
                .try_next()
                .await
                .map_err(|e| BlobError::Io(e.to_string())),
        }
    }

    /// The whole blob as a stream of chunks (for a response body).
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, BlobError>> + Send + 'static {
        futures_util::stream::unfold(Some(self), |reader| async move {
            let mut reader = reader?;
            match reader.chunk().await {
                Ok(Some(bytes)) => Some((Ok(bytes), Some(reader))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}
