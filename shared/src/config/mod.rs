//! Settings, read once per process from the environment.
//!
//! Two profiles. `local` (the laptop, `cargo lambda watch`, tests) fills every gap with an embedded
//! default: a libSQL file and blobs under `.data/`, a dev JWT secret created once under `.data/`.
//! `lambda` (anything running under a Lambda Runtime API without `CODECHAT_PROFILE=local`) has no
//! defaults for secrets or the database: start-up fails with a message naming the missing setting,
//! so a deployment can never silently run on a throwaway secret.

use std::{collections::HashMap, path::PathBuf, time::Duration};

mod providers;
mod secrets;
mod stores;
mod values;
pub use providers::*;
pub use secrets::*;
pub use stores::*;
use values::*;

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
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub max_json_body_bytes: usize,
    pub max_message_chars: usize,
    /// Largest file taken inline by `POST /attachments` (multipart). 4 MiB by default: base64 makes
    /// it 5.6 MB, under Lambda's 6 MB event limit with room for headers and the multipart framing.
    pub max_inline_upload_bytes: u64,
    /// Largest file taken through a presigned upload.
    pub max_upload_bytes: u64,
    /// Media types accepted for uploads; `type/*` allows a family.
    pub allowed_upload_types: Vec<String>,
    /// How long a presigned upload URL stays valid.
    pub upload_url_ttl: Duration,
    /// Largest project file (a PUT's body, an import's or an archive's entry).
    pub max_project_file_bytes: u64,
    /// Files in a project (and entries in an uploaded zip).
    pub max_zip_entries: usize,
    /// Bytes in a project (and inflated bytes of an uploaded zip, counted while inflating).
    pub max_zip_uncompressed_bytes: u64,
    /// Largest export or archive answered inline (`MAX_INLINE_ANSWER_BYTES`, 4 MiB: Lambda answers
    /// at most 6 MB, base64 included); a larger one, where the blob store is S3, is stored and
    /// answered with a redirect to it.
    pub max_inline_answer_bytes: usize,
    /// Largest zip a presigned project upload unpacks inside the completing request.
    pub max_unpack_in_request_bytes: u64,
    /// How long after its start a completed project upload may wait to be unpacked
    /// (`UNPACK_DEADLINE_SECONDS`, 2 hours: the worker's events give up after an hour and a run
    /// takes at most 15 minutes); past it, with no run holding it, it is marked failed.
    pub unpack_deadline: Duration,
    /// Model calls the coding agent may make in one turn (tool calls and the answer).
    pub max_agent_steps: u32,
    /// Whether large project zips are unpacked by the `unpacker` worker (deployed: the stored object's
    /// event triggers it) rather than by a background task of the projects function (locally).
    pub unpack_in_worker: bool,
    /// Largest compression ratio of a zip entry (inflated bytes per compressed byte).
    pub max_zip_ratio: u64,
    /// Largest `POST /projects/import` body.
    pub max_project_import_bytes: usize,
    /// Attachments per chat message.
    pub max_chat_attachments: usize,
    /// Largest attachment sent to a model (Bedrock takes documents up to 4.5 MB, images 3.75 MB).
    pub max_chat_attachment_bytes: u64,
    pub bootstrap_admin_email: Option<String>,
    /// The daily token budget of users without their own (`daily_token_limit` null); `None`
    /// (unset) means no budget.
    pub default_daily_token_limit: Option<i64>,
    /// Chat turns a user may start per minute; `None` (unset or 0) means no limit.
    pub turns_per_minute: Option<u32>,
    /// Longest agent system prompt, in characters.
    pub max_system_prompt_chars: usize,
    /// Largest knowledge document (its text's UTF-8 bytes); the JSON body limit applies too.
    pub max_document_bytes: usize,
    /// Largest document text indexed inside the request; a larger one is indexed after it.
    pub max_index_in_request_bytes: usize,
    /// Longest knowledge chunk, in estimated tokens.
    pub knowledge_chunk_tokens: usize,
    /// Tokens of knowledge sources a chat turn may add to the model's context.
    pub knowledge_context_tokens: usize,
    /// `None` allows any origin (tokens travel in headers, never cookies); otherwise an allow-list.
    pub cors_allowed_origins: Option<Vec<String>>,
    pub bedrock_enabled: bool,
    pub bedrock: BedrockConfig,
    pub openai: Option<OpenAiConfig>,
    pub embedding_model: EmbeddingModel,
    /// The model of a new conversation when the client names none.
    pub default_model: String,
    /// Longest wait for a provider to start answering (or to finish a non-streamed answer).
    pub provider_timeout: Duration,
    /// Longest silence allowed inside a streamed answer.
    pub stream_idle_timeout: Duration,
    /// Wall-clock budget of a whole chat turn (summary, retries and answer), below the chat
    /// function's timeout so a turn always ends stored.
    pub turn_budget: Duration,
    /// Attempts per model call, counting the first (1 to 10); retries only happen before any output.
    pub provider_max_attempts: u32,
    /// First retry delay; doubles per attempt (a provider's Retry-After wins, up to 20 s).
    pub provider_retry_base: Duration,
    /// Pause between the offline model's streamed words.
    pub echo_delay: Duration,
    /// How long an `Idempotency-Key` claim holds while its request runs; a run that died is taken
    /// over after it.
    pub idempotency_lease: Duration,
    /// How long an idempotent answer is kept for replays.
    pub idempotency_ttl: Duration,
    /// Failed password checks allowed per account and per client IP in a window.
    pub login_max_failures_per_account: u32,
    pub login_max_failures_per_ip: u32,
    pub login_failure_window: Duration,
    pub websocket: WebSocketConfig,
    /// Where the web client finds the API (`WEB_API_BASE_URL`): relative by default (`api/v1`, on
    /// the page's own origin and stage), or another origin's URL.
    pub web_api_base: String,
}

/// The WebSocket API: the `ws` function and, locally, its adapter.
#[derive(Clone)]
pub struct WebSocketConfig {
    /// What `GET /health` publishes as `websocket_url` (`WEBSOCKET_URL`; the template sets the
    /// API's `wss://` URL; locally `ws://127.0.0.1:9001/ws`, the adapter `scripts/dev` starts).
    pub url: Option<String>,
    /// Where frames are posted (`PostToConnection`): `WEBSOCKET_MANAGEMENT_ENDPOINT` when set
    /// (tests), else the event's own `https://{domain}/{stage}`.
    pub management_endpoint: Option<String>,
    pub region: Option<String>,
    pub credentials: Option<(String, String, Option<String>)>,
    /// Frames a connection may send per second (`WS_MAX_FRAMES_PER_SECOND`, 10); more are refused
    /// with a 429 `error` frame.
    pub max_frames_per_second: u32,
    /// Largest inbound frame (`WS_MAX_MESSAGE_BYTES`, 32 000 bytes): API Gateway takes at most
    /// 32 KB per frame, and a browser sends a message as one frame. Longer messages go over
    /// `POST /chat` (the web client always uses it).
    pub max_message_bytes: usize,
    /// Largest frame posted (`WS_MAX_FRAME_BYTES`, 128 000 bytes, under API Gateway's 128 KiB);
    /// longer text goes in several `delta` frames, another longer frame in `part` frames.
    pub max_frame_bytes: usize,
    /// `PostToConnection` calls a streamed answer may make per second and connection
    /// (`WS_MAX_POSTS_PER_SECOND`, 50): deltas in between are sent together.
    pub max_posts_per_second: u32,
    /// The local adapter closes a socket idle this long (`WS_IDLE_TIMEOUT_SECONDS`, 600) or open
    /// this long (`WS_MAX_CONNECTION_SECONDS`, 7200), as API Gateway does.
    pub idle_timeout: Duration,
    pub max_connection: Duration,
}

impl std::fmt::Debug for WebSocketConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketConfig")
            .field("url", &self.url)
            .field("management_endpoint", &self.management_endpoint)
            .finish_non_exhaustive()
    }
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

        // The key as a value (local, tests) or, deployed, a Secrets Manager ARN read when a model
        // call first needs it.
        let openai_key = secret_source(&var, "OPENAI_API_KEY").map(|source| match source {
            SecretSource::Value(v) => OpenAiKey::Value(v),
            SecretSource::Arn(arn) => OpenAiKey::SecretArn(arn),
        });
        let openai = match (var("OPENAI_BASE_URL"), openai_key) {
            (None, None) => None,
            (base, key) => Some(OpenAiConfig {
                base_url: base.unwrap_or_else(|| "https://api.openai.com/v1".into()),
                api_key: key,
            }),
        };

        Ok(Config {
            profile,
            database,
            blobs,
            jwt_secret,
            access_token_ttl: Duration::from_secs(number(
                &var,
                "ACCESS_TOKEN_TTL_SECONDS",
                15 * 60,
            )?),
            refresh_token_ttl: Duration::from_secs(number(
                &var,
                "REFRESH_TOKEN_TTL_SECONDS",
                30 * 24 * 3600,
            )?),
            max_json_body_bytes: number(&var, "MAX_JSON_BODY_BYTES", 1024 * 1024)?,
            max_message_chars: number(&var, "MAX_MESSAGE_CHARS", 32_000)?,
            max_inline_upload_bytes: number(&var, "MAX_INLINE_UPLOAD_BYTES", 4 * 1024 * 1024)?,
            max_upload_bytes: number(&var, "MAX_UPLOAD_BYTES", 100 * 1024 * 1024)?,
            allowed_upload_types: var("ALLOWED_UPLOAD_TYPES")
                .unwrap_or_else(|| DEFAULT_ALLOWED_UPLOAD_TYPES.to_string())
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect(),
            upload_url_ttl: Duration::from_secs(number(&var, "UPLOAD_URL_TTL_SECONDS", 15 * 60)?),
            max_project_file_bytes: number(&var, "MAX_PROJECT_FILE_BYTES", 4 * 1024 * 1024)?,
            max_zip_entries: number(&var, "MAX_ZIP_ENTRIES", 10_000)?,
            max_zip_uncompressed_bytes: number(
                &var,
                "MAX_ZIP_UNCOMPRESSED_BYTES",
                200 * 1024 * 1024,
            )?,
            max_project_import_bytes: number(&var, "MAX_PROJECT_IMPORT_BYTES", 4 * 1024 * 1024)?,
            max_zip_ratio: number(&var, "MAX_ZIP_RATIO", 100)?,
            max_agent_steps: number(&var, "MAX_AGENT_STEPS", 8u32)?.clamp(1, 50),
            unpack_in_worker: match var("UNPACK_IN_WORKER").as_deref() {
                Some(v) => parse_bool("UNPACK_IN_WORKER", v)?,
                None => false,
            },
            max_inline_answer_bytes: number(&var, "MAX_INLINE_ANSWER_BYTES", 4 * 1024 * 1024)?,
            unpack_deadline: Duration::from_secs(number(
                &var,
                "UNPACK_DEADLINE_SECONDS",
                2 * 3600,
            )?),
            max_unpack_in_request_bytes: number(
                &var,
                "MAX_UNPACK_IN_REQUEST_BYTES",
                20 * 1024 * 1024,
            )?,
            max_chat_attachments: number(&var, "MAX_CHAT_ATTACHMENTS", 10)?,
            max_chat_attachment_bytes: number(&var, "MAX_CHAT_ATTACHMENT_BYTES", 4_500_000)?,
            bootstrap_admin_email: var("BOOTSTRAP_ADMIN_EMAIL"),
            default_daily_token_limit: var("DEFAULT_DAILY_TOKEN_LIMIT")
                .map(|_| {
                    number(&var, "DEFAULT_DAILY_TOKEN_LIMIT", 0u64)
                        .map(|n| n.min(i64::MAX as u64) as i64)
                })
                .transpose()?,
            turns_per_minute: Some(number(&var, "RATE_LIMIT_TURNS_PER_MINUTE", 0u32)?)
                .filter(|n| *n > 0),
            max_system_prompt_chars: number(&var, "MAX_SYSTEM_PROMPT_CHARS", 32_000)?,
            max_document_bytes: number(&var, "MAX_DOCUMENT_BYTES", 4 * 1024 * 1024)?,
            max_index_in_request_bytes: number(&var, "MAX_INDEX_IN_REQUEST_BYTES", 512 * 1024)?,
            knowledge_chunk_tokens: number(&var, "KNOWLEDGE_CHUNK_TOKENS", 200usize)?
                .clamp(20, 2000),
            knowledge_context_tokens: number(&var, "KNOWLEDGE_CONTEXT_TOKENS", 1500)?,
            cors_allowed_origins: var("CORS_ALLOWED_ORIGINS").filter(|v| v.trim() != "*").map(
                |v| {
                    v.split(',')
                        .map(|o| o.trim().to_string())
                        .filter(|o| !o.is_empty())
                        .collect()
                },
            ),
            bedrock_enabled: match var("BEDROCK_ENABLED").as_deref() {
                Some(v) => parse_bool("BEDROCK_ENABLED", v)?,
                // In Lambda the execution role decides; locally nobody has Bedrock without asking for it.
                None => !local,
            },
            bedrock: BedrockConfig {
                region: var("BEDROCK_REGION").or_else(|| var("AWS_REGION")),
                endpoint_url: var("BEDROCK_ENDPOINT_URL"),
                credentials: aws_credentials(&var),
                profile_prefix: match var("BEDROCK_PROFILE_PREFIX") {
                    None => "us".into(),
                    Some(p) if ["us", "eu", "apac", "global"].contains(&p.as_str()) => p,
                    Some(p) => {
                        return Err(ConfigError::Invalid {
                            name: "BEDROCK_PROFILE_PREFIX",
                            reason: format!("{p:?} is not one of us, eu, apac, global"),
                        })
                    }
                },
            },
            openai,
            default_model: var("DEFAULT_MODEL").unwrap_or_else(|| "local/echo".into()),
            embedding_model: embedding_model(&var)?,
            provider_timeout: Duration::from_secs(number(&var, "PROVIDER_TIMEOUT_SECONDS", 60)?),
            stream_idle_timeout: Duration::from_secs(number(
                &var,
                "STREAM_IDLE_TIMEOUT_SECONDS",
                30,
            )?),
            turn_budget: Duration::from_secs(number(&var, "TURN_BUDGET_SECONDS", 240)?),
            provider_max_attempts: number(&var, "PROVIDER_MAX_ATTEMPTS", 3u32)?.clamp(1, 10),
            provider_retry_base: Duration::from_millis(number(
                &var,
                "PROVIDER_RETRY_BASE_MS",
                250,
            )?),
            echo_delay: Duration::from_millis(number(&var, "ECHO_DELAY_MS", 15)?),
            idempotency_lease: Duration::from_secs(number(
                &var,
                "IDEMPOTENCY_LEASE_SECONDS",
                15 * 60,
            )?),
            idempotency_ttl: Duration::from_secs(number(
                &var,
                "IDEMPOTENCY_TTL_SECONDS",
                24 * 3600,
            )?),
            login_max_failures_per_account: number(&var, "LOGIN_MAX_FAILURES_PER_ACCOUNT", 5)?,
            login_max_failures_per_ip: number(&var, "LOGIN_MAX_FAILURES_PER_IP", 100)?,
            login_failure_window: Duration::from_secs(number(
                &var,
                "LOGIN_FAILURE_WINDOW_SECONDS",
                900,
            )?),
            websocket: WebSocketConfig {
                url: var("WEBSOCKET_URL")
                    .or_else(|| local.then(|| "ws://127.0.0.1:9001/ws".into())),
                management_endpoint: var("WEBSOCKET_MANAGEMENT_ENDPOINT"),
                region: var("AWS_REGION"),
                credentials: aws_credentials(&var),
                max_frames_per_second: number(&var, "WS_MAX_FRAMES_PER_SECOND", 10u32)?.max(1),
                max_message_bytes: number(&var, "WS_MAX_MESSAGE_BYTES", 32_000)?,
                max_frame_bytes: number(&var, "WS_MAX_FRAME_BYTES", 128_000usize)?.max(1024),
                max_posts_per_second: number(&var, "WS_MAX_POSTS_PER_SECOND", 50u32)?.max(1),
                idle_timeout: Duration::from_secs(number(&var, "WS_IDLE_TIMEOUT_SECONDS", 600)?),
                max_connection: Duration::from_secs(number(
                    &var,
                    "WS_MAX_CONNECTION_SECONDS",
                    7200,
                )?),
            },
            web_api_base: var("WEB_API_BASE_URL").unwrap_or_else(|| "api/v1".into()),
            data_dir,
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
        None if local => dev_jwt_secret(data_dir)?,
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
