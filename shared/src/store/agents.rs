//! Agents: a user's configured assistants.

use super::{col, collect, first, Conn, Row, StoreError, StoreResult};
use crate::{
    ids::{AgentId, UserId},
    kinds::AgentStatus,
};

#[derive(Debug, Clone)]
pub struct Agent {
    pub id: AgentId,
    pub user_id: UserId,
    pub name: String,
    pub description: Option<String>,
    pub status: AgentStatus,
    pub system_prompt: String,
    pub model: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i64>,
    pub tools: Vec<String>,
    pub knowledge: bool,
    pub created_at: String,
    pub updated_at: String,
}

pub struct NewAgent<'a> {
    pub user_id: UserId,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub status: AgentStatus,
    pub system_prompt: &'a str,
    pub model: &'a str,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i64>,
    pub tools: &'a [String],
    pub knowledge: bool,
}

/// A partial update; `None` leaves a column as it is, `Some(None)` clears a nullable one.
#[derive(Default)]
pub struct AgentChanges<'a> {
    pub name: Option<&'a str>,
    pub description: Option<Option<&'a str>>,
    pub status: Option<AgentStatus>,
    pub system_prompt: Option<&'a str>,
    pub model: Option<&'a str>,
    pub temperature: Option<Option<f64>>,
    pub max_tokens: Option<Option<i64>>,
    pub tools: Option<&'a [String]>,
    pub knowledge: Option<bool>,
}

const AGENT_COLUMNS: &str = "id, user_id, name, description, status, system_prompt, model, \
     temperature, max_tokens, tools, knowledge, created_at, updated_at";

fn agent_from_row(row: &Row) -> StoreResult<Agent> {
    let tools: String = col(row, 9, "agents.tools")?;
    Ok(Agent {
        id: col(row, 0, "agents.id")?,
        user_id: col(row, 1, "agents.user_id")?,
        name: col(row, 2, "agents.name")?,
        description: col(row, 3, "agents.description")?,
        status: col(row, 4, "agents.status")?,
        system_prompt: col(row, 5, "agents.system_prompt")?,
        model: col(row, 6, "agents.model")?,
        temperature: col(row, 7, "agents.temperature")?,
        max_tokens: col(row, 8, "agents.max_tokens")?,
        tools: serde_json::from_str(&tools).map_err(|_| StoreError::Corrupt("agents.tools"))?,
        knowledge: col(row, 10, "agents.knowledge")?,
        created_at: col(row, 11, "agents.created_at")?,
        updated_at: col(row, 12, "agents.updated_at")?,
    })
}

fn tools_json(tools: &[String]) -> String {
    serde_json::to_string(tools).unwrap_or_else(|_| "[]".into())
}

/// A nullable column's update: whether to set it, and its new value.
fn set<T: Into<libsql::Value>>(change: Option<Option<T>>) -> (bool, libsql::Value) {
    match change {
        None => (false, libsql::Value::Null),
        Some(v) => (true, v.map(Into::into).unwrap_or(libsql::Value::Null)),
    }
}

impl Conn {
    pub async fn insert_agent(&self, new: NewAgent<'_>) -> StoreResult<Agent> {
        let rows = self
            .query(
                &format!(
                    "INSERT INTO agents (id, user_id, name, description, status, system_prompt, model,
                         temperature, max_tokens, tools, knowledge, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)
                     RETURNING {AGENT_COLUMNS}"
                ),
                libsql::params![
                    AgentId::new(),
                    new.user_id,
                    new.name,
                    new.description,
                    new.status.as_str(),
                    new.system_prompt,
                    new.model,
                    new.temperature,
                    new.max_tokens,
                    tools_json(new.tools),
                    new.knowledge as i64,
                    crate::ids::now()
                ],
            )
            .await?;
        first(rows, agent_from_row)?.ok_or(StoreError::Corrupt("agents"))
    }

    /// The agent if it belongs to `user_id`; another user's is simply not found.
    pub async fn agent(&self, id: AgentId, user_id: UserId) -> StoreResult<Option<Agent>> {
        let rows = self
            .query(
                &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?1 AND user_id = ?2"),
                libsql::params![id, user_id],
            )
            .await?;
        first(rows, agent_from_row)
    }

    /// Newest first; `after` is the (created_at, id) of the previous page's last agent.
    pub async fn list_agents(
        &self,
        user_id: UserId,
        after: Option<(String, String)>,
        limit: u32,
    ) -> StoreResult<Vec<Agent>> {
        let (after_at, after_id) = after.unzip();
        let rows = self
            .query(
                &format!(
                    "SELECT {AGENT_COLUMNS} FROM agents
                     WHERE user_id = ?1 AND (?2 IS NULL OR (created_at, id) < (?2, ?3))
                     ORDER BY created_at DESC, id DESC LIMIT ?4"
                ),
                libsql::params![user_id, after_at, after_id, limit as i64 + 1],
            )
            .await?;
        collect(rows, agent_from_row)
    }

    pub async fn update_agent(
        &self,
        id: AgentId,
        user_id: UserId,
        changes: AgentChanges<'_>,
    ) -> StoreResult<Option<Agent>> {
        let (set_description, description) = set(changes.description);
        let (set_temperature, temperature) = set(changes.temperature);
        let (set_max_tokens, max_tokens) = set(changes.max_tokens);
        let rows = self
            .query(
                &format!(
                    "UPDATE agents SET name = COALESCE(?3, name),
                         description = CASE WHEN ?4 THEN ?5 ELSE description END,
                         status = COALESCE(?6, status),
                         system_prompt = COALESCE(?7, system_prompt),
                         model = COALESCE(?8, model),
                         temperature = CASE WHEN ?9 THEN ?10 ELSE temperature END,
                         max_tokens = CASE WHEN ?11 THEN ?12 ELSE max_tokens END,
                         tools = COALESCE(?13, tools),
                         knowledge = COALESCE(?14, knowledge),
                         updated_at = ?15
                     WHERE id = ?1 AND user_id = ?2 RETURNING {AGENT_COLUMNS}"
                ),
                libsql::params![
                    id,
                    user_id,
                    changes.name,
                    set_description,
                    description,
                    changes.status.map(AgentStatus::as_str),
                    changes.system_prompt,
                    changes.model,
                    set_temperature,
                    temperature,
                    set_max_tokens,
                    max_tokens,
                    changes.tools.map(tools_json),
                    changes.knowledge.map(i64::from),
                    crate::ids::now()
                ],
            )
            .await?;
        first(rows, agent_from_row)
    }

    /// Deletes the agent; conversations and answers keep its id as history.
    pub async fn delete_agent(&self, id: AgentId, user_id: UserId) -> StoreResult<bool> {
        let n = self
            .execute(
                "DELETE FROM agents WHERE id = ?1 AND user_id = ?2",
                libsql::params![id, user_id],
            )
            .await?;
        Ok(n == 1)
    }
}
