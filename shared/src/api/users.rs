use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ClientIp, CurrentUser};
use crate::{
    accounts::{self, DisplayName, Password, PasswordChange, ProfileChanges},
    error::{Error, FieldError, FieldErrors, Problem, Result},
    function::{Function, Limits, Transport},
    http::ApiJson,
    ids::UserId,
    kinds::Role,
    state::AppState,
    store::User,
};

pub const FUNCTION: Function = Function {
    name: "users",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
};

/// The current user's profile.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_me, patch_me))
}

/// A user as clients see it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    #[schema(value_type = String)]
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub is_active: bool,
    pub created_at: String,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        UserOut {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            role: u.role,
            is_active: u.is_active,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct UpdateMe {
    display_name: Option<String>,
    current_password: Option<String>,
    new_password: Option<String>,
}

impl TryFrom<UpdateMe> for ProfileChanges {
    type Error = Error;

    fn try_from(body: UpdateMe) -> Result<Self> {
        let mut errors = FieldErrors::default();
        let display_name = body
            .display_name
            .as_deref()
            .and_then(|n| errors.take(DisplayName::parse(n)));
        let password = match (body.new_password, body.current_password) {
            (Some(new), current) => {
                let new = errors.take(Password::parse("new_password", new));
                if current.is_none() {
                    errors.push(FieldError::new(
                        "current_password",
                        "is required to change the password",
                    ));
                }
                new.zip(current)
                    .map(|(new, current)| PasswordChange { current, new })
            }
            (None, _) => None,
        };
        errors.finish()?;
        Ok(ProfileChanges {
            display_name,
            password,
        })
    }
}

/// The current user's profile.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = Problem)))]
async fn get_me(CurrentUser(user): CurrentUser) -> Json<UserOut> {
    Json(user.into())
}

/// Changes the display name and/or the password (which needs the current one, and ends every
/// session, this one included).
#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateMe,
    responses((status = 200, body = UserOut), (status = 401, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn patch_me(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<UpdateMe>,
) -> Result<Json<UserOut>> {
    let changes = ProfileChanges::try_from(body)?;
    let conn = state.store().conn().await?;
    let updated = accounts::update_profile(&conn, state.login_limits(), ip, &user, changes).await?;
    Ok(Json(updated.into()))
}
