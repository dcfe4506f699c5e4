//! The tools a turn offers its model. The coding agent (a turn in a conversation tied to a project,
//! with a model that can call tools) sees the project's file list and may list, read, search, write and delete
//! its files. Every path goes through [`ProjectPath`] and every write through the file routes' own
//! rules ([`projects::write_file`]); a refused call becomes an error the model reads, never a
//! write. A configured agent (`agents`) that names `search_knowledge` also searches the user's
//! knowledge, and one that names `search_history` the user's earlier messages, with or without a
//! project; one that names its user's tool servers calls them ([`crate::mcp::McpTools`]).

use serde_json::{json, Value};

use crate::{
    blobs::BlobStore,
    ids::{ProjectId, UserId},
    knowledge,
    projects::{self, ProjectLimits, ProjectPath},
    providers::{ToolCall, ToolOutput, ToolSpec},
    quotas::Budget,
    store::{Conn, FileChange},
};

/// Paths listed in the system prompt; the model lists or searches for the rest.
const PROMPT_PATHS: usize = 200;
/// The longest tool output sent back to the model, in characters.
const MAX_OUTPUT_CHARS: usize = 64 * 1024;
/// Matches a search returns at most.
const MAX_MATCHES: usize = 50;
/// Chunks a knowledge search returns to the model.
const KNOWLEDGE_RESULTS: u32 = 5;
/// The knowledge tool's name (offered only when an agent names it).
pub const SEARCH_KNOWLEDGE: &str = "search_knowledge";
/// The history tool's name (offered only when an agent names it).
pub const SEARCH_HISTORY: &str = "search_history";
/// Messages a history search returns to the model.
const HISTORY_RESULTS: u32 = 5;

/// Whether a tool works without a project (and is offered only when an agent names it).
pub fn is_agent_only(name: &str) -> bool {
    name == SEARCH_KNOWLEDGE || name == SEARCH_HISTORY
}

/// What the agent works on, and its limits.
pub struct Workspace<'a> {
    pub conn: &'a Conn,
    pub blobs: &'a BlobStore,
    pub limits: ProjectLimits,
    /// Whose turn it is; a knowledge search's query embedding is reserved against it.
    pub budget: Budget,
    /// None when the turn has only the knowledge tool.
    pub project_id: Option<ProjectId>,
    pub embedding: knowledge::Embedding<'a>,
    /// The tools offered from the user's tool servers.
    pub mcp: &'a crate::mcp::McpTools,
    /// When the turn's budget ends; a server's call ends by then too.
    pub deadline: tokio::time::Instant,
}

pub fn specs() -> Vec<ToolSpec> {
    let path = json!({"type": "string", "description": "A relative path inside the project, e.g. src/main.rs"});
    vec![
        ToolSpec {
            name: "list_files".into(),
            description:
                "List the project's files (path and size), optionally under a path prefix.".into(),
            input_schema: json!({"type": "object", "properties": {"prefix": {"type": "string"}}}),
        },
        ToolSpec {
            name: "read_file".into(),
            description: "Read a file of the project.".into(),
            input_schema: json!({"type": "object", "properties": {"path": path}, "required": ["path"]}),
        },
        ToolSpec {
            name: "write_file".into(),
            description: "Create or replace a file of the project with the given content.".into(),
            input_schema: json!({"type": "object", "properties": {"path": path, "content": {"type": "string"}}, "required": ["path", "content"]}),
        },
        ToolSpec {
            name: "delete_file".into(),
            description: "Delete a file of the project.".into(),
            input_schema: json!({"type": "object", "properties": {"path": path}, "required": ["path"]}),
        },
        ToolSpec {
            name: "search_files".into(),
            description:
                "Find lines containing a text (case-insensitive) in the project's text files.".into(),
            input_schema: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        },
        ToolSpec {
            name: SEARCH_KNOWLEDGE.into(),
            description: "Search the user's knowledge documents; returns the best passages with their document title and heading.".into(),
            input_schema: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        },
        ToolSpec {
            name: SEARCH_HISTORY.into(),
            description: "Search the user's earlier messages in all their conversations (every word must appear); returns the best matches with their conversation's title and date.".into(),
            input_schema: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        },
    ]
}

/// The system prompt's addition: what the project holds and how to change it.
pub async fn project_view(
    conn: &Conn,
    user_id: UserId,
    project_id: ProjectId,
) -> crate::error::Result<String> {
    let project = projects::get(conn, user_id, project_id).await?;
    let paths = conn.project_paths(project_id).await?;
    let mut view = format!(
        "You are working in the project \"{}\" ({} files). Use the tools to list, read, search, \
         write and delete its files; write whole files. Files:\n",
        project.name, project.file_count
    );
    for (path, size) in paths.iter().take(PROMPT_PATHS) {
        view.push_str(&format!("- {path} ({size} bytes)\n"));
    }
    if paths.len() > PROMPT_PATHS {
        view.push_str(&format!(
            "… and {} more (list_files shows them)\n",
            paths.len() - PROMPT_PATHS
        ));
    }
    Ok(view)
}

fn text_arg<'v>(input: &'v Value, name: &str) -> Result<&'v str, String> {
    input[name]
        .as_str()
        .ok_or_else(|| format!("the input needs a string `{name}`"))
}

fn path_arg(input: &Value) -> Result<ProjectPath, String> {
    let raw = text_arg(input, "path")?;
    ProjectPath::parse(raw).map_err(|rule| format!("the path {raw:?} {rule}"))
}

fn cut(mut text: String) -> String {
    if text.chars().count() > MAX_OUTPUT_CHARS {
        text = text.chars().take(MAX_OUTPUT_CHARS).collect();
        text.push_str("\n… (cut)");
    }
    text
}

/// The answer to a call of a tool the turn did not offer: an error the model reads.
pub fn not_offered(call: &ToolCall) -> ToolOutput {
    let refusal = format!("the tool `{}` is not offered in this turn", call.name);
    output(call, Err(refusal)).0
}

/// Runs one call. Refusals (bad input, a path that breaks a rule, a missing file, a limit) are
/// outputs marked as errors for the model; store and blob failures end the turn.
pub async fn run_tool(
    ws: &Workspace<'_>,
    call: &ToolCall,
) -> crate::error::Result<(ToolOutput, Option<FileChange>)> {
    use crate::error::Error;
    if ws.mcp.offers(&call.name) {
        let mut output = ws.mcp.call(call, ws.deadline.into_std()).await;
        output.content = cut(output.content);
        return Ok((output, None));
    }
    if call.name == SEARCH_KNOWLEDGE {
        let outcome = match text_arg(&call.input, "query") {
            Err(e) => Err(e),
            Ok(query) => {
                match knowledge::search(
                    ws.conn,
                    ws.embedding,
                    &ws.budget,
                    query,
                    KNOWLEDGE_RESULTS,
                    "query",
                )
                .await
                {
                    Ok(hits) if hits.is_empty() => Ok("no passages found".to_string()),
                    Ok(hits) => Ok(hits
                        .iter()
                        .enumerate()
                        .map(|(i, h)| {
                            format!(
                                "[{}] {}{} (document {}, chunk {})\n{}",
                                i + 1,
                                h.chunk.title,
                                if h.chunk.heading.is_empty() {
                                    String::new()
                                } else {
                                    format!(" › {}", h.chunk.heading)
                                },
                                h.chunk.document_id,
                                h.chunk.ord,
                                h.chunk.content
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n\n")),
                    Err(Error::Validation(_)) => Err("the query has no word to search for".into()),
                    Err(e) => return Err(e),
                }
            }
        };
        return Ok(output(call, outcome.map(|text| (text, None))));
    }
    if call.name == SEARCH_HISTORY {
        let outcome = match text_arg(&call.input, "query").and_then(|q| {
            crate::history::HistoryQuery::parse(q).map_err(|e| format!("the query {}", e.message))
        }) {
            Err(e) => Err(e),
            Ok(query) => {
                let page = crate::pagination::Page {
                    limit: HISTORY_RESULTS,
                    after: None,
                };
                let found =
                    crate::history::search(ws.conn, ws.budget.user_id, &query, page).await?;
                if found.items.is_empty() {
                    Ok("no messages found".to_string())
                } else {
                    Ok(cut(found
                        .items
                        .iter()
                        .map(|h| {
                            format!(
                                "- {} message in \"{}\" ({}): {}",
                                h.role.as_str(),
                                h.conversation_title,
                                h.created_at,
                                h.snippet
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")))
                }
            }
        };
        return Ok(output(call, outcome.map(|text| (text, None))));
    }
    let Some(project_id) = ws.project_id else {
        return Ok(output(
            call,
            Err(format!(
                "{:?} needs a project, and this conversation has none",
                call.name
            )),
        ));
    };
    let outcome: Result<(String, Option<FileChange>), String> = match call.name.as_str() {
        "list_files" => {
            let prefix = call.input["prefix"].as_str().unwrap_or("");
            let listed: Vec<String> = ws
                .conn
                .project_paths(project_id)
                .await?
                .into_iter()
                .filter(|(p, _)| p.starts_with(prefix))
                .map(|(p, size)| format!("{p} ({size} bytes)"))
                .collect();
            Ok((
                format!("{} files\n{}", listed.len(), listed.join("\n")),
                None,
            ))
        }
        "read_file" => match path_arg(&call.input) {
            Err(e) => Err(e),
            Ok(path) => {
                match projects::read_file(ws.conn, ws.blobs, ws.budget.user_id, project_id, &path)
                    .await
                {
                    Ok(content) => Ok(match content.file.text {
                        Some(text) => (text, None),
                        None => (
                            format!(
                                "{} is a binary file of {} bytes",
                                path.as_str(),
                                content.file.size
                            ),
                            None,
                        ),
                    }),
                    Err(Error::NotFound) => Err(format!("{} does not exist", path.as_str())),
                    Err(e) => return Err(e),
                }
            }
        },
        "write_file" => match (path_arg(&call.input), text_arg(&call.input, "content")) {
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(path), Ok(content)) => {
                let written = projects::write_file(
                    ws.conn,
                    ws.blobs,
                    &ws.limits,
                    ws.budget.user_id,
                    project_id,
                    &path,
                    bytes::Bytes::copy_from_slice(content.as_bytes()),
                )
                .await;
                match written {
                    Ok(projects::Written {
                        file,
                        replaced_size,
                    }) => Ok((
                        format!("wrote {} ({} bytes)", file.path, file.size),
                        Some(FileChange {
                            path: file.path,
                            action: match replaced_size {
                                Some(_) => "updated",
                                None => "created",
                            }
                            .into(),
                            before_size: replaced_size,
                            after_size: Some(file.size),
                            sha256: Some(file.sha256),
                        }),
                    )),
                    Err(
                        e @ (Error::PayloadTooLarge { .. }
                        | Error::Conflict(_)
                        | Error::Validation(_)),
                    ) => Err(e.to_string()),
                    Err(e) => return Err(e),
                }
            }
        },
        "delete_file" => match path_arg(&call.input) {
            Err(e) => Err(e),
            Ok(path) => {
                match projects::delete_file(ws.conn, ws.blobs, ws.budget.user_id, project_id, &path)
                    .await
                {
                    Ok(gone) => Ok((
                        format!("deleted {}", gone.path),
                        Some(FileChange {
                            path: gone.path,
                            action: "deleted".into(),
                            before_size: Some(gone.size),
                            after_size: None,
                            sha256: None,
                        }),
                    )),
                    Err(Error::NotFound) => Err(format!("{} does not exist", path.as_str())),
                    Err(e) => return Err(e),
                }
            }
        },
        "search_files" => match text_arg(&call.input, "query") {
            Err(e) => Err(e),
            Ok(query) if query.trim().is_empty() => Err("the query is empty".into()),
            Ok(query) => {
                let needle = query.to_lowercase();
                let mut matches = Vec::new();
                let files = ws
                    .conn
                    .project_text_files_containing(project_id, query, MAX_MATCHES as u32)
                    .await?;
                'files: for file in files {
                    let Some(text) = file.text else { continue };
                    for (n, line) in text.lines().enumerate() {
                        if line.to_lowercase().contains(&needle) {
                            matches.push(format!("{}:{}: {}", file.path, n + 1, line.trim()));
                            if matches.len() >= MAX_MATCHES {
                                break 'files;
                            }
                        }
                    }
                }
                Ok((
                    format!("{} matches\n{}", matches.len(), matches.join("\n")),
                    None,
                ))
            }
        },
        other => Err(format!("there is no tool named {other:?}")),
    };
    Ok(output(call, outcome))
}

fn output(
    call: &ToolCall,
    outcome: Result<(String, Option<FileChange>), String>,
) -> (ToolOutput, Option<FileChange>) {
    match outcome {
        Ok((content, change)) => (
            ToolOutput {
                call_id: call.id.clone(),
                content: cut(content),
                is_error: false,
            },
            change,
        ),
        Err(message) => (
            ToolOutput {
                call_id: call.id.clone(),
                content: message,
                is_error: true,
            },
            None,
        ),
    }
}
