mod frames;
mod resume;

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    conversations::{FileChangeOut, MessageOut, UsageRow},
    CurrentUser,
};
use crate::{
    chat::{self, ChatInput, Outcome},
    error::{Error, FieldError, FieldErrors, Problem, Result},
    function::{Function, Limits, Needs, Transport},
    http::{sse, ApiJson},
    idempotency::{self, Begin, IdempotencyKey},
    ids::{AttachmentId, ConversationId, MessageId},
    state::AppState,
    store::{TurnParent, User},
};
use frames::{encode, replay, whole};
pub(crate) use frames::{replay_frames, Frame};
pub(crate) use resume::resumed_frame;

/// Answers stream (Lambda response streaming), for up to five minutes.
pub const FUNCTION: Function = Function {
    name: "chat",
    transport: Transport::Streaming(routes),
    limits: Limits {
        timeout_secs: 300,
        memory_mb: 256,
    },
    needs: Needs::Store,
};

/// Chat turns, whole or streamed.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_chat))
        .merge(resume::routes())
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub(crate) struct ChatRequest {
    /// Omit to start a new conversation, titled from the message.
    conversation_id: Option<String>,
    /// Required, except to regenerate.
    #[serde(default)]
    message: String,
    /// The message of the conversation to answer under (to edit a message: the edited one's
    /// parent); `null` starts a new root (editing the first message). Default: the active leaf.
    /// The new message becomes the active leaf. Needs `conversation_id`.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<String>)]
    parent_id: Option<Option<String>>,
    /// An answer of the conversation to answer again: the new answer is its sibling and becomes
    /// the active leaf. Leave `message` and `attachment_ids` out (the user message's are used).
    regenerate: Option<String>,
    /// A catalog model id; defaults to the conversation's model.
    model: Option<String>,
    /// One of the user's active agents: its system prompt, model and parameters apply (the
    /// request's own `model`, `temperature` and `max_tokens` win). Without it, the conversation's.
    agent_id: Option<String>,
    attachment_ids: Option<Vec<String>>,
    /// For a new conversation: the user's project it works on. With a model that calls tools, the
    /// coding agent reads and changes the project's files.
    project_id: Option<String>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    /// Retrieve from the user's knowledge documents before answering: the best chunks go to the
    /// model as numbered sources and the answer carries `citations`. Default: the agent's setting.
    knowledge: Option<bool>,
    /// Answer with Server-Sent Events (`meta`, `delta`, `done`, `error`); so does `Accept: text/event-stream`.
    #[serde(default, skip_serializing)]
    stream: Option<bool>,
}

impl TryFrom<(ChatRequest, &AppState)> for ChatInput {
    type Error = Error;

    fn try_from((body, state): (ChatRequest, &AppState)) -> Result<Self> {
        // An id that cannot name a conversation is a missing one.
        let conversation_id = body
            .conversation_id
            .as_deref()
            .map(|id| id.parse::<ConversationId>().map_err(|_| Error::NotFound))
            .transpose()?;
        let mut errors = FieldErrors::default();
        let limits = chat::InputLimits::from(&state.config().chat);
        let parent = turn_parent(&mut errors, body.parent_id, body.regenerate.as_deref());
        if parent != TurnParent::ActiveLeaf && conversation_id.is_none() {
            errors.push(FieldError::new(
                "conversation_id",
                "is required with parent_id or regenerate",
            ));
        }
        if matches!(parent, TurnParent::AnswerOf(_)) || body.regenerate.is_some() {
            if !body.message.is_empty() {
                errors.push(FieldError::new(
                    "message",
                    "must be left out to regenerate (the user message is answered again)",
                ));
            }
            if body.attachment_ids.as_ref().is_some_and(|a| !a.is_empty()) {
                errors.push(FieldError::new(
                    "attachment_ids",
                    "must be left out to regenerate (the user message's files are sent again)",
                ));
            }
        } else if let Err(reason) = limits.check_message(&body.message) {
            errors.push(FieldError::new("message", reason));
        }
        if let Err(reason) = chat::check_temperature(body.temperature) {
            errors.push(FieldError::new("temperature", reason));
        }
        if let Err(reason) = chat::check_max_tokens(body.max_tokens) {
            errors.push(FieldError::new("max_tokens", reason));
        }
        let agent_id = body.agent_id.as_deref().and_then(|a| {
            errors.take(
                a.parse()
                    .map_err(|_| FieldError::new("agent_id", "no such agent")),
            )
        });
        let mut attachment_ids = Vec::new();
        let raw_ids = body.attachment_ids.unwrap_or_default();
        if let Err(reason) = limits.check_attachment_count(raw_ids.len()) {
            errors.push(FieldError::new("attachment_ids", reason));
        }
        for (i, raw) in raw_ids.iter().enumerate() {
            match raw.parse::<AttachmentId>() {
                Ok(id) if !attachment_ids.contains(&id) => attachment_ids.push(id),
                Ok(_) => {}
                Err(_) => errors.push(FieldError::new(
                    format!("attachment_ids[{i}]"),
                    "no such attachment",
                )),
            }
        }
        let model = body
            .model
            .as_deref()
            .and_then(|m| errors.take(state.catalog().usable(m)).cloned());
        let project_id = body.project_id.as_deref().and_then(|p| {
            errors.take(
                p.parse()
                    .map_err(|_| FieldError::new("project_id", "no such project")),
            )
        });
        errors.finish()?;
        Ok(ChatInput {
            conversation_id,
            message: body.message,
            model,
            agent_id,
            temperature: body.temperature,
            max_tokens: body.max_tokens,
            attachments: attachment_ids,
            project_id,
            knowledge: body.knowledge,
            system_prompt: None,
            client: None,
            from_api: false,
            parent,
        })
    }
}

/// Where a turn goes, from `parent_id` (absent, `null` or an id) and `regenerate`.
fn turn_parent(
    errors: &mut FieldErrors,
    parent_id: Option<Option<String>>,
    regenerate: Option<&str>,
) -> TurnParent {
    let parse = |errors: &mut FieldErrors, field: &str, id: &str, reason: &str| {
        errors.take(
            id.parse::<MessageId>()
                .map_err(|_| FieldError::new(field, reason)),
        )
    };
    match (parent_id, regenerate) {
        (None, None) => TurnParent::ActiveLeaf,
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "regenerate",
                "cannot be given with parent_id",
            ));
            TurnParent::ActiveLeaf
        }
        (Some(None), None) => TurnParent::Root,
        (Some(Some(id)), None) => parse(
            errors,
            "parent_id",
            &id,
            "not a message of this conversation",
        )
        .map_or(TurnParent::ActiveLeaf, TurnParent::Message),
        (None, Some(id)) => parse(
            errors,
            "regenerate",
            id,
            "not an answer in this conversation",
        )
        .map_or(TurnParent::ActiveLeaf, TurnParent::AnswerOf),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ChatResponse {
    #[schema(value_type = String)]
    conversation_id: ConversationId,
    user_message: MessageOut,
    assistant_message: MessageOut,
    usage: UsageRow,
}

impl From<Outcome> for ChatResponse {
    fn from(o: Outcome) -> Self {
        ChatResponse {
            conversation_id: o.conversation_id,
            user_message: o.user_message.into(),
            assistant_message: o.assistant_message.into(),
            usage: o.usage.into(),
        }
    }
}

/// Sends a message and answers with the model's reply, whole or streamed as Server-Sent Events.
///
/// The user message is stored before the model is called. With an `Idempotency-Key` header, a
/// retried request returns the first answer and never adds a second turn.
#[utoipa::path(post, path = "/api/v1/chat", tag = "chat", security(("bearer" = [])), request_body = ChatRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key replays the first answer")),
    responses(
        (status = 200, body = ChatResponse, description = "The turn; or `text/event-stream` events `meta`, `delta`, `done`, `error` when streaming"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem, description = "Over the daily token budget (`code: daily_token_limit`) or the turn rate limit (`code: rate_limit`); `Retry-After` says when to retry"),
        (status = 502, body = Problem), (status = 504, body = Problem)))]
async fn post_chat(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ChatRequest>,
) -> Result<Response> {
    let stream = sse::wanted(body.stream, &headers);
    let key = headers
        .get("idempotency-key")
        .map(|v| IdempotencyKey::parse(v.to_str().unwrap_or("")))
        .transpose()?;
    Ok(match chat_turn(&state, &user, body, key, stream).await? {
        ChatReply::Whole { status, body } => whole(status, body),
        ChatReply::Live(chat::Running { events, task }) => sse::stream_then(events, async move {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the chat turn task failed");
            }
        }),
        ChatReply::Replayed(response) => {
            let (tx, rx) = mpsc::channel(3);
            for frame in replay_frames(&response) {
                // The channel holds them all, so nothing waits.
                let _ = tx.try_send(frame);
            }
            sse::stream_then(rx, async {})
        }
    })
}

/// A chat turn as `POST /chat` and the WebSocket's `chat` action answer it.
pub(crate) enum ChatReply {
    /// The turn's JSON (a [`ChatResponse`] or a problem), or a recorded answer as it was.
    Whole { status: StatusCode, body: String },
    /// A streamed turn, as it happens.
    Live(chat::Running),
    /// A recorded answer replayed to a streaming client.
    Replayed(Box<ChatResponse>),
}

/// One chat turn of this API: the idempotency key's claim or replay, the request's checks, then
/// the domain's turn. An error is returned before anything was stored.
pub(crate) async fn chat_turn(
    state: &AppState,
    user: &User,
    body: ChatRequest,
    key: Option<IdempotencyKey>,
    stream: bool,
) -> Result<ChatReply> {
    // A WebSocket frame comes through no HTTP layer: the turn takes in the admins' model changes
    // here (over HTTP the layer did, and this finds nothing due).
    state.fresh_catalog().await;
    let conn = state.store().conn().await?;
    let claim = match key {
        None => None,
        Some(key) => {
            // The transport (`stream`) is not part of the request's identity; everything else is.
            let canonical =
                serde_json::to_string(&body).map_err(|e| Error::Internal(e.to_string()))?;
            let policy = idempotency::Policy::from(&state.config().idempotency);
            match idempotency::begin(&conn, policy, user.id, key, &canonical).await? {
                Begin::Start(claim) => Some(claim),
                Begin::Replay { status, body } => return Ok(replay(status, body, stream)),
                Begin::InProgress => {
                    return Err(Error::Conflict(
                        "a request with this Idempotency-Key is still in progress",
                    ))
                }
            }
        }
    };
    let input = match ChatInput::try_from((body, state)) {
        Ok(input) => input,
        Err(e) => {
            // Nothing was stored, so the key is free for a corrected retry.
            if let Some(claim) = claim {
                claim.release(&conn).await?;
            }
            return Err(e);
        }
    };
    let record = claim.map(|claim| chat::Record { claim, encode });
    let reply = chat::turn(&turn_services(state), conn, user, input, record, stream).await?;
    Ok(match reply {
        chat::Reply::Answered(outcome) => {
            let (status, body) = encode(&Ok(*outcome))?;
            whole_reply(status, body)
        }
        chat::Reply::Failed(error) => {
            let (status, body) = encode(&Err(error))?;
            whole_reply(status, body)
        }
        chat::Reply::Streaming(running) => ChatReply::Live(running),
    })
}

/// What a chat turn uses of this process (the chat function, the WebSocket, the OpenAI endpoint).
pub(crate) fn turn_services(state: &AppState) -> chat::Services {
    let config = state.config();
    chat::Services {
        catalog: state.catalog(),
        providers: state.providers_arc(),
        mcp: state.mcp().clone(),
        blobs: state.blobs().clone(),
        embedding_model: config.providers.embedding_model.clone(),
        settings: chat::TurnSettings::new(
            &config.chat,
            crate::providers::RetryPolicy::from(&config.providers),
            crate::projects::ProjectLimits::from(&config.projects),
        ),
        quotas: crate::quotas::QuotaSettings::new(&config.quotas, &config.chat),
    }
}

fn whole_reply(status: u16, body: String) -> ChatReply {
    ChatReply::Whole {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    }
}
