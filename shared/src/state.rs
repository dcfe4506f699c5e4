use std::sync::Arc;

use crate::{
    accounts::LoginLimits,
    auth::tokens::TokenKeys,
    blobs::BlobStore,
    chat::{self, TurnSettings},
    config::{Config, ConfigError},
    idempotency,
    models::Catalog,
    providers::Providers,
    store::{Store, StoreError},
};

/// Everything a request needs, built once per process (cold start) and cheap to clone. Handlers
/// take what a domain function uses from it; domain functions never see the whole state.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: Config,
    catalog: Arc<Catalog>,
    blobs: BlobStore,
    providers: Arc<Providers>,
    embedding_model: Arc<crate::config::EmbeddingModel>,
    /// `None` in a function that serves static data ([`crate::config::Needs::Static`]).
    user_data: Option<UserData>,
}

/// What reaches users' data: the store, and the keys that say who a request's user is.
struct UserData {
    store: Store,
    tokens: TokenKeys,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("blob store: {0}")]
    Blobs(String),
}

impl AppState {
    /// Opens what `config` was loaded for: the store and token keys when it names a database and
    /// a secret, only the static parts (catalog, settings) otherwise.
    pub async fn new(config: Config) -> Result<Self, StartupError> {
        let user_data = match (&config.database, &config.jwt_secret) {
            (Some(database), Some(secret)) => Some(UserData {
                store: Store::open(database).await?,
                tokens: TokenKeys::new(
                    secret.expose(),
                    config.access_token_ttl,
                    config.refresh_token_ttl,
                ),
            }),
            _ => None,
        };
        let blobs = BlobStore::new(&config.blobs).map_err(StartupError::Blobs)?;
        let catalog = Arc::new(Catalog::shipped(&config));
        let providers = Arc::new(Providers::new(&config));
        let embedding_model = Arc::new(config.embedding_model.clone());
        Ok(AppState(Arc::new(Inner {
            config,
            catalog,
            blobs,
            providers,
            embedding_model,
            user_data,
        })))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    fn user_data(&self) -> &UserData {
        // Only the routes of `Needs::Store` functions reach here; `tests/api/static_functions.rs`
        // serves every route of the static ones from a state without user data.
        self.0
            .user_data
            .as_ref()
            .expect("a function declared Needs::Static used the store")
    }

    pub fn store(&self) -> &Store {
        &self.user_data().store
    }

    pub fn tokens(&self) -> &TokenKeys {
        &self.user_data().tokens
    }

    pub fn catalog(&self) -> &Catalog {
        &self.0.catalog
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.0.blobs
    }

    pub fn providers(&self) -> &Providers {
        &self.0.providers
    }

    /// What a chat turn uses, for the transports that run one.
    pub fn turn_services(&self) -> chat::Services {
        chat::Services {
            catalog: self.0.catalog.clone(),
            providers: self.0.providers.clone(),
            blobs: self.0.blobs.clone(),
            embedding_model: self.0.embedding_model.clone(),
            settings: TurnSettings::from(&self.0.config),
            quotas: crate::quotas::QuotaSettings::from(&self.0.config),
        }
    }

    pub fn quota_settings(&self) -> crate::quotas::QuotaSettings {
        crate::quotas::QuotaSettings::from(&self.0.config)
    }

    pub fn login_limits(&self) -> LoginLimits {
        let c = &self.0.config;
        LoginLimits {
            per_account: c.login_max_failures_per_account,
            per_ip: c.login_max_failures_per_ip,
            window: c.login_failure_window,
        }
    }

    pub fn idempotency_policy(&self) -> idempotency::Policy {
        idempotency::Policy {
            lease: self.0.config.idempotency_lease,
            ttl: self.0.config.idempotency_ttl,
        }
    }
}
