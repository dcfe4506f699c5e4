use axum::{extract::FromRequestParts, http::request::Parts};

use super::tokens::TokenType;
use crate::{error::Error, store::User, AppState};

/// The authenticated user behind `Authorization: Bearer <access token>`.
///
/// The user row is read on every request, so deactivating an account (or deleting it) shuts its
/// tokens out at once, and the role is the stored one, not the one frozen into the token.
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(Error::Unauthorized("a bearer access token is required"))?;
        let claims = state.tokens().verify(token, TokenType::Access)?;
        let user = state.store().conn().await?.user_by_id(&claims.sub).await?;
        match user {
            Some(user) if user.is_active => Ok(CurrentUser(user)),
            Some(_) => Err(Error::Unauthorized("this account is deactivated")),
            None => Err(Error::Unauthorized("the token is invalid or expired")),
        }
    }
}
