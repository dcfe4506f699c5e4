//! The models catalog: entries built into every binary (`shared/data/models.json`), with an
//! operator's file (`MODELS_FILE`) merged over them by id at start-up, each marked available or not
//! for the configuration this process runs with. Reading and checking the file: [`file`].

mod file;
mod live;

use serde::{Deserialize, Serialize};

use crate::{config::ProvidersConfig, error::FieldError};

pub use file::{merge, read_source, CatalogError};
pub use live::{ChangesSource, LiveCatalog};

const SHIPPED: &str = include_str!("../../data/models.json");

/// Who serves a model: the offline model, Bedrock, or an OpenAI-compatible endpoint by its name
/// (`openai` is `OPENAI_BASE_URL`'s; the others come from `PROVIDERS_FILE` /
/// `OPENAI_COMPATIBLE_PROVIDERS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Provider {
    Local,
    Bedrock,
    OpenAiCompatible(String),
}

impl Provider {
    pub fn name(&self) -> &str {
        match self {
            Provider::Local => "local",
            Provider::Bedrock => "bedrock",
            Provider::OpenAiCompatible(name) => name,
        }
    }
}

impl From<String> for Provider {
    fn from(name: String) -> Self {
        match name.as_str() {
            "local" => Provider::Local,
            "bedrock" => Provider::Bedrock,
            _ => Provider::OpenAiCompatible(name),
        }
    }
}

impl From<Provider> for String {
    fn from(p: Provider) -> Self {
        p.name().to_string()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    pub input_per_mtok_usd: f64,
    pub output_per_mtok_usd: f64,
    /// Price of input tokens served from the provider's prompt cache, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_mtok_usd: Option<f64>,
    /// Price of input tokens written to the provider's prompt cache, where that costs more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok_usd: Option<f64>,
    /// When these prices were read from `source` (e.g. `2025-05`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    /// Where the prices come from (the provider's price page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    pub streaming: bool,
    pub vision: bool,
    pub documents: bool,
    pub tools: bool,
    /// Whether the provider caches a prompt's stable part when asked (Bedrock `cachePoint`s).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompt_cache: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// The id clients send, e.g. `bedrock/claude-sonnet-4`.
    pub id: String,
    /// `local`, `bedrock`, or the name of an OpenAI-compatible provider (`openai`, `groq`…).
    #[schema(value_type = String)]
    pub provider: Provider,
    /// The id the provider knows the model by.
    pub provider_model_id: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub context_window: u32,
    pub max_output_tokens: u32,
    pub pricing: Pricing,
    pub capabilities: Capabilities,
    /// True for models that run inside the service with no provider (`local/echo`).
    #[serde(default)]
    pub offline: bool,
    /// Models a turn goes to, in order, when this one's provider fails before answering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// `false` hides the model: it is neither listed nor usable.
    #[serde(default = "enabled", skip_serializing)]
    pub enabled: bool,
    /// Whether this deployment is configured to call the model's provider.
    #[serde(default)]
    pub available: bool,
}

fn enabled() -> bool {
    true
}

pub struct Catalog {
    /// The enabled models, in the built-in order and then the file's.
    models: Vec<Model>,
    /// The models hidden (`enabled: false`), for the admin's view.
    hidden: Vec<Model>,
    default_model: String,
}

impl Catalog {
    /// The built-in entries with each of `overlays` (a `MODELS_FILE`'s text, then the admins'
    /// changes) merged over them in turn, checked, with availability for `config`. Every bad entry
    /// is named in the one error.
    pub fn new(config: &ProvidersConfig, overlays: &[&str]) -> Result<Self, CatalogError> {
        let mut models = file::merged(SHIPPED, overlays, config)?;
        for m in &mut models {
            // The catalog names US profiles; a deployment elsewhere calls its own geography's.
            if m.provider == Provider::Bedrock {
                if let Some(model) = m.provider_model_id.strip_prefix("us.") {
                    m.provider_model_id = format!("{}.{model}", config.bedrock.profile_prefix);
                }
            }
            m.available = match &m.provider {
                Provider::Local => true,
                Provider::Bedrock => config.bedrock_enabled,
                Provider::OpenAiCompatible(name) => config.compatible(name).is_some(),
            };
        }
        let (models, hidden) = models.into_iter().partition(|m| m.enabled);
        Ok(Catalog {
            models,
            hidden,
            default_model: config.default_model.clone(),
        })
    }

    /// The built-in catalog alone. It is checked by a unit test, so this cannot fail in a
    /// released binary.
    pub fn shipped(config: &ProvidersConfig) -> Self {
        Self::new(config, &[]).expect("shared/data/models.json is valid")
    }

    pub fn all(&self) -> &[Model] {
        &self.models
    }

    /// Every model, hidden ones too (they answer `enabled: false`), for the admin's view.
    pub fn every(&self) -> impl Iterator<Item = &Model> {
        self.models.iter().chain(&self.hidden)
    }

    pub fn get(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The models a turn on `model` tries in order: itself, then its fallbacks depth first (each
    /// fallback's own after it), each once, leaving out those this deployment cannot call.
    pub fn chain<'a>(&'a self, model: &'a Model) -> Vec<&'a Model> {
        file::chain(&self.models, model)
    }

    /// The model of a new conversation when the client names none (`DEFAULT_MODEL`).
    pub fn default_model(&self) -> &str {
        &self.default_model
    }

    /// The model `id`, if it exists and this deployment can call it; else the `model` field error.
    pub fn usable(&self, id: &str) -> Result<&Model, FieldError> {
        match self.get(id) {
            None => Err(FieldError::new(
                "model",
                format!("unknown model `{id}`; see GET /api/v1/models"),
            )),
            Some(m) if !m.available => Err(FieldError::new(
                "model",
                format!("`{id}` is not available in this deployment"),
            )),
            Some(m) => Ok(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[tokio::test]
    async fn shipped_catalog_is_valid_and_unique() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_string();
        let config = Config::load(move |k| (k == "CODECHAT_DATA_DIR").then(|| data_dir.clone()))
            .await
            .unwrap();
        let catalog = Catalog::shipped(&config.providers);
        let models = catalog.all();
        let mut ids: Vec<_> = models.iter().map(|m| m.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), models.len());
        let echo = models.iter().find(|m| m.id == "local/echo").unwrap();
        assert!(echo.offline && echo.provider == Provider::Local);
        for m in models {
            assert!(m.id.starts_with(&format!("{}/", m.provider.name())));
            let pricing = &m.pricing;
            assert!(
                m.offline || (pricing.as_of.is_some() && pricing.source.is_some()),
                "{}: prices dated and sourced",
                m.id
            );
            assert!(m.pricing.input_per_mtok_usd >= 0.0 && m.pricing.output_per_mtok_usd >= 0.0);
            assert!(m.context_window > m.max_output_tokens);
        }
    }

    /// A deployment in another geography calls its own profiles: `eu.` for every catalog `us.`.
    #[tokio::test]
    async fn the_profile_prefix_moves_every_bedrock_model() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_string();
        let load = |prefix: Option<&'static str>| {
            let data_dir = data_dir.clone();
            Config::load(move |k| match k {
                "CODECHAT_DATA_DIR" => Some(data_dir.clone()),
                "BEDROCK_PROFILE_PREFIX" => prefix.map(str::to_string),
                _ => None,
            })
        };
        let eu = Catalog::shipped(&load(Some("eu")).await.unwrap().providers);
        let bedrock: Vec<_> = eu
            .all()
            .iter()
            .filter(|m| m.provider == Provider::Bedrock)
            .collect();
        assert!(!bedrock.is_empty());
        for m in bedrock {
            assert!(
                m.provider_model_id.starts_with("eu."),
                "{}",
                m.provider_model_id
            );
        }
        let us = Catalog::shipped(&load(None).await.unwrap().providers);
        assert_eq!(
            us.get("bedrock/nova-lite").unwrap().provider_model_id,
            "us.amazon.nova-lite-v1:0"
        );
        let err = load(Some("mars")).await.unwrap_err().to_string();
        assert!(err.contains("BEDROCK_PROFILE_PREFIX"), "{err}");
    }

    /// An OpenAI key held in Secrets Manager makes the OpenAI models available without reading it
    /// (nothing here could: there is no AWS): the models function lists them, only a model call
    /// reads the secret.
    #[tokio::test]
    async fn a_key_in_secrets_manager_is_not_read_to_list_models() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_string();
        let config = Config::load(move |k| match k {
            "CODECHAT_DATA_DIR" => Some(data_dir.clone()),
            "OPENAI_API_KEY_ARN" => {
                Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-AbCdEf".into())
            }
            _ => None,
        })
        .await
        .expect("no secret is read at start");
        let catalog = Catalog::shipped(&config.providers);
        let openai = catalog.get("openai/gpt-4o-mini").unwrap();
        assert!(openai.available);
    }
}
