//! A project's files: read, written (within the project's and the user's limits, in the one
//! statement that writes), removed, listed and searched.

use super::{col, collect, first, Conn, Row, StoreError, StoreResult};
use crate::ids::ProjectId;

/// A file of a project: its text, or where its bytes are.
#[derive(Debug, Clone)]
pub struct ProjectFile {
    pub path: String,
    pub size: i64,
    pub sha256: String,
    pub text: Option<String>,
    pub blob_key: Option<String>,
    pub updated_at: String,
}

/// What a file write may not pass: the project's files and bytes, and the user's storage.
#[derive(Debug, Clone, Copy)]
pub struct FileLimits {
    pub project_files: u64,
    pub project_bytes: u64,
    pub user_bytes: u64,
}

pub struct NewProjectFile<'a> {
    pub path: &'a str,
    pub size: i64,
    pub sha256: &'a str,
    pub text: Option<&'a str>,
    pub blob_key: Option<&'a str>,
}

const FILE_COLUMNS: &str = "path, size, sha256, text, blob_key, updated_at";

fn file_from_row(row: &Row) -> StoreResult<ProjectFile> {
    Ok(ProjectFile {
        path: col(row, 0, "project_files.path")?,
        size: col(row, 1, "project_files.size")?,
        sha256: col(row, 2, "project_files.sha256")?,
        text: col(row, 3, "project_files.text")?,
        blob_key: col(row, 4, "project_files.blob_key")?,
        updated_at: col(row, 5, "project_files.updated_at")?,
    })
}

impl Conn {
    pub async fn project_file(
        &self,
        project_id: ProjectId,
        path: &str,
    ) -> StoreResult<Option<ProjectFile>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {FILE_COLUMNS} FROM project_files WHERE project_id = ?1 AND path = ?2"
                ),
                libsql::params![project_id, path],
            )
            .await?;
        first(rows, file_from_row)
    }

    /// Writes a file (creating or replacing it) in one statement; the project's counters follow.
    /// The project's limits (files, bytes) and the user's storage cap are checked in the same
    /// statement, so concurrent writes cannot pass them together: a refusal writes nothing and is
    /// [`StoreError::ProjectFull`] or [`StoreError::StorageFull`] (a replaced file's old size no
    /// longer counts).
    pub async fn put_project_file(
        &self,
        project_id: ProjectId,
        file: NewProjectFile<'_>,
        limits: FileLimits,
    ) -> StoreResult<ProjectFile> {
        let used = super::user_storage_bytes("(SELECT user_id FROM projects WHERE id = ?1)");
        let old = "(SELECT size FROM project_files WHERE project_id = ?1 AND path = ?2)";
        let rows = self
            .query(
                &format!(
                    "INSERT INTO project_files (project_id, path, size, sha256, text, blob_key, updated_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 FROM projects p
                     WHERE p.id = ?1
                       AND {used} + ?3 - COALESCE({old}, 0) <= ?8
                       AND p.total_bytes + ?3 - COALESCE({old}, 0) <= ?9
                       AND p.file_count + (CASE WHEN {old} IS NULL THEN 1 ELSE 0 END) <= ?10
                     ON CONFLICT (project_id, path) DO UPDATE SET size = excluded.size,
                         sha256 = excluded.sha256, text = excluded.text, blob_key = excluded.blob_key,
                         updated_at = excluded.updated_at
                     RETURNING {FILE_COLUMNS}"
                ),
                libsql::params![
                    project_id,
                    file.path,
                    file.size,
                    file.sha256,
                    file.text,
                    file.blob_key,
                    crate::ids::now(),
                    limits.user_bytes.min(i64::MAX as u64) as i64,
                    limits.project_bytes.min(i64::MAX as u64) as i64,
                    limits.project_files.min(i64::MAX as u64) as i64
                ],
            )
            .await?;
        if let Some(file) = first(rows, file_from_row)? {
            return Ok(file);
        }
        // Refused: say which bound.
        let rows = self
            .query(
                &format!(
                    "SELECT p.file_count + (CASE WHEN {old} IS NULL THEN 1 ELSE 0 END) > ?3,
                            p.total_bytes + ?4 - COALESCE({old}, 0) > ?5
                     FROM projects p WHERE p.id = ?1"
                ),
                libsql::params![
                    project_id,
                    file.path,
                    limits.project_files.min(i64::MAX as u64) as i64,
                    file.size,
                    limits.project_bytes.min(i64::MAX as u64) as i64
                ],
            )
            .await?;
        let (too_many, too_large) = match rows.first() {
            Some(row) => (
                col::<bool>(row, 0, "project_files.too_many")?,
                col::<bool>(row, 1, "project_files.too_large")?,
            ),
            None => (false, false),
        };
        Err(if too_many {
            StoreError::ProjectFull("the project has as many files as it may hold")
        } else if too_large {
            StoreError::ProjectFull("the project would be larger than it may be")
        } else {
            StoreError::StorageFull {
                limit: limits.user_bytes,
            }
        })
    }

    /// Removes a file and answers what it was (so the caller removes its blob).
    pub async fn delete_project_file(
        &self,
        project_id: ProjectId,
        path: &str,
    ) -> StoreResult<Option<ProjectFile>> {
        let rows = self
            .query(
                &format!(
                    "DELETE FROM project_files WHERE project_id = ?1 AND path = ?2 RETURNING {FILE_COLUMNS}"
                ),
                libsql::params![project_id, path],
            )
            .await?;
        first(rows, file_from_row)
    }

    /// Every file's path and size, in path order (the tree).
    pub async fn project_paths(&self, project_id: ProjectId) -> StoreResult<Vec<(String, i64)>> {
        let rows = self
            .query(
                "SELECT path, size FROM project_files WHERE project_id = ?1 ORDER BY path",
                [project_id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    col(r, 0, "project_files.path")?,
                    col(r, 1, "project_files.size")?,
                ))
            })
            .collect()
    }

    /// Text files whose content contains `needle` (ASCII case folded, as SQLite's `lower` does), in
    /// path order, at most `limit`: the filter runs in the store, so a search never loads the
    /// whole project.
    pub async fn project_text_files_containing(
        &self,
        project_id: ProjectId,
        needle: &str,
        limit: u32,
    ) -> StoreResult<Vec<ProjectFile>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {FILE_COLUMNS} FROM project_files
                     WHERE project_id = ?1 AND text IS NOT NULL AND instr(lower(text), lower(?2)) > 0
                     ORDER BY path LIMIT ?3"
                ),
                libsql::params![project_id, needle, limit as i64],
            )
            .await?;
        collect(rows, file_from_row)
    }

    /// Every file with its content, in path order (export).
    pub async fn project_files(&self, project_id: ProjectId) -> StoreResult<Vec<ProjectFile>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {FILE_COLUMNS} FROM project_files WHERE project_id = ?1 ORDER BY path"
                ),
                [project_id],
            )
            .await?;
        collect(rows, file_from_row)
    }
}
