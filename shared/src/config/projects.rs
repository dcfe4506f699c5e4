//! Projects: file and zip limits, imports, and where large zips are unpacked.

use super::*;

/// Projects: file and zip limits, imports, and where large zips are unpacked.
#[derive(Debug, Clone)]
pub struct ProjectConfig {
    /// Largest project file (a PUT's body, an import's or an archive's entry).
    pub max_project_file_bytes: u64,
    /// Files in a project (and entries in an uploaded zip).
    pub max_zip_entries: usize,
    /// Bytes in a project (and inflated bytes of an uploaded zip, counted while inflating).
    pub max_zip_uncompressed_bytes: u64,
    /// Largest compression ratio of a zip entry (inflated bytes per compressed byte).
    pub max_zip_ratio: u64,
    /// Largest `POST /projects/import` body.
    pub max_project_import_bytes: usize,
    /// Largest zip a presigned project upload unpacks inside the completing request.
    pub max_unpack_in_request_bytes: u64,
    /// How long after its start a completed project upload may wait to be unpacked
    /// (`UNPACK_DEADLINE_SECONDS`, 2 hours: the worker's events give up after an hour and a run
    /// takes at most 15 minutes); past it, with no run holding it, it is marked failed.
    pub unpack_deadline: Duration,
    /// Whether work too large for a request (a project zip to unpack, a knowledge document to
    /// index) runs in the `unpacker` worker (deployed: the stored object's event triggers it)
    /// rather than in a task of the function that made it (locally).
    pub unpack_in_worker: bool,
    /// What one user may store in all (`MAX_USER_STORAGE_BYTES`, 1 GiB): attachments, project
    /// files and knowledge documents together.
    pub max_user_storage_bytes: u64,
    /// Projects one user may hold (`MAX_PROJECTS_PER_USER`, 200).
    pub max_projects_per_user: u64,
}

impl ProjectConfig {
    pub(super) fn load(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(ProjectConfig {
            max_project_file_bytes: number(var, "MAX_PROJECT_FILE_BYTES", 4 * 1024 * 1024)?,
            max_zip_entries: number(var, "MAX_ZIP_ENTRIES", 10_000)?,
            max_zip_uncompressed_bytes: number(
                var,
                "MAX_ZIP_UNCOMPRESSED_BYTES",
                200 * 1024 * 1024,
            )?,
            max_zip_ratio: number(var, "MAX_ZIP_RATIO", 100)?,
            max_project_import_bytes: number(var, "MAX_PROJECT_IMPORT_BYTES", 4 * 1024 * 1024)?,
            max_unpack_in_request_bytes: number(
                var,
                "MAX_UNPACK_IN_REQUEST_BYTES",
                20 * 1024 * 1024,
            )?,
            unpack_deadline: Duration::from_secs(number(var, "UNPACK_DEADLINE_SECONDS", 2 * 3600)?),
            unpack_in_worker: match var("UNPACK_IN_WORKER").as_deref() {
                Some(v) => parse_bool("UNPACK_IN_WORKER", v)?,
                None => false,
            },
            max_user_storage_bytes: max_user_storage_bytes(var)?,
            max_projects_per_user: number(var, "MAX_PROJECTS_PER_USER", 200)?,
        })
    }
}
