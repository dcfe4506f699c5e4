use std::sync::Arc;

use crate::{
    accounts::LoginLimits,
    auth::tokens::TokenKeys,
    blobs::BlobStore,
    chat::TurnSettings,
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
    store: Store,
    tokens: TokenKeys,
    catalog: Catalog,
    blobs: BlobStore,
    providers: Providers,
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
    pub async fn new(config: Config) -> Result<Self, StartupError> {
        let store = Store::open(&config.database).await?;
        let blobs = BlobStore::new(&config.blobs).map_err(StartupError::Blobs)?;
        let tokens = TokenKeys::new(
            config.jwt_secret.expose(),
            config.access_token_ttl,
            config.refresh_token_ttl,
        );
        let catalog = Catalog::shipped(&config);
        let providers = Providers::new(&config);
        Ok(AppState(Arc::new(Inner {
            config,
            store,
            tokens,
            catalog,
            blobs,
            providers,
        })))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn tokens(&self) -> &TokenKeys {
        &self.0.tokens
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

    pub fn turn_settings(&self) -> TurnSettings {
        TurnSettings::from(&self.0.config)
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
