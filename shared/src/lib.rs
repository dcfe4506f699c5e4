//! CodeChat's shared library: every function binary is a thin wrapper around a router built here.
//!
//! - [`config`]: settings from the environment, with embedded local defaults.
//! - [`store`]: libSQL connection handling, migrations and all SQL.
//! - [`auth`]: passwords, JWTs, refresh-token rotation, the current-user extractor.
//! - [`models`]: the models catalog shipped with the code.
//! - [`providers`]: Bedrock, OpenAI-compatible and the offline `local/echo` model behind one interface.
//! - [`chat`]: a chat turn: context, provider call with retries, usage and cost.
//! - [`blobs`]: the blob store behind attachments and project files.
//! - [`api`]: the routers of every function group, and the OpenAPI document.
//! - [`http`]: shared layers, problem+json errors, extractors, and the Lambda / local runner.

pub mod api;
pub mod auth;
pub mod blobs;
pub mod chat;
pub mod config;
pub mod conversations;
pub mod error;
pub mod http;
pub mod ids;
pub mod models;
pub mod pagination;
pub mod providers;
pub mod state;
pub mod store;

pub use error::Error;
pub use state::AppState;

/// The crate version, reported by `/health` and the OpenAPI document.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
