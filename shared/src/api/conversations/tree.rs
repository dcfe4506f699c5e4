//! A conversation's messages as a tree: the active path (or every message) and switching branches.

use super::*;
use crate::store::Which;

/// The messages and active-leaf routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_messages))
        .routes(routes!(set_active_leaf))
}

type MessagePage = Paginated<MessageOut>;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MessagesQuery {
    limit: Option<String>,
    cursor: Option<String>,
    /// `true`: every message of the tree (every branch), oldest first; default: the active path.
    all: Option<String>,
}

/// The active path's messages (root to active leaf), oldest first; `?all=true` every message.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id"), MessagesQuery),
    responses((status = 200, body = MessagePage), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_messages(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ConversationId>,
    ApiQuery(query): ApiQuery<MessagesQuery>,
) -> Result<Json<MessagePage>> {
    record_conversation(id);
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let which = match query.all.as_deref() {
        None | Some("false") => Which::ActivePath,
        Some("true") => Which::All,
        Some(_) => return Err(Error::invalid("all", "must be `true` or `false`")),
    };
    let conn = state.store().conn().await?;
    let found = conversations::messages(&conn, user.id, id, which, page).await?;
    Ok(Json(found.map(Into::into)))
}

#[derive(Debug, Deserialize, ToSchema)]
struct ActiveLeaf {
    /// A message of the conversation: the path from the root to it becomes the one shown and
    /// continued (a user message is allowed).
    message_id: String,
}

/// Switches branch: the path ending at `message_id` becomes the active one.
#[utoipa::path(put, path = "/api/v1/conversations/{id}/active-leaf", tag = "conversations", security(("bearer" = [])),
    request_body = ActiveLeaf,
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, body = ConversationOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn set_active_leaf(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ConversationId>,
    ApiJson(body): ApiJson<ActiveLeaf>,
) -> Result<Json<ConversationOut>> {
    record_conversation(id);
    let message_id: MessageId = body
        .message_id
        .parse()
        .map_err(|_| Error::invalid("message_id", "not a message of this conversation"))?;
    let conn = state.store().conn().await?;
    let conversation = conversations::set_active_leaf(&conn, user.id, id, message_id).await?;
    Ok(Json(conversation.into()))
}
