//! The `web` function: the browser client (`web/`), embedded in the binary. `GET /` answers
//! `index.html` (`no-cache`, a strict Content-Security-Policy); `GET /assets/{version}/{file}`
//! answers the content-hashed assets (`immutable`), gzipped when the browser takes it. No CDN,
//! no third-party origin: the page talks only to the API, on this origin by default (relative
//! URLs, so a stage prefix such as `/Prod/` holds) or at `WEB_API_BASE_URL`.

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::Error,
    function::{Function, Limits, Needs, Transport},
    state::AppState,
};

pub const FUNCTION: Function = Function {
    name: "web",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
    needs: Needs::Static,
};

/// One embedded asset: its bytes, and the same gzipped at build time.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub raw: &'static [u8],
    pub gzip: &'static [u8],
}

mod embedded {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

pub use embedded::{ASSETS, VERSION};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(shared_page))
        .routes(routes!(conversation_page))
        .routes(routes!(project_page))
        .routes(routes!(asset))
}

/// The page's policy: its own scripts and styles only, requests to the API's origin (and the
/// bucket large attachments are uploaded to) only.
fn content_security_policy(web: &crate::config::WebConfig) -> String {
    let uploads: String = web.upload_origins.iter().map(|o| format!(" {o}")).collect();
    let api_origin = web
        .api_base
        .split_once("://")
        .map(|(scheme, rest)| {
            let host = rest.split('/').next().unwrap_or(rest);
            format!(" {scheme}://{host}")
        })
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src 'self'{api_origin}{uploads}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// Whether the request takes a gzipped body (every browser does).
pub(super) fn takes_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")))
}

/// The web client: sign in, conversations, streamed answers, attachments, projects.
#[utoipa::path(get, path = "/", tag = "web",
    responses((status = 200, content_type = "text/html", description = "The single-page chat client")))]
async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = state.config().web.api_base.as_str();
    let (body, gzipped) = if base == "api/v1" && takes_gzip(&headers) {
        (embedded::INDEX_DEFAULT_GZIP.to_vec(), true)
    } else {
        (
            embedded::INDEX
                .replace("{{API_BASE}}", &html_attribute(base))
                .into_bytes(),
            false,
        )
    };
    page(body, gzipped, &state.config().web)
}

/// The client's page with its headers: never cached stale, its strict policy.
fn page(body: Vec<u8>, gzipped: bool, web: &crate::config::WebConfig) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(web)) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    security_headers(h, gzipped);
    response
}

/// A share link's page: the client, one level down (its relative URLs say so), shows the shared
/// conversation read-only, signed in or not. The token is the client's to read; a bad one shows
/// the API's 404 there.
#[utoipa::path(get, path = "/s/{token}", tag = "web",
    params(("token" = String, Path, description = "The share link's token")),
    responses((status = 200, content_type = "text/html", description = "The client's read-only view of a shared conversation")))]
async fn shared_page(State(state): State<AppState>) -> Response {
    page_one_level_down(&state)
}

/// A conversation's address: the client opens it (after sign-in); another user's or an unknown
/// one shows the API's 404 there.
#[utoipa::path(get, path = "/c/{id}", tag = "web",
    params(("id" = String, Path, description = "The conversation's id")),
    responses((status = 200, content_type = "text/html", description = "The client, showing the conversation")))]
async fn conversation_page(State(state): State<AppState>) -> Response {
    page_one_level_down(&state)
}

/// A project's address: the client opens its files and a new chat on it.
#[utoipa::path(get, path = "/p/{id}", tag = "web",
    params(("id" = String, Path, description = "The project's id")),
    responses((status = 200, content_type = "text/html", description = "The client, showing the project")))]
async fn project_page(State(state): State<AppState>) -> Response {
    page_one_level_down(&state)
}

/// The client one level down (`/s/…`, `/c/…`, `/p/…`): its relative URLs say so.
fn page_one_level_down(state: &AppState) -> Response {
    let base = state.config().web.api_base.as_str();
    let relative = !base.contains("://") && !base.starts_with('/');
    let api = if relative {
        format!("../{base}")
    } else {
        base.to_string()
    };
    let body = embedded::INDEX
        .replace("=\"assets/", "=\"../assets/")
        .replace("{{API_BASE}}", &html_attribute(&api));
    page(body.into_bytes(), false, &state.config().web)
}

/// An asset of the client, by the build's content hash and its name.
#[utoipa::path(get, path = "/assets/{version}/{file}", tag = "web",
    params(("version" = String, Path, description = "The build's content hash"), ("file" = String, Path)),
    responses((status = 200, description = "A script or stylesheet, cacheable for a year"), (status = 404, body = crate::error::Problem)))]
async fn asset(Path((version, file)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS
        .iter()
        .find(|a| a.name == file)
        .filter(|_| version == VERSION)
    else {
        return Error::NotFound.into_response();
    };
    let gzipped = takes_gzip(&headers);
    let body = if gzipped { asset.gzip } else { asset.raw };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    security_headers(h, gzipped);
    response
}

/// The headers every static answer carries (and, when the body is gzipped, its encoding).
pub(super) fn security_headers(h: &mut HeaderMap, gzipped: bool) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
}

fn html_attribute(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
