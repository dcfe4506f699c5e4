//! Projects: code workspaces of files, as their owner manages them (create, list, rename, delete),
//! their files (read, write, delete, the tree), and JSON export and import.
//!
//! Every path enters through [`ProjectPath`], whichever the door (file routes, import, zip, agent
//! tools). Text files (UTF-8 without NUL) are kept in the store, so the tree, search and the coding
//! agent read them without the blob store; binaries go to the blob store under keys made from ids.

pub mod archive;

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    blobs::{BlobKey, BlobStore},
    config::Config,
    error::{Error, FieldError, FieldErrors, Result},
    ids::{ProjectId, UserId},
    pagination::{Page, Paginated},
    store::{Conn, NewProjectFile, Project, ProjectFile},
    text,
};

const MAX_PATH_BYTES: usize = 1024;
const MAX_SEGMENT_BYTES: usize = 255;
const MAX_DEPTH: usize = 32;
const NAME_MAX_CHARS: usize = 100;
const DESCRIPTION_MAX_CHARS: usize = 2000;

/// A file's path inside a project: relative, `/`-separated, normalised once and checked against
/// every rule (no `..` or `.`, no absolute path, no backslash, no NUL or control character, no
/// empty segment, at most 32 levels and 1024 bytes, segments of at most 255 bytes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectPath(String);

impl ProjectPath {
    pub fn parse(raw: &str) -> std::result::Result<Self, String> {
        if raw.is_empty() {
            return Err("is empty".into());
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(format!("is longer than {MAX_PATH_BYTES} bytes"));
        }
        if raw.starts_with('/') || raw.as_bytes().get(1) == Some(&b':') {
            return Err("must be relative (no leading / or drive letter)".into());
        }
        if raw.contains('\\') {
            return Err("must use / between segments, not \\".into());
        }
        if raw.chars().any(|c| c.is_control()) {
            return Err("must not contain NUL or control characters".into());
        }
        let segments: Vec<&str> = raw.split('/').collect();
        if segments.len() > MAX_DEPTH {
            return Err(format!("is deeper than {MAX_DEPTH} levels"));
        }
        for s in &segments {
            match *s {
                "" => return Err("has an empty segment".into()),
                "." | ".." => return Err("must not contain . or .. segments".into()),
                s if s.len() > MAX_SEGMENT_BYTES => {
                    return Err(format!(
                        "has a segment longer than {MAX_SEGMENT_BYTES} bytes"
                    ))
                }
                _ => {}
            }
        }
        Ok(ProjectPath(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How large projects and their files may be.
#[derive(Debug, Clone, Copy)]
pub struct ProjectLimits {
    pub max_file_bytes: u64,
    pub max_files: usize,
    pub max_total_bytes: u64,
}

impl From<&Config> for ProjectLimits {
    fn from(config: &Config) -> Self {
        ProjectLimits {
            max_file_bytes: config.max_project_file_bytes,
            max_files: config.max_zip_entries,
            max_total_bytes: config.max_zip_uncompressed_bytes,
        }
    }
}

pub(crate) fn parse_name(raw: &str) -> std::result::Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX_CHARS || text::has_hidden_characters(name)
    {
        return Err(FieldError::new(
            "name",
            format!("must be 1 to {NAME_MAX_CHARS} visible characters"),
        ));
    }
    Ok(name.to_string())
}

fn parse_description(raw: &str) -> std::result::Result<String, FieldError> {
    if raw.chars().count() > DESCRIPTION_MAX_CHARS {
        return Err(FieldError::new(
            "description",
            format!("must be at most {DESCRIPTION_MAX_CHARS} characters"),
        ));
    }
    Ok(raw.trim().to_string())
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

fn blob_key(user_id: UserId, project_id: ProjectId) -> BlobKey {
    BlobKey::project_file(user_id, project_id, uuid::Uuid::now_v7())
}

/// Where a file's content goes: text (UTF-8 without NUL) stays in the row; a binary is written
/// to the blob store first, under a fresh key the row will name.
async fn place(
    blobs: &BlobStore,
    user_id: UserId,
    project_id: ProjectId,
    bytes: &bytes::Bytes,
) -> Result<(Option<String>, Option<BlobKey>)> {
    if is_text(bytes) {
        return Ok((Some(String::from_utf8_lossy(bytes).into_owned()), None));
    }
    let key = blob_key(user_id, project_id);
    blobs
        .put(&key, "application/octet-stream", bytes.clone())
        .await?;
    Ok((None, Some(key)))
}

/// A file as written, and the size of the one it replaced.
pub struct Written {
    pub file: ProjectFile,
    pub replaced_size: Option<i64>,
}

pub async fn create(
    conn: &Conn,
    user_id: UserId,
    name: &str,
    description: Option<&str>,
) -> Result<Project> {
    let mut errors = FieldErrors::default();
    let name = errors.take(parse_name(name));
    let description = description.and_then(|d| errors.take(parse_description(d)));
    errors.finish()?;
    let name = name.unwrap_or_default();
    Ok(conn
        .insert_project(ProjectId::new(), user_id, &name, description.as_deref())
        .await?)
}

pub async fn get(conn: &Conn, user_id: UserId, id: ProjectId) -> Result<Project> {
    conn.project(id, user_id).await?.ok_or(Error::NotFound)
}

pub async fn list(
    conn: &Conn,
    user_id: UserId,
    page: Page<ProjectId>,
) -> Result<Paginated<Project>> {
    let rows = conn.list_projects(user_id, page.after, page.limit).await?;
    Ok(Paginated::from_rows(rows, page.limit, |p| p.id))
}

/// `description: Some(None)` clears it.
pub async fn update(
    conn: &Conn,
    user_id: UserId,
    id: ProjectId,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> Result<Project> {
    let mut errors = FieldErrors::default();
    let name = name.and_then(|n| errors.take(parse_name(n)));
    let description = match description {
        Some(Some(d)) => errors.take(parse_description(d)).map(Some),
        Some(None) => Some(None),
        None => None,
    };
    errors.finish()?;
    conn.update_project(
        id,
        user_id,
        name.as_deref(),
        description.as_ref().map(|d| d.as_deref()),
    )
    .await?
    .ok_or(Error::NotFound)
}

/// Deletes the project, its file rows (one transaction) and then its blobs.
pub async fn delete(conn: &Conn, blobs: &BlobStore, user_id: UserId, id: ProjectId) -> Result<()> {
    let keys = conn
        .delete_project(id, user_id)
        .await?
        .ok_or(Error::NotFound)?;
    for key in keys {
        remove_blob(blobs, &key).await;
    }
    Ok(())
}

async fn remove_blob(blobs: &BlobStore, key: &str) {
    if let Err(e) = blobs.delete(&BlobKey::stored(key)).await {
        tracing::warn!(error = %e, "project blob not removed");
    }
}

/// A file's bytes, as stored.
pub struct FileContent {
    pub file: ProjectFile,
    pub bytes: bytes::Bytes,
}

pub async fn read_file(
    conn: &Conn,
    blobs: &BlobStore,
    user_id: UserId,
    id: ProjectId,
    path: &ProjectPath,
) -> Result<FileContent> {
    get(conn, user_id, id).await?;
    let file = conn
        .project_file(id, path.as_str())
        .await?
        .ok_or(Error::NotFound)?;
    let bytes = match (&file.text, &file.blob_key) {
        (Some(text), _) => bytes::Bytes::from(text.clone()),
        (None, Some(key)) => blobs.read_all(&BlobKey::stored(key)).await?.into(),
        (None, None) => return Err(Error::Internal("a project file without content".into())),
    };
    Ok(FileContent { file, bytes })
}

/// Creates or replaces a file. A binary's new blob is written before its row, and the blob it
/// replaces is removed after: a reader never finds a row whose bytes are gone.
pub async fn write_file(
    conn: &Conn,
    blobs: &BlobStore,
    limits: &ProjectLimits,
    user_id: UserId,
    id: ProjectId,
    path: &ProjectPath,
    bytes: bytes::Bytes,
) -> Result<Written> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(Error::PayloadTooLarge {
            limit: limits.max_file_bytes as usize,
        });
    }
    let project = get(conn, user_id, id).await?;
    let previous = conn.project_file(id, path.as_str()).await?;
    let grows = bytes.len() as i64 - previous.as_ref().map(|f| f.size).unwrap_or(0);
    if previous.is_none() && project.file_count as usize >= limits.max_files {
        return Err(Error::Conflict(
            "the project has as many files as it may hold",
        ));
    }
    if project.total_bytes + grows > limits.max_total_bytes as i64 {
        return Err(Error::Conflict(
            "the project would be larger than it may be",
        ));
    }
    let sha256 = sha256_hex(&bytes);
    let (text, key) = place(blobs, user_id, id, &bytes).await?;
    let stored = conn
        .put_project_file(
            id,
            NewProjectFile {
                path: path.as_str(),
                size: bytes.len() as i64,
                sha256: &sha256,
                text: text.as_deref(),
                blob_key: key.as_ref().map(BlobKey::as_str),
            },
        )
        .await;
    let file = match (stored, key) {
        (Ok(file), _) => file,
        (Err(e), Some(key)) => {
            let _ = blobs.delete(&key).await;
            return Err(e.into());
        }
        (Err(e), None) => return Err(e.into()),
    };
    let replaced_size = previous.as_ref().map(|p| p.size);
    if let Some(old) = previous.and_then(|p| p.blob_key) {
        remove_blob(blobs, &old).await;
    }
    Ok(Written {
        file,
        replaced_size,
    })
}

/// Removes a file; answers what it was.
pub async fn delete_file(
    conn: &Conn,
    blobs: &BlobStore,
    user_id: UserId,
    id: ProjectId,
    path: &ProjectPath,
) -> Result<ProjectFile> {
    get(conn, user_id, id).await?;
    let gone = conn
        .delete_project_file(id, path.as_str())
        .await?
        .ok_or(Error::NotFound)?;
    if let Some(key) = &gone.blob_key {
        remove_blob(blobs, key).await;
    }
    Ok(gone)
}

/// A directory or a file of the tree.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TreeNode {
    pub name: String,
    pub path: String,
    /// `dir` or `file`.
    pub kind: &'static str,
    /// Bytes: the file's, or everything under the directory.
    pub size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub children: Option<Vec<TreeNode>>,
}

#[derive(Default)]
struct Dir {
    dirs: BTreeMap<String, Dir>,
    files: BTreeMap<String, i64>,
}

impl Dir {
    fn into_node(self, name: String, path: String) -> TreeNode {
        let mut children = Vec::with_capacity(self.dirs.len() + self.files.len());
        for (n, d) in self.dirs {
            let p = if path.is_empty() {
                n.clone()
            } else {
                format!("{path}/{n}")
            };
            children.push(d.into_node(n, p));
        }
        for (n, size) in self.files {
            let p = if path.is_empty() {
                n.clone()
            } else {
                format!("{path}/{n}")
            };
            children.push(TreeNode {
                name: n,
                path: p,
                kind: "file",
                size,
                children: None,
            });
        }
        TreeNode {
            name,
            path,
            kind: "dir",
            size: children.iter().map(|c| c.size).sum(),
            children: Some(children),
        }
    }
}

/// The project as a nested tree: directories first, then files, each sorted by name; the root is
/// the project itself (empty path).
pub async fn tree(conn: &Conn, user_id: UserId, id: ProjectId) -> Result<TreeNode> {
    let project = get(conn, user_id, id).await?;
    let mut root = Dir::default();
    for (path, size) in conn.project_paths(id).await? {
        let mut segments: Vec<&str> = path.split('/').collect();
        let file = segments.pop().unwrap_or_default().to_string();
        let mut dir = &mut root;
        for s in segments {
            dir = dir.dirs.entry(s.to_string()).or_default();
        }
        dir.files.insert(file, size);
    }
    Ok(root.into_node(project.name, String::new()))
}

/// The JSON dump of a project: `GET /projects/{id}/export` answers it, `POST /projects/import`
/// takes it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectDump {
    /// Always `codechat.project`.
    pub format: String,
    /// Always 1.
    pub version: u32,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub files: Vec<DumpFile>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DumpFile {
    pub path: String,
    /// `utf-8` for text, `base64` for binaries.
    pub encoding: String,
    pub content: String,
}

const DUMP_FORMAT: &str = "codechat.project";

pub async fn export(
    conn: &Conn,
    blobs: &BlobStore,
    user_id: UserId,
    id: ProjectId,
) -> Result<ProjectDump> {
    let project = get(conn, user_id, id).await?;
    let mut files = Vec::new();
    for f in conn.project_files(id).await? {
        let (encoding, content) = match (f.text, f.blob_key) {
            (Some(text), _) => ("utf-8", text),
            (None, Some(key)) => (
                "base64",
                base64::engine::general_purpose::STANDARD
                    .encode(blobs.read_all(&BlobKey::stored(&key)).await?),
            ),
            (None, None) => return Err(Error::Internal("a project file without content".into())),
        };
        files.push(DumpFile {
            path: f.path,
            encoding: encoding.into(),
            content,
        });
    }
    Ok(ProjectDump {
        format: DUMP_FORMAT.into(),
        version: 1,
        name: project.name,
        description: project.description,
        files,
    })
}

/// File rows are sent to the store in batches of about this many bytes of text, or this many
/// files, whichever comes first: each batch is one short write (a few milliseconds here), never
/// one transaction over the whole archive.
const BATCH_BYTES: usize = 256 * 1024;
const BATCH_FILES: usize = 200;

/// How long a run filling a project may take before the sweep counts it as dead: past the
/// unpacker's 15-minute timeout.
const IMPORT_LEASE: std::time::Duration = std::time::Duration::from_secs(16 * 60);

/// A project being filled: binaries go to the blob store as they come, file rows in batches,
/// behind the project's `importing` status (no read sees it). [`Filling::finish`] makes it
/// visible, complete; [`Filling::abandon`] (or any error) removes it, blobs included. A run that
/// dies part-way leaves it `importing` until its lease runs out, when [`sweep`] removes it.
struct Filling<'a> {
    conn: &'a Conn,
    blobs: &'a BlobStore,
    user_id: UserId,
    id: ProjectId,
    batch: Vec<serde_json::Value>,
    batch_bytes: usize,
    written: Vec<BlobKey>,
}

impl<'a> Filling<'a> {
    async fn start(
        conn: &'a Conn,
        blobs: &'a BlobStore,
        user_id: UserId,
        name: &str,
        description: Option<&str>,
    ) -> Result<Filling<'a>> {
        sweep(conn, blobs).await;
        let id = ProjectId::new();
        let lease = crate::ids::format_time((std::time::SystemTime::now() + IMPORT_LEASE).into());
        conn.insert_importing_project(id, user_id, name, description, &lease)
            .await?;
        Ok(Filling {
            conn,
            blobs,
            user_id,
            id,
            batch: Vec::new(),
            batch_bytes: 0,
            written: Vec::new(),
        })
    }

    async fn add(&mut self, path: &ProjectPath, bytes: bytes::Bytes) -> Result<()> {
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
        if !self.conn.add_project_files(self.id, &rows).await? {
            return Err(Error::Internal(
                "a project import outlived its lease".into(),
            ));
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Project> {
        let done = match self.flush().await {
            Ok(()) => match self.conn.finish_import(self.id).await {
                Ok(Some(project)) => Ok(project),
                Ok(None) => Err(Error::Internal(
                    "a project import outlived its lease".into(),
                )),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
        if done.is_err() {
            self.abandon().await;
        }
        done
    }

    async fn abandon(self) {
        if let Err(e) = self.conn.remove_import(self.id).await {
            tracing::warn!(error = %e, "an abandoned project import was left for the sweep");
        }
        remove_blobs(self.blobs, &self.written).await;
    }
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
) -> Result<Project> {
    let mut filling = Filling::start(conn, blobs, user_id, name, description).await?;
    for (path, bytes) in files {
        if let Err(e) = filling.add(&path, bytes).await {
            filling.abandon().await;
            return Err(e);
        }
    }
    filling.finish().await
}

/// Checks a dump (format, name, every path, encodings, duplicates, limits) and creates the project.
pub async fn import(
    conn: &Conn,
    blobs: &BlobStore,
    limits: &ProjectLimits,
    user_id: UserId,
    dump: ProjectDump,
) -> Result<Project> {
    let mut errors = FieldErrors::default();
    if dump.format != DUMP_FORMAT || dump.version != 1 {
        errors.push(FieldError::new(
            "format",
            format!("must be {DUMP_FORMAT} version 1"),
        ));
    }
    let name = errors.take(parse_name(&dump.name));
    let description = dump
        .description
        .as_deref()
        .and_then(|d| errors.take(parse_description(d)));
    if dump.files.len() > limits.max_files {
        errors.push(FieldError::new(
            "files",
            format!("at most {} files", limits.max_files),
        ));
    }
    let mut files = Vec::with_capacity(dump.files.len());
    let mut seen = std::collections::HashSet::new();
    let mut total: u64 = 0;
    for (i, f) in dump.files.into_iter().enumerate() {
        let path = match ProjectPath::parse(&f.path) {
            Ok(p) => p,
            Err(rule) => {
                errors.push(FieldError::new(format!("files[{i}].path"), rule));
                continue;
            }
        };
        if !seen.insert(path.clone()) {
            errors.push(FieldError::new(format!("files[{i}].path"), "appears twice"));
            continue;
        }
        let bytes: bytes::Bytes = match f.encoding.as_str() {
            "utf-8" => f.content.into_bytes().into(),
            "base64" => {
                match base64::engine::general_purpose::STANDARD.decode(f.content.as_bytes()) {
                    Ok(b) => b.into(),
                    Err(_) => {
                        errors.push(FieldError::new(
                            format!("files[{i}].content"),
                            "is not base64",
                        ));
                        continue;
                    }
                }
            }
            _ => {
                errors.push(FieldError::new(
                    format!("files[{i}].encoding"),
                    "must be utf-8 or base64",
                ));
                continue;
            }
        };
        if bytes.len() as u64 > limits.max_file_bytes {
            errors.push(FieldError::new(
                format!("files[{i}].content"),
                format!("is larger than {} bytes", limits.max_file_bytes),
            ));
            continue;
        }
        total += bytes.len() as u64;
        files.push((path, bytes));
    }
    if total > limits.max_total_bytes {
        errors.push(FieldError::new(
            "files",
            format!("hold more than {} bytes in all", limits.max_total_bytes),
        ));
    }
    errors.finish()?;
    create_with_files(
        conn,
        blobs,
        user_id,
        &name.unwrap_or_default(),
        description.as_deref().filter(|d| !d.is_empty()),
        files,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_every_rule() {
        for ok in [
            "a.txt",
            "src/main.rs",
            "a/b/c/d.md",
            ".github/workflows/ci.yml",
            "dir/.env",
            "é/ü.txt",
        ] {
            assert_eq!(ProjectPath::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/./b",
            "./a",
            "a//b",
            "a/",
            "a\\b",
            "C:/x",
            "a\0b",
            "a\nb",
        ] {
            assert!(ProjectPath::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ProjectPath::parse(&"x".repeat(256)).is_err());
        assert!(ProjectPath::parse(&"x".repeat(255)).is_ok());
        assert!(
            ProjectPath::parse(&vec!["y".repeat(200); 6].join("/")).is_err(),
            "over 1024 bytes"
        );
        let deep = vec!["d"; 33].join("/");
        assert!(ProjectPath::parse(&deep).is_err());
        let ok_deep = vec!["d"; 32].join("/");
        assert!(ProjectPath::parse(&ok_deep).is_ok());
    }
}
