use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::UserOut;
use crate::{
    auth::{self, CurrentUser, Registration, TokenPair},
    error::{Problem, Result},
    http::{ApiForm, ApiJson},
    store::User,
    AppState,
};

/// This function group's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(token))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct RegisterRequest {
    email: String,
    password: String,
    display_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct LoginRequest {
    email: String,
    password: String,
}

/// The OAuth2 password grant, as Swagger UI's "Authorize" sends it.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct TokenForm {
    username: String,
    password: String,
    grant_type: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct RefreshRequest {
    refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TokenResponse {
    user: UserOut,
    access_token: String,
    refresh_token: String,
    /// Always `bearer`.
    token_type: &'static str,
    /// Lifetime of the access token in seconds.
    expires_in: u64,
}

fn tokens(status: StatusCode, (user, pair): (User, TokenPair)) -> Response {
    let body = TokenResponse {
        user: user.into(),
        access_token: pair.access_token,
        refresh_token: pair.refresh_token,
        token_type: "bearer",
        expires_in: pair.expires_in,
    };
    let mut res = (status, Json(body)).into_response();
    // Token responses must not be cached (RFC 6749 §5.1).
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Creates an account and logs it in.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<Response> {
    let input = Registration {
        email: body.email,
        password: body.password,
        display_name: body.display_name,
    };
    Ok(tokens(
        StatusCode::CREATED,
        auth::register(&state, input).await?,
    ))
}

/// Exchanges email and password for tokens.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response> {
    Ok(tokens(
        StatusCode::OK,
        auth::login(&state, &body.email, body.password).await?,
    ))
}

/// OAuth2 password flow (`username` is the email), for interactive docs and OAuth2 clients.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn token(
    State(state): State<AppState>,
    ApiForm(form): ApiForm<TokenForm>,
) -> Result<Response> {
    if form.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(crate::Error::invalid(
            "grant_type",
            "only the `password` grant is supported",
        ));
    }
    Ok(tokens(
        StatusCode::OK,
        auth::login(&state, &form.username, form.password).await?,
    ))
}

/// Spends a refresh token for a new pair. Presenting a spent token revokes its whole family.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem)))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response> {
    Ok(tokens(
        StatusCode::OK,
        auth::refresh(&state, &body.refresh_token).await?,
    ))
}

/// Ends the session the refresh token belongs to.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])), request_body = RefreshRequest,
    responses((status = 204), (status = 401, body = Problem)))]
async fn logout(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<StatusCode> {
    auth::logout(&state, &user, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}
