mod reports;
mod search;
mod shares;
mod tree;

use axum::{extract::State, http::StatusCode, response::Response, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{CurrentUser, IdPath};
use crate::{
    conversations::{self, Changes, NewConversationInput, Title},
    error::{Error, FieldError, FieldErrors, Problem, Result},
    function::{Function, Limits, Needs, Transport},
    http::{record_conversation, ApiJson, ApiQuery},
    ids::{AttachmentId, ConversationId, MessageId},
    kinds::{MessageRole, MessageStatus},
    models::Catalog,
    pagination::{PageQuery, Paginated},
    state::AppState,
    store::{Conversation, Message, UsageRecord, UsageTotals},
};
pub use reports::UsageRow;

pub const FUNCTION: Function = Function {
    name: "conversations",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
    needs: Needs::Store,
};

/// Conversations, messages, usage and export.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_conversation, list_conversations))
        .routes(routes!(
            get_conversation,
            patch_conversation,
            delete_conversation
        ))
        .merge(tree::routes())
        .merge(shares::routes())
        .merge(search::routes())
        .merge(reports::routes())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationOut {
    #[schema(value_type = String)]
    id: ConversationId,
    title: String,
    model: String,
    #[schema(value_type = Option<String>)]
    agent_id: Option<crate::ids::AgentId>,
    #[schema(value_type = Option<String>)]
    project_id: Option<crate::ids::ProjectId>,
    summary: Option<String>,
    message_count: i64,
    created_at: String,
    updated_at: String,
    last_message_at: Option<String>,
    /// The newest message of the active path (what `GET …/messages` ends with).
    #[schema(value_type = Option<String>)]
    active_leaf_id: Option<MessageId>,
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
            active_leaf_id: c.active_leaf_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageOut {
    #[schema(value_type = String)]
    pub id: MessageId,
    #[schema(value_type = String)]
    pub conversation_id: ConversationId,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub model: Option<String>,
    /// Why the model call failed, on `failed` messages: a stable code such as `provider_unavailable`
    /// or `timeout` (the problem answered for the turn has the same `code`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: String,
    /// The files sent with the message (user messages that had any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<MessageAttachment>,
    /// The project files the coding agent changed in this turn (answers that changed any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FileChangeOut>,
    /// The agent in force when the answer was made (answers made with one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub agent_id: Option<crate::ids::AgentId>,
    /// The knowledge sources the answer was given, numbered from 1 in this order (answers made
    /// with knowledge).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<CitationOut>,
    /// The tools the answer asks its client to call, unrun (answers through the OpenAI-compatible
    /// endpoint with the client's tools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallOut>,
    /// The model the turn asked for, on an answer `model` gave in its place because that one's
    /// provider failed before answering (the catalog entry's `fallbacks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_from: Option<String>,
    /// The message this one follows; `null` for a root (a conversation's first message, or an
    /// edit of it).
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<MessageId>,
    /// The messages under the same parent (the versions of this message), oldest first, this one
    /// included: a client shows "2 / 3" and switches with `PUT …/active-leaf`. Left out where not
    /// read (the messages a turn answers with).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub sibling_ids: Vec<MessageId>,
}

/// A project file the coding agent changed (also the data of a streamed `file_changed` event).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FileChangeOut {
    pub path: String,
    /// `created`, `updated` or `deleted`.
    pub action: String,
    pub before_size: Option<i64>,
    pub after_size: Option<i64>,
    /// The new content's SHA-256 (none for a deletion).
    pub sha256: Option<String>,
}

impl From<crate::store::FileChange> for FileChangeOut {
    fn from(c: crate::store::FileChange) -> Self {
        FileChangeOut {
            path: c.path,
            action: c.action,
            before_size: c.before_size,
            after_size: c.after_size,
            sha256: c.sha256,
        }
    }
}

/// A knowledge chunk an answer was given as source `[n]`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CitationOut {
    pub document_id: String,
    pub title: String,
    /// The chunk's position in its document, from 0.
    pub chunk: i64,
    pub heading: String,
    /// The fused retrieval score (reciprocal rank fusion of full-text and vector ranks).
    pub score: f64,
    pub snippet: String,
}

impl From<crate::store::Citation> for CitationOut {
    fn from(c: crate::store::Citation) -> Self {
        CitationOut {
            document_id: c.document_id,
            title: c.title,
            chunk: c.chunk,
            heading: c.heading,
            score: c.score,
            snippet: c.snippet,
        }
    }
}

/// A tool call the model made: its id (echoed with the output), the tool's name and its input.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ToolCallOut {
    pub id: String,
    pub name: String,
    /// The tool's arguments, as the model gave them.
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
}

impl From<crate::kinds::ToolCall> for ToolCallOut {
    fn from(c: crate::kinds::ToolCall) -> Self {
        ToolCallOut {
            id: c.id,
            name: c.name,
            input: c.input,
        }
    }
}

/// An attachment as a message lists it; `GET /attachments/{id}` has the rest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageAttachment {
    #[schema(value_type = String)]
    pub id: AttachmentId,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
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
            agent_id: m.agent_id,
            created_at: m.created_at,
            attachments: m
                .attachments
                .into_iter()
                .map(|a| MessageAttachment {
                    id: a.id,
                    filename: a.filename,
                    content_type: a.content_type,
                    size: a.size,
                })
                .collect(),
            changes: m.changes.into_iter().map(Into::into).collect(),
            citations: m.citations.into_iter().map(Into::into).collect(),
            tool_calls: m.tool_calls.into_iter().map(Into::into).collect(),
            fallback_from: m.fallback_from,
            parent_id: m.parent.map(|p| p.id),
            sibling_ids: m.sibling_ids,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateConversation {
    title: Option<String>,
    model: Option<String>,
    agent_id: Option<String>,
    project_id: Option<String>,
}

fn no_agent() -> FieldError {
    FieldError::new("agent_id", "no such agent")
}

impl TryFrom<(CreateConversation, &Catalog)> for NewConversationInput {
    type Error = Error;

    fn try_from((body, catalog): (CreateConversation, &Catalog)) -> Result<Self> {
        let mut errors = FieldErrors::default();
        let title = match body.title.as_deref() {
            Some(t) => errors.take(Title::parse(t)),
            None => Some(Title::default()),
        };
        let model = body
            .model
            .as_deref()
            .and_then(|m| errors.take(catalog.usable(m)).cloned());
        let agent_id = body
            .agent_id
            .as_deref()
            .and_then(|a| errors.take(a.parse().map_err(|_| no_agent())));
        let project_id = body.project_id.as_deref().and_then(|p| {
            errors.take(
                p.parse()
                    .map_err(|_| FieldError::new("project_id", "no such project")),
            )
        });
        match title {
            Some(title) => errors.finish().map(|()| NewConversationInput {
                title,
                model,
                project_id,
                agent_id,
            }),
            None => Err(errors.into()),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
struct PatchConversation {
    title: Option<String>,
    model: Option<String>,
    /// A new agent, or `null` to clear it.
    #[serde(default, deserialize_with = "crate::api::extract::present")]
    #[schema(value_type = Option<String>)]
    agent_id: Option<Option<String>>,
}

impl TryFrom<(PatchConversation, &Catalog)> for Changes {
    type Error = Error;

    fn try_from((body, catalog): (PatchConversation, &Catalog)) -> Result<Self> {
        let mut errors = FieldErrors::default();
        let title = body
            .title
            .as_deref()
            .and_then(|t| errors.take(Title::parse(t)));
        let model = body
            .model
            .as_deref()
            .and_then(|m| errors.take(catalog.usable(m)).cloned());
        let agent_id = match body.agent_id {
            Some(Some(raw)) => errors
                .take(raw.parse().map_err(|_| no_agent()))
                .map(|id| Some(Some(id))),
            Some(None) => Some(Some(None)),
            None => None,
        }
        .flatten();
        errors.finish()?;
        Ok(Changes {
            title,
            model,
            agent_id,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Case-insensitive search in titles.
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    /// `app` (the default) or `api`: the conversations the OpenAI-compatible endpoint started.
    source: Option<String>,
}

type ConversationPage = Paginated<ConversationOut>;

/// Starts an empty conversation (a chat without `conversation_id` also creates one).
#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations", security(("bearer" = [])), request_body = CreateConversation,
    responses((status = 201, body = ConversationOut), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn create_conversation(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateConversation>,
) -> Result<(StatusCode, Json<ConversationOut>)> {
    let catalog = state.catalog();
    let input = NewConversationInput::try_from((body, &*catalog))?;
    let conn = state.store().conn().await?;
    let conversation = conversations::create(&conn, &catalog, user.id, &input).await?;
    record_conversation(conversation.id);
    Ok((StatusCode::CREATED, Json(conversation.into())))
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
    let from_api = match query.source.as_deref() {
        None | Some("app") => false,
        Some("api") => true,
        Some(_) => return Err(Error::invalid("source", "must be `app` or `api`")),
    };
    let conn = state.store().conn().await?;
    let found = conversations::list(&conn, user.id, query.q.as_deref(), from_api, page).await?;
    Ok(Json(found.map(Into::into)))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, body = ConversationOut), (status = 404, body = Problem)))]
async fn get_conversation(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ConversationId>,
) -> Result<Json<ConversationOut>> {
    record_conversation(id);
    let conn = state.store().conn().await?;
    Ok(Json(conversations::get(&conn, user.id, id).await?.into()))
}

/// Renames, switches model, or sets/clears the agent.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])), request_body = PatchConversation,
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 200, body = ConversationOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn patch_conversation(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ConversationId>,
    ApiJson(body): ApiJson<PatchConversation>,
) -> Result<Json<ConversationOut>> {
    record_conversation(id);
    let changes = Changes::try_from((body, &*state.catalog()))?;
    let conn = state.store().conn().await?;
    Ok(Json(
        conversations::update(&conn, user.id, id, changes)
            .await?
            .into(),
    ))
}

/// Deletes the conversation with its messages and usage.
#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_conversation(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ConversationId>,
) -> Result<StatusCode> {
    record_conversation(id);
    let conn = state.store().conn().await?;
    conversations::delete(&conn, state.blobs(), user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
