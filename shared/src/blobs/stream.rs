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
    /// S3 takes one PUT of a known length; callers bound what they write (the inline limit). The
    /// chunks are kept as they came: a file that arrives in one chunk (a Lambda event's body) is
    /// sent without a copy.
    Memory(Vec<Bytes>),
}

impl BlobWriter<'_> {
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        use tokio::io::AsyncWriteExt;
        match &mut self.sink {
            Sink::File { file, .. } => file.write_all(&chunk).await.map_err(io),
            Sink::Memory(chunks) => {
                chunks.push(chunk);
                Ok(())
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
            Sink::Memory(mut chunks) => {
                let whole = match chunks.len() {
                    1 => chunks.remove(0),
                    _ => chunks.concat().into(),
                };
                self.store
                    .put_object(&self.key, &self.content_type, whole)
                    .await
            }
        }
    }

    pub async fn abort(self) {
        if let Sink::File { temp, file, .. } = self.sink {
            drop(file);
            let _ = tokio::fs::remove_file(&temp).await;
        }
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
