//! Running a started turn: the model call (with the agent's tool steps), streamed deltas, deadlines and summaries.

use super::*;

/// What running a turn calls out to.
pub(super) struct RunDeps<'a> {
    pub providers: &'a Providers,
    pub blobs: &'a BlobStore,
    pub embedding: knowledge::Embedding<'a>,
    pub settings: TurnSettings,
}

/// Calls the model and stores the answer. With `deltas`, the answer is streamed: each text delta is
/// sent as it arrives, and a closed channel (the client left) ends the turn as `incomplete`.
#[tracing::instrument(level = "debug", skip_all, fields(model = %started.model.id))]
pub(super) async fn run(
    conn: &Conn,
    deps: RunDeps<'_>,
    user_id: UserId,
    started: Started,
    deltas: Option<&Journal>,
) -> Result<Outcome> {
    let RunDeps {
        providers,
        blobs,
        embedding,
        settings,
    } = deps;
    let Started {
        conversation,
        user_message,
        answer_id,
        model,
        fallbacks,
        mut plan,
        base_system,
        agent_id,
        tool_turn,
        project,
        mcp,
        mut holds,
        citations,
    } = started;
    let deadline = Instant::now() + settings.budget;
    // The model asked for, then its fallbacks: a provider failing before the answer's first token
    // hands the turn to the next.
    let models: Vec<Model> = std::iter::once(model).chain(fallbacks).collect();
    let model = &models[0];
    let mut usage_rows = Vec::new();

    if !plan.to_summarise.is_empty() {
        let summary = tokio::time::timeout_at(
            deadline,
            summarise(
                conn,
                providers,
                settings.retry,
                model,
                &conversation,
                &plan.to_summarise,
            ),
        );
        if let Ok(Some((summary, usage))) = summary.await {
            plan.request.system = Some(context::system_prompt(&base_system, Some(&summary)));
            usage_rows.push(("summary", model, usage));
        }
    }

    let mut changes = Vec::new();
    // The calls of a client's tools, handed back to the client unrun.
    let mut tool_calls = Vec::new();
    let client_tools = !plan.request.tools.is_empty();
    let (text, result, answered) = match (&deltas, tool_turn) {
        (_, true) => {
            let ws = tools::Workspace {
                conn,
                blobs,
                limits: settings.project_limits,
                budget: holds.budget(),
                project_id: project,
                embedding,
                mcp: &mcp,
                deadline,
            };
            let turn = ToolLoop {
                providers,
                settings,
                deadline,
                models: &models,
                events: deltas,
            };
            turn.run(&ws, &mut plan.request, &mut changes, &mut holds)
                .await
        }
        (Some(journal), false) if !client_tools => {
            stream_answer(
                providers,
                settings,
                deadline,
                &models,
                &plan.request,
                journal,
            )
            .await
        }
        // A whole call: none streamed, or one with the client's tools (a call must be whole, so
        // its text goes as one delta).
        (deltas, false) => {
            match complete_within(providers, settings.retry, deadline, &models, &plan.request).await
            {
                Ok((c, answered)) => {
                    if let (Some(journal), false) = (deltas, c.text.is_empty()) {
                        let _ = journal.send(Event::delta(c.text.clone())).await;
                    }
                    tool_calls = c.tool_calls;
                    (c.text, Ok(c.usage), answered)
                }
                Err((end, tried)) => (String::new(), Err(end), tried),
            }
        }
    };

    // A call that produced nothing is not billed; a partial answer is, by estimate.
    let estimate = || TokenUsage::estimate(&plan.request, &text);
    // The provider's own count never came (the client left and the stream was dropped, or the
    // deadline passed): what was reserved for the call is billed, files and all.
    let reserved = || TokenUsage {
        input_tokens: TokenUsage::estimate(&plan.request, "").input_tokens,
        output_tokens: plan.request.max_tokens as u64,
        ..TokenUsage::default()
    };
    let (status, failure, usage) = match result {
        Ok(usage) => (MessageStatus::Complete, None, usage),
        Err(TurnEnd::Stopped) => (MessageStatus::Incomplete, None, reserved()),
        Err(TurnEnd::OutOfTime) => (MessageStatus::Incomplete, Some(out_of_time()), reserved()),
        Err(TurnEnd::Provider(e)) if text.is_empty() => (
            MessageStatus::Failed,
            Some(provider_error(e)),
            TokenUsage::default(),
        ),
        Err(TurnEnd::Provider(e)) => (MessageStatus::Failed, Some(provider_error(e)), estimate()),
        Err(TurnEnd::Failed(e)) => (MessageStatus::Failed, Some(e), estimate()),
    };
    // Billed at the prices of the model that answered (or last failed).
    usage_rows.push(("chat", &models[answered], usage));

    // If the answer cannot be stored, the store error is the turn's error; the user message remains.
    // The deltas not stored yet go in the answer's statement (a resumed stream cuts the answer at
    // the delta its client saw last, so each must be placed).
    let final_chunk = match deltas {
        Some(journal) => journal.take_pending().await,
        None => None,
    };
    let answer = Answer {
        id: answer_id,
        conversation_id: conversation.id,
        model: &models[answered],
        fallback_from: (answered > 0).then_some(model.id.as_str()),
        text: &text,
        status,
        error: failure.as_ref().and_then(Error::code),
        changes: &changes,
        agent_id,
        citations: &citations,
        tool_calls: &tool_calls,
        parent: user_message.as_parent(),
        final_chunk: final_chunk.as_ref(),
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

pub(super) enum TurnEnd {
    /// The user asked to stop the answer.
    Stopped,
    /// The turn's budget ran out.
    OutOfTime,
    Provider(ProviderError),
    /// The store or the blob store failed while a tool ran.
    Failed(Error),
}

/// The coding agent's loop: call the model with the tools; run the calls it makes (each through
/// the project's rules), give it their outputs, and again, until it answers without calling a tool
/// or the step limit is reached. Calls are not streamed (a tool call must be whole to run); the
/// steps stream as events, and the answer as one delta.
pub(super) struct ToolLoop<'a> {
    providers: &'a Providers,
    settings: TurnSettings,
    deadline: Instant,
    /// The model asked for and its fallbacks; each call starts from the one that answered last.
    models: &'a [Model],
    events: Option<&'a Journal>,
}

impl ToolLoop<'_> {
    async fn emit(&self, event: Event) {
        // The agent's steps run to their end: its changes and answer are stored.
        if let Some(journal) = self.events {
            let _ = journal.send(event).await;
        }
    }

    async fn run(
        &self,
        ws: &tools::Workspace<'_>,
        request: &mut ModelRequest,
        changes: &mut Vec<crate::store::FileChange>,
        holds: &mut Holds,
    ) -> (String, std::result::Result<TokenUsage, TurnEnd>, usize) {
        let mut total = TokenUsage::default();
        let mut answering = 0;
        for step in 0..self.settings.max_agent_steps {
            // The turn's reservation covers its first call; each further call reserves its own
            // maximum cost, and a budget that cannot take it ends the turn.
            if step > 0 {
                if let Err(e) = holds.extend(ws.conn, request.most_tokens()).await {
                    return (String::new(), Err(TurnEnd::Failed(e)), answering);
                }
            }
            let completion = match complete_within(
                self.providers,
                self.settings.retry,
                self.deadline,
                &self.models[answering..],
                request,
            )
            .await
            {
                Ok((c, answered)) => {
                    answering += answered;
                    c
                }
                Err((end, tried)) => return (String::new(), Err(end), answering + tried),
            };
            total.input_tokens += completion.usage.input_tokens;
            total.output_tokens += completion.usage.output_tokens;
            total.cached_tokens += completion.usage.cached_tokens;
            total.cache_write_tokens += completion.usage.cache_write_tokens;
            total.reasoning_tokens += completion.usage.reasoning_tokens;
            if completion.tool_calls.is_empty() {
                self.emit(Event::delta(completion.text.clone())).await;
                return (completion.text, Ok(total), answering);
            }
            let mut outputs = Vec::with_capacity(completion.tool_calls.len());
            for call in &completion.tool_calls {
                self.emit(Event::ToolCall(call.clone())).await;
                // The offered tools are the turn's (the agent's list); a call to any other (a
                // prompt injection's `write_file` for a read-only agent) is refused, never run.
                let offered = request.tools.iter().any(|t| t.name == call.name);
                let (output, change) = if !offered {
                    (tools::not_offered(call), None)
                } else {
                    match tools::run_tool(ws, call).await {
                        Ok(done) => done,
                        Err(e) => return (String::new(), Err(TurnEnd::Failed(e)), answering),
                    }
                };
                self.emit(Event::ToolResult(output.clone())).await;
                if let Some(change) = change {
                    self.emit(Event::FileChanged(change.clone())).await;
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
        self.emit(Event::delta(text.clone())).await;
        (text, Ok(total), answering)
    }
}

/// Whether a failure before any output hands the turn to the next model of its chain: the
/// provider throttled, failed (5xx), timed out, or broke off before its first token. A refusal of
/// the request itself (4xx) would only be refused again.
fn falls_back(e: &ProviderError) -> bool {
    e.is_retryable() || matches!(e, ProviderError::Stream(_))
}

/// `request` for `model`: the answer's room within that model's own limit (a fallback's may be
/// smaller than the model the turn was planned for).
fn for_model<'r>(request: &'r ModelRequest, model: &Model) -> std::borrow::Cow<'r, ModelRequest> {
    if request.max_tokens <= model.max_output_tokens {
        return std::borrow::Cow::Borrowed(request);
    }
    let mut fitted = request.clone();
    fitted.max_tokens = model.max_output_tokens;
    std::borrow::Cow::Owned(fitted)
}

fn falling_back(failed: &Model, next: &Model, e: &ProviderError) {
    tracing::warn!(model = %failed.id, next = %next.id, error = %e, "the model failed before answering; falling back");
}

/// One whole call (not streamed), retried while nothing has been output, then handed to the next
/// of `models` on a failure that [`falls_back`], within the turn's deadline. Answers the index of
/// the model that answered, or (with the turn's end) of the last one tried.
pub(super) async fn complete_within(
    providers: &Providers,
    retry: RetryPolicy,
    deadline: Instant,
    models: &[Model],
    request: &ModelRequest,
) -> std::result::Result<(Completion, usize), (TurnEnd, usize)> {
    let mut tried = 0;
    loop {
        let model = &models[tried];
        let request = for_model(request, model);
        let call = retry.run(|| providers.complete(model, &request));
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(c)) => return Ok((c, tried)),
            Ok(Err(e)) if falls_back(&e) && tried + 1 < models.len() => {
                falling_back(model, &models[tried + 1], &e);
                tried += 1;
            }
            Ok(Err(e)) => return Err((TurnEnd::Provider(e), tried)),
            Err(_) => return Err((TurnEnd::OutOfTime, tried)),
        }
    }
}

/// A streamed call: each delta is sent as it arrives. Until the first one, a failure that
/// [`falls_back`] hands the call to the next of `models`; after it, the answer is that model's or
/// ends with its error. Answers the index of the model that answered (or last failed).
pub(super) async fn stream_answer(
    providers: &Providers,
    settings: TurnSettings,
    deadline: Instant,
    models: &[Model],
    request: &ModelRequest,
    journal: &Journal,
) -> (String, std::result::Result<TokenUsage, TurnEnd>, usize) {
    let mut text = String::new();
    let mut tried = 0;
    'models: loop {
        let model = &models[tried];
        let more = tried + 1 < models.len();
        let request = for_model(request, model);
        let start = settings.retry.run(|| providers.stream(model, &request));
        let mut rx = match tokio::time::timeout_at(deadline, start).await {
            Ok(Ok(rx)) => rx,
            Ok(Err(e)) if more && falls_back(&e) => {
                falling_back(model, &models[tried + 1], &e);
                tried += 1;
                continue 'models;
            }
            Ok(Err(e)) => return (text, Err(TurnEnd::Provider(e)), tried),
            Err(_) => return (text, Err(TurnEnd::OutOfTime), tried),
        };
        loop {
            let idle_until = Instant::now() + settings.stream_idle_timeout;
            let event = match tokio::time::timeout_at(idle_until.min(deadline), rx.recv()).await {
                Err(_) if idle_until >= deadline => return (text, Err(TurnEnd::OutOfTime), tried),
                Err(_) => Err(ProviderError::Timeout),
                Ok(None) => Err(ProviderError::Stream("the stream ended early".into())),
                Ok(Some(event)) => event,
            };
            match event {
                Err(e) if text.is_empty() && more && falls_back(&e) => {
                    falling_back(model, &models[tried + 1], &e);
                    tried += 1;
                    continue 'models;
                }
                Err(e) => return (text, Err(TurnEnd::Provider(e)), tried),
                Ok(StreamEvent::Delta(d)) => {
                    text.push_str(&d);
                    if journal.send(Event::delta(d)).await.is_err() {
                        return (text, Err(TurnEnd::Stopped), tried);
                    }
                }
                Ok(StreamEvent::End { usage, .. }) => return (text, Ok(usage), tried),
            }
        }
    }
}

/// Folds older messages into the conversation's rolling summary. A failure only costs context: the
/// turn goes on with the recent messages.
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn summarise(
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
