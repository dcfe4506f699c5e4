//! Where data lives: the database and the blob store.

use super::*;

#[derive(Clone)]
pub enum DatabaseConfig {
    LocalFile(PathBuf),
    Remote { url: String, auth_token: String },
}

impl std::fmt::Debug for DatabaseConfig {
    // The auth token never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LocalFile(p) => f.debug_tuple("LocalFile").field(p).finish(),
            Self::Remote { url, .. } => f
                .debug_struct("Remote")
                .field("url", url)
                .finish_non_exhaustive(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum BlobConfig {
    LocalDir(PathBuf),
    /// In Lambda without `S3_BUCKET`: the task root is read-only, so there is no local fallback.
    NotConfigured,
    S3(S3Config),
}

/// The bucket and how to reach it. Credentials and region come from the SDK's default chain (the
/// execution role in Lambda) unless given, as tests and S3-compatible servers do.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// An S3-compatible server (MinIO, s3s, moto…): buckets are then addressed path-style.
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub credentials: Option<(String, String, Option<String>)>,
}

impl std::fmt::Debug for S3Config {
    // The credentials never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}
