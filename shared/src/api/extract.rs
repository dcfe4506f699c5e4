//! Extractors every function shares: the current user, and ids in paths.

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Path},
    http::request::Parts,
};
use lambda_http::request::RequestContext;

use crate::{accounts, api_keys, error::Error, http, state::AppState, store::User};

/// The authenticated user behind `Authorization: Bearer <access token or API key>`.
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token =
            bearer(parts).ok_or(Error::Unauthorized("a bearer access token is required"))?;
        let conn = state.store().conn().await?;
        // A personal API key (`cc_…`) is a bearer credential too: scripts, CI and OpenAI clients.
        let user = if api_keys::is_api_key(token) {
            api_keys::authenticate(&conn, token).await?
        } else {
            accounts::authenticate(&conn, state.tokens(), token).await?
        };
        http::record_user(user.id);
        Ok(CurrentUser(user))
    }
}

/// The user signed in with an access token. An API key calls models and reads and writes the
/// user's data; it cannot manage API keys, change the profile or password, log out, or act as
/// admin (403), so a leaked key cannot lock its owner out or make itself permanent.
pub struct SessionUser(pub User);

impl FromRequestParts<AppState> for SessionUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if bearer(parts).is_some_and(api_keys::is_api_key) {
            return Err(Error::Forbidden(
                "an API key cannot do this: sign in with your password",
            ));
        }
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        Ok(SessionUser(user))
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
}

/// The authenticated user, who must be an admin: the role is read from the stored account on every
/// request (the token's `role` claim opens nothing), so a demotion holds from the next request. An
/// API key never acts as admin.
pub struct AdminUser(pub User);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let SessionUser(user) = SessionUser::from_request_parts(parts, state).await?;
        if user.role != crate::kinds::Role::Admin {
            return Err(Error::Forbidden("this route is for admins"));
        }
        Ok(AdminUser(user))
    }
}

/// The one path parameter of a route, parsed as an id before any query runs. Anything that is not
/// an id answers the same 404 as an id that names nothing (or another user's row).
pub struct IdPath<T>(pub T);

impl<T: FromStr + Send, S: Send + Sync> FromRequestParts<S> for IdPath<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::NotFound)?;
        raw.parse().map(IdPath).map_err(|_| Error::NotFound)
    }
}

/// The client's IP as API Gateway saw it (the event's source IP), or the peer address when served
/// locally. Never a header: `X-Forwarded-For` is whatever the client says.
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let from_gateway = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.as_deref(),
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.as_deref(),
            _ => None,
        };
        let ip = match from_gateway {
            Some(ip) => ip.parse().ok(),
            None => parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        };
        Ok(ClientIp(ip))
    }
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`), for
/// `#[serde(default, deserialize_with = "…::present")]`.
pub(crate) fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// Where browsers reach this deployment (scheme, host and, on API Gateway's own domain, the stage),
/// for links the API hands out; `None` when the request does not say (no `Host`).
pub struct PublicBase(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for PublicBase {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // A custom domain maps the API at its root (as the template's outputs assume); the
        // execute-api domain serves it under the stage.
        let on_gateway = |domain: Option<&str>, stage: Option<&str>| {
            domain.map(|domain| match stage {
                Some(stage) if stage != "$default" && domain.ends_with(".amazonaws.com") => {
                    format!("https://{domain}/{stage}")
                }
                _ => format!("https://{domain}"),
            })
        };
        let base = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV1(ctx)) => {
                on_gateway(ctx.domain_name.as_deref(), ctx.stage.as_deref())
            }
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                on_gateway(ctx.domain_name.as_deref(), ctx.stage.as_deref())
            }
            _ => None,
        };
        let base = base.or_else(|| {
            let host = parts.headers.get(axum::http::header::HOST)?.to_str().ok()?;
            let scheme = parts
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .filter(|s| *s == "https")
                .unwrap_or("http");
            Some(format!("{scheme}://{host}"))
        });
        Ok(PublicBase(base))
    }
}
