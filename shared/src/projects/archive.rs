//! Zip archives in: a project from an uploaded zip, checked entry by entry while it is inflated.
//!
//! Nothing in an archive is trusted: names go through [`ProjectPath`]; sizes are counted while
//! inflating (the central directory may lie), against the per-file and total limits and a
//! per-entry compression ratio; symlinks and encrypted entries are refused; nested archives are
//! plain binary files. The project is filled inside one transaction and appears only when every
//! entry is in; any refusal leaves no row and no blob. Memory holds the archive (bounded by the
//! upload limit) and one entry at a time (bounded by the file limit).

use std::io::{Read, Seek};

use super::{Filling, ProjectLimits, ProjectPath};
use crate::{
    blobs::BlobStore,
    error::{Error, Result},
    ids::UserId,
    store::{Conn, Project},
};

/// Below this many inflated bytes an entry's compression ratio is not judged: small files of
/// repeated text compress far better than 100:1 and are harmless.
const RATIO_FLOOR: u64 = 64 * 1024;

/// The rules an archive is held to.
#[derive(Debug, Clone, Copy)]
pub struct ZipRules {
    pub limits: ProjectLimits,
    pub max_ratio: u64,
}

impl From<&crate::config::ProjectConfig> for ZipRules {
    fn from(config: &crate::config::ProjectConfig) -> Self {
        ZipRules {
            limits: ProjectLimits::from(config),
            max_ratio: config.max_zip_ratio,
        }
    }
}

fn refused(entry: &str, rule: impl std::fmt::Display) -> Error {
    Error::invalid("file", format!("entry {entry:?}: {rule}"))
}

/// One entry, read and checked; `None` for directories.
fn read_entry(
    archive: &mut zip::ZipArchive<impl Read + Seek>,
    index: usize,
    rules: &ZipRules,
    total: &mut u64,
) -> Result<Option<(ProjectPath, Vec<u8>)>> {
    let not_zip = || Error::invalid("file", "is not a readable zip archive");
    let (name, is_dir, compressed) = {
        let raw = archive.by_index_raw(index).map_err(|_| not_zip())?;
        let name = raw.name().map_err(|_| not_zip())?.into_owned();
        if raw.encrypted() {
            return Err(refused(&name, "encrypted entries are refused"));
        }
        if raw.is_symlink() {
            return Err(refused(&name, "symbolic links are refused"));
        }
        (name, raw.is_dir(), raw.compressed_size())
    };
    if is_dir {
        ProjectPath::parse(name.trim_end_matches('/'))
            .map_err(|rule| refused(&name, format!("path {rule}")))?;
        return Ok(None);
    }
    let path = ProjectPath::parse(&name).map_err(|rule| refused(&name, format!("path {rule}")))?;
    let by_file = rules.limits.max_file_bytes;
    let by_total = rules.limits.max_total_bytes.saturating_sub(*total);
    let by_ratio = (compressed.max(1))
        .saturating_mul(rules.max_ratio)
        .max(RATIO_FLOOR);
    let cap = by_file.min(by_total).min(by_ratio);
    let mut bytes = Vec::new();
    let entry = archive
        .by_index(index)
        .map_err(|e| refused(&name, format!("cannot be read ({e})")))?;
    // One byte past the cap tells "over" from "exactly at".
    entry
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refused(&name, format!("is corrupt ({e})")))?;
    let n = bytes.len() as u64;
    if n > by_file {
        return Err(refused(
            &name,
            format!("inflates past {by_file} bytes, the largest file allowed"),
        ));
    }
    if n > by_total {
        return Err(refused(
            &name,
            format!(
                "the archive inflates past {} bytes in all",
                rules.limits.max_total_bytes
            ),
        ));
    }
    if n > by_ratio {
        return Err(refused(
            &name,
            format!(
                "compresses more than {}:1, like a zip bomb",
                rules.max_ratio
            ),
        ));
    }
    *total += n;
    Ok(Some((path, bytes)))
}

/// A new project named `name` from the zip in `archive` (in memory for an inline upload, a
/// temporary file for a presigned one).
pub async fn unpack(
    conn: &Conn,
    blobs: &BlobStore,
    rules: &ZipRules,
    user_id: UserId,
    name: &str,
    archive: impl Read + Seek + Send,
) -> Result<Project> {
    let name = super::parse_name(name)?;
    let mut archive = zip::ZipArchive::new(archive)
        .map_err(|_| Error::invalid("file", "is not a zip archive"))?;
    if archive.len() > rules.limits.max_files {
        return Err(Error::invalid(
            "file",
            format!(
                "has {} entries; at most {} are allowed",
                archive.len(),
                rules.limits.max_files
            ),
        ));
    }
    let mut filling = Filling::start(conn, blobs, user_id, &name, None, &rules.limits).await?;
    let mut total = 0u64;
    let mut seen = std::collections::HashSet::new();
    for index in 0..archive.len() {
        let entry = read_entry(&mut archive, index, rules, &mut total).and_then(|e| match e {
            Some((path, _)) if !seen.insert(path.clone()) => {
                Err(refused(path.as_str(), "appears twice"))
            }
            other => Ok(other),
        });
        let added = match entry {
            Ok(Some((path, bytes))) => filling.add(&path, bytes.into()).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = added {
            filling.abandon().await;
            return Err(e);
        }
    }
    filling.finish().await
}

/// A shared buffer the zip writer fills and the response drains after each file.
#[derive(Clone, Default)]
struct Drain(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Drain {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drain {
    fn take(&self) -> bytes::Bytes {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b).into())
            .unwrap_or_default()
    }
}

/// The project as a zip, produced file by file as the response is read: memory holds one file and
/// its compressed form, whatever the project's size. The owner check runs before the first byte.
pub async fn zip_stream(
    conn: &Conn,
    blobs: &BlobStore,
    user_id: UserId,
    id: crate::ids::ProjectId,
) -> Result<(
    String,
    tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
)> {
    let project = super::get(conn, user_id, id).await?;
    let files = conn.project_files(id).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let blobs = blobs.clone();
    tokio::spawn(async move {
        use std::io::Write;
        let drain = Drain::default();
        let mut zip = zip::ZipWriter::new_stream(drain.clone());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for file in files {
            let bytes: bytes::Bytes = match (file.text, file.blob_key) {
                (Some(text), _) => text.into(),
                (None, Some(key)) => {
                    match blobs.read_all(&crate::blobs::BlobKey::stored(&key)).await {
                        Ok(b) => b.into(),
                        Err(e) => {
                            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                            return;
                        }
                    }
                }
                (None, None) => continue,
            };
            let written = zip
                .start_file(file.path.as_str(), options)
                .map_err(std::io::Error::other)
                .and_then(|()| zip.write_all(&bytes));
            if let Err(e) = written {
                let _ = tx.send(Err(e)).await;
                return;
            }
            let chunk = drain.take();
            if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                return; // the client went away
            }
        }
        match zip.finish() {
            Ok(_) => {
                let _ = tx.send(Ok(drain.take())).await;
            }
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e))).await;
            }
        }
    });
    Ok((project.name, rx))
}
