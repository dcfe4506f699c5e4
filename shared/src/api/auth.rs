use axum::{
    extract::{FromRequestParts, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ClientIp, PublicBase, SessionUser, UserOut};
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
    /// Required, unless the request says `X-CodeChat-Session: cookie` and carries the refresh
    /// cookie.
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TokenResponse {
    user: UserOut,
    access_token: String,
    /// Absent when the request asked for the cookie session (`X-CodeChat-Session: cookie`): the
    /// refresh token is then only in an HttpOnly cookie, out of scripts' reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// Always `bearer`.
    token_type: &'static str,
    /// Lifetime of the access token in seconds.
    expires_in: u64,
}

/// The refresh cookie's name.
const REFRESH_COOKIE: &str = "codechat_refresh";
/// What a browser client sends to keep its refresh token in an HttpOnly cookie.
const SESSION_HEADER: &str = "x-codechat-session";

/// A browser client's cookie session (`X-CodeChat-Session: cookie`): the refresh token travels in
/// an `HttpOnly; SameSite=Strict` cookie scoped to the auth routes (`Secure`, except over plain
/// http to a loopback host), never in a body a script could read. Cross-site requests never carry
/// a `SameSite=Strict` cookie, and a refresh or logout by cookie must also carry the custom header,
/// which a cross-site form cannot send and a cross-origin script only after a CORS preflight; the
/// answer (the access token) is readable by the page's own origin only.
pub(super) struct CookieSession {
    /// The auth routes' path as the browser addresses them (with API Gateway's stage).
    path: String,
    secure: bool,
    /// The refresh token the request's cookie holds.
    presented: Option<String>,
}

pub(super) struct Session(Option<CookieSession>);

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let asked = parts
            .headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("cookie"));
        if !asked {
            return Ok(Session(None));
        }
        let PublicBase(base) = PublicBase::from_request_parts(parts, state).await?;
        let (scheme, rest) = base
            .as_deref()
            .and_then(|b| b.split_once("://"))
            .unwrap_or(("https", ""));
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let host_name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let loopback =
            host_name == "localhost" || host_name == "[::1]" || host_name.starts_with("127.");
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("/{prefix}")
        };
        Ok(Session(Some(CookieSession {
            path: format!("{prefix}/api/v1/auth"),
            secure: !(scheme == "http" && loopback),
            presented: cookie(&parts.headers, REFRESH_COOKIE),
        })))
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

impl CookieSession {
    /// The `Set-Cookie` that keeps `token` (or, with none, removes the cookie).
    fn set_cookie(&self, token: Option<&str>, max_age: u64) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        let value = match token {
            Some(t) => format!(
                "{REFRESH_COOKIE}={t}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}",
                self.path
            ),
            None => format!(
                "{REFRESH_COOKIE}=; Path={}; Max-Age=0; HttpOnly; SameSite=Strict{secure}",
                self.path
            ),
        };
        HeaderValue::from_str(&value).ok()
    }
}

/// The refresh token a refresh or logout presents: the body's, else (cookie session) the cookie's.
/// A cookie session without its cookie (it expired, or the browser never signed in) is not signed
/// in: 401, as a bad token is.
fn presented(body: RefreshRequest, session: &Session) -> Result<String> {
    if let Some(token) = body.refresh_token {
        return Ok(token);
    }
    match &session.0 {
        Some(c) => c
            .presented
            .clone()
            .ok_or(Error::Unauthorized("no refresh cookie; please log in")),
        None => Err(Error::invalid(
            "refresh_token",
            "required (or the refresh cookie, with X-CodeChat-Session: cookie)",
        )),
    }
}

fn tokens(
    status: StatusCode,
    (user, pair): (User, TokenPair),
    session: &Session,
    refresh_ttl: std::time::Duration,
) -> Response {
    let (refresh_token, set_cookie) = match &session.0 {
        Some(c) => (
            None,
            c.set_cookie(Some(&pair.refresh_token), refresh_ttl.as_secs()),
        ),
        None => (Some(pair.refresh_token), None),
    };
    let body = TokenResponse {
        user: user.into(),
        access_token: pair.access_token,
        refresh_token,
        token_type: "bearer",
        expires_in: pair.expires_in,
    };
    let mut res = (status, Json(body)).into_response();
    // Token responses must not be cached (RFC 6749 §5.1).
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cookie) = set_cookie {
        res.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    res
}

/// Creates an account and logs it in.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn register(
    State(state): State<AppState>,
    session: Session,
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
        &session,
        auth.refresh_token_ttl,
    ))
}

/// Exchanges email and password for tokens.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    session: Session,
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
        &session,
        state.config().auth.refresh_token_ttl,
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
        &Session(None),
        state.config().auth.refresh_token_ttl,
    ))
}

/// Spends a refresh token for a new pair. Presenting a spent token revokes its whole family. A
/// browser client with `X-CodeChat-Session: cookie` presents its HttpOnly cookie instead of a body
/// token, and gets the new one as a cookie again.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    params(("X-CodeChat-Session" = Option<String>, Header, description = "`cookie`: the refresh token travels in an HttpOnly cookie")),
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn refresh(
    State(state): State<AppState>,
    session: Session,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response> {
    let token = presented(body, &session)?;
    let conn = state.store().conn().await?;
    Ok(tokens(
        StatusCode::OK,
        accounts::refresh(&conn, state.tokens(), &token).await?,
        &session,
        state.config().auth.refresh_token_ttl,
    ))
}

/// Ends the session the refresh token belongs to: its refresh and access tokens stop working at once
/// (with `X-CodeChat-Session: cookie`, the cookie's; the cookie is removed).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])), request_body = RefreshRequest,
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem, description = "Not with an API key")))]
async fn logout(
    State(state): State<AppState>,
    SessionUser(user): SessionUser,
    session: Session,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response> {
    let token = presented(body, &session)?;
    let conn = state.store().conn().await?;
    accounts::logout(&conn, state.tokens(), &user, &token).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Some(clear) = session.0.as_ref().and_then(|c| c.set_cookie(None, 0)) {
        res.headers_mut().insert(header::SET_COOKIE, clear);
    }
    Ok(res)
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
