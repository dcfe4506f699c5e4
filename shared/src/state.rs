use std::sync::Arc;

use crate::{
    auth::tokens::TokenKeys,
    blobs::BlobStore,
    config::{Config, ConfigError},
    models::{Catalog, ChangesSource, LiveCatalog},
    providers::Providers,
    store::{Store, StoreError},
};

/// Everything a request needs, built once per process (cold start) and cheap to clone: the
/// settings and the infrastructure (store, token keys, catalog, blob store, providers). Handlers
/// build what a domain function takes from it (its own sub-config, `&Conn`, `&Catalog`…); domain
/// functions never see the whole state, and this module imports no domain module.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: Config,
    catalog: Arc<LiveCatalog>,
    blobs: BlobStore,
    providers: Arc<Providers>,
    /// The users' tool servers' client: nothing is read or connected until a server is used.
    mcp: Arc<crate::mcp::Hub>,
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
    #[error("MODELS_FILE could not be read: {0}")]
    ModelsFile(String),
    #[error("MODELS_FILE: {0}")]
    Catalog(#[from] crate::models::CatalogError),
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
                    config.auth.access_token_ttl,
                    config.auth.refresh_token_ttl,
                ),
            }),
            _ => None,
        };
        let blobs = BlobStore::new(&config.blobs).map_err(StartupError::Blobs)?;
        let overlay = match &config.providers.models_file {
            None => None,
            Some(source) => {
                let s3 = match &config.blobs {
                    crate::config::BlobConfig::S3(s3) => Some(s3),
                    _ => None,
                };
                Some(
                    crate::models::read_source(source, s3)
                        .await
                        .map_err(StartupError::ModelsFile)?,
                )
            }
        };
        let catalog = Arc::new(LiveCatalog::new(&config.providers, overlay)?);
        let providers = Arc::new(Providers::new(&config.providers));
        let mcp = Arc::new(crate::mcp::Hub::new(&config.mcp));
        Ok(AppState(Arc::new(Inner {
            config,
            catalog,
            blobs,
            providers,
            mcp,
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

    /// The catalog in force on this instance, as last taken in (see [`Self::fresh_catalog`]).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.0.catalog.current()
    }

    /// The catalog with the admins' changes, and how they are read and put in force.
    pub fn live_catalog(&self) -> &LiveCatalog {
        &self.0.catalog
    }

    /// Whether this process opened the store (a `Needs::Store` function).
    pub fn has_store(&self) -> bool {
        self.0.user_data.is_some()
    }

    /// The catalog in force, with the admins' changes taken in first when this instance last
    /// looked over a second ago: from the store, or in a function without it (`models`) from the
    /// copy each change publishes to the blob store. So a change holds on every instance within
    /// about a second; the look costs the request that makes it one read.
    pub async fn fresh_catalog(&self) -> Arc<Catalog> {
        let live = &self.0.catalog;
        if live.due() {
            match &self.0.user_data {
                Some(data) => match data.store.conn().await {
                    Ok(conn) => live.refresh(ChangesSource::Store(&conn)).await,
                    Err(error) => {
                        tracing::warn!(%error, "no store connection to read the model changes")
                    }
                },
                None => live.refresh(ChangesSource::Blobs(&self.0.blobs)).await,
            }
        }
        live.current()
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.0.blobs
    }

    pub fn providers(&self) -> &Providers {
        &self.0.providers
    }

    /// The tool servers' client (its checked HTTP client, sealing key and tool lists).
    pub fn mcp(&self) -> &Arc<crate::mcp::Hub> {
        &self.0.mcp
    }

    /// The providers, to keep in a task that outlives the request.
    pub fn providers_arc(&self) -> Arc<Providers> {
        self.0.providers.clone()
    }
}
