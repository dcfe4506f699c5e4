//! Filling a new project with many files (a zip, an import): in bounded batches behind the
//! `importing` status, and the sweep of runs that died part-way.

use super::{place, sha256_hex, ProjectLimits, ProjectPath};
use crate::{
    blobs::{BlobKey, BlobStore},
    error::{Error, Result},
    ids::{ProjectId, UserId},
    store::{Conn, Project},
};

/// File rows are sent to the store in batches of about this many bytes of text, or this many
/// files, whichever comes first: each batch is one short write, never one transaction over the
/// whole archive.
const BATCH_BYTES: usize = 256 * 1024;
const BATCH_FILES: usize = 200;

/// How long a run filling a project may take before the sweep counts it as dead: past the
/// unpacker's 15-minute timeout.
const IMPORT_LEASE: std::time::Duration = std::time::Duration::from_secs(16 * 60);

/// A project being filled: binaries go to the blob store as they come, file rows in batches,
/// behind the project's `importing` status (no read sees it). [`Filling::finish`] makes it
/// visible, complete; [`Filling::abandon`] (or any error) removes it, blobs included. A run that
/// dies part-way leaves it `importing` until its lease runs out, when [`sweep`] removes it.
pub(super) struct Filling<'a> {
    conn: &'a Conn,
    blobs: &'a BlobStore,
    user_id: UserId,
    id: ProjectId,
    /// What the user may store in all; a batch past it fails the import.
    storage_cap: u64,
    batch: Vec<serde_json::Value>,
    batch_bytes: usize,
    written: Vec<BlobKey>,
}

impl<'a> Filling<'a> {
    pub(super) async fn start(
        conn: &'a Conn,
        blobs: &'a BlobStore,
        user_id: UserId,
        name: &str,
        description: Option<&str>,
        limits: &ProjectLimits,
    ) -> Result<Filling<'a>> {
        sweep(conn, blobs).await;
        let id = ProjectId::new();
        let lease = crate::ids::format_time((std::time::SystemTime::now() + IMPORT_LEASE).into());
        conn.insert_importing_project(id, user_id, name, description, &lease, limits.max_projects)
            .await?;
        Ok(Filling {
            conn,
            blobs,
            user_id,
            id,
            storage_cap: limits.max_user_bytes,
            batch: Vec::new(),
            batch_bytes: 0,
            written: Vec::new(),
        })
    }

    pub(super) async fn add(&mut self, path: &ProjectPath, bytes: bytes::Bytes) -> Result<()> {
        let sha256 = sha256_hex(&bytes);
        let (text, key) = place(self.blobs, self.user_id, self.id, &bytes).await?;
        if let Some(key) = &key {
            self.written.push(key.clone());
        }
        let key = key.map(|k| k.as_str().to_string());
        self.batch_bytes += path.as_str().len() + text.as_ref().map(String::len).unwrap_or(0) + 128;
        self.batch.push(serde_json::json!({
            "path": path.as_str(), "size": bytes.len(), "sha256": sha256,
            "text": text, "blob_key": key,
        }));
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_FILES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let rows = serde_json::Value::Array(std::mem::take(&mut self.batch)).to_string();
        self.batch_bytes = 0;
        match self
            .conn
            .add_project_files(self.id, &rows, self.storage_cap)
            .await?
        {
            true => Ok(()),
            false => Err(outlived_lease()),
        }
    }

    pub(super) async fn finish(mut self) -> Result<Project> {
        let done = match self.flush().await {
            Ok(()) => match self.conn.finish_import(self.id).await {
                Ok(project) => project.ok_or_else(outlived_lease),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
        if done.is_err() {
            self.abandon().await;
        }
        done
    }

    pub(super) async fn abandon(self) {
        if let Err(e) = self.conn.remove_import(self.id).await {
            tracing::warn!(error = %e, "an abandoned project import was left for the sweep");
        }
        remove_blobs(self.blobs, &self.written).await;
    }
}

/// The sweep may remove an import whose lease ran out; a run that outlives its lease gives up.
fn outlived_lease() -> Error {
    Error::Internal("a project import outlived its lease".into())
}

async fn remove_blobs(blobs: &BlobStore, keys: &[BlobKey]) {
    for key in keys {
        let _ = blobs.delete(key).await;
    }
}

/// Removes what import runs that died part-way left: projects still `importing` past their
/// lease, with their blobs. Runs before each new import; a few at a time, and its failures are
/// only logged, since they are not the caller's.
pub async fn sweep(conn: &Conn, blobs: &BlobStore) {
    let stale = match conn.stale_imports(&crate::ids::now(), 4).await {
        Ok(stale) => stale,
        Err(e) => {
            tracing::warn!(error = %e, "the project sweep could not list stale imports");
            return;
        }
    };
    for id in stale {
        match conn.remove_import(id).await {
            Ok(keys) => {
                let keys: Vec<BlobKey> = keys.iter().map(|k| BlobKey::stored(k)).collect();
                remove_blobs(blobs, &keys).await;
            }
            Err(e) => tracing::warn!(error = %e, "the project sweep could not remove an import"),
        }
    }
}

/// A new project from files already checked.
pub async fn create_with_files(
    conn: &Conn,
    blobs: &BlobStore,
    user_id: UserId,
    name: &str,
    description: Option<&str>,
    files: Vec<(ProjectPath, bytes::Bytes)>,
    limits: &ProjectLimits,
) -> Result<Project> {
    let mut filling = Filling::start(conn, blobs, user_id, name, description, limits).await?;
    for (path, bytes) in files {
        if let Err(e) = filling.add(&path, bytes).await {
            filling.abandon().await;
            return Err(e);
        }
    }
    filling.finish().await
}
