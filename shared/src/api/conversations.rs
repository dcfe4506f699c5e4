use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::CurrentUser,
    conversations::{self, ConversationChanges, NewConversationInput},
    error::{Error, Problem, Result},
    http::{ApiJson, ApiQuery},
    pagination::{PageQuery, Paginated},
    store::{Conversation, Message, MessageRole, MessageStatus, UsageRow, UsageTotals},
    AppState,
};

/// This function group's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_conversation, list_conversations))
        .routes(routes!(
            get_conversation,
            patch_conversation,
            delete_conversation
        ))
        .routes(routes!(list_messages))
        .routes(routes!(conversation_usage))
        .routes(routes!(export_conversation))
        .routes(routes!(message_usage))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationOut {
    id: String,
    title: String,
    model: String,
    agent_id: Option<String>,
    project_id: Option<String>,
    summary: Option<String>,
    message_count: i64,
    created_at: String,
    updated_at: String,
    last_message_at: Option<String>,
}

impl From<Conversation> for ConversationOut {
    fn from(c: Conversation) -> Self {
        ConversationOut {
            id: c.id,
            title: c.title,
            model: c.model,
            agent_id: c.agent_id,
            project_id: c.project_id,
            summary: c.summary,
            message_count: c.message_count,
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_message_at: c.last_message_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageOut {
    pub id: String,
    pub conversation_id: String,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub model: Option<String>,
    /// Why the model call failed, on `failed` messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: String,
}

impl From<Message> for MessageOut {
    fn from(m: Message) -> Self {
        MessageOut {
            id: m.id,
            conversation_id: m.conversation_id,
            role: m.role,
            content: m.content,
            status: m.status,
            model: m.model,
            error: m.error,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct TotalsOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
    cached_tokens: i64,
    cost_usd: f64,
}

impl TotalsOut {
    fn new(t: UsageTotals, with_model: bool) -> Self {
        TotalsOut {
            model: with_model.then_some(t.model),
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cached_tokens: t.cached_tokens,
            cost_usd: t.cost_usd,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct UsageReport {
    total: TotalsOut,
    by_model: Vec<TotalsOut>,
}

#[derive(Debug, Serialize, ToSchema)]
struct UsageList {
    items: Vec<UsageRow>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateConversation {
    title: Option<String>,
    model: Option<String>,
    agent_id: Option<String>,
    project_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct PatchConversation {
    title: Option<String>,
    model: Option<String>,
    /// A new agent, or `null` to clear it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    agent_id: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Case-insensitive search in titles.
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// `json` (default) or `markdown`.
    format: Option<String>,
}

type ConversationPage = Paginated<ConversationOut>;
type MessagePage = Paginated<MessageOut>;

/// Starts an empty conversation (a chat without `conversation_id` also creates one).
#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations", security(("bearer" = [])), request_body = CreateConversation,
    responses((status = 201, body = ConversationOut), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn create_conversation(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateConversation>,
) -> Result<(StatusCode, Json<ConversationOut>)> {
    let input = NewConversationInput {
        title: body.title,
        model: body.model,
        agent_id: body.agent_id,
        project_id: body.project_id,
    };
    Ok((
        StatusCode::CREATED,
        Json(conversations::create(&state, &user, input).await?.into()),
    ))
}

/// The user's conversations, newest activity first.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = ConversationPage), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn list_conversations(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ConversationPage>> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let found = conversations::list(&state, &user, query.q.as_deref(), page).await?;
    Ok(Json(found.map(Into::into)))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    responses((status = 200, body = ConversationOut), (status = 404, body = Problem)))]
async fn get_conversation(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<ConversationOut>> {
    Ok(Json(conversations::get(&state, &user, &id).await?.into()))
}

/// Renames, switches model, or sets/clears the agent.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])), request_body = PatchConversation,
    responses((status = 200, body = ConversationOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn patch_conversation(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchConversation>,
) -> Result<Json<ConversationOut>> {
    let changes = ConversationChanges {
        title: body.title,
        model: body.model,
        agent_id: body.agent_id,
    };
    Ok(Json(
        conversations::update(&state, &user, &id, changes)
            .await?
            .into(),
    ))
}

/// Deletes the conversation with its messages and usage.
#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_conversation(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    conversations::delete(&state, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Messages, oldest first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = MessagePage), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_messages(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<MessagePage>> {
    let found = conversations::messages(&state, &user, &id, query.parse()?).await?;
    Ok(Json(found.map(Into::into)))
}

/// Tokens and cost of the conversation, per model and in total (summaries included).
#[utoipa::path(get, path = "/api/v1/conversations/{id}/usage", tag = "conversations", security(("bearer" = [])),
    responses((status = 200, body = UsageReport), (status = 404, body = Problem)))]
async fn conversation_usage(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<UsageReport>> {
    let (total, by_model) = conversations::usage(&state, &user, &id).await?;
    Ok(Json(UsageReport {
        total: TotalsOut::new(total, false),
        by_model: by_model
            .into_iter()
            .map(|t| TotalsOut::new(t, true))
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
struct ExportJson {
    conversation: ConversationOut,
    messages: Vec<MessageOut>,
}

/// The whole conversation as JSON or Markdown.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/export", tag = "conversations", security(("bearer" = [])), params(ExportQuery),
    responses((status = 200, body = ExportJson), (status = 200, content_type = "text/markdown", body = String), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn export_conversation(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response> {
    let markdown = match query.format.as_deref() {
        None | Some("json") => false,
        Some("markdown") | Some("md") => true,
        Some(_) => return Err(Error::invalid("format", "must be `json` or `markdown`")),
    };
    let (conversation, messages) = conversations::export(&state, &user, &id).await?;
    let filename = format!(
        "conversation-{}.{}",
        conversation.id,
        if markdown { "md" } else { "json" }
    );
    let disposition = [(
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{filename}\""),
    )];
    Ok(if markdown {
        let body = conversations::to_markdown(&conversation, &messages);
        (
            disposition,
            [(
                header::CONTENT_TYPE,
                "text/markdown; charset=utf-8".to_string(),
            )],
            body,
        )
            .into_response()
    } else {
        let body = ExportJson {
            conversation: conversation.into(),
            messages: messages.into_iter().map(Into::into).collect(),
        };
        (disposition, Json(body)).into_response()
    })
}

/// The usage row(s) of one message: the answer, and the summary made during its turn if any.
#[utoipa::path(get, path = "/api/v1/messages/{id}/usage", tag = "conversations", security(("bearer" = [])),
    responses((status = 200, body = UsageList), (status = 404, body = Problem)))]
async fn message_usage(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<UsageList>> {
    let rows = conversations::message_usage(&state, &user, &id).await?;
    Ok(Json(UsageList { items: rows }))
}
