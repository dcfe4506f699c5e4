//! HTTP glue shared by every function: the layers every router gets, body extractors, Server-Sent
//! Events, and the runner that serves a function under the Lambda runtime or, outside Lambda, as a
//! plain local server.

mod extract;
pub mod sse;
pub mod websocket;

use std::time::Duration;

use axum::{
    extract::{DefaultBodyLimit, MatchedPath},
    http::{HeaderName, HeaderValue, Request, Response},
    Router,
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowHeaders, AllowOrigin, Any, CorsLayer},
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};
use tracing::Span;
use utoipa_axum::router::OpenApiRouter;

pub use extract::{parse_json, ApiForm, ApiJson, ApiQuery};

pub use crate::function::BoxError;
use crate::{
    config::{Config, HttpConfig},
    error::Error,
    function::{Function, Transport},
    ids::ConversationId,
    state::AppState,
};

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
                    // user_id and conversation_id are recorded once known (see `record_*`).
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        route,
                        request_id,
                        user_id = tracing::field::Empty,
                        conversation_id = tracing::field::Empty,
                    )
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
        .layer(cors(&config.http))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(Error::Internal(
                "a handler panicked".into(),
            ))
        }))
        .layer(DefaultBodyLimit::max(config.http.max_json_body_bytes));
    router
        // A store function takes in the admins' model changes when its instance last looked over a
        // second ago (see `AppState::fresh_catalog`), before the handler reads the catalog.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            |axum::extract::State(state): axum::extract::State<AppState>,
             req: axum::extract::Request,
             next: axum::middleware::Next| async move {
                if state.has_store() {
                    state.fresh_catalog().await;
                }
                next.run(req).await
            },
        ))
        .fallback(|| async { Error::NotFound })
        .method_not_allowed_fallback(|req: axum::extract::Request| async move {
            Error::MethodNotAllowed(format!("{} is not allowed on this resource", req.method()))
        })
        .layer(layers)
        .with_state(state)
}

/// Names the authenticated user on the request's span (and so on its log lines).
pub fn record_user(user_id: crate::ids::UserId) {
    Span::current().record("user_id", tracing::field::display(user_id));
}

/// Names the conversation a request works on, once known.
pub fn record_conversation(conversation_id: ConversationId) {
    Span::current().record("conversation_id", tracing::field::display(conversation_id));
}

fn cors(config: &HttpConfig) -> CorsLayer {
    let origins = match &config.cors_allowed_origins {
        None => AllowOrigin::from(Any),
        Some(list) => AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok())),
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(Any)
        // Not `*`: browsers never let a wildcard cover `Authorization` (Fetch standard), so the
        // headers a preflight asks for are named back.
        .allow_headers(AllowHeaders::mirror_request())
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
///
/// Store transactions and provider calls have `debug` spans: with `RUST_LOG` at debug, each one's
/// close is logged with its duration (`time.busy`, `time.idle`). At the default level they cost
/// nothing and log nothing.
pub fn init_tracing() {
    let directives = std::env::var("RUST_LOG").unwrap_or_default();
    let _ = tracing::subscriber::set_global_default(log_subscriber(&directives, std::io::stdout));
}

/// The subscriber every function logs through, writing JSON lines to `writer` (tests capture them).
pub fn log_subscriber<W>(directives: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::{filter::Targets, fmt::format::FmtSpan, layer::SubscriberExt, Layer};
    let mut filter: Targets = directives
        .parse()
        .ok()
        .filter(|_| !directives.trim().is_empty())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    // The MCP client logs the messages it exchanges (tool arguments and results are users'
    // content): silent unless RUST_LOG names it.
    if !filter.iter().any(|(target, _)| target.starts_with("rmcp")) {
        filter = filter.with_target("rmcp", tracing::level_filters::LevelFilter::OFF);
    }
    let debug = tracing::level_filters::LevelFilter::DEBUG;
    let span_timings =
        filter.iter().any(|(_, level)| level >= debug) || filter.default_level() >= Some(debug);
    let json = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_span_events(if span_timings {
            FmtSpan::CLOSE
        } else {
            FmtSpan::NONE
        })
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .with_filter(filter);
    tracing_subscriber::registry().with(json)
}

/// The body of every function's `main`: configuration and store are set up once (cold start), then
/// the function serves events from the Lambda Runtime API, or, when started outside Lambda, HTTP on
/// `127.0.0.1:$PORT` (default 3000).
pub async fn run(function: &'static Function) -> Result<(), BoxError> {
    init_tracing();
    let name = function.name;
    let state = match start(function).await {
        Ok(state) => state,
        Err(e) => {
            tracing::error!(error = %e, function = name, "start-up failed");
            return Err(e);
        }
    };
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    // `sam local start-api` sets AWS_SAM_LOCAL and only understands buffered proxy answers: there a
    // streaming function answers in one piece (the whole SSE body at the end of the turn).
    let can_stream = std::env::var_os("AWS_SAM_LOCAL").is_none();
    match function.transport {
        Transport::Streaming(routes) if in_lambda && can_stream => {
            lambda_http::run_with_streaming_response(app(state, routes())).await
        }
        Transport::Buffered(routes) | Transport::Streaming(routes) if in_lambda => {
            lambda_http::run(app(state, routes())).await
        }
        Transport::Buffered(routes) | Transport::Streaming(routes) => {
            serve_locally(name, app(state, routes())).await
        }
        Transport::WebSocket(handler) | Transport::Worker(handler) if in_lambda => {
            lambda_http::lambda_runtime::run(lambda_http::service_fn(
                move |event: lambda_http::lambda_runtime::LambdaEvent<serde_json::Value>| {
                    handler(state.clone(), event.payload)
                },
            ))
            .await
        }
        // Locally the WebSocket function serves sockets itself (`ws://127.0.0.1:$PORT/ws`, 9001
        // unless PORT says otherwise), standing in for API Gateway.
        Transport::WebSocket(handler) => {
            let port: u16 = std::env::var("PORT")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(9001);
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            websocket::serve(listener, state, handler).await
        }
        // Locally a worker takes its event as the JSON body of `POST /`.
        Transport::Worker(handler) => {
            let events = Router::new().route(
                "/",
                axum::routing::post(move |axum::Json(event): axum::Json<serde_json::Value>| {
                    let state = state.clone();
                    async move {
                        handler(state, event)
                            .await
                            .map(axum::Json)
                            .map_err(|e| Error::Internal(e.to_string()))
                    }
                }),
            );
            serve_locally(name, events).await
        }
    }
}

async fn serve_locally(name: &str, app: Router) -> Result<(), BoxError> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(function = name, port, "serving locally");
    // The peer address is the client IP that login limits count locally.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).await.map_err(Into::into)
}

async fn start(function: &Function) -> Result<AppState, BoxError> {
    let config = Config::from_env(function.needs).await?;
    tracing::info!(function = function.name, profile = ?config.profile, "starting");
    Ok(AppState::new(config).await?)
}
