use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ClientIp, CurrentUser, IdPath, SessionUser};
use crate::{
    accounts::{self, DisplayName, Password, PasswordChange, ProfileChanges},
    api_keys,
    error::{Error, FieldError, FieldErrors, Problem, Result},
    function::{Function, Limits, Needs, Transport},
    http::ApiJson,
    http::ApiQuery,
    ids::ApiKeyId,
    ids::UserId,
    kinds::Role,
    pagination::{PageQuery, Paginated},
    state::AppState,
    store::ApiKey,
    store::User,
};

pub const FUNCTION: Function = Function {
    name: "users",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
    needs: Needs::Store,
};

/// The current user's profile and personal API keys.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, patch_me))
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(delete_api_key))
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
    responses((status = 200, body = UserOut), (status = 401, body = Problem), (status = 403, body = Problem, description = "Not with an API key"), (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn patch_me(
    State(state): State<AppState>,
    SessionUser(user): SessionUser,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<UpdateMe>,
) -> Result<Json<UserOut>> {
    let changes = ProfileChanges::try_from(body)?;
    let conn = state.store().conn().await?;
    let updated = accounts::update_profile(
        &conn,
        accounts::LoginLimits::from(&state.config().auth),
        ip,
        &user,
        changes,
    )
    .await?;
    Ok(Json(updated.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct NewApiKeyBody {
    name: String,
    /// RFC 3339; omit for a key that does not expire.
    expires_at: Option<String>,
}

/// A key as lists show it: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    #[schema(value_type = String)]
    id: ApiKeyId,
    name: String,
    /// The key's first characters, to tell keys apart.
    prefix: String,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
}

impl From<ApiKey> for ApiKeyOut {
    fn from(k: ApiKey) -> Self {
        ApiKeyOut {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A new key, with the key itself: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    info: ApiKeyOut,
    /// `cc_…`: send it as `Authorization: Bearer <key>` to the OpenAI-compatible endpoint.
    key: String,
}

type ApiKeyPage = Paginated<ApiKeyOut>;

/// Creates a personal API key; the answer is the only time the key is shown.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "users", security(("bearer" = [])), request_body = NewApiKeyBody,
    responses((status = 201, body = CreatedApiKey), (status = 401, body = Problem), (status = 403, body = Problem, description = "Not with an API key"), (status = 422, body = Problem)))]
async fn create_api_key(
    State(state): State<AppState>,
    SessionUser(user): SessionUser,
    ApiJson(body): ApiJson<NewApiKeyBody>,
) -> Result<(StatusCode, Json<CreatedApiKey>)> {
    let new = api_keys::NewKey::parse(&body.name, body.expires_at.as_deref())?;
    let conn = state.store().conn().await?;
    let max_keys = state.config().auth.max_api_keys_per_user;
    let (row, key) = api_keys::create(&conn, user.id, &new, max_keys).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            info: row.into(),
            key,
        }),
    ))
}

/// The user's API keys, newest first (name, prefix, times; never the key).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "users", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = ApiKeyPage), (status = 401, body = Problem), (status = 403, body = Problem, description = "Not with an API key"), (status = 422, body = Problem)))]
async fn list_api_keys(
    State(state): State<AppState>,
    SessionUser(user): SessionUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ApiKeyPage>> {
    let page = query.parse()?;
    let conn = state.store().conn().await?;
    Ok(Json(
        api_keys::list(&conn, user.id, page).await?.map(Into::into),
    ))
}

/// Deletes a key; calls with it fail from now on.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "API key id")),
    responses((status = 204), (status = 403, body = Problem, description = "Not with an API key"), (status = 404, body = Problem)))]
async fn delete_api_key(
    State(state): State<AppState>,
    SessionUser(user): SessionUser,
    IdPath(id): IdPath<ApiKeyId>,
) -> Result<StatusCode> {
    let conn = state.store().conn().await?;
    api_keys::delete(&conn, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
