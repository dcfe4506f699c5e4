use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ClientIp, SessionUser, UserOut};
use crate::{
    accounts::{self, Attempt, DisplayName, Email, Password, Registration, TokenPair},
    error::{Error, FieldErrors, Problem, Result},
    function::{Function, Limits, Needs, Transport},
    http::{ApiForm, ApiJson},
    state::AppState,
    store::User,
};

pub const FUNCTION: Function = Function {
    name: "auth",
    transport: Transport::Buffered(routes),
    // argon2 is CPU-bound and Lambda's CPU grows with memory (1769 MB = one vCPU): measured by the
    // bench (auth per memory size), a register or login costs about the same per request from 128 to
    // 1769 MB ($0.76–0.97 per million over two runs) while taking 0.4 s at 128 MB, 0.1 s at 512 and
    // 0.04–0.05 s at 1024; a refresh costs the same everywhere (p90 38 ms at 128 MB). 1024 MB: fast
    // logins at about the lowest price.
    limits: Limits {
        timeout_secs: 29,
        memory_mb: 1024,
    },
    needs: Needs::Store,
};

/// Accounts and tokens.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(token))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct RegisterRequest {
    email: String,
    password: String,
    display_name: Option<String>,
    /// Only for the first admin's account (`BOOTSTRAP_ADMIN_EMAIL`): the deployment's
    /// `BOOTSTRAP_ADMIN_TOKEN`.
    #[serde(default)]
    bootstrap_token: Option<String>,
}

impl TryFrom<RegisterRequest> for Registration {
    type Error = Error;

    fn try_from(body: RegisterRequest) -> Result<Self> {
        let mut errors = FieldErrors::default();
        let email = errors.take(Email::parse(&body.email));
        let password = errors.take(Password::parse("password", body.password));
        let display_name = body
            .display_name
            .as_deref()
            .and_then(|n| errors.take(DisplayName::parse(n)));
        match (email, password) {
            (Some(email), Some(password)) => errors.finish().map(|()| Registration {
                email,
                password,
                display_name,
                bootstrap_token: body.bootstrap_token,
            }),
            _ => Err(errors.into()),
        }
    }
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
    let input = Registration::try_from(body)?;
    let conn = state.store().conn().await?;
    let auth = &state.config().auth;
    let bootstrap = accounts::Bootstrap {
        email: auth.bootstrap_admin_email.as_deref(),
        token: auth.bootstrap_admin_token.as_ref(),
        needs_token: auth.bootstrap_needs_token,
    };
    Ok(tokens(
        StatusCode::CREATED,
        accounts::register(&conn, state.tokens(), bootstrap, input).await?,
    ))
}

/// Exchanges email and password for tokens.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response> {
    let conn = state.store().conn().await?;
    let attempt = Attempt {
        email: &body.email,
        ip,
    };
    let limits = accounts::LoginLimits::from(&state.config().auth);
    Ok(tokens(
        StatusCode::OK,
        accounts::login(&conn, state.tokens(), limits, attempt, body.password).await?,
    ))
}

/// OAuth2 password flow (`username` is the email), for interactive docs and OAuth2 clients.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiForm(form): ApiForm<TokenForm>,
) -> Result<Response> {
    if form.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(Error::invalid(
            "grant_type",
            "only the `password` grant is supported",
        ));
    }
    let conn = state.store().conn().await?;
    let attempt = Attempt {
        email: &form.username,
        ip,
    };
    let limits = accounts::LoginLimits::from(&state.config().auth);
    Ok(tokens(
        StatusCode::OK,
        accounts::login(&conn, state.tokens(), limits, attempt, form.password).await?,
    ))
}

/// Spends a refresh token for a new pair. Presenting a spent token revokes its whole family.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem)))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response> {
    let conn = state.store().conn().await?;
    Ok(tokens(
        StatusCode::OK,
        accounts::refresh(&conn, state.tokens(), &body.refresh_token).await?,
    ))
}

/// Ends the session the refresh token belongs to: its refresh and access tokens stop working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])), request_body = RefreshRequest,
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem, description = "Not with an API key")))]
async fn logout(
    State(state): State<AppState>,
    SessionUser(user): SessionUser,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<StatusCode> {
    let conn = state.store().conn().await?;
    accounts::logout(&conn, state.tokens(), &user, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the current user ("log out everywhere"): every access and refresh token
/// stops working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem, description = "Not with an API key")))]
async fn logout_all(
    State(state): State<AppState>,
    SessionUser(user): SessionUser,
) -> Result<StatusCode> {
    let conn = state.store().conn().await?;
    accounts::logout_everywhere(&conn, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}
