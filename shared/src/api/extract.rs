//! Extractors every function shares: the current user, and ids in paths.

use std::str::FromStr;

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};

use crate::{accounts, error::Error, http, state::AppState, store::User};

/// The authenticated user behind `Authorization: Bearer <access token>`.
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(Error::Unauthorized("a bearer access token is required"))?;
        let conn = state.store().conn().await?;
        let user = accounts::authenticate(&conn, state.tokens(), token).await?;
        http::record_user(user.id);
        Ok(CurrentUser(user))
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
