use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    function::{Function, Limits, Needs, Transport},
    state::AppState,
};

pub const FUNCTION: Function = Function {
    name: "health",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
    needs: Needs::Store,
};

/// Health, the OpenAPI document and the interactive docs.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(openapi_json))
        .routes(routes!(docs))
        .routes(routes!(redoc))
}

#[derive(Serialize, ToSchema)]
struct Checks {
    /// `ok` or `error`.
    store: &'static str,
    /// `ok`, `not_configured` (no blob store in this deployment: not a failure) or `error`.
    blobs: &'static str,
}

#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok`, or `degraded` when a dependency fails (answered with 503).
    status: &'static str,
    version: &'static str,
    checks: Checks,
    /// Where to open the chat WebSocket (`?token=<access token>`): API Gateway's WebSocket API in
    /// AWS (another host than this API), the local adapter on a laptop; null when not deployed.
    websocket_url: Option<String>,
}

/// Liveness and dependency checks.
#[utoipa::path(get, path = "/api/v1/health", tag = "service",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let (store, blobs) = tokio::join!(state.store().ping(), state.blobs().check());
    // The detail of a failure goes to the log; the endpoint is public.
    let verdict = |name: &str, r: Result<&'static str, String>| match r {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(check = name, error = %e, "health check failed");
            "error"
        }
    };
    let checks = Checks {
        store: verdict("store", store.map(|()| "ok").map_err(|e| e.to_string())),
        blobs: verdict("blobs", blobs),
    };
    let ok = checks.store != "error" && checks.blobs != "error";
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: if ok { "ok" } else { "degraded" },
            version: crate::VERSION,
            checks,
            websocket_url: state.config().websocket.url.clone(),
        }),
    )
}

/// The OpenAPI 3.1 document of every route of every function.
///
/// Served from `shared/openapi.json`, which is generated from the handlers (`api::openapi()`) and
/// checked against them by `tests/api/service.rs`: the health function then carries the document
/// rather than every other function's handlers.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "service", responses((status = 200, description = "OpenAPI 3.1 document")))]
async fn openapi_json() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI_JSON,
    )
}

pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// Interactive documentation (Swagger UI).
#[utoipa::path(get, path = "/api/v1/docs", tag = "service", responses((status = 200, description = "HTML page", content_type = "text/html")))]
async fn docs() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; \
             style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        )],
        Html(DOCS_HTML),
    )
}

/// The API reference (ReDoc): the same document as one readable page.
#[utoipa::path(get, path = "/api/v1/redoc", tag = "service", responses((status = 200, description = "HTML page", content_type = "text/html")))]
async fn redoc() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_SECURITY_POLICY,
            // ReDoc styles with inline styles and searches in a blob: worker.
            "default-src 'none'; script-src 'self' https://cdn.jsdelivr.net; \
             style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
             worker-src blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        )],
        Html(REDOC_HTML),
    )
}

/// ReDoc's standalone bundle, pinned and checked like Swagger UI's.
pub const REDOC_VERSION: &str = "2.5.4";

const REDOC_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>CodeChat API reference</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
</head>
<body>
  <redoc spec-url="openapi.json"></redoc>
  <script src="https://cdn.jsdelivr.net/npm/redoc@2.5.4/bundles/redoc.standalone.js"
          integrity="sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5" crossorigin="anonymous"></script>
</body>
</html>
"##;

/// Swagger UI's assets: one exact version, each with its Subresource Integrity hash (checked
/// against the npm package by `scripts/test`), so a compromised CDN cannot run code on this page.
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

// The page is relative to itself, so it works behind any API Gateway stage or custom domain. The
// token from "Authorize" stays in the page's memory (`persistAuthorization` off): nothing is kept
// in localStorage.
const DOCS_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>CodeChat API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0/swagger-ui.css"
        integrity="sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I" crossorigin="anonymous">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0/swagger-ui-bundle.js"
          integrity="sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9" crossorigin="anonymous"></script>
  <script>
    window.ui = SwaggerUIBundle({ url: "openapi.json", dom_id: "#swagger-ui", persistAuthorization: false });
  </script>
</body>
</html>
"##;
