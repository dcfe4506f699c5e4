//! Settings, read once per process from the environment: one struct per concern, each in its own
//! file with its loader (`auth`, `http`, `chat`, `providers`, `uploads`, `projects`, `knowledge`,
//! `mcp`, `quotas`, `idempotency`, `websocket`, `web`; where data lives in `stores`, secrets in `secrets`).
//! A domain module takes its own concern's struct, never the whole [`Config`].
//!
//! Two profiles. `local` (the laptop, `cargo lambda watch`, tests) fills every gap with an embedded
//! default: a libSQL file and blobs under `.data/`, a dev JWT secret created once under `.data/`.
//! `lambda` (anything running under a Lambda Runtime API without `CODECHAT_PROFILE=local`) has no
//! defaults for secrets or the database: start-up fails with a message naming the missing setting,
//! so a deployment can never silently run on a throwaway secret.

use std::{collections::HashMap, path::PathBuf, time::Duration};

mod auth;
mod chat;
mod http;
mod idempotency;
mod knowledge;
mod mcp;
mod projects;
mod providers;
mod quotas;
mod secrets;
mod stores;
mod uploads;
mod values;
mod web;
mod websocket;
pub use auth::*;
pub use chat::*;
pub use http::*;
pub use idempotency::*;
pub use knowledge::*;
pub use mcp::*;
pub use projects::*;
pub use providers::*;
pub use quotas::*;
pub use secrets::*;
pub use stores::*;
pub use uploads::*;
use values::*;
pub use web::*;
pub use websocket::*;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is required when running in Lambda ({hint})")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("{name} has an invalid value: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("could not prepare the local data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("could not read secret {arn} from Secrets Manager: {reason}")]
    Secret { arn: String, reason: String },
}

/// What a process opens at cold start, and so which settings it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Static data only (the web client, the models catalog): no secret is read and no store is
    /// opened, so the function starts and answers while the database or Secrets Manager is down.
    Static,
    /// The store and the token-signing secret: every function that touches user data.
    Store,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Local,
    Lambda,
}

/// The types accepted when `ALLOWED_UPLOAD_TYPES` is not set: common images, PDF, and text
/// (plain, Markdown, CSV, JSON, and source code, which browsers label `text/*` or as below).
pub const DEFAULT_ALLOWED_UPLOAD_TYPES: &str = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/*,application/json,application/xml,application/yaml,application/x-yaml,application/toml,application/javascript,application/typescript,application/x-sh,application/sql";

#[derive(Debug, Clone)]
pub struct Config {
    pub profile: Profile,
    pub data_dir: PathBuf,
    /// `None` when loaded for [`Needs::Static`].
    pub database: Option<DatabaseConfig>,
    pub blobs: BlobConfig,
    /// `None` when loaded for [`Needs::Static`].
    pub jwt_secret: Option<Secret>,
    pub websocket: WebSocketConfig,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    pub chat: ChatConfig,
    pub providers: ProvidersConfig,
    pub uploads: UploadConfig,
    pub projects: ProjectConfig,
    pub knowledge: KnowledgeConfig,
    pub mcp: McpConfig,
    pub quotas: QuotaConfig,
    pub idempotency: IdempotencyConfig,
    pub web: WebConfig,
}

impl Config {
    /// Reads the process environment, resolving the secrets `needs` names (Secrets Manager in
    /// Lambda).
    pub async fn from_env(needs: Needs) -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::load_for(needs, |k| vars.get(k).cloned()).await
    }

    /// Every setting, as a function that opens the store reads them.
    pub async fn load(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::load_for(Needs::Store, var).await
    }

    /// Reads settings through `var`, so tests configure a process without touching its environment.
    pub async fn load_for(
        needs: Needs,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let profile = match var("CODECHAT_PROFILE").as_deref() {
            Some("local") => Profile::Local,
            Some("lambda") => Profile::Lambda,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "CODECHAT_PROFILE",
                    reason: format!("expected `local` or `lambda`, got `{other}`"),
                })
            }
            None if var("AWS_LAMBDA_RUNTIME_API").is_some() => Profile::Lambda,
            None => Profile::Local,
        };
        let data_dir = PathBuf::from(var("CODECHAT_DATA_DIR").unwrap_or_else(|| ".data".into()));
        let local = profile == Profile::Local;

        let (database, jwt_secret) = match needs {
            Needs::Static => (None, None),
            Needs::Store => {
                let (database, jwt_secret) = store_secrets(&var, local, &data_dir).await?;
                (Some(database), Some(jwt_secret))
            }
        };

        let blobs = match var("S3_BUCKET") {
            Some(bucket) => BlobConfig::S3(S3Config {
                bucket,
                endpoint_url: var("S3_ENDPOINT_URL"),
                region: var("AWS_REGION"),
                credentials: aws_credentials(&var),
            }),
            None if local => BlobConfig::LocalDir(data_dir.join("blobs")),
            None => BlobConfig::NotConfigured,
        };

        let mcp = McpConfig::load(&var, local, &data_dir)?;
        Ok(Config {
            profile,
            data_dir,
            database,
            blobs,
            jwt_secret,
            websocket: WebSocketConfig::load(&var, local)?,
            auth: AuthConfig::load(&var, local)?,
            http: HttpConfig::load(&var)?,
            chat: ChatConfig::load(&var)?,
            providers: ProvidersConfig::load(&var, local)?,
            uploads: UploadConfig::load(&var)?,
            projects: ProjectConfig::load(&var)?,
            knowledge: KnowledgeConfig::load(&var)?,
            mcp,
            quotas: QuotaConfig::load(&var)?,
            idempotency: IdempotencyConfig::load(&var)?,
            web: WebConfig::load(&var)?,
        })
    }
}

/// The database and the token-signing secret: what only a function that opens the store reads.
async fn store_secrets(
    var: &impl Fn(&str) -> Option<String>,
    local: bool,
    data_dir: &std::path::Path,
) -> Result<(DatabaseConfig, Secret), ConfigError> {
    let database = match var("LIBSQL_URL") {
        Some(url) if url.starts_with("file:") => {
            DatabaseConfig::LocalFile(url.trim_start_matches("file:").into())
        }
        Some(url) => {
            let token = match secret_source(var, "LIBSQL_AUTH_TOKEN") {
                Some(src) => resolve_secret(src).await?,
                // Self-hosted sqld without auth takes no token.
                None => String::new(),
            };
            DatabaseConfig::Remote {
                url,
                auth_token: token,
            }
        }
        None if local => DatabaseConfig::LocalFile(data_dir.join("codechat.db")),
        None => {
            return Err(ConfigError::Missing {
                name: "LIBSQL_URL",
                hint: "the remote libSQL database, e.g. libsql://<db>.turso.io",
            })
        }
    };

    let jwt_secret = match secret_source(var, "JWT_SECRET") {
        Some(src) => resolve_secret(src).await?,
        None if local => dev_secret(data_dir, "dev-jwt-secret", "JWT_SECRET_ARN")?,
        None => {
            return Err(ConfigError::Missing {
                name: "JWT_SECRET_ARN",
                hint: "the Secrets Manager ARN of the JWT signing secret",
            })
        }
    };
    if jwt_secret.len() < 32 {
        return Err(ConfigError::Invalid {
            name: "JWT_SECRET",
            reason: "must be at least 32 bytes".into(),
        });
    }
    Ok((database, Secret(jwt_secret.into_bytes())))
}

#[cfg(test)]
mod tests;
