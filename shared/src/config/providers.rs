//! The model providers' settings: OpenAI-compatible, Bedrock, and the embedding model.

use super::*;

/// The model providers: which are on, how to reach them, timeouts and retries.
#[derive(Debug, Clone)]
pub struct ProvidersConfig {
    pub bedrock_enabled: bool,
    pub bedrock: BedrockConfig,
    /// `OPENAI_BASE_URL` / `OPENAI_API_KEY`: the provider named `openai`.
    pub openai: Option<OpenAiConfig>,
    /// More OpenAI-compatible providers by name (`PROVIDERS_FILE`, `OPENAI_COMPATIBLE_PROVIDERS`).
    pub named: Vec<NamedProvider>,
    /// `MODELS_FILE`: entries merged over the built-in catalog at start-up.
    pub models_file: Option<ModelsSource>,
    pub embedding_model: EmbeddingModel,
    /// The model of a new conversation when the client names none.
    pub default_model: String,
    /// Longest wait for a provider to start answering (or to finish a non-streamed answer).
    pub provider_timeout: Duration,
    /// Attempts per model call, counting the first (1 to 10); retries only happen before any output.
    pub provider_max_attempts: u32,
    /// First retry delay; doubles per attempt (a provider's Retry-After wins, up to 20 s).
    pub provider_retry_base: Duration,
    /// Pause between the offline model's streamed words.
    pub echo_delay: Duration,
}

impl ProvidersConfig {
    pub(super) fn load(
        var: &impl Fn(&str) -> Option<String>,
        local: bool,
    ) -> Result<Self, ConfigError> {
        // The key as a value (local, tests) or, deployed, a Secrets Manager ARN read when a model
        // call first needs it.
        let openai_key = SecretRef::named(var, "OPENAI_API_KEY");
        let openai = match (var("OPENAI_BASE_URL"), openai_key) {
            (None, None) => None,
            (base, key) => Some(OpenAiConfig {
                base_url: base.unwrap_or_else(|| "https://api.openai.com/v1".into()),
                api_key: key,
            }),
        };
        Ok(ProvidersConfig {
            bedrock_enabled: match var("BEDROCK_ENABLED").as_deref() {
                Some(v) => parse_bool("BEDROCK_ENABLED", v)?,
                // In Lambda the execution role decides; locally nobody has Bedrock without asking for it.
                None => !local,
            },
            bedrock: BedrockConfig {
                region: var("BEDROCK_REGION").or_else(|| var("AWS_REGION")),
                endpoint_url: var("BEDROCK_ENDPOINT_URL"),
                credentials: aws_credentials(var),
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
            named: named_providers(var)?,
            models_file: match var("MODELS_FILE") {
                None => None,
                Some(v) => {
                    Some(
                        ModelsSource::parse(v.trim()).map_err(|reason| ConfigError::Invalid {
                            name: "MODELS_FILE",
                            reason,
                        })?,
                    )
                }
            },
            embedding_model: embedding_model(var)?,
            default_model: var("DEFAULT_MODEL").unwrap_or_else(|| "local/echo".into()),
            provider_timeout: Duration::from_secs(number(var, "PROVIDER_TIMEOUT_SECONDS", 60)?),
            provider_max_attempts: number(var, "PROVIDER_MAX_ATTEMPTS", 3u32)?.clamp(1, 10),
            provider_retry_base: Duration::from_millis(number(var, "PROVIDER_RETRY_BASE_MS", 250)?),
            echo_delay: Duration::from_millis(number(var, "ECHO_DELAY_MS", 15)?),
        })
    }
}

impl ProvidersConfig {
    /// Every OpenAI-compatible provider this deployment configures, by name: `openai` (from
    /// `OPENAI_BASE_URL` / `OPENAI_API_KEY`) when set, then the named ones.
    pub fn compatible_providers(&self) -> impl Iterator<Item = (&str, &OpenAiConfig)> {
        let openai = self.openai.iter().map(|c| ("openai", c));
        openai.chain(self.named.iter().map(|p| (p.name.as_str(), &p.config)))
    }

    /// The OpenAI-compatible provider called `name`, if this deployment configures it.
    pub fn compatible(&self, name: &str) -> Option<&OpenAiConfig> {
        self.compatible_providers()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c)
    }
}

/// An OpenAI-compatible provider named in `PROVIDERS_FILE` or `OPENAI_COMPATIBLE_PROVIDERS`.
#[derive(Debug, Clone)]
pub struct NamedProvider {
    pub name: String,
    pub config: OpenAiConfig,
}

/// One entry of those lists: `{name, base_url, api_key_env | api_key_secret_arn}` (neither for a
/// local server that takes no key).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderEntry {
    name: String,
    base_url: String,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    api_key_secret_arn: Option<String>,
}

/// `PROVIDERS_FILE` (a JSON file) and `OPENAI_COMPATIBLE_PROVIDERS` (the same JSON inline), both
/// lists of [`ProviderEntry`]; every problem is named in one error.
fn named_providers(
    var: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<NamedProvider>, ConfigError> {
    let mut lists: Vec<(&'static str, String)> = Vec::new();
    if let Some(path) = var("PROVIDERS_FILE") {
        let text = std::fs::read_to_string(path.trim()).map_err(|e| ConfigError::Invalid {
            name: "PROVIDERS_FILE",
            reason: format!("{path}: {e}"),
        })?;
        lists.push(("PROVIDERS_FILE", text));
    }
    if let Some(inline) = var("OPENAI_COMPATIBLE_PROVIDERS") {
        lists.push(("OPENAI_COMPATIBLE_PROVIDERS", inline));
    }
    let mut named: Vec<NamedProvider> = Vec::new();
    for (source, text) in lists {
        let invalid = |reason: String| ConfigError::Invalid {
            name: source,
            reason,
        };
        let entries: Vec<ProviderEntry> = serde_json::from_str(&text).map_err(|e| {
            invalid(format!(
                "expected a JSON array of {{name, base_url, api_key_env | api_key_secret_arn}}: {e}"
            ))
        })?;
        let mut problems = Vec::new();
        for entry in entries {
            let name = entry.name.trim().to_string();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                problems.push(format!(
                    "`{name}`: a name is lowercase letters, digits, - and _"
                ));
            } else if ["local", "bedrock", "openai"].contains(&name.as_str()) {
                problems.push(format!(
                    "`{name}` is built in (`openai` is OPENAI_BASE_URL / OPENAI_API_KEY)"
                ));
            } else if named.iter().any(|p| p.name == name) {
                problems.push(format!("`{name}` is named twice"));
            }
            if !(entry.base_url.starts_with("https://") || entry.base_url.starts_with("http://")) {
                problems.push(format!("`{name}`: base_url must be an http(s) URL"));
            }
            let api_key = match (entry.api_key_env, entry.api_key_secret_arn) {
                (Some(_), Some(_)) => {
                    problems.push(format!(
                        "`{name}`: api_key_env or api_key_secret_arn, not both"
                    ));
                    None
                }
                (Some(env), None) => match var(&env) {
                    Some(key) => Some(SecretRef::Value(key)),
                    None => {
                        problems.push(format!("`{name}`: api_key_env {env} is not set"));
                        None
                    }
                },
                (None, Some(arn)) => Some(SecretRef::SecretArn(arn)),
                (None, None) => None,
            };
            named.push(NamedProvider {
                name,
                config: OpenAiConfig {
                    base_url: entry.base_url,
                    api_key,
                },
            });
        }
        if !problems.is_empty() {
            return Err(invalid(problems.join("; ")));
        }
    }
    Ok(named)
}

/// Where `MODELS_FILE` points: a path, or (in Lambda, read at cold start) `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelsSource {
    Path(std::path::PathBuf),
    S3 { bucket: String, key: String },
}

impl ModelsSource {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.strip_prefix("s3://") {
            Some(rest) => match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(ModelsSource::S3 {
                        bucket: bucket.into(),
                        key: key.into(),
                    })
                }
                _ => Err(format!("`{value}` is not s3://<bucket>/<key>")),
            },
            None => Ok(ModelsSource::Path(value.into())),
        }
    }
}

#[derive(Clone)]
pub struct OpenAiConfig {
    pub base_url: String,
    /// `OPENAI_API_KEY` (a value) or `OPENAI_API_KEY_ARN` (a Secrets Manager secret, read when
    /// the first model call needs it: a function that only lists models never reads it).
    pub api_key: Option<SecretRef>,
}

/// The model that embeds knowledge chunks and queries.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingModel {
    /// The offline hashed n-gram embedder (not semantic): the default.
    Local,
    /// `openai/<model>`: an OpenAI-compatible `/embeddings` endpoint (OPENAI_BASE_URL).
    OpenAi { model: String, usd_per_million: f64 },
    /// `bedrock/<model id>`: Titan Text Embeddings v2 (`amazon.titan-embed-text-v2:0`) or a model
    /// with its request shape, through InvokeModel.
    Bedrock { model: String, usd_per_million: f64 },
}

/// Bedrock client settings beyond the SDK's default chain.
#[derive(Clone, Default)]
pub struct BedrockConfig {
    /// `BEDROCK_REGION`, else `AWS_REGION`.
    pub region: Option<String>,
    /// `BEDROCK_ENDPOINT_URL`: a Bedrock-compatible endpoint (a VPC endpoint, or a test fake).
    pub endpoint_url: Option<String>,
    /// `BEDROCK_PROFILE_PREFIX` (`us`, `eu`, `apac` or `global`; `us` by default): the geography of
    /// the cross-region inference profiles the catalog's Bedrock models are called through. A
    /// profile answers only in its geography's regions, so outside the US every call of a `us.`
    /// profile fails.
    pub profile_prefix: String,
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` when set (as in Lambda);
    /// otherwise the SDK's default chain (profiles, SSO, instance roles).
    pub credentials: Option<(String, String, Option<String>)>,
}

impl std::fmt::Debug for BedrockConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BedrockConfig")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// `EMBEDDING_MODEL` (unset or `local`: the offline embedder) and its price,
/// `EMBEDDING_USD_PER_MILLION_TOKENS` (default 0.02, Titan v2's and text-embedding-3-small's).
pub(super) fn embedding_model(
    var: &impl Fn(&str) -> Option<String>,
) -> Result<EmbeddingModel, ConfigError> {
    let usd_per_million = match var("EMBEDDING_USD_PER_MILLION_TOKENS") {
        None => 0.02,
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite() && *p >= 0.0)
            .ok_or_else(|| ConfigError::Invalid {
                name: "EMBEDDING_USD_PER_MILLION_TOKENS",
                reason: format!("expected a non-negative number, got `{v}`"),
            })?,
    };
    let raw = var("EMBEDDING_MODEL").unwrap_or_default();
    let raw = raw.trim();
    Ok(match raw.split_once('/') {
        _ if raw.is_empty() || raw == "local" || raw.starts_with("local/") => EmbeddingModel::Local,
        Some(("openai", model)) if !model.is_empty() => EmbeddingModel::OpenAi {
            model: model.to_string(),
            usd_per_million,
        },
        Some(("bedrock", model)) if !model.is_empty() => EmbeddingModel::Bedrock {
            model: model.to_string(),
            usd_per_million,
        },
        _ => {
            return Err(ConfigError::Invalid {
                name: "EMBEDDING_MODEL",
                reason: format!(
                    "expected local, openai/<model> or bedrock/<model id>, got `{raw}`"
                ),
            })
        }
    })
}
