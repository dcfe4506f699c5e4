//! Users' MCP tool servers (served by the agents function): register, list, delete, and a
//! server's tools as it lists them. Headers are taken, sealed and never answered back; only their
//! names are shown.

use std::collections::BTreeMap;

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{CurrentUser, IdPath};
use crate::{
    error::{Problem, Result},
    http::ApiJson,
    ids::McpServerId,
    mcp::{self, ServerInput},
    state::AppState,
    store::McpServer,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_server, list_servers))
        .routes(routes!(get_server, delete_server))
        .routes(routes!(server_tools))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct McpServerOut {
    #[schema(value_type = String)]
    id: McpServerId,
    /// How agents name it: `mcp:<name>` or `mcp:<name>/<tool>`.
    name: String,
    url: String,
    /// The names of the headers sent with every request; their values are never answered.
    header_names: Vec<String>,
    created_at: String,
}

impl From<McpServer> for McpServerOut {
    fn from(s: McpServer) -> Self {
        McpServerOut {
            id: s.id,
            name: s.name,
            url: s.url,
            header_names: s.header_names,
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateServer {
    /// 1 to 32 letters, digits, `-` or `_` (no `__`); unique among the user's servers.
    name: String,
    /// The server's Streamable HTTP endpoint: https to a public address (locally, loopback http
    /// too).
    url: String,
    /// Headers sent with every request (e.g. `Authorization`), kept encrypted (AES-256-GCM).
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ServerList {
    items: Vec<McpServerOut>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ToolOut {
    name: String,
    description: Option<String>,
    input_schema: serde_json::Value,
    /// What the model is offered (`<server>__<tool>`), or null when the name cannot be a model's
    /// tool name (longer than 64 characters, or characters other than letters, digits, `_`, `-`).
    model_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ServerTools {
    server: McpServerOut,
    tools: Vec<ToolOut>,
}

/// Registers a tool server. Nothing is sent to it until its tools are listed or called.
#[utoipa::path(post, path = "/api/v1/mcp-servers", tag = "mcp-servers", security(("bearer" = [])), request_body = CreateServer,
    responses((status = 201, body = McpServerOut), (status = 401, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_server(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateServer>,
) -> Result<(StatusCode, Json<McpServerOut>)> {
    let input = ServerInput {
        name: body.name,
        url: body.url,
        headers: body.headers,
    };
    let conn = state.store().conn().await?;
    let server = mcp::register(&conn, state.mcp(), user.id, input).await?;
    Ok((StatusCode::CREATED, Json(server.into())))
}

/// The user's tool servers, by name.
#[utoipa::path(get, path = "/api/v1/mcp-servers", tag = "mcp-servers", security(("bearer" = [])),
    responses((status = 200, body = ServerList), (status = 401, body = Problem)))]
async fn list_servers(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<ServerList>> {
    let conn = state.store().conn().await?;
    let items = mcp::list(&conn, user.id).await?;
    Ok(Json(ServerList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/mcp-servers/{id}", tag = "mcp-servers", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tool server id")),
    responses((status = 200, body = McpServerOut), (status = 404, body = Problem)))]
async fn get_server(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<McpServerId>,
) -> Result<Json<McpServerOut>> {
    let conn = state.store().conn().await?;
    Ok(Json(mcp::get(&conn, user.id, id).await?.into()))
}

/// Deletes a tool server. Agents that name it keep the entry and are offered nothing from it.
#[utoipa::path(delete, path = "/api/v1/mcp-servers/{id}", tag = "mcp-servers", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tool server id")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_server(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<McpServerId>,
) -> Result<StatusCode> {
    let conn = state.store().conn().await?;
    mcp::delete(&conn, state.mcp(), user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The server's tools (`tools/list`, reused by this instance for `MCP_TOOLS_TTL_SECONDS`). A server
/// that cannot be reached, is too slow, or answers badly is a 502 problem `tool-server-error`
/// naming what failed.
#[utoipa::path(get, path = "/api/v1/mcp-servers/{id}/tools", tag = "mcp-servers", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tool server id")),
    responses((status = 200, body = ServerTools), (status = 404, body = Problem), (status = 502, body = Problem)))]
async fn server_tools(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<McpServerId>,
) -> Result<Json<ServerTools>> {
    let conn = state.store().conn().await?;
    let (server, tools) = mcp::tools(&conn, state.mcp(), user.id, id).await?;
    let tools = tools
        .iter()
        .map(|t| ToolOut {
            name: t.name.clone(),
            description: t.description.clone(),
            input_schema: t.input_schema.clone(),
            model_name: mcp::model_name(&server.name, &t.name),
        })
        .collect();
    Ok(Json(ServerTools {
        server: server.into(),
        tools,
    }))
}
