//! The blob store behind attachments and project files: one interface, two real backends.
//!
//! Locally blobs are files under `.data/blobs`; in AWS they are objects in S3 (or any S3-compatible
//! server through `S3_ENDPOINT_URL`, addressed path-style). Keys are made here from ids the service
//! generated ([`BlobKey`]), never from a client's filename, so they cannot escape the root.

use std::{path::PathBuf, time::Duration};

use aws_sdk_s3::{presigning::PresigningConfig, primitives::ByteStream, Client as S3Client};
use bytes::Bytes;
use tokio::{io::AsyncReadExt, sync::OnceCell};

use crate::config::{BlobConfig, S3Config};

mod client;
mod stream;

use client::build_client;
pub use client::read_s3_object;
pub use stream::*;

/// Where a blob lives, built only from service-generated ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobKey(String);

impl BlobKey {
    /// A ready attachment's bytes.
    pub fn attachment(user: impl std::fmt::Display, id: impl std::fmt::Display) -> Self {
        BlobKey(format!("attachments/{user}/{id}"))
    }

    /// A checked project zip waiting to be unpacked: under its own prefix, since its "Object
    /// Created" event starts the worker, and an ordinary attachment's must not.
    pub fn project_zip(user: impl std::fmt::Display, id: impl std::fmt::Display) -> Self {
        BlobKey(format!("project-zips/{user}/{id}"))
    }

    /// Where a completed upload's bytes are, by what it is for.
    pub fn checked(
        user: impl std::fmt::Display,
        id: impl std::fmt::Display,
        purpose: crate::kinds::UploadPurpose,
    ) -> Self {
        match purpose {
            crate::kinds::UploadPurpose::Project => Self::project_zip(user, id),
            crate::kinds::UploadPurpose::Attachment => Self::attachment(user, id),
        }
    }

    /// A presigned upload not completed yet. The bucket's lifecycle rule expires this prefix, so an
    /// upload that is never completed is removed even if no sweep runs.
    pub fn upload(user: impl std::fmt::Display, id: impl std::fmt::Display) -> Self {
        BlobKey(format!("uploads/{user}/{id}"))
    }

    /// A project's binary file (a fresh id per write: a replaced file's old blob is removed after
    /// the row points at the new one).
    pub fn project_file(
        user: impl std::fmt::Display,
        project: impl std::fmt::Display,
        id: impl std::fmt::Display,
    ) -> Self {
        BlobKey(format!("projects/{user}/{project}/{id}"))
    }

    /// An export too large to answer inline, fetched through a presigned GET; the bucket's
    /// lifecycle rule removes it after a day.
    pub fn export(user: impl std::fmt::Display, id: impl std::fmt::Display) -> Self {
        BlobKey(format!("exports/{user}/{id}"))
    }

    /// The text of a knowledge document waiting for the worker to index it.
    pub fn knowledge_text(user: impl std::fmt::Display, id: impl std::fmt::Display) -> Self {
        BlobKey(format!("knowledge/{user}/{id}"))
    }

    /// The admins' changes to the models catalog, as the store-free `models` function reads them.
    pub fn model_changes() -> Self {
        BlobKey("catalog/model-changes.json".into())
    }

    /// A key this service made and stored in a row, read back.
    pub fn stored(key: &str) -> Self {
        BlobKey(key.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no blob store is configured (set S3_BUCKET)")]
    NotConfigured,
    #[error("the blob does not exist")]
    Missing,
    #[error("blob store: {0}")]
    Io(String),
    /// The blob is no longer the one that was read (a conditional copy's precondition failed).
    #[error("the file changed while it was checked")]
    Changed,
}

/// A presigned PUT: the URL and the headers the client must send with it (they are signed).
#[derive(Debug, Clone)]
pub struct PresignedPut {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// Cheap to clone: clones share the backend (and its S3 client).
#[derive(Clone)]
pub struct BlobStore {
    backend: std::sync::Arc<Backend>,
}

enum Backend {
    Local {
        root: PathBuf,
    },
    /// No blob store in this deployment (Lambda without `S3_BUCKET`).
    NotConfigured,
    /// The client is built on first use: functions that never touch blobs pay nothing at cold start.
    S3 {
        config: S3Config,
        client: OnceCell<S3Client>,
    },
}

fn io(e: impl std::fmt::Display) -> BlobError {
    BlobError::Io(e.to_string())
}

/// An S3 call's failure with its service error and cause (never a key or a signature).
fn s3_error<E: std::error::Error + 'static>(e: E) -> BlobError {
    io(aws_sdk_s3::error::DisplayErrorContext(e))
}

/// Whether an S3 error means the object is not there.
fn s3_missing<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: &E) -> bool {
    matches!(e.code(), Some("NoSuchKey" | "NotFound"))
}

impl BlobStore {
    pub fn new(config: &BlobConfig) -> Result<Self, String> {
        let backend = match config {
            BlobConfig::LocalDir(root) => {
                std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
                Backend::Local { root: root.clone() }
            }
            BlobConfig::NotConfigured => Backend::NotConfigured,
            BlobConfig::S3(config) => Backend::S3 {
                config: config.clone(),
                client: OnceCell::new(),
            },
        };
        Ok(BlobStore {
            backend: std::sync::Arc::new(backend),
        })
    }

    /// Whether uploads go straight to the store through presigned URLs (S3), or through the
    /// attachments function itself (the local directory).
    pub fn presigns(&self) -> bool {
        matches!(*self.backend, Backend::S3 { .. })
    }

    async fn s3(&self) -> Result<(&S3Client, &str), BlobError> {
        match &*self.backend {
            Backend::S3 { config, client } => {
                let client = client.get_or_init(|| build_client(config)).await;
                Ok((client, &config.bucket))
            }
            _ => Err(BlobError::NotConfigured),
        }
    }

    fn path(root: &std::path::Path, key: &BlobKey) -> PathBuf {
        root.join(key.as_str())
    }

    /// For `/health`, cheaply (metadata, never a write): `ok`, `not_configured`, or why not.
    pub async fn check(&self) -> Result<&'static str, String> {
        match &*self.backend {
            Backend::Local { root } => match tokio::fs::metadata(root).await {
                Ok(m) if m.is_dir() => Ok("ok"),
                Ok(_) => Err(format!("{} is not a directory", root.display())),
                Err(e) => Err(format!("{}: {e}", root.display())),
            },
            Backend::NotConfigured => Ok("not_configured"),
            Backend::S3 { .. } => {
                let (client, bucket) = self.s3().await.map_err(|e| e.to_string())?;
                // A listing of at most one key rather than HeadBucket: both need s3:ListBucket in
                // AWS, but a listing is that action by name wherever it is checked (moto's policy
                // engine asks HeadBucket for an "s3:HeadBucket" that IAM does not have).
                client
                    .list_objects_v2()
                    .bucket(bucket)
                    .max_keys(1)
                    .send()
                    .await
                    .map(|_| "ok")
                    .map_err(|e| {
                        format!(
                            "S3 bucket {bucket}: {}",
                            aws_sdk_s3::error::DisplayErrorContext(e)
                        )
                    })
            }
        }
    }

    /// A writer for `key`: chunks go to disk as they come locally, and to S3 in one PUT at the end
    /// (in parts as they come once they pass 8 MiB).
    pub async fn writer(
        &self,
        key: &BlobKey,
        content_type: &str,
    ) -> Result<BlobWriter<'_>, BlobError> {
        let sink = match &*self.backend {
            Backend::Local { root } => {
                let path = Self::path(root, key);
                let dir = path
                    .parent()
                    .ok_or_else(|| io("a key without a directory"))?;
                tokio::fs::create_dir_all(dir).await.map_err(io)?;
                let temp = path.with_extension(format!("part-{}", uuid::Uuid::now_v7()));
                let file = tokio::fs::File::create(&temp).await.map_err(io)?;
                Sink::File {
                    temp,
                    target: path,
                    file,
                }
            }
            Backend::NotConfigured => return Err(BlobError::NotConfigured),
            Backend::S3 { .. } => Sink::memory(),
        };
        Ok(BlobWriter {
            store: self,
            key: key.clone(),
            content_type: content_type.to_string(),
            sink,
        })
    }

    /// Stores `bytes` under `key` whole: a reader never sees half a blob.
    pub async fn put(
        &self,
        key: &BlobKey,
        content_type: &str,
        bytes: Bytes,
    ) -> Result<(), BlobError> {
        match &*self.backend {
            Backend::Local { .. } => {
                let mut writer = self.writer(key, content_type).await?;
                match writer.write(bytes).await {
                    Ok(()) => writer.finish().await,
                    Err(e) => {
                        writer.abort().await;
                        Err(e)
                    }
                }
            }
            Backend::NotConfigured => Err(BlobError::NotConfigured),
            Backend::S3 { .. } => self.put_object(key, content_type, bytes).await,
        }
    }

    /// One S3 PUT of a whole object.
    async fn put_object(
        &self,
        key: &BlobKey,
        content_type: &str,
        bytes: Bytes,
    ) -> Result<(), BlobError> {
        let (client, bucket) = self.s3().await?;
        client
            .put_object()
            .bucket(bucket)
            .key(key.as_str())
            .content_type(content_type)
            .content_length(bytes.len() as i64)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(s3_error)
    }

    /// Reads the blob from its start.
    pub async fn read(&self, key: &BlobKey) -> Result<BlobReader, BlobError> {
        Ok(self.read_tagged(key).await?.0)
    }

    /// The whole blob in memory: for the bounded sizes a model call takes.
    pub async fn read_all(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        let mut reader = self.read(key).await?;
        let mut all = Vec::new();
        while let Some(chunk) = reader.chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    /// [`Self::read`], with the version read where the store has one (S3's ETag), for
    /// [`Self::rename_if_unchanged`].
    pub async fn read_tagged(
        &self,
        key: &BlobKey,
    ) -> Result<(BlobReader, Option<String>), BlobError> {
        match &*self.backend {
            Backend::S3 { .. } => {
                let (client, bucket) = self.s3().await?;
                match client
                    .get_object()
                    .bucket(bucket)
                    .key(key.as_str())
                    .send()
                    .await
                {
                    Ok(o) => {
                        let tag = o.e_tag.clone();
                        Ok((BlobReader::S3(o.body), tag))
                    }
                    Err(e) if e.as_service_error().is_some_and(s3_missing) => {
                        Err(BlobError::Missing)
                    }
                    Err(e) => Err(s3_error(e)),
                }
            }
            Backend::Local { root } => match tokio::fs::File::open(Self::path(root, key)).await {
                Ok(f) => Ok((BlobReader::File(f), None)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::Missing),
                Err(e) => Err(io(e)),
            },
            Backend::NotConfigured => Err(BlobError::NotConfigured),
        }
    }

    /// [`Self::rename`], only if the blob is still the version `tag` names: on S3 a copy with
    /// `x-amz-copy-source-if-match`, so bytes put after they were checked are never moved
    /// ([`BlobError::Changed`]). Without a tag (the local store) it is a plain rename.
    pub async fn rename_if_unchanged(
        &self,
        from: &BlobKey,
        to: &BlobKey,
        tag: Option<&str>,
    ) -> Result<(), BlobError> {
        match &*self.backend {
            Backend::S3 { .. } => self.s3_move(from, to, tag).await,
            _ => self.rename(from, to).await,
        }
    }

    /// Moves a blob to another key (a server-side copy on S3: the bytes never pass through here).
    pub async fn rename(&self, from: &BlobKey, to: &BlobKey) -> Result<(), BlobError> {
        match &*self.backend {
            Backend::Local { root } => {
                let target = Self::path(root, to);
                if let Some(dir) = target.parent() {
                    tokio::fs::create_dir_all(dir).await.map_err(io)?;
                }
                match tokio::fs::rename(Self::path(root, from), target).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::Missing),
                    Err(e) => Err(io(e)),
                }
            }
            Backend::NotConfigured => Err(BlobError::NotConfigured),
            Backend::S3 { .. } => self.s3_move(from, to, None).await,
        }
    }

    /// A copy then a delete on S3, the copy conditioned on `if_match` when given.
    async fn s3_move(
        &self,
        from: &BlobKey,
        to: &BlobKey,
        if_match: Option<&str>,
    ) -> Result<(), BlobError> {
        let (client, bucket) = self.s3().await?;
        client
            .copy_object()
            .bucket(bucket)
            .key(to.as_str())
            .copy_source(format!("{bucket}/{}", from.as_str()))
            .set_copy_source_if_match(if_match.map(str::to_string))
            .send()
            .await
            .map_err(|e| {
                // A failed precondition: 412, and S3's code for it (either one is enough).
                let code = e
                    .as_service_error()
                    .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code);
                if e.as_service_error().is_some_and(s3_missing) {
                    BlobError::Missing
                } else if code == Some("PreconditionFailed")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 412)
                {
                    BlobError::Changed
                } else {
                    s3_error(e)
                }
            })?;
        self.delete(from).await
    }

    /// Removes the blob; one that is already gone is not an error (deletes are retried safely).
    pub async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match &*self.backend {
            Backend::Local { root } => match tokio::fs::remove_file(Self::path(root, key)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(e)),
            },
            Backend::NotConfigured => Err(BlobError::NotConfigured),
            Backend::S3 { .. } => {
                let (client, bucket) = self.s3().await?;
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(key.as_str())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(s3_error)
            }
        }
    }

    /// A URL that PUTs exactly `size` bytes of `content_type` to `key` until `expires_in`, with
    /// the type and length bound into the signature (S3 refuses another). `None` on the local
    /// store, whose uploads go through the attachments function.
    pub async fn presign_put(
        &self,
        key: &BlobKey,
        content_type: &str,
        size: u64,
        expires_in: Duration,
    ) -> Result<Option<PresignedPut>, BlobError> {
        if !self.presigns() {
            return Ok(None);
        }
        let (client, bucket) = self.s3().await?;
        let presigned = client
            .put_object()
            .bucket(bucket)
            .key(key.as_str())
            .content_type(content_type)
            .content_length(size as i64)
            .presigned(PresigningConfig::expires_in(expires_in).map_err(io)?)
            .await
            .map_err(s3_error)?;
        Ok(Some(PresignedPut {
            url: presigned.uri().to_string(),
            headers: presigned
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }))
    }

    /// A URL that GETs the blob until `expires_in`, answered with `content_type` and as an
    /// attachment named `filename`. `None` on the local store.
    pub async fn presign_get(
        &self,
        key: &BlobKey,
        content_type: &str,
        content_disposition: &str,
        expires_in: Duration,
    ) -> Result<Option<String>, BlobError> {
        if !self.presigns() {
            return Ok(None);
        }
        let (client, bucket) = self.s3().await?;
        let presigned = client
            .get_object()
            .bucket(bucket)
            .key(key.as_str())
            .response_content_type(content_type)
            .response_content_disposition(content_disposition)
            .presigned(PresigningConfig::expires_in(expires_in).map_err(io)?)
            .await
            .map_err(s3_error)?;
        Ok(Some(presigned.uri().to_string()))
    }
}
