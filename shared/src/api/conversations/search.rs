//! Search over history.

use super::*;
use crate::history::{self, HistoryQuery};

/// The search route.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search_messages))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// Words to find (each must be in the message; stemmed: "deploying" finds "deployed"); 1 to
    /// 200 characters.
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// A message found by a search.
#[derive(Debug, Serialize, ToSchema)]
struct MessageHitOut {
    #[schema(value_type = String)]
    conversation_id: ConversationId,
    conversation_title: String,
    #[schema(value_type = String)]
    message_id: MessageId,
    role: MessageRole,
    /// The best-matching part of the message, plain text.
    snippet: String,
    created_at: String,
}

impl From<crate::store::MessageHit> for MessageHitOut {
    fn from(h: crate::store::MessageHit) -> Self {
        MessageHitOut {
            conversation_id: h.conversation_id,
            conversation_title: h.conversation_title,
            message_id: h.message_id,
            role: h.role,
            snippet: h.snippet,
            created_at: h.created_at,
        }
    }
}

type MessageHitPage = Paginated<MessageHitOut>;

/// Searches the caller's own messages (every conversation, every branch), best match first.
#[utoipa::path(get, path = "/api/v1/search/messages", tag = "conversations", security(("bearer" = [])),
    params(SearchQuery),
    responses((status = 200, body = MessageHitPage), (status = 422, body = Problem)))]
async fn search_messages(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<MessageHitPage>> {
    let mut errors = FieldErrors::default();
    let q = errors.take(HistoryQuery::parse(query.q.as_deref().unwrap_or("")));
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse();
    let page = match page {
        Ok(page) => Some(page),
        Err(Error::Validation(fields)) => {
            fields.into_iter().for_each(|f| errors.push(f));
            None
        }
        Err(e) => return Err(e),
    };
    errors.finish()?;
    let (Some(q), Some(page)) = (q, page) else {
        return Err(Error::invalid("q", "must not be empty"));
    };
    let conn = state.store().conn().await?;
    let found = history::search(&conn, user.id, &q, page).await?;
    Ok(Json(found.map(Into::into)))
}
