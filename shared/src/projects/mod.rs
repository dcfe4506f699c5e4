//! Projects: code workspaces of files, as their owner manages them (create, list, rename, delete),
//! their files (read, write, delete, the tree), and JSON export and import.
//!
//! Every path enters through [`ProjectPath`], whichever the door (file routes, import, zip, agent
//! tools). Text files (UTF-8 without NUL) are kept in the store, so the tree, search and the coding
//! agent read them without the blob store; binaries go to the blob store under keys made from ids.

pub mod archive;
mod dump;
mod filling;
mod path;
pub mod uploads;

pub use dump::{export, import, DumpFile, ProjectDump};
use filling::Filling;
pub use filling::{create_with_files, sweep};
pub use path::ProjectPath;

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    blobs::{BlobKey, BlobStore},
    config::ProjectConfig,
    error::{Error, FieldError, FieldErrors, Result},
    ids::{ProjectId, UserId},
    pagination::{Page, Paginated},
    store::{Conn, NewProjectFile, Project, ProjectFile},
    text,
};

const NAME_MAX_CHARS: usize = 100;
const DESCRIPTION_MAX_CHARS: usize = 2000;

/// How large projects and their files may be.
#[derive(Debug, Clone, Copy)]
pub struct ProjectLimits {
    pub max_file_bytes: u64,
    pub max_files: usize,
    pub max_total_bytes: u64,
    /// What the user may store in all (a write past it is a 413 `storage-quota`).
    pub max_user_bytes: u64,
    /// Projects the user may hold.
    pub max_projects: u64,
}

impl From<&ProjectConfig> for ProjectLimits {
    fn from(config: &ProjectConfig) -> Self {
        ProjectLimits {
            max_file_bytes: config.max_project_file_bytes,
            max_files: config.max_zip_entries,
            max_total_bytes: config.max_zip_uncompressed_bytes,
            max_user_bytes: config.max_user_storage_bytes,
            max_projects: config.max_projects_per_user,
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
    max_projects: u64,
) -> Result<Project> {
    let mut errors = FieldErrors::default();
    let name = errors.take(parse_name(name));
    let description = description.and_then(|d| errors.take(parse_description(d)));
    errors.finish()?;
    let name = name.unwrap_or_default();
    Ok(conn
        .insert_project(
            ProjectId::new(),
            user_id,
            &name,
            description.as_deref(),
            max_projects,
        )
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
            crate::store::FileLimits {
                project_files: limits.max_files as u64,
                project_bytes: limits.max_total_bytes,
                user_bytes: limits.max_user_bytes,
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
