//! Uploads: inline and presigned sizes, accepted types, URL lifetime.

use super::*;

/// Uploads (attachments, documents, project zips): sizes, types, presigned URLs.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// Largest file taken inline by `POST /attachments` (multipart). 4 MiB by default: base64 makes
    /// it 5.6 MB, under Lambda's 6 MB event limit with room for headers and the multipart framing.
    pub max_inline_upload_bytes: u64,
    /// Largest file taken through a presigned upload.
    pub max_upload_bytes: u64,
    /// Media types accepted for uploads; `type/*` allows a family.
    pub allowed_upload_types: Vec<String>,
    /// How long a presigned upload URL stays valid.
    pub upload_url_ttl: Duration,
    /// What one user may store in all (`MAX_USER_STORAGE_BYTES`, 1 GiB): attachments, project
    /// files and knowledge documents together.
    pub max_user_storage_bytes: u64,
}

impl UploadConfig {
    pub(super) fn load(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(UploadConfig {
            max_inline_upload_bytes: number(var, "MAX_INLINE_UPLOAD_BYTES", 4 * 1024 * 1024)?,
            max_upload_bytes: number(var, "MAX_UPLOAD_BYTES", 100 * 1024 * 1024)?,
            allowed_upload_types: var("ALLOWED_UPLOAD_TYPES")
                .unwrap_or_else(|| DEFAULT_ALLOWED_UPLOAD_TYPES.to_string())
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect(),
            upload_url_ttl: Duration::from_secs(number(var, "UPLOAD_URL_TTL_SECONDS", 15 * 60)?),
            max_user_storage_bytes: max_user_storage_bytes(var)?,
        })
    }
}
