//! The tools one turn offers from the user's servers, and their calls. Each server's list and
//! session come from the hub (kept per instance, per server).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{model_name, parse_tool_ref, Hub, McpError, RemoteTool};
use crate::{
    error::Result,
    ids::UserId,
    providers::{ToolCall, ToolOutput, ToolSpec},
    store::{Conn, McpServer},
};

/// The longest input schema offered to a model (a larger one leaves its tool out).
const MAX_SCHEMA_BYTES: usize = 16 * 1024;
const MAX_DESCRIPTION_CHARS: usize = 1024;

/// The servers' tools offered in a turn, by the name the model sees.
#[derive(Default)]
pub struct McpTools {
    hub: Option<Arc<Hub>>,
    offered: HashMap<String, (Arc<McpServer>, String)>,
}

impl McpTools {
    /// The tools `entries` (an agent's list) name from the user's servers, with their specs. A
    /// server that cannot be listed offers nothing this turn (logged by id and cause, never its
    /// headers); an entry naming a deleted server or an unknown tool offers nothing.
    pub async fn for_agent(
        conn: &Conn,
        hub: &Arc<Hub>,
        user_id: UserId,
        entries: &[String],
    ) -> Result<(McpTools, Vec<ToolSpec>)> {
        let wanted: Vec<(&str, Option<&str>)> = entries
            .iter()
            .filter_map(|e| parse_tool_ref(e)?.ok())
            .collect();
        let mut tools = McpTools {
            hub: Some(hub.clone()),
            ..McpTools::default()
        };
        if wanted.is_empty() {
            return Ok((tools, Vec::new()));
        }
        let servers: Vec<Arc<McpServer>> = conn
            .list_mcp_servers(user_id)
            .await?
            .into_iter()
            .filter(|s| wanted.iter().any(|(name, _)| *name == s.name))
            .map(Arc::new)
            .collect();
        let listed = futures_util::future::join_all(servers.iter().map(|s| hub.tools(s))).await;
        let mut specs = Vec::new();
        for (server, listed) in servers.iter().zip(listed) {
            let list = match listed {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(server_id = %server.id, cause = e.kind(), "a tool server's tools could not be listed; not offered this turn");
                    continue;
                }
            };
            let all = wanted
                .iter()
                .any(|(name, tool)| *name == server.name && tool.is_none());
            for tool in list.iter() {
                let named = all
                    || wanted
                        .iter()
                        .any(|(name, t)| *name == server.name && *t == Some(tool.name.as_str()));
                if !named {
                    continue;
                }
                let Some(spec) = spec(&server.name, tool) else {
                    continue;
                };
                tools
                    .offered
                    .insert(spec.name.clone(), (server.clone(), tool.name.clone()));
                specs.push(spec);
            }
        }
        Ok((tools, specs))
    }

    pub fn offers(&self, name: &str) -> bool {
        self.offered.contains_key(name)
    }

    /// Runs an offered call against its server within `deadline` (and the per-call timeout).
    /// Every failure is an error output the model reads.
    pub async fn call(&self, call: &ToolCall, deadline: Instant) -> ToolOutput {
        let output = |content: String, is_error: bool| ToolOutput {
            call_id: call.id.clone(),
            content,
            is_error,
        };
        let (Some(hub), Some((server, tool))) = (&self.hub, self.offered.get(&call.name)) else {
            return output(format!("there is no tool named {:?}", call.name), true);
        };
        let mut limits = hub.limits();
        limits.timeout = limits
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(1));
        let session = match hub.session(server, limits).await {
            Ok((session, _)) => session,
            Err(e) => return failed(server, e, output),
        };
        match session.call(tool, call.input.clone(), limits).await {
            Ok((text, is_error)) => output(text, is_error),
            Err(e) => {
                // Not retried (a call may have run); the next one opens a new session.
                if matches!(e, McpError::Failed(_)) {
                    hub.drop_session(server.id);
                }
                failed(server, e, output)
            }
        }
    }
}

fn failed(
    server: &McpServer,
    e: McpError,
    output: impl Fn(String, bool) -> ToolOutput,
) -> ToolOutput {
    tracing::warn!(server_id = %server.id, cause = e.kind(), "a tool server call failed");
    output(e.to_string(), true)
}

/// What the model is offered for `tool`: its name when it fits a model's tool name, its
/// description, and its input schema when that is an object schema of a sane size.
fn spec(server: &str, tool: &RemoteTool) -> Option<ToolSpec> {
    let name = model_name(server, &tool.name)?;
    let mut schema = tool.input_schema.clone();
    let object = schema.as_object_mut()?;
    match object.get("type") {
        None => {
            object.insert("type".into(), "object".into());
        }
        Some(t) if t == "object" => {}
        Some(_) => return None,
    }
    if serde_json::to_vec(&schema).map_or(true, |b| b.len() > MAX_SCHEMA_BYTES) {
        return None;
    }
    let description = tool
        .description
        .as_deref()
        .unwrap_or("")
        .chars()
        .take(MAX_DESCRIPTION_CHARS)
        .collect::<String>();
    Some(ToolSpec {
        name,
        description: format!("{description} (tool server {server})")
            .trim()
            .to_string(),
        input_schema: schema,
    })
}
