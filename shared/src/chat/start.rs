//! Starting a turn: the checks, the caller's turns and attachments, and what is stored before the model is called.

use super::*;

/// Resolves the conversation, agent and model, reserves the turn's maximum cost against the user's
/// budget, and stores the user message (and, for a new chat, the conversation) before any model is
/// called. A refused turn (bad input, over budget) stores nothing.
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn start(
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
pub(super) fn client_plan(
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
pub(super) async fn attachment_files(
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
