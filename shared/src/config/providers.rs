//! The model providers' settings: OpenAI-compatible, Bedrock, and the embedding model.

use super::*;

#[derive(Clone)]
pub struct OpenAiConfig {
    pub base_url: String,
    /// `OPENAI_API_KEY` (a value) or `OPENAI_API_KEY_ARN` (a Secrets Manager secret, read when
    /// the first model call needs it: a function that only lists models never reads it).
    pub api_key: Option<OpenAiKey>,
}

#[derive(Clone)]
pub enum OpenAiKey {
    Value(String),
    SecretArn(String),
}

impl OpenAiKey {
    /// The key itself, reading the secret if it is one.
    pub async fn read(&self) -> Result<String, ConfigError> {
        match self {
            OpenAiKey::Value(v) => Ok(v.clone()),
            OpenAiKey::SecretArn(arn) => resolve_secret(SecretSource::Arn(arn.clone())).await,
        }
    }
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
