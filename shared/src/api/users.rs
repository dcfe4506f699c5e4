use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::{self, CurrentUser, ProfileChanges},
    error::{Problem, Result},
    http::ApiJson,
    store::{Role, User},
    AppState,
};

/// This function group's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_me, patch_me))
}

/// A user as clients see it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: String,
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

/// The current user's profile.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = Problem)))]
async fn get_me(CurrentUser(user): CurrentUser) -> Json<UserOut> {
    Json(user.into())
}

/// Changes the display name and/or the password (which needs the current one, and ends every other
/// session).
#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateMe,
    responses((status = 200, body = UserOut), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn patch_me(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<UpdateMe>,
) -> Result<Json<UserOut>> {
    let changes = ProfileChanges {
        display_name: body.display_name,
        current_password: body.current_password,
        new_password: body.new_password,
    };
    Ok(Json(
        auth::update_profile(&state, &user, changes).await?.into(),
    ))
}
