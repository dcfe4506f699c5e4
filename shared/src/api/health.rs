use std::io::Read as _;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Response},
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
        .routes(routes!(docs_asset))
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

/// Interactive documentation (Swagger UI), from this function's own copy of Swagger UI: it works
/// offline, and its policy allows nothing from another origin and no inline script.
#[utoipa::path(get, path = "/api/v1/docs", tag = "service", responses((status = 200, description = "HTML page", content_type = "text/html")))]
async fn docs() -> impl IntoResponse {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
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
            header::CONTENT_SECURITY_POLICY,
            // Scripts from this origin only; ReDoc styles itself with inline <style> elements
            // (styled-components) and searches in a blob: worker, so those two are allowed.
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; font-src 'self' data:; worker-src blob:; connect-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )],
        Html(REDOC_HTML),
    )
}

/// One of the docs pages' assets, embedded gzipped at build time.
pub struct DocsAsset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub gzip: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/docs_assets.rs"));

/// Swagger UI's and ReDoc's files (pinned npm versions, vendored in `web/vendor/`) and Swagger UI's
/// start-up script: gzipped to browsers that take it (all do), else inflated.
#[utoipa::path(get, path = "/api/v1/docs/assets/{file}", tag = "service",
    params(("file" = String, Path, description = "swagger-ui-bundle.js, swagger-ui.css, swagger-init.js or redoc.standalone.js")),
    responses((status = 200, description = "A script or stylesheet"), (status = 404, body = crate::error::Problem)))]
async fn docs_asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = DOCS_ASSETS.iter().find(|a| a.name == file) else {
        return crate::error::Error::NotFound.into_response();
    };
    let gzipped = super::web::takes_gzip(&headers);
    let body = if gzipped {
        Body::from(asset.gzip)
    } else {
        let mut raw = Vec::new();
        if flate2::read::GzDecoder::new(asset.gzip)
            .read_to_end(&mut raw)
            .is_err()
        {
            return crate::error::Error::Internal("a docs asset does not inflate".into())
                .into_response();
        }
        Body::from(raw)
    };
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // The versions are pinned; a day's caching keeps an upgrade visible the next day.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    super::web::security_headers(h, gzipped);
    res
}

const REDOC_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>CodeChat API reference</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" href="data:,">
</head>
<body>
  <redoc spec-url="openapi.json"></redoc>
  <script src="docs/assets/redoc.standalone.js"></script>
</body>
</html>
"##;

// The page is relative to itself, so it works behind any API Gateway stage or custom domain.
const DOCS_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>CodeChat API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script src="docs/assets/swagger-init.js"></script>
</body>
</html>
"##;
