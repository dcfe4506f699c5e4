//! A chat turn: resolve the conversation and model, store the user message (before any model is called), build the context,
//! call the provider with bounded retries, and store the answer with its usage and cost.
//!
//! Failure keeps the conversation consistent: the user message stays, the assistant message is
//! stored as `failed` (or `incomplete` with the text so far when the client went away), and the
//! caller gets a 502/504 problem.

pub mod agent;
pub mod context;

use std::time::Duration;

use tokio::{sync::mpsc, time::Instant};

use crate::{
    agents,
    blobs::{BlobKey, BlobStore},
    config::Config,
    conversations::{self, NewConversationInput, Title},
    error::{Error, FieldError, FieldErrors, Result},
    ids::{AgentId, AttachmentId, ConversationId, MessageId, UserId},
    kinds::{AttachmentStatus, MessageRole, MessageStatus, UploadPurpose},
    knowledge,
    models::{Catalog, Model},
    providers::{
        Completion, FileKind, FilePart, ModelRequest, ProviderError, Providers, Purpose,
        RetryPolicy, StreamEvent, TokenUsage, ToolCall, ToolChoice, ToolSpec, Turn,
    },
    quotas::{self, Budget, Holds},
    store::{AttachmentRef, Citation, Conn, Conversation, Message, NewMessage, UsageRecord},
};

/// The most messages read to build a turn's context. Older unsummarised messages beyond this are
/// left out (they only exist if summaries failed for a long time), so a turn's cost is bounded.
const CONTEXT_MESSAGES: u32 = 400;

/// A chat request, parsed: the message is within limits and the model (if named) is usable.
#[derive(Debug)]
pub struct ChatInput {
    pub conversation_id: Option<ConversationId>,
    pub message: String,
    pub model: Option<Model>,
    /// The agent for this turn; without one, the conversation's.
    pub agent_id: Option<AgentId>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub attachments: AttachmentsInput,
    /// For a new conversation: the project it works on (the coding agent's).
    pub project_id: Option<crate::ids::ProjectId>,
    /// Retrieve from the user's knowledge before the model call; `None` follows the agent.
    pub knowledge: Option<bool>,
    /// Tokens the retrieved sources may take in the context.
    pub knowledge_tokens: usize,
    /// A client's own system prompt (the OpenAI-compatible endpoint), in place of the agent's or
    /// the default.
    pub system_prompt: Option<String>,
    /// A client that owns its history (the OpenAI-compatible endpoint): the turns the model sees,
    /// and the tools it may call for the client. The conversation stores `message` as this turn.
    pub client: Option<ClientTurns>,
    /// A new conversation started through the OpenAI-compatible endpoint: kept out of the
    /// conversation list unless it asks for them (`?source=api`).
    pub from_api: bool,
}

/// What a client that owns its history sends: every turn goes to the model as given (no summary,
/// no dropping; more than the model's window is refused), and the tools are the client's to run:
/// the answer names the calls, the client sends their outputs in its next request.
#[derive(Debug, Default)]
pub struct ClientTurns {
    /// Alternating turns, oldest first, starting and ending with the user's (the newest may carry
    /// images and the outputs of the tools called in the answer before it).
    pub turns: Vec<Turn>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: ToolChoice,
}

/// The attachments to send with the message (distinct ids), and the largest one a model is sent.
#[derive(Debug, Default)]
pub struct AttachmentsInput {
    pub ids: Vec<AttachmentId>,
    pub max_bytes: u64,
}

/// How a turn treats its provider: retries before any output, the longest silence in a stream, and
/// the wall-clock budget of the whole turn (below the function's timeout, so that a turn always
/// ends stored).
#[derive(Debug, Clone, Copy)]
pub struct TurnSettings {
    pub retry: RetryPolicy,
    pub stream_idle_timeout: Duration,
    pub budget: Duration,
    /// Model calls the coding agent may make in one turn.
    pub max_agent_steps: u32,
    pub project_limits: crate::projects::ProjectLimits,
}

impl From<&Config> for TurnSettings {
    fn from(config: &Config) -> Self {
        TurnSettings {
            retry: RetryPolicy {
                max_attempts: config.provider_max_attempts,
                base: config.provider_retry_base,
            },
            stream_idle_timeout: config.stream_idle_timeout,
            budget: config.turn_budget,
            max_agent_steps: config.max_agent_steps,
            project_limits: crate::projects::ProjectLimits::from(config),
        }
    }
}

/// A turn whose user message is stored, ready to call the model.
pub struct Started {
    pub conversation: Conversation,
    pub user_message: Message,
    model: Model,
    plan: context::Plan,
    /// The system prompt before any summary: the agent's (or the default) with the project's view.
    base_system: String,
    /// The agent in force, recorded on the answer.
    agent_id: Option<AgentId>,
    /// Whether the model is offered tools (the agent loop runs).
    tool_turn: bool,
    /// The project the coding agent works on, when the turn has tools.
    project: Option<crate::ids::ProjectId>,
    /// The turn's reservation against the user's daily budget.
    holds: Holds,
    /// The knowledge sources given to the model, recorded on the answer.
    citations: Vec<Citation>,
}

pub struct Outcome {
    pub conversation_id: ConversationId,
    pub user_message: Message,
    pub assistant_message: Message,
    pub usage: UsageRecord,
}

/// Resolves the conversation, agent and model, reserves the turn's maximum cost against the user's
/// budget, and stores the user message (and, for a new chat, the conversation) before any model is
/// called. A refused turn (bad input, over budget) stores nothing.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn start(
    conn: &Conn,
    catalog: &Catalog,
    blobs: &BlobStore,
    embedding: knowledge::Embedding<'_>,
    budget: &Budget,
    input: ChatInput,
) -> Result<Started> {
    let user_id = budget.user_id;
    quotas::count_turn(conn, budget).await?;
    // The conversation and its recent history in one read; the history leaves room for this message.
    let existing = match input.conversation_id {
        Some(id) => Some(
            conn.turn_context(id, user_id, CONTEXT_MESSAGES - 1)
                .await?
                .ok_or(Error::NotFound)?,
        ),
        None => None,
    };
    // The request's agent, else the conversation's; a deleted or inactive one refuses new turns.
    let agent_id = input.agent_id.or_else(|| {
        existing
            .as_ref()
            .and_then(|(c, _)| c.agent_id.as_deref()?.parse().ok())
    });
    let agent = match agent_id {
        Some(id) => Some(agents::usable(conn, user_id, id).await?),
        None => None,
    };
    let model = match (input.model, &agent, &existing) {
        (Some(model), _, _) => model,
        (None, Some(a), _) => catalog.usable(&a.model)?.clone(),
        (None, None, Some((c, _))) => catalog.usable(&c.model)?.clone(),
        (None, None, None) => catalog.usable(catalog.default_model())?.clone(),
    };
    let max_tokens = input
        .max_tokens
        .or_else(|| agent.as_ref()?.max_tokens.map(|n| n as u32))
        .unwrap_or_else(|| model.max_output_tokens.min(4096));
    if max_tokens == 0 || max_tokens > model.max_output_tokens {
        return Err(FieldError::new(
            "max_tokens",
            format!(
                "must be between 1 and {} for {}",
                model.max_output_tokens, model.id
            ),
        )
        .into());
    }
    let temperature = input
        .temperature
        .or_else(|| agent.as_ref()?.temperature.map(|t| t as f32));

    // The files are checked and read before anything is stored: a refused or unreadable one
    // leaves no message behind.
    let (attached, files) =
        attachment_files(conn, blobs, user_id, &model, &input.attachments).await?;

    // With a model that calls tools, the agent loop runs when there is a tool to offer: the
    // project tools on a conversation's project (all of them without an agent, else the agent's),
    // and `search_knowledge` when the agent names it.
    let project_id = match &existing {
        Some((c, _)) => c.project_id.as_deref().and_then(|p| p.parse().ok()),
        None => input.project_id,
    };
    let tools: Vec<_> = agent::tools()
        .into_iter()
        .filter(|t| match &agent {
            Some(a) => a.tools.iter().any(|n| *n == t.name),
            None => t.name != agent::SEARCH_KNOWLEDGE,
        })
        .filter(|t| t.name == agent::SEARCH_KNOWLEDGE || project_id.is_some())
        .collect();
    let tool_turn = model.capabilities.tools && !tools.is_empty();
    let project = project_id.filter(|_| tool_turn);
    let mut base_system = input
        .system_prompt
        .clone()
        .or_else(|| agent.as_ref().map(|a| a.system_prompt.clone()))
        .unwrap_or_else(|| context::DEFAULT_SYSTEM_PROMPT.to_string());
    if let Some(project_id) = project {
        let view = match agent::project_view(conn, user_id, project_id).await {
            Err(Error::NotFound) => Err(Error::invalid("project_id", "no such project")),
            other => other,
        }?;
        base_system = format!("{base_system}\n\n{view}");
    }
    let retrieve = input
        .knowledge
        .unwrap_or_else(|| agent.as_ref().is_some_and(|a| a.knowledge));

    // The plan is made before the message is stored, so its cost can be reserved first.
    let (conversation, mut history) = match existing {
        Some((c, history)) => (Some(c), history),
        None => (None, Vec::new()),
    };
    let summary = conversation.as_ref().and_then(|c| c.summary.clone());
    let new_message = NewMessage {
        id: MessageId::new(),
        conversation_id: conversation
            .as_ref()
            .map_or_else(ConversationId::new, |c| c.id),
        role: MessageRole::User,
        content: &input.message,
        status: MessageStatus::Complete,
        model: None,
        error: None,
        changes: &[],
        agent_id: None,
        citations: &[],
        tool_calls: &[],
    };
    history.push(Message::unstored(
        i64::MAX,
        new_message.id,
        new_message.conversation_id,
        MessageRole::User,
        input.message.clone(),
    ));
    let planned = |system: &str| {
        let mut plan = context::plan(
            &model,
            system,
            summary.as_deref(),
            &history,
            max_tokens,
            temperature,
        );
        // A long newest message may leave less room than asked for: the answer gets what fits.
        plan.request.max_tokens = context::answer_room(&model, &plan.request).clamp(1, max_tokens);
        let mut cost = plan.request.most_tokens();
        if !plan.to_summarise.is_empty() {
            cost += context::summary_request(&model, summary.as_deref(), &plan.to_summarise)
                .most_tokens();
        }
        (plan, cost)
    };
    let (mut plan, cost) = match input.client {
        Some(client) => client_plan(&model, &base_system, client, max_tokens, temperature)?,
        None => planned(&base_system),
    };
    // With retrieval the reservation also covers the sources' room, and is taken before the query
    // is embedded: a turn refused for its budget makes no embedding call and bills nothing.
    let room = if retrieve {
        input.knowledge_tokens as u64 + 1
    } else {
        0
    };
    let mut holds = quotas::reserve(conn, budget, cost + room).await?;
    // Retrieval runs before the model call (whatever the model), so sources and citations work
    // with every provider; the request's `knowledge` wins over the agent's.
    let mut citations = Vec::new();
    if retrieve {
        let retrieved = knowledge::context_for(
            conn,
            embedding,
            budget,
            &input.message,
            input.knowledge_tokens,
        )
        .await;
        match retrieved {
            Ok(Some((sources, cited))) => {
                base_system = format!("{base_system}\n\n{sources}");
                citations = cited;
                let (with_sources, final_cost) = planned(&base_system);
                plan = with_sources;
                // Sources that push history into a summary call may cost a little more.
                if final_cost > cost + room {
                    if let Err(e) = holds.extend(conn, final_cost - cost - room).await {
                        holds.release(conn).await;
                        return Err(e);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                holds.release(conn).await;
                return Err(e);
            }
        }
    }
    if let Some(last) = plan.request.turns.last_mut() {
        last.files.extend(files);
    }
    if tool_turn {
        plan.request.tools = tools;
    }

    let stored = match conversation {
        Some(conversation) => conn
            .append_message(new_message)
            .await
            .map(|m| (conversation, m))
            .map_err(Error::from),
        None => {
            let new = NewConversationInput {
                title: Title::from_message(&input.message),
                model: Some(model.clone()),
                project_id: input.project_id,
                agent_id: input.agent_id,
            };
            match conversations::start(conn, user_id, &new, &model, new_message).await {
                Ok((c, m)) if input.from_api => conn
                    .mark_api_conversation(c.id, user_id)
                    .await
                    .map(|()| (c, m))
                    .map_err(Error::from),
                other => other,
            }
        }
    };
    let stored = match stored {
        Ok((conversation, mut user_message)) if !attached.is_empty() => {
            let ids: Vec<AttachmentId> = attached.iter().map(|a| a.id).collect();
            conn.attach_to_message(user_id, &ids, conversation.id, user_message.id)
                .await
                .map(|_| {
                    user_message.attachments = attached;
                    (conversation, user_message)
                })
                .map_err(Error::from)
        }
        other => other,
    };
    match stored {
        Ok((conversation, user_message)) => Ok(Started {
            conversation,
            user_message,
            model,
            plan,
            base_system,
            agent_id,
            tool_turn,
            project,
            holds,
            citations,
        }),
        Err(e) => {
            holds.release(conn).await;
            Err(e)
        }
    }
}

/// The call over a client's own turns: all of them, or a refusal when they leave no room for an
/// answer; its cost is the input and the answer's room.
fn client_plan(
    model: &Model,
    system: &str,
    client: ClientTurns,
    max_tokens: u32,
    temperature: Option<f32>,
) -> Result<(context::Plan, u64)> {
    let mut request = ModelRequest {
        system: Some(system.to_string()),
        turns: client.turns,
        temperature,
        max_tokens,
        purpose: Purpose::Chat,
        tools: client.tools,
        tool_choice: client.tool_choice,
    };
    let room = context::answer_room(model, &request);
    if room == 0 {
        return Err(Error::invalid(
            "messages",
            format!(
                "the messages take more than the {} tokens of {}'s context window",
                model.context_window, model.id
            ),
        ));
    }
    request.max_tokens = room.min(max_tokens);
    let cost = request.most_tokens();
    Ok((
        context::Plan {
            request,
            to_summarise: Vec::new(),
        },
        cost,
    ))
}

/// The attachments named for a message, checked (the user's own, ready, not sent before, within the
/// size a model takes, of a kind the model reads) and read from the blob store.
async fn attachment_files(
    conn: &Conn,
    blobs: &BlobStore,
    user_id: UserId,
    model: &Model,
    input: &AttachmentsInput,
) -> Result<(Vec<AttachmentRef>, Vec<FilePart>)> {
    if input.ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let found = conn.attachments_by_ids(user_id, &input.ids).await?;
    let mut errors = FieldErrors::default();
    let mut chosen = Vec::new();
    for (i, id) in input.ids.iter().enumerate() {
        let field = format!("attachment_ids[{i}]");
        let Some(a) = found
            .iter()
            .find(|a| a.id == *id && a.purpose == UploadPurpose::Attachment)
        else {
            errors.push(FieldError::new(field, "no such attachment"));
            continue;
        };
        let kind = if a.content_type.starts_with("image/") {
            FileKind::Image
        } else if a.content_type == "application/pdf" {
            FileKind::Pdf
        } else {
            FileKind::Text
        };
        let problem = if a.status != AttachmentStatus::Ready {
            Some("is not complete yet".to_string())
        } else if a.message_id.is_some() {
            Some("was already sent with another message".to_string())
        } else if a.size as u64 > input.max_bytes {
            Some(format!(
                "is larger than the {} bytes a model is sent",
                input.max_bytes
            ))
        } else if kind == FileKind::Image && !model.capabilities.vision {
            Some(format!(
                "is an image, and {} does not read images",
                model.id
            ))
        } else if kind == FileKind::Pdf && !model.capabilities.documents {
            Some(format!(
                "is a PDF, and {} does not read documents",
                model.id
            ))
        } else {
            None
        };
        match problem {
            Some(p) => errors.push(FieldError::new(field, p)),
            None => chosen.push((a, kind)),
        }
    }
    errors.finish()?;
    let mut refs = Vec::with_capacity(chosen.len());
    let mut files = Vec::with_capacity(chosen.len());
    for (a, kind) in chosen {
        let bytes = blobs.read_all(&BlobKey::attachment(user_id, a.id)).await?;
        refs.push(AttachmentRef {
            id: a.id,
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
        });
        files.push(FilePart {
            name: a.filename.clone(),
            media_type: a.content_type.clone(),
            kind,
            bytes: bytes.into(),
        });
    }
    Ok((refs, files))
}

/// Calls the model and stores the answer. With `deltas`, the answer is streamed: each text delta is
/// sent as it arrives, and a closed channel (the client left) ends the turn as `incomplete`.
#[tracing::instrument(level = "debug", skip_all, fields(model = %started.model.id))]
pub async fn run(
    conn: &Conn,
    providers: &Providers,
    blobs: &BlobStore,
    embedding: knowledge::Embedding<'_>,
    settings: TurnSettings,
    user_id: UserId,
    started: Started,
    deltas: Option<mpsc::Sender<TurnEvent>>,
) -> Result<Outcome> {
    let Started {
        conversation,
        user_message,
        model,
        mut plan,
        base_system,
        agent_id,
        tool_turn,
        project,
        mut holds,
        citations,
    } = started;
    let deadline = Instant::now() + settings.budget;
    let mut usage_rows = Vec::new();

    if !plan.to_summarise.is_empty() {
        let summary = tokio::time::timeout_at(
            deadline,
            summarise(
                conn,
                providers,
                settings.retry,
                &model,
                &conversation,
                &plan.to_summarise,
            ),
        );
        if let Ok(Some((summary, usage))) = summary.await {
            plan.request.system = Some(context::system_prompt(&base_system, Some(&summary)));
            usage_rows.push(("summary", usage));
        }
    }

    let mut changes = Vec::new();
    // The calls of a client's tools, handed back to the client unrun.
    let mut tool_calls = Vec::new();
    let client_tools = !plan.request.tools.is_empty();
    let (text, result) = match (&deltas, tool_turn) {
        (_, true) => {
            let ws = agent::Workspace {
                conn,
                blobs,
                limits: settings.project_limits,
                budget: holds.budget(),
                project_id: project,
                embedding,
            };
            let turn = AgentTurn {
                providers,
                settings,
                deadline,
                model: &model,
                events: deltas.as_ref(),
            };
            turn.run(&ws, &mut plan.request, &mut changes, &mut holds)
                .await
        }
        (Some(tx), false) if !client_tools => {
            stream_answer(providers, settings, deadline, &model, &plan.request, tx).await
        }
        // A whole call: none streamed, or one with the client's tools (a call must be whole, so
        // its text goes as one delta).
        (deltas, false) => {
            match complete_within(providers, settings.retry, deadline, &model, &plan.request).await
            {
                Ok(c) => {
                    if let (Some(tx), false) = (deltas, c.text.is_empty()) {
                        let _ = tx.send(TurnEvent::Delta(c.text.clone())).await;
                    }
                    tool_calls = c.tool_calls;
                    (c.text, Ok(c.usage))
                }
                Err(end) => (String::new(), Err(end)),
            }
        }
    };

    // A call that produced nothing is not billed; a partial answer is, by estimate.
    let estimate = || TokenUsage::estimate(&plan.request, &text);
    let (status, failure, usage) = match result {
        Ok(usage) => (MessageStatus::Complete, None, usage),
        Err(TurnEnd::ClientGone) => (MessageStatus::Incomplete, None, estimate()),
        Err(TurnEnd::OutOfTime) => (MessageStatus::Incomplete, Some(out_of_time()), estimate()),
        Err(TurnEnd::Provider(e)) if text.is_empty() => (
            MessageStatus::Failed,
            Some(provider_error(e)),
            TokenUsage::default(),
        ),
        Err(TurnEnd::Provider(e)) => (MessageStatus::Failed, Some(provider_error(e)), estimate()),
        Err(TurnEnd::Failed(e)) => (MessageStatus::Failed, Some(e), estimate()),
    };
    usage_rows.push(("chat", usage));

    // If the answer cannot be stored, the store error is the turn's error; the user message remains.
    let agent_id = agent_id.map(|a| a.to_string());
    let answer = Answer {
        conversation_id: conversation.id,
        model: &model,
        text: &text,
        status,
        error: failure.as_ref().and_then(Error::code),
        changes: &changes,
        agent_id: agent_id.as_deref(),
        citations: &citations,
        tool_calls: &tool_calls,
    };
    let (assistant_message, usage) =
        match store_answer(conn, user_id, answer, &usage_rows, holds.ids()).await {
            Ok(stored) => stored,
            Err(e) => {
                holds.release(conn).await;
                return Err(e);
            }
        };
    match failure {
        None => Ok(Outcome {
            conversation_id: conversation.id,
            user_message,
            assistant_message,
            usage,
        }),
        // The failed (or partial) answer is stored; the caller gets the turn's error.
        Some(e) => Err(e),
    }
}

enum TurnEnd {
    ClientGone,
    /// The turn's budget ran out.
    OutOfTime,
    Provider(ProviderError),
    /// The store or the blob store failed while a tool ran.
    Failed(Error),
}

/// What a streamed turn sends as it goes: text, and the coding agent's steps.
#[derive(Debug, Clone)]
pub enum TurnEvent {
    Delta(String),
    ToolCall(crate::providers::ToolCall),
    ToolResult(crate::providers::ToolOutput),
    FileChanged(crate::store::FileChange),
}

/// The coding agent's loop: call the model with the tools; run the calls it makes (each through
/// the project's rules), give it their outputs, and again, until it answers without calling a tool
/// or the step limit is reached. Calls are not streamed (a tool call must be whole to run); the
/// steps stream as events, and the answer as one delta.
struct AgentTurn<'a> {
    providers: &'a Providers,
    settings: TurnSettings,
    deadline: Instant,
    model: &'a Model,
    events: Option<&'a mpsc::Sender<TurnEvent>>,
}

impl AgentTurn<'_> {
    async fn emit(&self, event: TurnEvent) {
        // A client that left does not stop the agent: its changes and answer are stored.
        if let Some(tx) = self.events {
            let _ = tx.send(event).await;
        }
    }

    async fn run(
        &self,
        ws: &agent::Workspace<'_>,
        request: &mut ModelRequest,
        changes: &mut Vec<crate::store::FileChange>,
        holds: &mut Holds,
    ) -> (String, std::result::Result<TokenUsage, TurnEnd>) {
        let mut total = TokenUsage::default();
        for step in 0..self.settings.max_agent_steps {
            // The turn's reservation covers its first call; each further call reserves its own
            // maximum cost, and a budget that cannot take it ends the turn.
            if step > 0 {
                if let Err(e) = holds.extend(ws.conn, request.most_tokens()).await {
                    return (String::new(), Err(TurnEnd::Failed(e)));
                }
            }
            let completion = match complete_within(
                self.providers,
                self.settings.retry,
                self.deadline,
                self.model,
                request,
            )
            .await
            {
                Ok(c) => c,
                Err(end) => return (String::new(), Err(end)),
            };
            total.input_tokens += completion.usage.input_tokens;
            total.output_tokens += completion.usage.output_tokens;
            total.cached_tokens += completion.usage.cached_tokens;
            if completion.tool_calls.is_empty() {
                self.emit(TurnEvent::Delta(completion.text.clone())).await;
                return (completion.text, Ok(total));
            }
            let mut outputs = Vec::with_capacity(completion.tool_calls.len());
            for call in &completion.tool_calls {
                self.emit(TurnEvent::ToolCall(call.clone())).await;
                let (output, change) = match agent::run_tool(ws, call).await {
                    Ok(done) => done,
                    Err(e) => return (String::new(), Err(TurnEnd::Failed(e))),
                };
                self.emit(TurnEvent::ToolResult(output.clone())).await;
                if let Some(change) = change {
                    self.emit(TurnEvent::FileChanged(change.clone())).await;
                    changes.push(change);
                }
                outputs.push(output);
            }
            let mut asked =
                crate::providers::Turn::new(crate::providers::Speaker::Assistant, completion.text);
            asked.tool_calls = completion.tool_calls;
            let mut answered = crate::providers::Turn::new(crate::providers::Speaker::User, "");
            answered.tool_outputs = outputs;
            request.turns.push(asked);
            request.turns.push(answered);
        }
        let text = format!(
            "Stopped after {} steps without a final answer (the agent's step limit).",
            self.settings.max_agent_steps
        );
        self.emit(TurnEvent::Delta(text.clone())).await;
        (text, Ok(total))
    }
}

/// One whole call (not streamed), retried while nothing has been output, within the turn's
/// deadline.
async fn complete_within(
    providers: &Providers,
    retry: RetryPolicy,
    deadline: Instant,
    model: &Model,
    request: &ModelRequest,
) -> std::result::Result<Completion, TurnEnd> {
    match tokio::time::timeout_at(deadline, retry.run(|| providers.complete(model, request))).await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(TurnEnd::Provider(e)),
        Err(_) => Err(TurnEnd::OutOfTime),
    }
}

async fn stream_answer(
    providers: &Providers,
    settings: TurnSettings,
    deadline: Instant,
    model: &Model,
    request: &ModelRequest,
    tx: &mpsc::Sender<TurnEvent>,
) -> (String, std::result::Result<TokenUsage, TurnEnd>) {
    let mut text = String::new();
    let start = settings.retry.run(|| providers.stream(model, request));
    let mut rx = match tokio::time::timeout_at(deadline, start).await {
        Ok(Ok(rx)) => rx,
        Ok(Err(e)) => return (text, Err(TurnEnd::Provider(e))),
        Err(_) => return (text, Err(TurnEnd::OutOfTime)),
    };
    loop {
        let idle_until = Instant::now() + settings.stream_idle_timeout;
        let event = match tokio::time::timeout_at(idle_until.min(deadline), rx.recv()).await {
            Err(_) if idle_until < deadline => {
                return (text, Err(TurnEnd::Provider(ProviderError::Timeout)))
            }
            Err(_) => return (text, Err(TurnEnd::OutOfTime)),
            Ok(None) => {
                return (
                    text,
                    Err(TurnEnd::Provider(ProviderError::Stream(
                        "the stream ended early".into(),
                    ))),
                )
            }
            Ok(Some(Err(e))) => return (text, Err(TurnEnd::Provider(e))),
            Ok(Some(Ok(event))) => event,
        };
        match event {
            StreamEvent::Delta(d) => {
                text.push_str(&d);
                if tx.send(TurnEvent::Delta(d)).await.is_err() {
                    return (text, Err(TurnEnd::ClientGone));
                }
            }
            StreamEvent::End { usage, .. } => return (text, Ok(usage)),
        }
    }
}

/// Folds older messages into the conversation's rolling summary. A failure only costs context: the
/// turn goes on with the recent messages.
#[tracing::instrument(level = "debug", skip_all)]
async fn summarise(
    conn: &Conn,
    providers: &Providers,
    retry: RetryPolicy,
    model: &Model,
    conversation: &Conversation,
    older: &[Message],
) -> Option<(String, TokenUsage)> {
    let request = context::summary_request(model, conversation.summary.as_deref(), older);
    let completion = match retry.run(|| providers.complete(model, &request)).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "summarising older turns failed; continuing without them");
            return None;
        }
    };
    let through = older.last()?.seq;
    if let Err(e) = conn
        .set_summary(conversation.id, &completion.text, through)
        .await
    {
        tracing::warn!(error = %e, "storing the conversation summary failed");
        return None;
    }
    Some((completion.text, completion.usage))
}

/// Price of a call from the catalog's per-million prices. Cached input tokens are part of the input
/// and priced at the cached rate where the model has one.
pub fn cost_usd(model: &Model, usage: TokenUsage) -> f64 {
    let p = &model.pricing;
    let cached = usage.cached_tokens.min(usage.input_tokens);
    let fresh = usage.input_tokens - cached;
    (fresh as f64 * p.input_per_mtok_usd
        + cached as f64 * p.cached_input_per_mtok_usd.unwrap_or(p.input_per_mtok_usd)
        + usage.output_tokens as f64 * p.output_per_mtok_usd)
        / 1_000_000.0
}

/// A finished answer, before it is stored.
struct Answer<'a> {
    conversation_id: ConversationId,
    model: &'a Model,
    text: &'a str,
    status: MessageStatus,
    /// The stable code of the turn's failure, stored on the message.
    error: Option<&'static str>,
    changes: &'a [crate::store::FileChange],
    agent_id: Option<&'a str>,
    citations: &'a [Citation],
    tool_calls: &'a [ToolCall],
}

/// Stores the answer with its usage rows (the chat row last) in one statement, which also settles
/// the turn's quota holds.
#[tracing::instrument(level = "debug", skip_all)]
async fn store_answer(
    conn: &Conn,
    user_id: UserId,
    answer: Answer<'_>,
    usage_rows: &[(&str, TokenUsage)],
    holds: &[String],
) -> Result<(Message, UsageRecord)> {
    let id = MessageId::new();
    let mut rows: Vec<UsageRecord> = usage_rows
        .iter()
        .map(|(kind, usage)| UsageRecord {
            message_id: id,
            model: answer.model.id.clone(),
            kind: kind.to_string(),
            input_tokens: usage.input_tokens as i64,
            output_tokens: usage.output_tokens as i64,
            cached_tokens: usage.cached_tokens as i64,
            cost_usd: cost_usd(answer.model, *usage),
        })
        .collect();
    let message = conn
        .append_answer(
            user_id,
            NewMessage {
                id,
                conversation_id: answer.conversation_id,
                role: MessageRole::Assistant,
                content: answer.text,
                status: answer.status,
                model: Some(&answer.model.id),
                error: answer.error,
                changes: answer.changes,
                agent_id: answer.agent_id,
                citations: answer.citations,
                tool_calls: answer.tool_calls,
            },
            &rows,
            holds,
        )
        .await?;
    let chat_row = rows.pop().expect("the chat usage row is always the last");
    Ok((message, chat_row))
}

/// The turn's error when its budget ran out: what was generated is stored `incomplete`.
fn out_of_time() -> Error {
    tracing::warn!("the turn ran out of its time budget");
    Error::Provider {
        code: "turn_budget_exceeded",
        message: "the answer took longer than this deployment allows; the text so far is kept",
    }
}

/// The turn's error for a provider failure: its code and generic message for the client, its own
/// text for the log.
fn provider_error(e: ProviderError) -> Error {
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Capabilities, Pricing, Provider};

    #[test]
    fn cost_uses_per_million_prices_and_the_cached_rate() {
        let model = Model {
            id: "x".into(),
            provider: Provider::Openai,
            provider_model_id: "x".into(),
            display_name: "x".into(),
            description: None,
            context_window: 1000,
            max_output_tokens: 10,
            pricing: Pricing {
                input_per_mtok_usd: 3.0,
                output_per_mtok_usd: 15.0,
                cached_input_per_mtok_usd: Some(0.3),
            },
            capabilities: Capabilities {
                streaming: true,
                vision: false,
                documents: false,
                tools: false,
            },
            offline: false,
            available: true,
        };
        let usage = TokenUsage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cached_tokens: 400_000,
        };
        // 600k fresh × $3 + 400k cached × $0.30 + 100k out × $15 = 1.8 + 0.12 + 1.5
        assert!((cost_usd(&model, usage) - 3.42).abs() < 1e-9);
    }
}
