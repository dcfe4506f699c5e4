//! Conversations as their owner manages them: create, list, rename, switch model, delete, export.

use crate::{
    chat,
    error::{Error, FieldError, Result},
    pagination::{Page, Paginated},
    store::{Conversation, Message, NewConversation, UsageTotals, User},
    AppState,
};

const TITLE_MAX_CHARS: usize = 200;

pub struct NewConversationInput {
    pub title: Option<String>,
    pub model: Option<String>,
    pub agent_id: Option<String>,
    pub project_id: Option<String>,
}

pub struct ConversationChanges {
    pub title: Option<String>,
    pub model: Option<String>,
    /// `Some(None)` clears the agent.
    pub agent_id: Option<Option<String>>,
}

fn clean_title(title: &str, errors: &mut Vec<FieldError>) -> String {
    let t = title.trim();
    if t.is_empty() || t.chars().count() > TITLE_MAX_CHARS {
        errors.push(FieldError::new(
            "title",
            format!("must be 1 to {TITLE_MAX_CHARS} characters"),
        ));
    }
    t.to_string()
}

pub async fn create(
    state: &AppState,
    user: &User,
    input: NewConversationInput,
) -> Result<Conversation> {
    let mut errors = Vec::new();
    let title = match &input.title {
        Some(t) => clean_title(t, &mut errors),
        None => "New conversation".to_string(),
    };
    let model = input
        .model
        .unwrap_or_else(|| state.config().default_model.clone());
    if let Err(e) = chat::check_model(state, &model) {
        errors.push(e);
    }
    // Agents and projects arrive with their own capabilities; until then no id can name one.
    if input.agent_id.is_some() {
        errors.push(FieldError::new("agent_id", "no such agent"));
    }
    if input.project_id.is_some() {
        errors.push(FieldError::new("project_id", "no such project"));
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    Ok(state
        .store()
        .conn()
        .await?
        .create_conversation(NewConversation {
            user_id: &user.id,
            title: &title,
            model: &model,
            agent_id: None,
            project_id: None,
        })
        .await?)
}

/// The user's conversation, or 404 (also for another user's, and for ids that are not UUIDs).
pub async fn get(state: &AppState, user: &User, id: &str) -> Result<Conversation> {
    if !crate::ids::is_uuid(id) {
        return Err(Error::NotFound);
    }
    state
        .store()
        .conn()
        .await?
        .conversation(id, &user.id)
        .await?
        .ok_or(Error::NotFound)
}

pub async fn list(
    state: &AppState,
    user: &User,
    title_query: Option<&str>,
    page: Page<(String, String)>,
) -> Result<Paginated<Conversation>> {
    let q = title_query.map(str::trim).filter(|q| !q.is_empty());
    let rows = state
        .store()
        .conn()
        .await?
        .list_conversations(&user.id, q, page.after, page.limit)
        .await?;
    Ok(Paginated::from_rows(rows, page.limit, |c| {
        (c.activity_at.clone(), c.id.clone())
    }))
}

pub async fn update(
    state: &AppState,
    user: &User,
    id: &str,
    changes: ConversationChanges,
) -> Result<Conversation> {
    let conversation = get(state, user, id).await?;
    let mut errors = Vec::new();
    let title = changes
        .title
        .as_deref()
        .map(|t| clean_title(t, &mut errors));
    if let Some(model) = &changes.model {
        if let Err(e) = chat::check_model(state, model) {
            errors.push(e);
        }
    }
    if matches!(changes.agent_id, Some(Some(_))) {
        errors.push(FieldError::new("agent_id", "no such agent"));
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let agent = changes.agent_id.as_ref().map(|a| a.as_deref());
    state
        .store()
        .conn()
        .await?
        .update_conversation(
            &conversation.id,
            &user.id,
            title.as_deref(),
            changes.model.as_deref(),
            agent,
        )
        .await?
        .ok_or(Error::NotFound)
}

/// The delete itself is scoped to the owner, so no read comes first.
pub async fn delete(state: &AppState, user: &User, id: &str) -> Result<()> {
    if !crate::ids::is_uuid(id) {
        return Err(Error::NotFound);
    }
    match state
        .store()
        .conn()
        .await?
        .delete_conversation(id, &user.id)
        .await?
    {
        true => Ok(()),
        false => Err(Error::NotFound),
    }
}

pub async fn messages(
    state: &AppState,
    user: &User,
    id: &str,
    page: Page<i64>,
) -> Result<Paginated<Message>> {
    let conversation = get(state, user, id).await?;
    let rows = state
        .store()
        .conn()
        .await?
        .list_messages(&conversation.id, page.after, page.limit)
        .await?;
    Ok(Paginated::from_rows(rows, page.limit, |m| m.seq))
}

/// Per-model totals and their sum.
pub async fn usage(
    state: &AppState,
    user: &User,
    id: &str,
) -> Result<(UsageTotals, Vec<UsageTotals>)> {
    let conversation = get(state, user, id).await?;
    let by_model = state
        .store()
        .conn()
        .await?
        .conversation_usage(&conversation.id)
        .await?;
    let total = by_model.iter().fold(UsageTotals::default(), |mut t, m| {
        t.input_tokens += m.input_tokens;
        t.output_tokens += m.output_tokens;
        t.cached_tokens += m.cached_tokens;
        t.cost_usd += m.cost_usd;
        t
    });
    Ok((total, by_model))
}

/// The conversation with every message, oldest first.
pub async fn export(
    state: &AppState,
    user: &User,
    id: &str,
) -> Result<(Conversation, Vec<Message>)> {
    let conversation = get(state, user, id).await?;
    let messages = state
        .store()
        .conn()
        .await?
        .messages_after(&conversation.id, 0)
        .await?;
    Ok((conversation, messages))
}

pub fn to_markdown(conversation: &Conversation, messages: &[Message]) -> String {
    let mut out = format!(
        "# {}\n\n_Model: {} · created {} · {} messages_\n",
        conversation.title,
        conversation.model,
        conversation.created_at,
        messages.len()
    );
    if let Some(summary) = &conversation.summary {
        out.push_str(&format!(
            "\n> Summary of earlier turns: {}\n",
            summary.replace('\n', "\n> ")
        ));
    }
    for m in messages {
        let who = match m.role {
            crate::store::MessageRole::User => "User".to_string(),
            crate::store::MessageRole::Assistant => {
                format!("Assistant ({})", m.model.as_deref().unwrap_or("?"))
            }
            crate::store::MessageRole::System => "System".to_string(),
        };
        let status = match m.status {
            crate::store::MessageStatus::Complete => String::new(),
            other => format!(" _[{}]_", other.as_str()),
        };
        out.push_str(&format!(
            "\n## {who}{status}\n\n_{}_\n\n{}\n",
            m.created_at, m.content
        ));
    }
    out
}

/// A message's usage rows, if the message is the user's.
pub async fn message_usage(
    state: &AppState,
    user: &User,
    message_id: &str,
) -> Result<Vec<crate::store::UsageRow>> {
    if !crate::ids::is_uuid(message_id) {
        return Err(Error::NotFound);
    }
    let conn = state.store().conn().await?;
    let message = conn
        .message_of_user(message_id, &user.id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(conn.message_usage(&message.id).await?)
}
