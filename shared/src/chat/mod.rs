//! A chat turn: validate, store the user message (before any model is called), build the context,
//! call the provider with bounded retries, and store the answer with its usage and cost.
//!
//! Failure keeps the conversation consistent: the user message stays, the assistant message is
//! stored as `failed` (or `incomplete` with the text so far when the client went away), and the
//! caller gets a 502/504 problem.

pub mod context;

use std::{future::Future, time::Duration};

use tokio::sync::mpsc;

use crate::{
    error::{Error, FieldError, Result},
    models::Model,
    providers::{ModelRequest, ProviderError, StreamEvent, TokenUsage},
    store::{Conversation, Message, MessageRole, MessageStatus, NewConversation, UsageRow, User},
    AppState,
};

/// The most messages read to build a turn's context. Older unsummarised messages beyond this are
/// left out (they only exist if summaries failed for a long time), so a turn's cost is bounded.
const CONTEXT_MESSAGES: u32 = 400;

/// A chat request as the API receives it.
#[derive(Debug)]
pub struct ChatInput {
    pub conversation_id: Option<String>,
    pub message: String,
    pub model: Option<String>,
    pub agent_id: Option<String>,
    pub attachment_ids: Option<Vec<String>>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

/// A turn whose user message is stored, ready to call the model.
pub struct Started {
    pub conversation: Conversation,
    pub user_message: Message,
    model: Model,
    plan: context::Plan,
}

pub struct Outcome {
    pub conversation_id: String,
    pub user_message: Message,
    pub assistant_message: Message,
    pub usage: UsageRow,
}

/// Validates the request and stores the user message (and, for a new chat, the conversation).
pub async fn start(state: &AppState, user: &User, input: ChatInput) -> Result<Started> {
    let config = state.config();
    let mut errors = Vec::new();
    let message = input.message.trim();
    if message.is_empty() {
        errors.push(FieldError::new("message", "must not be empty"));
    } else if input.message.chars().count() > config.max_message_chars {
        errors.push(FieldError::new(
            "message",
            format!("must be at most {} characters", config.max_message_chars),
        ));
    }
    if input.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        errors.push(FieldError::new("temperature", "must be between 0 and 2"));
    }
    if input.agent_id.is_some() {
        errors.push(FieldError::new("agent_id", "no such agent"));
    }
    if input
        .attachment_ids
        .as_ref()
        .is_some_and(|ids| !ids.is_empty())
    {
        errors.push(FieldError::new("attachment_ids", "no such attachment"));
    }
    let conn = state.store().conn().await?;
    let existing = match &input.conversation_id {
        Some(id) if !crate::ids::is_uuid(id) => return Err(Error::NotFound),
        Some(id) => Some(
            conn.conversation(id, &user.id)
                .await?
                .ok_or(Error::NotFound)?,
        ),
        None => None,
    };
    let model_id = input
        .model
        .clone()
        .or_else(|| existing.as_ref().map(|c| c.model.clone()))
        .unwrap_or_else(|| config.default_model.clone());
    let model = match check_model(state, &model_id) {
        Ok(m) => Some(m.clone()),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let max_tokens = input
        .max_tokens
        .unwrap_or_else(|| model.as_ref().map_or(1, |m| m.max_output_tokens.min(4096)));
    if let Some(m) = &model {
        if max_tokens == 0 || max_tokens > m.max_output_tokens {
            errors.push(FieldError::new(
                "max_tokens",
                format!("must be between 1 and {} for {}", m.max_output_tokens, m.id),
            ));
        }
    }
    let Some(model) = model.filter(|_| errors.is_empty()) else {
        return Err(Error::Validation(errors));
    };

    let conversation = match existing {
        Some(c) => c,
        None => {
            conn.create_conversation(NewConversation {
                user_id: &user.id,
                title: &context::title_from(message),
                model: &model.id,
                agent_id: None,
                project_id: None,
            })
            .await?
        }
    };
    let user_message = conn
        .append_message(
            &conversation.id,
            MessageRole::User,
            &input.message,
            MessageStatus::Complete,
            None,
        )
        .await?;
    let history = conn
        .recent_messages(
            &conversation.id,
            conversation.summary_through_seq.unwrap_or(0),
            CONTEXT_MESSAGES,
        )
        .await?;
    let plan = context::plan(
        &model,
        conversation.summary.as_deref(),
        &history,
        max_tokens,
        input.temperature,
    );
    Ok(Started {
        conversation,
        user_message,
        model,
        plan,
    })
}

/// The catalog entry for `id`, if it exists and this deployment can call it.
pub fn check_model<'a>(
    state: &'a AppState,
    id: &str,
) -> std::result::Result<&'a Model, FieldError> {
    match state.catalog().get(id) {
        None => Err(FieldError::new(
            "model",
            format!("unknown model `{id}`; see GET /api/v1/models"),
        )),
        Some(m) if !m.available => Err(FieldError::new(
            "model",
            format!("`{id}` is not available in this deployment"),
        )),
        Some(m) => Ok(m),
    }
}

/// Calls the model and stores the answer. With `deltas`, the answer is streamed: each text delta is
/// sent as it arrives, and a closed channel (the client left) ends the turn as `incomplete`.
pub async fn run(
    state: &AppState,
    user_id: &str,
    started: Started,
    deltas: Option<mpsc::Sender<String>>,
) -> Result<Outcome> {
    let Started {
        conversation,
        user_message,
        model,
        mut plan,
    } = started;
    let mut usage_rows = Vec::new();

    if !plan.to_summarise.is_empty() {
        if let Some((summary, usage)) =
            summarise(state, &model, &conversation, &plan.to_summarise).await
        {
            plan.request.system = Some(context::system_prompt(Some(&summary)));
            usage_rows.push(("summary", usage));
        }
    }

    let (text, result) = match &deltas {
        Some(tx) => stream_answer(state, &model, &plan.request, tx).await,
        None => {
            match with_retries(state, || state.providers().complete(&model, &plan.request)).await {
                Ok(c) => (c.text, Ok(c.usage)),
                Err(e) => (String::new(), Err(TurnEnd::Provider(e))),
            }
        }
    };

    let (status, error, usage) = match result {
        Ok(usage) => (MessageStatus::Complete, None, usage),
        Err(TurnEnd::ClientGone) => (
            MessageStatus::Incomplete,
            None,
            TokenUsage::estimate(&plan.request, &text),
        ),
        // A call that produced nothing is not billed; a partial answer is, by estimate.
        Err(TurnEnd::Provider(e)) if text.is_empty() => {
            (MessageStatus::Failed, Some(e), TokenUsage::default())
        }
        Err(TurnEnd::Provider(e)) => (
            MessageStatus::Failed,
            Some(e),
            TokenUsage::estimate(&plan.request, &text),
        ),
    };
    usage_rows.push(("chat", usage));

    // If the answer cannot be stored, the store error is the turn's error; the user message remains.
    let (assistant_message, usage) = store_answer(
        state,
        user_id,
        &conversation,
        &model,
        &text,
        status,
        error.as_ref(),
        &usage_rows,
    )
    .await?;
    match error {
        None => Ok(Outcome {
            conversation_id: conversation.id,
            user_message,
            assistant_message,
            usage,
        }),
        // The failed (or partial) answer is stored; the caller gets the provider's error.
        Some(e) => Err(provider_error(e)),
    }
}

enum TurnEnd {
    ClientGone,
    Provider(ProviderError),
}

async fn stream_answer(
    state: &AppState,
    model: &Model,
    request: &ModelRequest,
    tx: &mpsc::Sender<String>,
) -> (String, std::result::Result<TokenUsage, TurnEnd>) {
    let mut text = String::new();
    let mut rx = match with_retries(state, || state.providers().stream(model, request)).await {
        Ok(rx) => rx,
        Err(e) => return (text, Err(TurnEnd::Provider(e))),
    };
    let idle = state.config().stream_idle_timeout;
    loop {
        let event = match tokio::time::timeout(idle, rx.recv()).await {
            Err(_) => return (text, Err(TurnEnd::Provider(ProviderError::Timeout))),
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
                if tx.send(d).await.is_err() {
                    return (text, Err(TurnEnd::ClientGone));
                }
            }
            StreamEvent::End { usage, .. } => return (text, Ok(usage)),
        }
    }
}

/// Retries throttling, 5xx and timeouts with exponential backoff (a provider's Retry-After wins,
/// capped). Only ever called before any output exists, so a retry cannot duplicate text.
async fn with_retries<T, F, Fut>(
    state: &AppState,
    mut call: F,
) -> std::result::Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, ProviderError>>,
{
    let config = state.config();
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < config.provider_max_attempts => {
                let backoff = config
                    .provider_retry_base
                    .saturating_mul(2u32.saturating_pow(attempt - 1));
                let wait = match &e {
                    ProviderError::Throttled {
                        retry_after: Some(after),
                    } => *after,
                    _ => backoff,
                }
                .min(Duration::from_secs(20));
                tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %e, "model call failed; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Folds older messages into the conversation's rolling summary. A failure only costs context: the
/// turn goes on with the recent messages.
async fn summarise(
    state: &AppState,
    model: &Model,
    conversation: &Conversation,
    older: &[Message],
) -> Option<(String, TokenUsage)> {
    let request = context::summary_request(model, conversation.summary.as_deref(), older);
    let completion = match with_retries(state, || state.providers().complete(model, &request)).await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "summarising older turns failed; continuing without them");
            return None;
        }
    };
    let through = older.last()?.seq;
    let conn = state.store().conn().await.ok()?;
    if let Err(e) = conn
        .set_summary(&conversation.id, &completion.text, through)
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

#[allow(clippy::too_many_arguments)]
async fn store_answer(
    state: &AppState,
    user_id: &str,
    conversation: &Conversation,
    model: &Model,
    text: &str,
    status: MessageStatus,
    error: Option<&ProviderError>,
    usage_rows: &[(&str, TokenUsage)],
) -> Result<(Message, UsageRow)> {
    let mut rows: Vec<UsageRow> = usage_rows
        .iter()
        .map(|(kind, usage)| UsageRow {
            message_id: String::new(),
            model: model.id.clone(),
            kind: kind.to_string(),
            input_tokens: usage.input_tokens as i64,
            output_tokens: usage.output_tokens as i64,
            cached_tokens: usage.cached_tokens as i64,
            cost_usd: cost_usd(model, *usage),
        })
        .collect();
    let error = error.map(|e| e.to_string());
    let message = state
        .store()
        .conn()
        .await?
        .append_answer(
            &conversation.id,
            user_id,
            text,
            status,
            &model.id,
            error.as_deref(),
            &mut rows,
        )
        .await?;
    let chat_row = rows.pop().expect("the chat usage row is always the last");
    Ok((message, chat_row))
}

fn provider_error(e: ProviderError) -> Error {
    match e {
        ProviderError::Timeout => Error::UpstreamTimeout,
        ProviderError::Throttled { .. } => {
            Error::Upstream("the model provider is throttling requests; try again later".into())
        }
        other => Error::Upstream(other.to_string()),
    }
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
