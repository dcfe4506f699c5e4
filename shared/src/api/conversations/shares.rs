//! Share links: create, list and revoke (the owner's), open (anyone with the link) and fork.

use axum::extract::Path;

use super::*;
use crate::{
    api::PublicBase,
    ids::ShareId,
    shares,
    store::{Share, SharedMessage},
};

/// The share routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_share, list_shares))
        .routes(routes!(revoke_share))
        .routes(routes!(open_shared))
        .routes(routes!(fork_shared))
}

/// A share link, as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
struct ShareOut {
    #[schema(value_type = String)]
    id: ShareId,
    #[schema(value_type = String)]
    conversation_id: ConversationId,
    /// The link's secret part: anyone holding it reads the snapshot.
    token: String,
    /// The web client's read-only page for the link.
    url: String,
    /// The conversation's title when shared.
    title: String,
    message_count: i64,
    created_at: String,
}

impl ShareOut {
    fn new(share: Share, base: &PublicBase) -> Self {
        let url = format!(
            "{}/s/{}",
            base.0.as_deref().unwrap_or_default(),
            share.token
        );
        ShareOut {
            id: share.id,
            conversation_id: share.conversation_id,
            token: share.token,
            url,
            title: share.title,
            message_count: share.message_count,
            created_at: share.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct ShareList {
    items: Vec<ShareOut>,
}

/// A message of a shared conversation: its role, text and time, nothing else.
#[derive(Debug, Serialize, ToSchema)]
struct SharedMessageOut {
    role: MessageRole,
    content: String,
    created_at: String,
}

/// What a share link shows: the snapshot, without its owner or any id.
#[derive(Debug, Serialize, ToSchema)]
struct SharedOut {
    title: String,
    messages: Vec<SharedMessageOut>,
    shared_at: String,
}

impl From<(Share, Vec<SharedMessage>)> for SharedOut {
    fn from((share, messages): (Share, Vec<SharedMessage>)) -> Self {
        SharedOut {
            title: share.title,
            shared_at: share.created_at,
            messages: messages
                .into_iter()
                .map(|m| SharedMessageOut {
                    role: m.role,
                    content: m.content,
                    created_at: m.created_at,
                })
                .collect(),
        }
    }
}

/// Shares the conversation's active path as it is now: a read-only snapshot that later turns,
/// edits and branch switches do not change.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/shares", tag = "shares", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 201, body = ShareOut), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The account holds `MAX_SHARES_PER_USER` links"),
        (status = 422, body = Problem, description = "The active path holds more than `MAX_SHARE_MESSAGES` messages")))]
async fn create_share(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ConversationId>,
    base: PublicBase,
) -> Result<(StatusCode, Json<ShareOut>)> {
    record_conversation(id);
    let conn = state.store().conn().await?;
    let share = shares::create(&conn, &state.config().chat, user.id, id).await?;
    Ok((StatusCode::CREATED, Json(ShareOut::new(share, &base))))
}

/// The conversation's share links, newest first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/shares", tag = "shares", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, body = ShareList), (status = 404, body = Problem)))]
async fn list_shares(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ConversationId>,
    base: PublicBase,
) -> Result<Json<ShareList>> {
    record_conversation(id);
    let conn = state.store().conn().await?;
    let items = shares::list(&conn, user.id, id).await?;
    Ok(Json(ShareList {
        items: items.into_iter().map(|s| ShareOut::new(s, &base)).collect(),
    }))
}

/// Revokes a share link: it answers 404 from now on.
#[utoipa::path(delete, path = "/api/v1/shares/{id}", tag = "shares", security(("bearer" = [])),
    params(("id" = String, Path, description = "Share id")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn revoke_share(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ShareId>,
) -> Result<StatusCode> {
    let conn = state.store().conn().await?;
    shares::revoke(&conn, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A shared conversation, read without signing in.
#[utoipa::path(get, path = "/api/v1/shared/{token}", tag = "shares",
    params(("token" = String, Path, description = "The link's token")),
    responses((status = 200, body = SharedOut), (status = 404, body = Problem)))]
async fn open_shared(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<SharedOut>> {
    let conn = state.store().conn().await?;
    Ok(Json(shares::open(&conn, &token).await?.into()))
}

/// Copies a shared conversation into a new conversation of the caller's, to continue it.
#[utoipa::path(post, path = "/api/v1/shared/{token}/fork", tag = "shares", security(("bearer" = [])),
    params(("token" = String, Path, description = "The link's token")),
    responses((status = 201, body = ConversationOut), (status = 404, body = Problem)))]
async fn fork_shared(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(token): Path<String>,
) -> Result<(StatusCode, Json<ConversationOut>)> {
    let conn = state.store().conn().await?;
    let conversation = shares::fork(&conn, &state.catalog(), user.id, &token).await?;
    Ok((StatusCode::CREATED, Json(conversation.into())))
}
