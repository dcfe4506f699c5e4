//! Projects: their rows, imports in batches, and removal (their files' statements are in
//! `project_files.rs`).

use super::{col, collect, first, Conn, Row, StoreError, StoreResult};
use crate::ids::{ProjectId, UserId};

#[derive(Debug, Clone)]
pub struct Project {
    pub id: ProjectId,
    pub user_id: UserId,
    pub name: String,
    pub description: Option<String>,
    pub file_count: i64,
    pub total_bytes: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// The project `?1` a removal may touch: the user `?2`'s, or (no user) an importing one.
const WHOSE: &str =
    "id = ?1 AND CASE WHEN ?2 IS NULL THEN status = 'importing' ELSE user_id = ?2 END";

/// Files removed per statement when a project is deleted.
const FILE_DELETE_BATCH: i64 = 500;

const PROJECT_COLUMNS: &str =
    "id, user_id, name, description, file_count, total_bytes, created_at, updated_at";

fn project_from_row(row: &Row) -> StoreResult<Project> {
    Ok(Project {
        id: col(row, 0, "projects.id")?,
        user_id: col(row, 1, "projects.user_id")?,
        name: col(row, 2, "projects.name")?,
        description: col(row, 3, "projects.description")?,
        file_count: col(row, 4, "projects.file_count")?,
        total_bytes: col(row, 5, "projects.total_bytes")?,
        created_at: col(row, 6, "projects.created_at")?,
        updated_at: col(row, 7, "projects.updated_at")?,
    })
}

impl Conn {
    /// A new empty project; refused ([`StoreError::LimitReached`]) when the user already holds
    /// `max_projects` (importing ones included).
    pub async fn insert_project(
        &self,
        id: ProjectId,
        user_id: UserId,
        name: &str,
        description: Option<&str>,
        max_projects: u64,
    ) -> StoreResult<Project> {
        let rows = self
            .query(
                &format!(
                    "INSERT INTO projects (id, user_id, name, description, created_at, updated_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?5
                     WHERE (SELECT COUNT(*) FROM projects WHERE user_id = ?2) < ?6
                     RETURNING {PROJECT_COLUMNS}"
                ),
                libsql::params![
                    id,
                    user_id,
                    name,
                    description,
                    crate::ids::now(),
                    max_projects.min(i64::MAX as u64) as i64
                ],
            )
            .await?;
        first(rows, project_from_row)?.ok_or(StoreError::LimitReached {
            what: "projects",
            limit: max_projects,
        })
    }

    /// Starts a project that is filled in batches ([`Conn::add_project_files`]): `importing`,
    /// seen by no read until [`Conn::finish_import`]. Past `lease_until` the run counts as dead
    /// and the sweep removes it.
    pub async fn insert_importing_project(
        &self,
        id: ProjectId,
        user_id: UserId,
        name: &str,
        description: Option<&str>,
        lease_until: &str,
        max_projects: u64,
    ) -> StoreResult<()> {
        let added = self
            .execute(
                "INSERT INTO projects (id, user_id, name, description, created_at, updated_at, status,
                                       import_lease_until)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?5, 'importing', ?6
                 WHERE (SELECT COUNT(*) FROM projects WHERE user_id = ?2) < ?7",
                libsql::params![
                    id,
                    user_id,
                    name,
                    description,
                    crate::ids::now(),
                    lease_until,
                    max_projects.min(i64::MAX as u64) as i64
                ],
            )
            .await?;
        match added {
            0 => Err(StoreError::LimitReached {
                what: "projects",
                limit: max_projects,
            }),
            _ => Ok(()),
        }
    }

    /// Adds one batch of an importing project's files, given as a JSON array of
    /// `{path, size, sha256, text, blob_key}`, in one statement; false (nothing added) when the
    /// project is no longer importing (swept).
    ///
    /// The batch is refused whole ([`StoreError::StorageFull`]) when the user's files would then
    /// take more than `storage_cap` bytes.
    pub async fn add_project_files(
        &self,
        id: ProjectId,
        files_json: &str,
        storage_cap: u64,
    ) -> StoreResult<bool> {
        let used = super::user_storage_bytes("(SELECT user_id FROM projects WHERE id = ?1)");
        let added = self
            .write_batch(
                "projects.add_files",
                &format!(
                    "INSERT INTO project_files (project_id, path, size, sha256, text, blob_key, updated_at)
                     SELECT ?1, f.value ->> 'path', f.value ->> 'size', f.value ->> 'sha256',
                            f.value ->> 'text', f.value ->> 'blob_key', ?2
                     FROM json_each(?3) AS f
                     WHERE EXISTS (SELECT 1 FROM projects WHERE id = ?1 AND status = 'importing')
                       AND {used} + (SELECT COALESCE(SUM(b.value ->> 'size'), 0) FROM json_each(?3) AS b) <= ?4"
                ),
                libsql::params![
                    id,
                    crate::ids::now(),
                    files_json,
                    storage_cap.min(i64::MAX as u64) as i64
                ],
            )
            .await?;
        if added > 0 || files_json == "[]" {
            return Ok(true);
        }
        // Nothing added: the project was swept, or the batch did not fit.
        let importing = self
            .query(
                "SELECT 1 FROM projects WHERE id = ?1 AND status = 'importing'",
                libsql::params![id],
            )
            .await?;
        match importing.is_empty() {
            true => Ok(false),
            false => Err(StoreError::StorageFull { limit: storage_cap }),
        }
    }

    /// Makes an importing project visible, complete; none when its lease ran out (the sweep
    /// removes it, so the two never both act on one project) or it was swept.
    pub async fn finish_import(&self, id: ProjectId) -> StoreResult<Option<Project>> {
        let rows = self
            .query(
                &format!(
                    "UPDATE projects SET status = 'ready', import_lease_until = NULL
                     WHERE id = ?1 AND status = 'importing' AND import_lease_until >= ?2
                     RETURNING {PROJECT_COLUMNS}"
                ),
                libsql::params![id, crate::ids::now()],
            )
            .await?;
        first(rows, project_from_row)
    }

    /// Importing projects whose run's lease ran out before `now`: runs that died part-way. At most
    /// `limit`, oldest lease first.
    pub async fn stale_imports(&self, now: &str, limit: u32) -> StoreResult<Vec<ProjectId>> {
        let rows = self
            .query(
                "SELECT id FROM projects WHERE status = 'importing' AND import_lease_until < ?1
                 ORDER BY import_lease_until LIMIT ?2",
                libsql::params![now, limit as i64],
            )
            .await?;
        collect(rows, |row| col(row, 0, "projects.id"))
    }

    /// Removes an importing project (abandoned, or swept) with its file rows; answers the blob
    /// keys its files used, for the caller to remove.
    pub async fn remove_import(&self, id: ProjectId) -> StoreResult<Vec<String>> {
        Ok(self.remove_project_rows(id, None).await?.1)
    }

    /// The project if it exists and belongs to `user_id`.
    pub async fn project(&self, id: ProjectId, user_id: UserId) -> StoreResult<Option<Project>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {PROJECT_COLUMNS} FROM projects
                     WHERE id = ?1 AND user_id = ?2 AND status = 'ready'"
                ),
                libsql::params![id, user_id],
            )
            .await?;
        first(rows, project_from_row)
    }

    /// Newest first; `after` is the last id of the previous page.
    pub async fn list_projects(
        &self,
        user_id: UserId,
        after: Option<ProjectId>,
        limit: u32,
    ) -> StoreResult<Vec<Project>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {PROJECT_COLUMNS} FROM projects
                     WHERE user_id = ?1 AND status = 'ready' AND (?2 IS NULL OR id < ?2)
                     ORDER BY id DESC LIMIT ?3"
                ),
                libsql::params![user_id, after, limit as i64 + 1],
            )
            .await?;
        collect(rows, project_from_row)
    }

    pub async fn update_project(
        &self,
        id: ProjectId,
        user_id: UserId,
        name: Option<&str>,
        description: Option<Option<&str>>,
    ) -> StoreResult<Option<Project>> {
        let (set_description, description) = match description {
            Some(d) => (1, d),
            None => (0, None),
        };
        let rows = self
            .query(
                &format!(
                    "UPDATE projects SET name = COALESCE(?3, name),
                         description = CASE WHEN ?4 = 1 THEN ?5 ELSE description END, updated_at = ?6
                     WHERE id = ?1 AND user_id = ?2 AND status = 'ready' RETURNING {PROJECT_COLUMNS}"
                ),
                libsql::params![id, user_id, name, set_description, description, crate::ids::now()],
            )
            .await?;
        first(rows, project_from_row)
    }

    /// Deletes the project and its file rows; answers the blob keys its files used (for the
    /// caller to remove), or `None` if there was no such project of `user_id`. The files go in
    /// batches, then the last few with the project's row, so a large project never holds the
    /// write lock for long; a delete that dies part-way leaves the project with fewer files, and
    /// repeating it finishes.
    pub async fn delete_project(
        &self,
        id: ProjectId,
        user_id: UserId,
    ) -> StoreResult<Option<Vec<String>>> {
        if self.project(id, user_id).await?.is_none() {
            return Ok(None);
        }
        let (_, keys) = self.remove_project_rows(id, Some(user_id)).await?;
        Ok(Some(keys))
    }

    /// Deletes a project's files in batches and then its row (a user's, or an importing one when
    /// `user_id` is none): whether the row was there, and the files' blob keys.
    async fn remove_project_rows(
        &self,
        id: ProjectId,
        user_id: Option<UserId>,
    ) -> StoreResult<(bool, Vec<String>)> {
        let blob_keys = |rows: Vec<Row>| {
            rows.iter()
                .map(|r| col::<Option<String>>(r, 0, "project_files.blob_key"))
                .filter_map(Result::transpose)
                .collect::<StoreResult<Vec<String>>>()
        };
        let mut keys = Vec::new();
        loop {
            let rows = self
                .timed(
                    "projects.delete_files",
                    self.query(
                        &format!(
                            "DELETE FROM project_files WHERE project_id = ?1 AND path IN
                             (SELECT path FROM project_files WHERE project_id = ?1 LIMIT ?3)
                           AND EXISTS (SELECT 1 FROM projects WHERE {WHOSE})
                         RETURNING blob_key"
                        ),
                        libsql::params![id, user_id, FILE_DELETE_BATCH],
                    ),
                )
                .await?;
            if rows.is_empty() {
                break;
            }
            keys.extend(blob_keys(rows)?);
        }
        let tx = self.transaction("projects.delete").await?;
        let rows = super::rows(
            tx.query(
                &format!(
                    "DELETE FROM project_files WHERE project_id = ?1
                       AND EXISTS (SELECT 1 FROM projects WHERE {WHOSE})
                     RETURNING blob_key"
                ),
                libsql::params![id, user_id],
            )
            .await?,
        )
        .await?;
        let n = tx
            .execute(
                &format!("DELETE FROM projects WHERE {WHOSE}"),
                libsql::params![id, user_id],
            )
            .await?;
        tx.commit().await?;
        keys.extend(blob_keys(rows)?);
        Ok((n > 0, keys))
    }
}
