//! The model providers' settings: OpenAI-compatible, Bedrock, and the embedding model.

use super::*;

/// The model providers: which are on, how to reach them, timeouts and retries.
#[derive(Debug, Clone)]
pub struct ProvidersConfig {
    pub bedrock_enabled: bool,
    pub bedrock: BedrockConfig,
    pub openai: Option<OpenAiConfig>,
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
            embedding_model: embedding_model(var)?,
            default_model: var("DEFAULT_MODEL").unwrap_or_else(|| "local/echo".into()),
            provider_timeout: Duration::from_secs(number(var, "PROVIDER_TIMEOUT_SECONDS", 60)?),
            provider_max_attempts: number(var, "PROVIDER_MAX_ATTEMPTS", 3u32)?.clamp(1, 10),
            provider_retry_base: Duration::from_millis(number(var, "PROVIDER_RETRY_BASE_MS", 250)?),
            echo_delay: Duration::from_millis(number(var, "ECHO_DELAY_MS", 15)?),
        })
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
