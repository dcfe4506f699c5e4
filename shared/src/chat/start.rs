//! Starting a turn, step by step: the conversation, agent and model in force, the answer's limits,
//! the attachments, the tools offered, the system prompt, the plan and its reservation (with the
//! knowledge sources), and the user message stored. Nothing is stored before the last step, and a
//! refused turn (bad input, over budget) stores nothing.

use super::*;

/// What starting a turn reads and calls.
pub(super) struct StartDeps<'a> {
    pub conn: &'a Conn,
    pub catalog: &'a Catalog,
    pub mcp: &'a std::sync::Arc<crate::mcp::Hub>,
    pub blobs: &'a BlobStore,
    pub embedding: knowledge::Embedding<'a>,
    pub settings: &'a TurnSettings,
}

/// Resolves the conversation, agent and model, reserves the turn's maximum cost against the user's
/// budget, and stores the user message (and, for a new chat, the conversation) before any model is
/// called.
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn start(
    deps: StartDeps<'_>,
    budget: &Budget,
    input: ChatInput,
) -> Result<Started> {
    let StartDeps {
        conn,
        catalog,
        mcp,
        blobs,
        embedding,
        settings,
    } = deps;
    let user_id = budget.user_id;
    quotas::count_turn(conn, budget).await?;
    let existing = match input.conversation_id {
        Some(id) => Some(existing_conversation(conn, user_id, id, input.parent).await?),
        None => None,
    };
    let conversation = existing.as_ref().map(|(c, ..)| c);
    // Regenerating answers the parent, a stored user message, again: with its own files.
    let regenerated = match &existing {
        Some((_, history, parent)) if matches!(input.parent, TurnParent::AnswerOf(_)) => {
            Some(regenerated_message(history, *parent)?)
        }
        _ => None,
    };
    let attachment_ids: Vec<AttachmentId> = match &regenerated {
        Some(m) => m.attachments.iter().map(|a| a.id).collect(),
        None => input.attachments.clone(),
    };
    let agent = agent_in_force(conn, user_id, input.agent_id, conversation).await?;
    let model = match input.model {
        Some(model) => model,
        None => model_in_force(catalog, agent.as_ref(), conversation)?,
    };
    let (max_tokens, temperature) =
        answer_limits(&model, agent.as_ref(), input.max_tokens, input.temperature)?;
    // The files are checked and read before anything is stored: a refused or unreadable one
    // leaves no message behind.
    let (attached, files) = attachments::for_message(
        conn,
        blobs,
        user_id,
        &attachment_ids,
        settings.max_attachment_bytes,
        &model,
        regenerated.as_ref().map(|m| m.id),
    )
    .await?;
    // What the files cost is reserved with the rest (they are sent on every step of a tool loop,
    // whose further calls reserve again with them in the request).
    let file_tokens: u64 = files.iter().map(crate::providers::file_tokens).sum();
    let project_id = match conversation {
        Some(c) => c.project_id,
        None => input.project_id,
    };
    let (tools, project, mcp) =
        tools_offered(conn, mcp, user_id, &model, agent.as_ref(), project_id).await?;
    let base_system = system_prompt(
        conn,
        user_id,
        input.system_prompt.as_deref(),
        agent.as_ref(),
        project,
    )
    .await?;
    let retrieve = input
        .knowledge
        .unwrap_or_else(|| agent.as_ref().is_some_and(|a| a.knowledge));

    let (conversation, mut history, parent) = match existing {
        Some((c, history, parent)) => (Some(c), history, parent),
        None => (None, Vec::new(), None),
    };
    let message_text = match &regenerated {
        Some(m) => m.content.clone(),
        None => input.message.clone(),
    };
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
        fallback_from: None,
        parent,
    };
    if regenerated.is_none() {
        history.push(Message::unstored(
            i64::MAX,
            new_message.id,
            new_message.conversation_id,
            MessageRole::User,
            input.message.clone(),
        ));
    }
    let planning = Planning {
        model: &model,
        summary: conversation.as_ref().and_then(|c| c.summary.as_deref()),
        history,
        max_tokens,
        temperature,
    };
    let reserved = planning
        .reserve(
            conn,
            embedding,
            budget,
            &message_text,
            input.client,
            base_system,
            retrieve.then_some(settings.knowledge_tokens),
            file_tokens,
        )
        .await?;
    let Reserved {
        mut plan,
        base_system,
        holds,
        citations,
    } = reserved;
    if let Some(last) = plan.request.turns.last_mut() {
        last.files.extend(files);
    }
    let tool_turn = !tools.is_empty();
    if tool_turn {
        plan.request.tools = tools;
    }

    let new = NewTurnMessage {
        message: new_message,
        attached,
        model: &model,
        project_id: input.project_id,
        agent_id: input.agent_id,
        from_api: input.from_api,
    };
    let stored = match regenerated {
        Some(user_message) => Ok((conversation.ok_or(Error::NotFound)?, user_message)),
        None => store_user_message(conn, user_id, conversation, new).await,
    };
    match stored {
        Ok((conversation, user_message)) => Ok(Started {
            conversation,
            user_message,
            answer_id: MessageId::new(),
            fallbacks: catalog.chain(&model).into_iter().skip(1).cloned().collect(),
            model,
            plan,
            base_system,
            agent_id: agent.map(|a| a.id),
            tool_turn,
            project,
            mcp,
            holds,
            citations,
        }),
        Err(e) => {
            holds.release(conn).await;
            Err(e)
        }
    }
}

/// The conversation, the turn's parent (`None` for a new root) and the recent history of the path
/// ending there, in one read; the history leaves room for this message. A parent off the active
/// path moves the path there first (two more statements and a second read; a client editing or
/// regenerating what it shows never needs them).
async fn existing_conversation(
    conn: &Conn,
    user_id: UserId,
    id: ConversationId,
    parent: TurnParent,
) -> Result<(Conversation, Vec<Message>, Option<ParentRef>)> {
    let read = || async {
        conn.turn_context(id, user_id, parent, CONTEXT_MESSAGES - 1)
            .await?
            .ok_or(Error::NotFound)
    };
    let mut context: TurnContext = read().await?;
    if let (
        ParentPlace::Message { on_path: false, .. },
        TurnParent::Message(leaf) | TurnParent::AnswerOf(leaf),
    ) = (context.parent, parent)
    {
        conn.set_active_path(id, leaf).await?;
        context = read().await?;
    }
    let TurnContext {
        conversation,
        history,
        parent: place,
    } = context;
    let parent_ref = match place {
        ParentPlace::Root => None,
        ParentPlace::Message { seq, .. } => {
            let parent = history
                .iter()
                .rfind(|m| m.seq == seq)
                .ok_or(crate::store::StoreError::Corrupt("messages.parent_seq"))?;
            Some(parent.as_parent())
        }
        ParentPlace::Missing => {
            return Err(match parent {
                TurnParent::AnswerOf(_) => {
                    Error::invalid("regenerate", "not an answer in this conversation")
                }
                _ => Error::invalid("parent_id", "not a message of this conversation"),
            })
        }
    };
    Ok((conversation, history, parent_ref))
}

/// The user message a regenerated answer answers: the parent, which must be the user's.
fn regenerated_message(history: &[Message], parent: Option<ParentRef>) -> Result<Message> {
    parent
        .and_then(|p| history.iter().rfind(|m| m.seq == p.seq))
        .filter(|m| m.role == MessageRole::User)
        .cloned()
        .ok_or_else(|| Error::invalid("regenerate", "does not answer a message of the user"))
}

/// The request's agent, else the conversation's; a deleted or inactive one refuses new turns.
async fn agent_in_force(
    conn: &Conn,
    user_id: UserId,
    requested: Option<AgentId>,
    conversation: Option<&Conversation>,
) -> Result<Option<crate::store::Agent>> {
    let id = requested.or_else(|| conversation?.agent_id);
    match id {
        Some(id) => agents::usable(conn, user_id, id).await.map(Some),
        None => Ok(None),
    }
}

/// Without a model in the request: the agent's, else the conversation's, else the default.
fn model_in_force(
    catalog: &Catalog,
    agent: Option<&crate::store::Agent>,
    conversation: Option<&Conversation>,
) -> Result<Model> {
    let id = match (agent, conversation) {
        (Some(a), _) => a.model.as_str(),
        (None, Some(c)) => c.model.as_str(),
        (None, None) => catalog.default_model(),
    };
    Ok(catalog.usable(id)?.clone())
}

/// The answer's token limit and temperature: the request's, else the agent's, within the model's
/// ceiling.
fn answer_limits(
    model: &Model,
    agent: Option<&crate::store::Agent>,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
) -> Result<(u32, Option<f32>)> {
    let max_tokens = max_tokens
        .or_else(|| agent?.max_tokens.map(|n| n as u32))
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
    let temperature = temperature.or_else(|| agent?.temperature.map(|t| t as f32));
    Ok((max_tokens, temperature))
}

/// With a model that calls tools, the agent loop runs when there is a tool to offer: the project
/// tools on a conversation's project (all of them without an agent, else the agent's),
/// `search_knowledge` and `search_history` when the agent names them, and the tools of the user's
/// servers it names (listed, or taken from this instance's list). Answers the tools, the project
/// they work on (none when no tool is offered) and the servers' tools to call.
async fn tools_offered(
    conn: &Conn,
    hub: &std::sync::Arc<crate::mcp::Hub>,
    user_id: UserId,
    model: &Model,
    agent: Option<&crate::store::Agent>,
    project_id: Option<crate::ids::ProjectId>,
) -> Result<(Vec<ToolSpec>, Option<crate::ids::ProjectId>, McpTools)> {
    if !model.capabilities.tools {
        return Ok((Vec::new(), None, McpTools::default()));
    }
    let (mcp, remote) = match agent {
        Some(a) => McpTools::for_agent(conn, hub, user_id, &a.tools).await?,
        None => (McpTools::default(), Vec::new()),
    };
    let mut tools: Vec<_> = tools::specs()
        .into_iter()
        .filter(|t| match agent {
            Some(a) => a.tools.contains(&t.name),
            None => !tools::is_agent_only(&t.name),
        })
        .filter(|t| tools::is_agent_only(&t.name) || project_id.is_some())
        .collect();
    tools.extend(remote);
    if tools.is_empty() {
        return Ok((Vec::new(), None, mcp));
    }
    Ok((tools, project_id, mcp))
}

/// The client's system prompt, else the agent's, else the default; with the project's view when
/// the coding agent works on one.
async fn system_prompt(
    conn: &Conn,
    user_id: UserId,
    client: Option<&str>,
    agent: Option<&crate::store::Agent>,
    project: Option<crate::ids::ProjectId>,
) -> Result<String> {
    let base = client
        .or(agent.map(|a| a.system_prompt.as_str()))
        .unwrap_or(context::DEFAULT_SYSTEM_PROMPT);
    let Some(project_id) = project else {
        return Ok(base.to_string());
    };
    let view = match tools::project_view(conn, user_id, project_id).await {
        Err(Error::NotFound) => Err(Error::invalid("project_id", "no such project")),
        other => other,
    }?;
    Ok(format!("{base}\n\n{view}"))
}

/// The user message to store, with what a new conversation is made from.
struct NewTurnMessage<'a> {
    message: NewMessage<'a>,
    attached: Vec<AttachmentRef>,
    model: &'a Model,
    project_id: Option<crate::ids::ProjectId>,
    agent_id: Option<AgentId>,
    from_api: bool,
}

/// Stores the user message (in a new conversation when there is none) and links its attachments.
async fn store_user_message(
    conn: &Conn,
    user_id: UserId,
    conversation: Option<Conversation>,
    new: NewTurnMessage<'_>,
) -> Result<(Conversation, Message)> {
    let NewTurnMessage {
        message,
        attached,
        model,
        project_id,
        agent_id,
        from_api,
    } = new;
    let (conversation, mut user_message) = match conversation {
        Some(conversation) => {
            let user_message = conn.append_message(message).await?;
            (conversation, user_message)
        }
        None => {
            let new = NewConversationInput {
                title: Title::from_message(message.content),
                model: Some(model.clone()),
                project_id,
                agent_id,
            };
            let (c, m) = conversations::start(conn, user_id, &new, model, message).await?;
            if from_api {
                conn.mark_api_conversation(c.id, user_id).await?;
            }
            (c, m)
        }
    };
    if !attached.is_empty() {
        let ids: Vec<AttachmentId> = attached.iter().map(|a| a.id).collect();
        conn.attach_to_message(user_id, &ids, conversation.id, user_message.id)
            .await?;
        user_message.attachments = attached;
    }
    Ok((conversation, user_message))
}
