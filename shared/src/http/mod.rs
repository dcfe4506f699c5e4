//! HTTP glue shared by every function: the layers every router gets, and the runner that serves a
//! router under the Lambda runtime or, outside Lambda, as a plain local server.

mod extract;

use std::time::Duration;

use axum::{
    extract::{DefaultBodyLimit, MatchedPath},
    http::{HeaderName, HeaderValue, Request, Response},
    Router,
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, Any, CorsLayer},
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};
use tracing::Span;
use utoipa_axum::router::OpenApiRouter;

pub use extract::{parse_json, ApiForm, ApiJson, ApiQuery};

use crate::{api::Group, config::Config, error::Error, AppState};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds a function's service: its routes plus the layers every function shares.
pub fn app(state: AppState, routes: OpenApiRouter<AppState>) -> Router {
    let (router, _) = routes.split_for_parts();
    let config = state.config();
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuidV7))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            // Logs method, route template, status and latency. Never headers, query strings or bodies:
            // they carry tokens, passwords and messages.
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_else(|| "unmatched".into());
                    let request_id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), route, request_id)
                })
                .on_request(())
                .on_response(|res: &Response<_>, latency: Duration, _span: &Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_us = latency.as_micros() as u64,
                        "response"
                    );
                })
                .on_failure(()),
        )
        .layer(cors(config))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(Error::Internal(
                "a handler panicked".into(),
            ))
        }))
        .layer(DefaultBodyLimit::max(config.max_json_body_bytes));
    router
        .fallback(|| async { Error::NotFound })
        .method_not_allowed_fallback(|req: axum::extract::Request| async move {
            Error::MethodNotAllowed(format!("{} is not allowed on this resource", req.method()))
        })
        .layer(layers)
        .with_state(state)
}

fn cors(config: &Config) -> CorsLayer {
    let origins = match &config.cors_allowed_origins {
        None => AllowOrigin::from(Any),
        Some(list) => AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok())),
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers([REQUEST_ID])
        .max_age(Duration::from_secs(600))
}

#[derive(Clone, Copy)]
struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&crate::ids::new_id())
            .ok()
            .map(RequestId::new)
    }
}

/// Structured JSON logs on stdout (CloudWatch in Lambda). `RUST_LOG` takes `level` or
/// `target=level` directives (`info,codechat=debug`); the default is `info`. (`Targets` rather than
/// `EnvFilter`: the same directives without a regex engine in every binary.)
pub fn init_tracing() {
    use tracing_subscriber::{
        filter::Targets, layer::SubscriberExt, util::SubscriberInitExt, Layer,
    };
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .with_filter(filter);
    let _ = tracing_subscriber::registry().with(json).try_init();
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every function's `main`: configuration and store are set up once (cold start), then
/// the group's router serves events from the Lambda Runtime API, or, when started outside Lambda,
/// HTTP on `127.0.0.1:$PORT` (default 3000).
///
/// `routes` is the group's own router function (not looked up from `group`), so each binary links
/// only its own handlers and their dependencies.
pub async fn run(group: Group, routes: fn() -> OpenApiRouter<AppState>) -> Result<(), BoxError> {
    init_tracing();
    let state = match start(group).await {
        Ok(state) => state,
        Err(e) => {
            tracing::error!(error = %e, function = group.name(), "start-up failed");
            return Err(e);
        }
    };
    let app = app(state, routes());
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        if group.streams() {
            lambda_http::run_with_streaming_response(app).await
        } else {
            lambda_http::run(app).await
        }
    } else {
        let port: u16 = std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(3000);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        tracing::info!(function = group.name(), port, "serving locally");
        axum::serve(listener, app).await.map_err(Into::into)
    }
}

async fn start(group: Group) -> Result<AppState, BoxError> {
    let config = Config::from_env().await?;
    tracing::info!(function = group.name(), profile = ?config.profile, "starting");
    Ok(AppState::new(config).await?)
}
