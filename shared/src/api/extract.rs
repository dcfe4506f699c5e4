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
/// for links the API hands out; `None` when the request names no host.
pub struct PublicBase(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for PublicBase {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let (gateway_domain, stage) = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV1(ctx)) => (ctx.domain_name.clone(), ctx.stage.clone()),
            Some(RequestContext::ApiGatewayV2(ctx)) => (ctx.domain_name.clone(), ctx.stage.clone()),
            _ => (None, None),
        };
        // The Host the browser used (`cargo lambda watch` passes it on; its context's domain is a
        // placeholder), else the gateway's domain.
        let Some(host) = header(axum::http::header::HOST.as_str())
            .map(str::to_string)
            .or(gateway_domain)
        else {
            return Ok(PublicBase(None));
        };
        // API Gateway's own domain serves the API under its stage; a custom domain maps it at its
        // root (as the template's outputs assume).
        let aws = host.ends_with(".amazonaws.com");
        let https = aws || header("x-forwarded-proto") == Some("https");
        let scheme = if https { "https" } else { "http" };
        let prefix = match stage {
            Some(stage) if aws && stage != "$default" => format!("/{stage}"),
            _ => String::new(),
        };
        Ok(PublicBase(Some(format!("{scheme}://{host}{prefix}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn base(
        host: Option<&str>,
        context: Option<RequestContext>,
        proto: Option<&str>,
    ) -> Option<String> {
        let mut request = axum::http::Request::builder();
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Some(proto) = proto {
            request = request.header("x-forwarded-proto", proto);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        if let Some(context) = context {
            parts.extensions.insert(context);
        }
        PublicBase::from_request_parts(&mut parts, &())
            .await
            .unwrap()
            .0
    }

    #[tokio::test]
    async fn links_name_the_host_the_browser_used_and_the_gateways_stage() {
        let gateway = |domain: &str| {
            let mut ctx =
                lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext::default();
            ctx.domain_name = Some(domain.into());
            ctx.stage = Some("Prod".into());
            Some(RequestContext::ApiGatewayV1(ctx))
        };
        let execute_api = "abc123.execute-api.eu-west-1.amazonaws.com";
        assert_eq!(
            base(Some(execute_api), gateway(execute_api), Some("https"))
                .await
                .as_deref(),
            Some("https://abc123.execute-api.eu-west-1.amazonaws.com/Prod")
        );
        assert_eq!(
            base(
                Some("chat.example.com"),
                gateway("chat.example.com"),
                Some("https")
            )
            .await
            .as_deref(),
            Some("https://chat.example.com")
        );
        // `cargo lambda watch`: its context's domain is a placeholder; the Host is the real one.
        let mut local =
            lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext::default();
        local.domain_name = Some("localhost".into());
        local.stage = Some("$default".into());
        assert_eq!(
            base(
                Some("127.0.0.1:9000"),
                Some(RequestContext::ApiGatewayV2(local)),
                None
            )
            .await
            .as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(base(None, None, None).await, None);
    }
}
