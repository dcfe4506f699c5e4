//! Conversations as their owner manages them: create, list, rename, switch model, delete, export.
//! Chat turns start conversations through [`start`]: the same rows as [`create`], one title rule.

use crate::{
    error::{Error, FieldError, Result},
    ids::{ConversationId, MessageId, ProjectId, UserId},
    kinds::{MessageRole, MessageStatus},
    models::{Catalog, Model},
    pagination::{Page, Paginated},
    store::{
        Conn, Conversation, ConversationChanges, Message, NewConversation, NewMessage, UsageRecord,
        UsageTotals, Which,
    },
    text,
};

const TITLE_MAX_CHARS: usize = 200;
const DEFAULT_TITLE: &str = "New conversation";

/// A conversation title: trimmed, 1 to 200 characters, no control or invisible format characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub fn parse(raw: &str) -> std::result::Result<Self, FieldError> {
        let t = raw.trim();
        if t.is_empty() || t.chars().count() > TITLE_MAX_CHARS {
            return Err(FieldError::new(
                "title",
                format!("must be 1 to {TITLE_MAX_CHARS} characters"),
            ));
        }
        if text::has_hidden_characters(t) {
            return Err(FieldError::new(
                "title",
                "must not contain control or invisible formatting characters",
            ));
        }
        Ok(Title(t.to_string()))
    }

    /// The title of a conversation started by a chat message: its first line, whitespace folded,
    /// cut at a word near 60 characters.
    pub fn from_message(message: &str) -> Self {
        let line = message.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        // The message may hold anything; its title holds nothing hidden.
        let visible: String = line.chars().filter(|c| !text::is_hidden(*c)).collect();
        let folded = visible.split_whitespace().collect::<Vec<_>>().join(" ");
        if folded.is_empty() {
            return Title(DEFAULT_TITLE.into());
        }
        if folded.chars().count() <= 60 {
            return Title(folded);
        }
        let cut: String = folded.chars().take(60).collect();
        let cut = match cut.rfind(' ') {
            Some(i) if i > 20 => &cut[..i],
            _ => &cut[..],
        };
        Title(format!("{}…", cut.trim_end()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Title {
    fn default() -> Self {
        Title(DEFAULT_TITLE.into())
    }
}

/// A new conversation, checked: the model (if named) is usable in this deployment.
#[derive(Debug)]
pub struct NewConversationInput {
    pub title: Title,
    /// `None`: the agent's model, else the deployment's default.
    pub model: Option<Model>,
    /// The project the conversation works on (the coding agent's); checked to be the user's own
    /// when the conversation is created.
    pub project_id: Option<crate::ids::ProjectId>,
    /// The agent the conversation uses, checked to be the user's own and active.
    pub agent_id: Option<crate::ids::AgentId>,
}

#[derive(Debug, Default)]
pub struct Changes {
    pub title: Option<Title>,
    pub model: Option<Model>,
    /// `Some(None)` clears the agent.
    pub agent_id: Option<Option<crate::ids::AgentId>>,
}

impl NewConversationInput {
    fn row<'a>(
        &'a self,
        user_id: UserId,
        model: &'a str,
        project_id: Option<ProjectId>,
    ) -> NewConversation<'a> {
        NewConversation {
            user_id,
            title: self.title.as_str(),
            model,
            agent_id: self.agent_id,
            project_id,
        }
    }

    /// The model: the one named, else the agent's (checked to be the user's own and active), else
    /// the default.
    async fn checked_model(
        &self,
        conn: &Conn,
        catalog: &Catalog,
        user_id: UserId,
    ) -> Result<Model> {
        let agent = match self.agent_id {
            Some(id) => Some(crate::agents::usable(conn, user_id, id).await?),
            None => None,
        };
        let id = match (&self.model, &agent) {
            (Some(m), _) => return Ok(m.clone()),
            (None, Some(a)) => a.model.as_str(),
            (None, None) => catalog.default_model(),
        };
        Ok(catalog.usable(id)?.clone())
    }

    /// The project, if one is named, as stored: it must be the user's own (else 422).
    async fn checked_project(&self, conn: &Conn, user_id: UserId) -> Result<Option<ProjectId>> {
        match self.project_id {
            None => Ok(None),
            Some(id) => match conn.project(id, user_id).await? {
                Some(_) => Ok(Some(id)),
                None => Err(Error::invalid("project_id", "no such project")),
            },
        }
    }
}

/// An empty conversation (`POST /conversations`).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create(
    conn: &Conn,
    catalog: &Catalog,
    user_id: UserId,
    input: &NewConversationInput,
) -> Result<Conversation> {
    let model = input.checked_model(conn, catalog, user_id).await?;
    let project = input.checked_project(conn, user_id).await?;
    Ok(conn
        .create_conversation(input.row(user_id, &model.id, project))
        .await?)
}

/// A conversation started by its first message (a chat turn without a conversation), stored
/// together with it. The turn has resolved the model and the agent.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn start(
    conn: &Conn,
    user_id: UserId,
    input: &NewConversationInput,
    model: &Model,
    first_message: NewMessage<'_>,
) -> Result<(Conversation, Message)> {
    let project = input.checked_project(conn, user_id).await?;
    Ok(conn
        .start_conversation(input.row(user_id, &model.id, project), first_message)
        .await?)
}

/// The user's conversation, or 404 (also for another user's).
pub async fn get(conn: &Conn, user_id: UserId, id: ConversationId) -> Result<Conversation> {
    conn.conversation(id, user_id).await?.ok_or(Error::NotFound)
}

/// The user's conversations: the app's, or (`from_api`) those the OpenAI-compatible endpoint
/// started.
pub async fn list(
    conn: &Conn,
    user_id: UserId,
    title_query: Option<&str>,
    from_api: bool,
    page: Page<(String, String)>,
) -> Result<Paginated<Conversation>> {
    let q = title_query.map(str::trim).filter(|q| !q.is_empty());
    let rows = conn
        .list_conversations(user_id, q, Some(from_api), page.after, page.limit)
        .await?;
    Ok(Paginated::from_rows(rows, page.limit, |c| {
        (c.activity_at.clone(), c.id.to_string())
    }))
}

pub async fn update(
    conn: &Conn,
    user_id: UserId,
    id: ConversationId,
    changes: Changes,
) -> Result<Conversation> {
    if let Some(Some(agent_id)) = changes.agent_id {
        crate::agents::usable(conn, user_id, agent_id).await?;
    }
    conn.update_conversation(
        id,
        user_id,
        ConversationChanges {
            title: changes.title.as_ref().map(Title::as_str),
            model: changes.model.as_ref().map(|m| m.id.as_str()),
            agent_id: changes.agent_id,
        },
    )
    .await?
    .ok_or(Error::NotFound)
}

/// The delete itself is scoped to the owner, so no read comes first.
/// Deletes the conversation with its messages, usage and attachments (rows in one transaction,
/// then the attachments' blobs: a blob left by a failure is unreachable, never a dangling row).
pub async fn delete(
    conn: &Conn,
    blobs: &crate::blobs::BlobStore,
    user_id: UserId,
    id: ConversationId,
) -> Result<()> {
    let attached = conn.attachments_of_conversation(id).await?;
    if !conn.delete_conversation(id, user_id).await? {
        return Err(Error::NotFound);
    }
    for attachment in attached.iter().filter(|a| a.user_id == user_id) {
        crate::attachments::remove_blob(blobs, attachment).await;
    }
    Ok(())
}

/// `which` of a conversation's messages (the active path, or the whole tree), oldest first.
pub async fn messages(
    conn: &Conn,
    user_id: UserId,
    id: ConversationId,
    which: Which,
    page: Page<i64>,
) -> Result<Paginated<Message>> {
    let conversation = get(conn, user_id, id).await?;
    let rows = conn
        .list_messages(&conversation, which, page.after, page.limit)
        .await?;
    Ok(Paginated::from_rows(rows, page.limit, |m| m.seq))
}

/// Makes the path ending at `message_id`, a message of the conversation, the active one.
pub async fn set_active_leaf(
    conn: &Conn,
    user_id: UserId,
    id: ConversationId,
    message_id: MessageId,
) -> Result<Conversation> {
    get(conn, user_id, id).await?;
    conn.message_of_user(message_id, user_id)
        .await?
        .filter(|m| m.conversation_id == id)
        .ok_or_else(|| Error::invalid("message_id", "not a message of this conversation"))?;
    conn.set_active_path(id, message_id).await?;
    get(conn, user_id, id).await
}

/// What a conversation cost.
pub struct ConversationUsage {
    /// The active path's usage, per model, and its sum.
    pub by_model: Vec<UsageTotals>,
    pub total: UsageTotals,
    /// The sum over every branch (what was billed): `total` until the conversation branches.
    pub all_branches: UsageTotals,
}

/// The active path's usage per model and in total, and what every branch cost.
pub async fn usage(conn: &Conn, user_id: UserId, id: ConversationId) -> Result<ConversationUsage> {
    let conversation = get(conn, user_id, id).await?;
    let by_model = conn
        .conversation_usage(&conversation, Which::ActivePath)
        .await?;
    let total = sum(&by_model);
    let all_branches = if conversation.branched {
        sum(&conn.conversation_usage(&conversation, Which::All).await?)
    } else {
        total.clone()
    };
    Ok(ConversationUsage {
        by_model,
        total,
        all_branches,
    })
}

fn sum(by_model: &[UsageTotals]) -> UsageTotals {
    by_model.iter().fold(UsageTotals::default(), |mut t, m| {
        t.input_tokens += m.input_tokens;
        t.output_tokens += m.output_tokens;
        t.cached_tokens += m.cached_tokens;
        t.cost_usd += m.cost_usd;
        t
    })
}

/// The conversation with the messages of its active path, oldest first.
pub async fn export(
    conn: &Conn,
    user_id: UserId,
    id: ConversationId,
) -> Result<(Conversation, Vec<Message>)> {
    let conversation = get(conn, user_id, id).await?;
    let messages = conn
        .messages_after(&conversation, Which::ActivePath, 0)
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
            MessageRole::User => "User".to_string(),
            MessageRole::Assistant => {
                format!("Assistant ({})", m.model.as_deref().unwrap_or("?"))
            }
            MessageRole::System => "System".to_string(),
        };
        let status = match m.status {
            MessageStatus::Complete => String::new(),
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
    conn: &Conn,
    user_id: UserId,
    message_id: MessageId,
) -> Result<Vec<UsageRecord>> {
    let message = conn
        .message_of_user(message_id, user_id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(conn.message_usage(message.id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(Title::parse("  Plans ").unwrap().as_str(), "Plans");
        assert!(Title::parse(&"t".repeat(200)).is_ok());
        for bad in ["", "  ", &"t".repeat(201), "a\u{202E}b", "\u{200B}"] {
            assert_eq!(Title::parse(bad).unwrap_err().field, "title");
        }
    }

    #[test]
    fn titles_come_from_the_first_line() {
        assert_eq!(
            Title::from_message("\n  How do   I parse JSON?\nmore").as_str(),
            "How do I parse JSON?"
        );
        assert_eq!(Title::from_message("   ").as_str(), "New conversation");
        assert_eq!(
            Title::from_message("Hi\u{202E} there\u{200B}").as_str(),
            "Hi there"
        );
        let long = Title::from_message(&"word ".repeat(30));
        assert!(
            long.as_str().ends_with('…') && long.as_str().chars().count() <= 61,
            "{long:?}"
        );
    }
}
