use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    conversations::{ConversationOut, MessageOut},
    AdminUser, IdPath,
};
use crate::{
    admin::{self, Window},
    error::{Error, FieldError, FieldErrors, Problem, Result},
    function::{Function, Limits, Needs, Transport},
    http::{ApiJson, ApiQuery},
    ids::{ConversationId, UserId},
    kinds::Role,
    pagination::{PageQuery, Paginated},
    state::AppState,
    store::{AuditEntry, UsageGroup, UsageReportRow, User, UserAdminChanges, UserFilter},
};

pub const FUNCTION: Function = Function {
    name: "admin",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
    needs: Needs::Store,
};

/// The admin console; every route needs the `admin` role.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(patch_user))
        .routes(routes!(user_conversations))
        .routes(routes!(conversation_messages))
        .routes(routes!(usage_report))
        .routes(routes!(audit_log))
        .routes(routes!(list_models))
        .routes(routes!(patch_model))
}

/// An account as the admin console shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserOut {
    #[schema(value_type = String)]
    id: UserId,
    email: String,
    display_name: String,
    role: Role,
    is_active: bool,
    /// The account's own daily token budget; `null` means the deployment's default.
    daily_token_limit: Option<i64>,
    created_at: String,
    updated_at: String,
}

impl From<User> for AdminUserOut {
    fn from(u: User) -> Self {
        AdminUserOut {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            role: u.role,
            is_active: u.is_active,
            daily_token_limit: u.daily_token_limit,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UserQuery {
    /// Part of the email or display name (case-insensitive).
    q: Option<String>,
    /// `user` or `admin`.
    role: Option<String>,
    /// `true` or `false`.
    active: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct PatchUser {
    role: Option<Role>,
    is_active: Option<bool>,
    /// Tokens per UTC day (0 blocks chat); `null` gives the account the deployment's default.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<i64>)]
    daily_token_limit: Option<Option<i64>>,
}

impl TryFrom<PatchUser> for UserAdminChanges {
    type Error = Error;

    fn try_from(b: PatchUser) -> Result<Self> {
        if matches!(b.daily_token_limit, Some(Some(n)) if n < 0) {
            return Err(Error::invalid(
                "daily_token_limit",
                "must be 0 or more, or null for the default",
            ));
        }
        Ok(UserAdminChanges {
            role: b.role,
            is_active: b.is_active,
            daily_token_limit: b.daily_token_limit,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UsageQuery {
    /// Start (inclusive): RFC 3339 or `YYYY-MM-DD` (UTC); default 30 days before `to`.
    from: Option<String>,
    /// End (exclusive; a date includes its whole day): RFC 3339 or `YYYY-MM-DD`; default now.
    to: Option<String>,
    /// `user`, `model` or `day` (default `day`).
    group_by: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct UsageGroupOut {
    /// The user id, model id or day (`YYYY-MM-DD`).
    key: String,
    /// The user's email, when grouped by user.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// Model calls (usage rows).
    calls: i64,
    input_tokens: i64,
    output_tokens: i64,
    cached_tokens: i64,
    cost_usd: f64,
}

impl From<UsageReportRow> for UsageGroupOut {
    fn from(r: UsageReportRow) -> Self {
        UsageGroupOut {
            key: r.key,
            email: r.label,
            calls: r.calls,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cached_tokens: r.cached_tokens,
            cost_usd: r.cost_usd,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct UsageReportOut {
    from: String,
    to: String,
    group_by: String,
    items: Vec<UsageGroupOut>,
    total: UsageGroupOut,
}

#[derive(Debug, Serialize, ToSchema)]
struct AuditOut {
    id: String,
    /// The admin who acted.
    actor_id: String,
    /// e.g. `user.update`, `user.conversations.read`, `usage.report`.
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    details: Option<serde_json::Value>,
    created_at: String,
}

impl From<AuditEntry> for AuditOut {
    fn from(e: AuditEntry) -> Self {
        AuditOut {
            id: e.id,
            actor_id: e.actor_id,
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            details: e.details,
            created_at: e.created_at,
        }
    }
}

type AdminUserPage = Paginated<AdminUserOut>;
type ConversationPage = Paginated<ConversationOut>;
type MessagePage = Paginated<MessageOut>;
type AuditPage = Paginated<AuditOut>;

/// Every account, newest first, filtered by `q`, `role` and `active`.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])), params(UserQuery),
    responses((status = 200, body = AdminUserPage), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn list_users(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiQuery(query): ApiQuery<UserQuery>,
) -> Result<Json<AdminUserPage>> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let mut errors = FieldErrors::default();
    let role = query.role.as_deref().and_then(|r| {
        errors.take(Role::parse(r).ok_or_else(|| FieldError::new("role", "must be user or admin")))
    });
    let active = query.active.as_deref().and_then(|a| {
        errors.take(match a {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(FieldError::new("active", "must be true or false")),
        })
    });
    errors.finish()?;
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let filter = UserFilter { q, role, active };
    let conn = state.store().conn().await?;
    let found = admin::list_users(&conn, &admin, &filter, page).await?;
    Ok(Json(found.map(Into::into)))
}

/// Changes an account's role, active flag or daily token budget. Deactivation ends its sessions at
/// once; a demotion holds from its next request. Leaving no active admin is refused (409).
#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])), request_body = PatchUser,
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = AdminUserOut), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn patch_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath<UserId>,
    ApiJson(body): ApiJson<PatchUser>,
) -> Result<Json<AdminUserOut>> {
    let changes = UserAdminChanges::try_from(body)?;
    let conn = state.store().conn().await?;
    Ok(Json(
        admin::update_user(&conn, &admin, id, changes).await?.into(),
    ))
}

/// Any user's conversations, newest activity first.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}/conversations", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id"), PageQuery),
    responses((status = 200, body = ConversationPage), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn user_conversations(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath<UserId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ConversationPage>> {
    let page = query.parse()?;
    let conn = state.store().conn().await?;
    let found = admin::user_conversations(&conn, &admin, id, page).await?;
    Ok(Json(found.map(Into::into)))
}

/// Any conversation's messages, oldest first.
#[utoipa::path(get, path = "/api/v1/admin/conversations/{id}/messages", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id"), PageQuery),
    responses((status = 200, body = MessagePage), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn conversation_messages(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath<ConversationId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<MessagePage>> {
    let page = query.parse()?;
    let conn = state.store().conn().await?;
    let found = admin::conversation_messages(&conn, &admin, id, page).await?;
    Ok(Json(found.map(Into::into)))
}

/// Tokens and cost of every model call in `[from, to)` (UTC), grouped by user, model or day.
#[utoipa::path(get, path = "/api/v1/admin/usage", tag = "admin", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, body = UsageReportOut), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn usage_report(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<UsageReportOut>> {
    let group = match query.group_by.as_deref() {
        None | Some("day") => Ok(UsageGroup::Day),
        Some("user") => Ok(UsageGroup::User),
        Some("model") => Ok(UsageGroup::Model),
        Some(_) => Err(FieldError::new("group_by", "must be user, model or day")),
    };
    let window = Window::parse(
        query.from.as_deref(),
        query.to.as_deref(),
        time::OffsetDateTime::now_utc(),
    );
    let (group, window) = match (group, window) {
        (Ok(g), Ok(w)) => (g, w),
        (Err(field), Err(Error::Validation(mut fields))) => {
            fields.insert(0, field);
            return Err(Error::Validation(fields));
        }
        (Err(field), _) => return Err(field.into()),
        (_, Err(e)) => return Err(e),
    };
    let conn = state.store().conn().await?;
    let rows = admin::usage_report(&conn, &admin, &window, group).await?;
    let mut total = UsageGroupOut {
        key: "total".into(),
        email: None,
        calls: 0,
        input_tokens: 0,
        output_tokens: 0,
        cached_tokens: 0,
        cost_usd: 0.0,
    };
    for r in &rows {
        total.calls += r.calls;
        total.input_tokens += r.input_tokens;
        total.output_tokens += r.output_tokens;
        total.cached_tokens += r.cached_tokens;
        total.cost_usd += r.cost_usd;
    }
    Ok(Json(UsageReportOut {
        from: crate::ids::format_time(window.from),
        to: crate::ids::format_time(window.to),
        group_by: match group {
            UsageGroup::User => "user",
            UsageGroup::Model => "model",
            UsageGroup::Day => "day",
        }
        .into(),
        items: rows.into_iter().map(Into::into).collect(),
        total,
    }))
}

/// What admins did, newest first.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn audit_log(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<AuditPage>> {
    let page = query.parse()?;
    let conn = state.store().conn().await?;
    Ok(Json(
        admin::audit_log(&conn, &admin, page).await?.map(Into::into),
    ))
}

/// A catalog entry as the admin sees it: the entry in force (hidden ones too), whether it is
/// enabled, and what admins changed of it.
#[derive(Debug, Serialize, ToSchema)]
struct AdminModelOut {
    #[serde(flatten)]
    model: crate::models::Model,
    enabled: bool,
    /// What admins changed (`enabled`, `pricing`, `fallbacks`), merged over the deployment's entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_changes: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_at: Option<String>,
}

impl From<admin::AdminModel> for AdminModelOut {
    fn from(m: admin::AdminModel) -> Self {
        AdminModelOut {
            enabled: m.model.enabled,
            model: m.model,
            admin_changes: m.changes,
            changed_at: m.changed_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct AdminModelList {
    items: Vec<AdminModelOut>,
}

/// Every model of the catalog, hidden ones too, with what admins changed.
#[utoipa::path(get, path = "/api/v1/admin/models", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = AdminModelList), (status = 403, body = Problem)))]
async fn list_models(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
) -> Result<Json<AdminModelList>> {
    let conn = state.store().conn().await?;
    let models = admin::list_models(&conn, state.live_catalog()).await?;
    Ok(Json(AdminModelList {
        items: models.into_iter().map(Into::into).collect(),
    }))
}

/// Prices to change, per million tokens.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PricingChanges {
    input_per_mtok_usd: Option<f64>,
    output_per_mtok_usd: Option<f64>,
    cached_input_per_mtok_usd: Option<f64>,
    cache_write_per_mtok_usd: Option<f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PatchModel {
    /// `false` hides the model: not listed to users, not usable for new turns.
    enabled: Option<bool>,
    pricing: Option<PricingChanges>,
    /// Models to hand a turn to when this one's provider fails before answering, in order.
    fallbacks: Option<Vec<String>>,
}

/// Changes a model for new turns on every instance within about a second, audited
/// (`model.update`). Checked against the whole catalog first: 422 names each problem (a negative
/// price, a fallback that is not a model or makes a cycle, hiding the default model).
#[utoipa::path(patch, path = "/api/v1/admin/models/{id}", tag = "admin", security(("bearer" = [])), request_body = PatchModel,
    params(("id" = String, Path, description = "Model id, URL-encoded (openai%2Fgpt-4.1 for openai/gpt-4.1)")),
    responses((status = 200, body = AdminModelOut), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn patch_model(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    ApiJson(body): ApiJson<PatchModel>,
) -> Result<Json<AdminModelOut>> {
    if body.enabled.is_none() && body.pricing.is_none() && body.fallbacks.is_none() {
        return Err(FieldError::new("body", "give enabled, pricing or fallbacks").into());
    }
    let pricing = match body.pricing {
        None => None,
        Some(p) => match serde_json::to_value(p) {
            Ok(serde_json::Value::Object(mut fields)) => {
                fields.retain(|_, v| !v.is_null());
                Some(fields)
            }
            _ => None,
        },
    };
    let changes = admin::ModelChanges {
        enabled: body.enabled,
        pricing,
        fallbacks: body.fallbacks,
    };
    let conn = state.store().conn().await?;
    let updated = admin::update_model(
        &conn,
        state.blobs(),
        state.live_catalog(),
        &admin,
        &id,
        changes,
    )
    .await?;
    Ok(Json(updated.into()))
}
