//! CodeChat's shared library: every function binary is a thin wrapper around a function described
//! here.
//!
//! # Where code goes
//!
//! - **HTTP shapes and handlers** in [`api`], one module per function (its routes, its request and
//!   response types, its `FUNCTION`). Handlers parse and authorise, call one domain function, and
//!   map the result. Request bodies become domain inputs through `TryFrom`, which names every bad
//!   field in one 422.
//! - **SQL** in [`store`], one module per table family, as methods on [`store::Conn`] that return
//!   plain row types (no serde, no schemas).
//! - **Domain logic** in one module per feature: [`accounts`], [`conversations`], [`chat`],
//!   [`agents`], [`admin`], [`quotas`], [`knowledge`], [`api_keys`], [`connections`] (WebSocket
//!   connections), [`attachments`], [`projects`], [`mcp`] (users' tool servers). Domain
//!   functions take what they use (`&Conn`, `&Catalog`, `&Providers`, settings), never the whole
//!   [`AppState`].
//! - **Infrastructure** at the root: [`config`], [`http`] (layers, extractors, SSE, the runner),
//!   [`function`] (what a Lambda function is), [`auth`] (password hashes, JWTs), [`providers`],
//!   [`blobs`], [`websocket_api`] (posting to WebSocket connections), [`idempotency`], [`ids`], [`kinds`], [`text`], [`cache`], [`error`], [`pagination`], [`media`] (what a file is), [`sealed`] (secrets at rest), [`models`] (the
//!   catalog), [`state`].
//!
//! Dependencies point one way: `api` → domain → infrastructure → leaves ([`ids`], [`kinds`], [`text`], [`cache`]).
//! `http` never imports `api`, providers never import `chat`, config imports nothing of ours; inside
//! the crate, modules name `crate::state::AppState` and `crate::error::Error` by their paths (the
//! re-exports below are for the binaries and tests). `tests/api/modules.rs` fails on a cycle.

pub mod accounts;
pub mod admin;
pub mod agents;
pub mod api;
pub mod api_keys;
pub mod attachments;
pub mod auth;
pub mod aws;
pub mod blobs;
pub mod cache;
pub mod chat;
pub mod config;
pub mod connections;
pub mod conversations;
pub mod error;
pub mod function;
pub mod history;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod kinds;
pub mod knowledge;
pub mod mcp;
pub mod media;
pub mod models;
pub mod pagination;
pub mod projects;
pub mod providers;
pub mod quotas;
pub mod sealed;
pub mod shares;
pub mod state;
pub mod store;
pub mod text;
pub mod websocket_api;

pub use error::Error;
pub use state::AppState;

/// The crate version, reported by `/health` and the OpenAPI document.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
