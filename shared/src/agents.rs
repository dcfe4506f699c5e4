//! Agents: a user's configured assistants (system prompt, model, parameters, tools, knowledge).
//! A chat with an agent uses its configuration; request parameters override it where given.

use crate::{
    error::{Error, FieldError, FieldErrors, Result},
    ids::{AgentId, UserId},
    kinds::AgentStatus,
    models::Catalog,
    pagination::{Page, Paginated},
    store::{Agent, AgentChanges, Conn, NewAgent},
};

/// The built-in tools an agent may name: the coding agent's project tools, knowledge search and
/// search over the user's history. It may also name the user's tool servers (`mcp:<server>` or
/// `mcp:<server>/<tool>`, see [`crate::mcp`]).
pub const TOOL_NAMES: [&str; 7] = [
    "list_files",
    "read_file",
    "write_file",
    "delete_file",
    "search_files",
    "search_knowledge",
    "search_history",
];

const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 2000;

/// An agent's whole configuration, as the client gave it (checked by [`AgentSettings::check`]).
#[derive(Debug, Clone)]
pub struct AgentSettings {
    pub name: String,
    pub description: Option<String>,
    pub status: AgentStatus,
    pub system_prompt: String,
    pub model: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i64>,
    pub tools: Vec<String>,
    pub knowledge: bool,
}

/// A partial change; `None` keeps a value, `Some(None)` clears a nullable one.
#[derive(Debug, Default)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub status: Option<AgentStatus>,
    pub system_prompt: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<Option<f64>>,
    pub max_tokens: Option<Option<i64>>,
    pub tools: Option<Vec<String>>,
    pub knowledge: Option<bool>,
}

impl AgentSettings {
    /// Trims the texts and checks every field, naming each bad one in one 422: the model must be
    /// in the catalog (it may be unavailable in this deployment; turns check that), `max_tokens`
    /// within the model's output limit, tools from [`TOOL_NAMES`].
    pub fn check(mut self, catalog: &Catalog, max_prompt_chars: usize) -> Result<Self> {
        let mut errors = FieldErrors::default();
        self.name = self.name.trim().to_string();
        if self.name.is_empty() || self.name.chars().count() > MAX_NAME_CHARS {
            errors.push(FieldError::new(
                "name",
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        self.description = self
            .description
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty());
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
        {
            errors.push(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        if self.system_prompt.trim().is_empty() {
            errors.push(FieldError::new("system_prompt", "must not be empty"));
        } else if self.system_prompt.chars().count() > max_prompt_chars {
            errors.push(FieldError::new(
                "system_prompt",
                format!("must be at most {max_prompt_chars} characters"),
            ));
        }
        let model = catalog.get(&self.model);
        if model.is_none() {
            errors.push(FieldError::new(
                "model",
                format!("unknown model `{}`; see GET /api/v1/models", self.model),
            ));
        }
        if self
            .temperature
            .is_some_and(|t| !(0.0..=2.0).contains(&t) || t.is_nan())
        {
            errors.push(FieldError::new("temperature", "must be between 0 and 2"));
        }
        if let Some(n) = self.max_tokens {
            let max = model
                .map(|m| m.max_output_tokens as i64)
                .unwrap_or(i64::MAX);
            if n < 1 || n > max {
                errors.push(FieldError::new(
                    "max_tokens",
                    match model {
                        Some(m) => format!("must be between 1 and {max} for {}", m.id),
                        None => "must be at least 1".to_string(),
                    },
                ));
            }
        }
        let mut tools: Vec<String> = Vec::with_capacity(self.tools.len());
        for (i, tool) in self.tools.iter().enumerate() {
            let tool_server = crate::mcp::parse_tool_ref(tool);
            if let Some(Err(rule)) = tool_server {
                errors.push(FieldError::new(format!("tools[{i}]"), rule));
            } else if tool_server.is_none() && !TOOL_NAMES.contains(&tool.as_str()) {
                errors.push(FieldError::new(
                    format!("tools[{i}]"),
                    format!(
                        "unknown tool; one of {}, or mcp:<server> / mcp:<server>/<tool>",
                        TOOL_NAMES.join(", ")
                    ),
                ));
            } else if !tools.contains(tool) {
                tools.push(tool.clone());
            }
        }
        self.tools = tools;
        errors.finish()?;
        Ok(self)
    }

    fn from_agent(a: Agent) -> Self {
        AgentSettings {
            name: a.name,
            description: a.description,
            status: a.status,
            system_prompt: a.system_prompt,
            model: a.model,
            temperature: a.temperature,
            max_tokens: a.max_tokens,
            tools: a.tools,
            knowledge: a.knowledge,
        }
    }

    fn apply(mut self, patch: AgentPatch) -> Self {
        if let Some(v) = patch.name {
            self.name = v;
        }
        if let Some(v) = patch.description {
            self.description = v;
        }
        if let Some(v) = patch.status {
            self.status = v;
        }
        if let Some(v) = patch.system_prompt {
            self.system_prompt = v;
        }
        if let Some(v) = patch.model {
            self.model = v;
        }
        if let Some(v) = patch.temperature {
            self.temperature = v;
        }
        if let Some(v) = patch.max_tokens {
            self.max_tokens = v;
        }
        if let Some(v) = patch.tools {
            self.tools = v;
        }
        if let Some(v) = patch.knowledge {
            self.knowledge = v;
        }
        self
    }
}

/// Stores a checked agent; its `mcp:` tools must name servers the user has.
pub async fn create(conn: &Conn, user_id: UserId, s: &AgentSettings) -> Result<Agent> {
    crate::mcp::check_agent_tools(conn, user_id, &s.tools).await?;
    Ok(conn
        .insert_agent(NewAgent {
            user_id,
            name: &s.name,
            description: s.description.as_deref(),
            status: s.status,
            system_prompt: &s.system_prompt,
            model: &s.model,
            temperature: s.temperature,
            max_tokens: s.max_tokens,
            tools: &s.tools,
            knowledge: s.knowledge,
        })
        .await?)
}

/// The user's agent, or 404 (also for another user's).
pub async fn get(conn: &Conn, user_id: UserId, id: AgentId) -> Result<Agent> {
    conn.agent(id, user_id).await?.ok_or(Error::NotFound)
}

pub async fn list(
    conn: &Conn,
    user_id: UserId,
    page: Page<(String, String)>,
) -> Result<Paginated<Agent>> {
    let rows = conn.list_agents(user_id, page.after, page.limit).await?;
    Ok(Paginated::from_rows(rows, page.limit, |a| {
        (a.created_at.clone(), a.id.to_string())
    }))
}

/// Applies `patch` and checks the agent as it would become (so `max_tokens` is checked against the
/// new model), then stores it.
pub async fn update(
    conn: &Conn,
    catalog: &Catalog,
    max_prompt_chars: usize,
    user_id: UserId,
    id: AgentId,
    patch: AgentPatch,
) -> Result<Agent> {
    let current = get(conn, user_id, id).await?;
    // A server deleted since is left to the turns (they offer nothing for it) unless the tools change.
    let tools_changed = patch.tools.is_some();
    let s = AgentSettings::from_agent(current)
        .apply(patch)
        .check(catalog, max_prompt_chars)?;
    if tools_changed {
        crate::mcp::check_agent_tools(conn, user_id, &s.tools).await?;
    }
    conn.update_agent(
        id,
        user_id,
        AgentChanges {
            name: Some(&s.name),
            description: Some(s.description.as_deref()),
            status: Some(s.status),
            system_prompt: Some(&s.system_prompt),
            model: Some(&s.model),
            temperature: Some(s.temperature),
            max_tokens: Some(s.max_tokens),
            tools: Some(&s.tools),
            knowledge: Some(s.knowledge),
        },
    )
    .await?
    .ok_or(Error::NotFound)
}

pub async fn delete(conn: &Conn, user_id: UserId, id: AgentId) -> Result<()> {
    if conn.delete_agent(id, user_id).await? {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

/// The agent a new turn (or a conversation) is to use: the user's own and active, else a 422 on
/// `agent_id`. Deleted agents read as missing.
pub async fn usable(conn: &Conn, user_id: UserId, id: AgentId) -> Result<Agent> {
    let agent = conn
        .agent(id, user_id)
        .await?
        .ok_or_else(|| Error::invalid("agent_id", "no such agent"))?;
    if agent.status != AgentStatus::Active {
        return Err(Error::invalid(
            "agent_id",
            "the agent is inactive; activate it or choose another",
        ));
    }
    Ok(agent)
}
