//! The JSON dump of a project: `GET /projects/{id}/export` answers it, `POST /projects/import`
//! takes it.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{create_with_files, get, parse_description, parse_name, ProjectLimits, ProjectPath};
use crate::{
    blobs::{BlobKey, BlobStore},
    error::{Error, FieldError, FieldErrors, Result},
    ids::{ProjectId, UserId},
    store::{Conn, Project},
};

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
        limits,
    )
    .await
}
