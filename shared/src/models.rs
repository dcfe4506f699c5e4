//! The models catalog: a data file shipped inside every binary (`shared/data/models.json`), marked
//! available or not for the configuration this process runs with.

use serde::{Deserialize, Serialize};

use crate::{config::ProvidersConfig, error::FieldError};

const SHIPPED: &str = include_str!("../data/models.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Local,
    Bedrock,
    Openai,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pricing {
    pub input_per_mtok_usd: f64,
    pub output_per_mtok_usd: f64,
    /// Price of input tokens served from the provider's prompt cache, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_mtok_usd: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Capabilities {
    pub streaming: bool,
    pub vision: bool,
    pub documents: bool,
    pub tools: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Model {
    /// The id clients send, e.g. `bedrock/claude-sonnet-4`.
    pub id: String,
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
    /// Whether this deployment is configured to call the model's provider.
    #[serde(default)]
    pub available: bool,
}

pub struct Catalog {
    models: Vec<Model>,
    default_model: String,
}

impl Catalog {
    /// The shipped catalog with availability for `config`. The data file is checked by a unit test,
    /// so parsing it cannot fail in a released binary.
    pub fn shipped(config: &ProvidersConfig) -> Self {
        let mut models: Vec<Model> =
            serde_json::from_str(SHIPPED).expect("shared/data/models.json is valid");
        for m in &mut models {
            // The catalog names US profiles; a deployment elsewhere calls its own geography's.
            if m.provider == Provider::Bedrock {
                if let Some(model) = m.provider_model_id.strip_prefix("us.") {
                    m.provider_model_id = format!("{}.{model}", config.bedrock.profile_prefix);
                }
            }
            m.available = match m.provider {
                Provider::Local => true,
                Provider::Bedrock => config.bedrock_enabled,
                Provider::Openai => config.openai.is_some(),
            };
        }
        Catalog {
            models,
            default_model: config.default_model.clone(),
        }
    }

    pub fn all(&self) -> &[Model] {
        &self.models
    }

    pub fn get(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id)
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

    #[test]
    fn shipped_catalog_is_valid_and_unique() {
        let models: Vec<Model> = serde_json::from_str(SHIPPED).unwrap();
        let mut ids: Vec<_> = models.iter().map(|m| m.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), models.len());
        let echo = models.iter().find(|m| m.id == "local/echo").unwrap();
        assert!(echo.offline && echo.provider == Provider::Local);
        for m in &models {
            assert!(m.id.starts_with(match m.provider {
                Provider::Local => "local/",
                Provider::Bedrock => "bedrock/",
                Provider::Openai => "openai/",
            }));
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
