//! The catalog in force on an instance: the deployment's (built-in and `MODELS_FILE`) with the
//! admins' stored changes merged over it, read from the store at most once a second, so a change
//! made on one instance holds on every instance within about a second, with no redeploy. The
//! `models` function has no store (it starts without secrets): it reads a copy of the changes that
//! each change publishes to the blob store.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{Catalog, CatalogError};
use crate::{
    blobs::{BlobError, BlobKey, BlobStore},
    config::ProvidersConfig,
    store::{Conn, ModelSetting},
};

/// How stale an instance's view of the admins' changes may be.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Where an instance reads the admins' changes from.
pub enum ChangesSource<'a> {
    Store(&'a Conn),
    /// The copy published for functions without the store.
    Blobs(&'a BlobStore),
}

pub struct LiveCatalog {
    providers: ProvidersConfig,
    /// `MODELS_FILE`'s text, read once at start-up.
    file: Option<String>,
    current: RwLock<Arc<Catalog>>,
    /// When the store was last read.
    checked_at: std::sync::Mutex<Option<Instant>>,
    /// The changes the store held then (one reader at a time).
    seen: tokio::sync::Mutex<Vec<ModelSetting>>,
}

impl LiveCatalog {
    /// The deployment's catalog, before any admin change is read.
    pub fn new(providers: &ProvidersConfig, file: Option<String>) -> Result<Self, CatalogError> {
        let overlays: Vec<&str> = file.as_deref().into_iter().collect();
        let catalog = Catalog::new(providers, &overlays)?;
        Ok(LiveCatalog {
            providers: providers.clone(),
            file,
            current: RwLock::new(Arc::new(catalog)),
            checked_at: std::sync::Mutex::new(None),
            seen: tokio::sync::Mutex::new(Vec::new()),
        })
    }

    /// The catalog as this instance last saw it.
    pub fn current(&self) -> Arc<Catalog> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The catalog with `settings` as the admins' changes, checked as a models file is.
    pub fn with_settings(&self, settings: &[ModelSetting]) -> Result<Catalog, CatalogError> {
        let admin = overlay(settings);
        let mut overlays: Vec<&str> = self.file.as_deref().into_iter().collect();
        overlays.push(&admin);
        Catalog::new(&self.providers, &overlays)
    }

    /// Whether the admins' changes were last read over [`CHECK_EVERY`] ago (or never).
    pub fn due(&self) -> bool {
        self.checked_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|at| at.elapsed() >= CHECK_EVERY)
    }

    /// Reads the admins' changes when [`Self::due`] (from the store, or for a function without it
    /// from the copy [`Self::publish`] keeps in the blob store), and takes them in when they
    /// changed. A failed read keeps the catalog as it was (the next look tries again); so do
    /// changes that no longer fit the deployment's catalog (a `MODELS_FILE` that dropped a model
    /// they name as a fallback), which are logged.
    pub async fn refresh(&self, source: ChangesSource<'_>) {
        let mut seen = self.seen.lock().await;
        if !self.due() {
            return;
        }
        let read = match source {
            ChangesSource::Store(conn) => conn.model_settings().await.map_err(|e| e.to_string()),
            ChangesSource::Blobs(blobs) => match blobs.read_all(&BlobKey::model_changes()).await {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
                Err(BlobError::Missing) => Ok(Vec::new()),
                Err(error) => Err(error.to_string()),
            },
        };
        match read {
            Ok(settings) => self.take_in(&mut seen, settings),
            Err(error) => tracing::warn!(%error, "reading the admins' model changes failed"),
        }
    }

    fn take_in(&self, seen: &mut Vec<ModelSetting>, settings: Vec<ModelSetting>) {
        *self.checked_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        if settings == *seen {
            return;
        }
        match self.with_settings(&settings) {
            Ok(catalog) => self.set(catalog),
            Err(error) => {
                tracing::error!(%error, "the admins' model changes do not fit the catalog")
            }
        }
        *seen = settings;
    }

    /// Writes every model's changes where the store-free `models` function reads them.
    pub async fn publish(
        &self,
        blobs: &BlobStore,
        settings: &[ModelSetting],
    ) -> Result<(), BlobError> {
        let json = serde_json::to_vec(settings).map_err(|e| BlobError::Io(e.to_string()))?;
        blobs
            .put(&BlobKey::model_changes(), "application/json", json.into())
            .await
    }

    /// Puts `catalog` in force on this instance at once (after this instance stored a change).
    pub fn set(&self, catalog: Catalog) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
    }
}

/// The stored changes as a models file: one partial entry per model.
fn overlay(settings: &[ModelSetting]) -> String {
    let entries: Vec<Value> = settings
        .iter()
        .map(|s| {
            let mut entry = s.changes.clone();
            if let Value::Object(fields) = &mut entry {
                fields.insert("id".into(), Value::String(s.id.clone()));
            }
            entry
        })
        .collect();
    Value::Array(entries).to_string()
}
