//! What a Lambda function is, in one description: its name (the binary and the template's
//! `Binary:`), how it is invoked, what it serves, and its limits. Each function's module in `api/`
//! defines its `FUNCTION`; `api::FUNCTIONS` lists them all for the route tests, the OpenAPI
//! document, the benchmark and the template checks. A binary references only its own description,
//! so it links only its own handlers.

use futures_util::future::BoxFuture;
use utoipa_axum::router::OpenApiRouter;

pub use crate::config::Needs;
use crate::state::AppState;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A function group's routes (an axum router with its OpenAPI description).
pub type Routes = fn() -> OpenApiRouter<AppState>;

/// Handles one raw Lambda event (its JSON payload) and answers with JSON.
pub type EventHandler =
    fn(AppState, serde_json::Value) -> BoxFuture<'static, Result<serde_json::Value, BoxError>>;

/// How API Gateway (or another AWS service) invokes the function.
#[derive(Clone, Copy)]
pub enum Transport {
    /// REST API proxy events, answered whole (`lambda_http::run`).
    Buffered(Routes),
    /// REST API events answered through Lambda response streaming; every route of such a function
    /// sits behind a `RESPONSE_STREAM` integration, and no buffered route is served by it.
    Streaming(Routes),
    /// API Gateway WebSocket events (`$connect`, `$disconnect`, messages).
    WebSocket(EventHandler),
    /// Non-HTTP events (S3 notifications, queues) for work that outlives a request.
    Worker(EventHandler),
}

/// What the template gives the function; a test keeps `template.yaml` equal to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout_secs: u32,
    pub memory_mb: u32,
}

impl Limits {
    /// API Gateway's REST integration timeout is 29 s; 128 MB fits every non-hashing function.
    pub const API: Limits = Limits {
        timeout_secs: 29,
        memory_mb: 128,
    };
}

pub struct Function {
    /// The binary, the Lambda function and the template's `Binary:`.
    pub name: &'static str,
    pub transport: Transport,
    pub limits: Limits,
    /// What it opens at cold start (and so which secrets its role may read).
    pub needs: Needs,
}

impl Function {
    /// The routes, for functions that serve HTTP.
    pub fn routes(&self) -> Option<Routes> {
        match self.transport {
            Transport::Buffered(r) | Transport::Streaming(r) => Some(r),
            Transport::WebSocket(_) | Transport::Worker(_) => None,
        }
    }
}
