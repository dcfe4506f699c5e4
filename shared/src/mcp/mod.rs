//! Users' MCP tool servers (Streamable HTTP): registering them (their headers sealed at rest),
//! listing their tools, and the tools a turn offers from them. A server is reached only through
//! this process's [`Hub`], whose HTTP client keeps to the [`address`] rules.
//!
//! An agent names `mcp:<server>` (all its tools) or `mcp:<server>/<tool>`; the model sees
//! `<server>__<tool>`. Server names hold no `__` and do not end with `_`, so a model's name splits
//! at its first `__` into exactly one server and tool.

pub mod address;
mod client;
mod hub;
mod turn;

use std::collections::BTreeMap;

pub use client::{CallLimits, McpError};
pub use hub::Hub;
pub use turn::McpTools;

use crate::{
    error::{Error, FieldError, FieldErrors, Result},
    ids::{McpServerId, UserId},
    store::{Conn, McpServer, NewMcpServer},
};

/// What an agent's `tools` entry starts with to name a tool server.
pub const TOOL_PREFIX: &str = "mcp:";
/// Between the server's and the tool's name in what the model sees.
pub const SEPARATOR: &str = "__";
const MAX_NAME_CHARS: usize = 32;
const MAX_HEADERS: usize = 16;
const MAX_HEADER_VALUE_BYTES: usize = 4096;
/// Headers the transport sets itself, or that would change how the request travels.
const RESERVED_HEADERS: [&str; 14] = [
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "upgrade",
    "expect",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// A tool as its server lists it.
#[derive(Debug, Clone)]
pub struct RemoteTool {
    pub name: String,
    pub description: Option<String>,
    pub input_schema: serde_json::Value,
}

/// A server's name as agents name it: 1 to 32 letters, digits, `-` and `_`, without `__` and not
/// starting or ending with `_`.
pub fn check_server_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.contains(SEPARATOR)
        && !name.starts_with('_')
        && !name.ends_with('_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be 1 to {MAX_NAME_CHARS} letters, digits, `-` or `_` (no `__`, not starting or ending with `_`)"
        ))
    }
}

/// An agent's `mcp:<server>` or `mcp:<server>/<tool>` entry: `None` for any other tool name, else
/// the server and the tool (none for all of its tools), or what is wrong with it.
pub fn parse_tool_ref(entry: &str) -> Option<std::result::Result<(&str, Option<&str>), String>> {
    let rest = entry.strip_prefix(TOOL_PREFIX)?;
    let (server, tool) = match rest.split_once('/') {
        Some((s, t)) => (s, Some(t)),
        None => (rest, None),
    };
    Some(
        check_server_name(server)
            .map_err(|rule| format!("the server name {rule}"))
            .and_then(|()| match tool {
                Some(t) if t.is_empty() || t.len() > 64 || t.chars().any(char::is_control) => {
                    Err("the tool name must be 1 to 64 characters".into())
                }
                _ => Ok((server, tool)),
            }),
    )
}

/// The name the model sees for `tool` of `server`, when it fits what providers take
/// (`^[a-zA-Z0-9_-]{1,64}$`).
pub fn model_name(server: &str, tool: &str) -> Option<String> {
    let name = format!("{server}{SEPARATOR}{tool}");
    (name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    .then_some(name)
}

/// A server to register, as the client sent it.
#[derive(Debug)]
pub struct ServerInput {
    pub name: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

/// Checks every field, naming each bad one in one 422: the name, the URL (the [`address`] rules,
/// and in the lambda profile a name that must resolve to public addresses only), the headers.
async fn check_input(
    input: ServerInput,
    rules: address::AddressRules,
) -> Result<(String, String, Vec<(http::HeaderName, http::HeaderValue)>)> {
    let mut errors = FieldErrors::default();
    let name = input.name.trim().to_string();
    if let Err(rule) = check_server_name(&name) {
        errors.push(FieldError::new("name", rule));
    }
    let url = match address::check_url(&input.url, rules) {
        Ok(url) => Some(url),
        Err(rule) => {
            errors.push(FieldError::new("url", rule));
            None
        }
    };
    if let Some(url) = &url {
        if let Err(rule) = address::check_resolves(url, rules).await {
            errors.push(FieldError::new("url", rule));
        }
    }
    if input.headers.len() > MAX_HEADERS {
        errors.push(FieldError::new(
            "headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut headers = Vec::with_capacity(input.headers.len());
    for (key, value) in &input.headers {
        let field = format!("headers.{key}");
        let lower = key.to_ascii_lowercase();
        let Ok(header) = http::HeaderName::from_bytes(lower.as_bytes()) else {
            errors.push(FieldError::new(field, "is not a header name"));
            continue;
        };
        if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
            errors.push(FieldError::new(field, "is set by the transport itself"));
            continue;
        }
        if value.len() > MAX_HEADER_VALUE_BYTES {
            errors.push(FieldError::new(
                field,
                format!("must be at most {MAX_HEADER_VALUE_BYTES} bytes"),
            ));
            continue;
        }
        match http::HeaderValue::from_str(value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                headers.push((header, v));
            }
            Err(_) => errors.push(FieldError::new(
                field,
                "must be visible ASCII (no line breaks)",
            )),
        }
    }
    errors.finish()?;
    Ok((name, url.map(String::from).unwrap_or_default(), headers))
}

/// Registers a server for `user_id`: checked, its headers sealed, stored (a name taken → 409 on
/// `name`, past `MAX_MCP_SERVERS_PER_USER` → 409). Nothing is sent to the server.
pub async fn register(
    conn: &Conn,
    hub: &Hub,
    user_id: UserId,
    input: ServerInput,
) -> Result<McpServer> {
    let (name, url, headers) = check_input(input, hub.rules()).await?;
    let id = McpServerId::new();
    let header_names: Vec<String> = headers.iter().map(|(n, _)| n.to_string()).collect();
    let sealed = if headers.is_empty() {
        None
    } else {
        Some(hub.seal_headers(id, user_id, &headers).await?)
    };
    let stored = conn
        .insert_mcp_server(
            NewMcpServer {
                id,
                user_id,
                name: &name,
                url: &url,
                header_names: &header_names,
                headers_sealed: sealed.as_deref(),
            },
            hub.max_servers(),
        )
        .await;
    match stored {
        Err(e) if e.is_unique("mcp_servers.user_id, mcp_servers.name") => Err(Error::Taken(
            FieldError::new("name", "you already have a tool server of this name"),
        )),
        other => Ok(other?),
    }
}

pub async fn list(conn: &Conn, user_id: UserId) -> Result<Vec<McpServer>> {
    Ok(conn.list_mcp_servers(user_id).await?)
}

/// The user's server, or 404 (also for another user's).
pub async fn get(conn: &Conn, user_id: UserId, id: McpServerId) -> Result<McpServer> {
    conn.mcp_server(id, user_id).await?.ok_or(Error::NotFound)
}

pub async fn delete(conn: &Conn, hub: &Hub, user_id: UserId, id: McpServerId) -> Result<()> {
    if conn.delete_mcp_server(id, user_id).await? {
        hub.forget(id);
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

/// The server's tools as it lists them now (or as this instance listed them within the TTL); a
/// server that fails answers [`Error::ToolServer`].
pub async fn tools(
    conn: &Conn,
    hub: &Hub,
    user_id: UserId,
    id: McpServerId,
) -> Result<(McpServer, std::sync::Arc<Vec<RemoteTool>>)> {
    let server = get(conn, user_id, id).await?;
    match hub.tools(&server).await {
        Ok(tools) => Ok((server, tools)),
        Err(e) => Err(Error::ToolServer(e.to_string())),
    }
}

/// Checks that every `mcp:` entry of an agent's tools names one of the user's servers (one read,
/// only when there is such an entry); each missing one is a 422 on its `tools[i]`.
pub async fn check_agent_tools(conn: &Conn, user_id: UserId, tools: &[String]) -> Result<()> {
    let named: Vec<(usize, &str)> = tools
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match parse_tool_ref(t) {
            Some(Ok((server, _))) => Some((i, server)),
            _ => None,
        })
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let servers = conn.list_mcp_servers(user_id).await?;
    let mut errors = FieldErrors::default();
    for (i, name) in named {
        if !servers.iter().any(|s| s.name == name) {
            errors.push(FieldError::new(
                format!("tools[{i}]"),
                format!("you have no tool server named `{name}`; see GET /api/v1/mcp-servers"),
            ));
        }
    }
    errors.finish()
}
