use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{CurrentUser, IdPath};
use crate::{
    agents::{self, AgentPatch, AgentSettings},
    error::{Problem, Result},
    function::{Function, Limits, Needs, Transport},
    http::{ApiJson, ApiQuery},
    ids::AgentId,
    kinds::AgentStatus,
    pagination::{PageQuery, Paginated},
    state::AppState,
    store::Agent,
};

pub const FUNCTION: Function = Function {
    name: "agents",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
    needs: Needs::Store,
};

/// Agents CRUD, and the tool servers their agents call.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_agent, list_agents))
        .routes(routes!(get_agent, patch_agent, delete_agent))
        .merge(super::mcp_servers::routes())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentOut {
    #[schema(value_type = String)]
    id: AgentId,
    name: String,
    description: Option<String>,
    status: AgentStatus,
    system_prompt: String,
    model: String,
    temperature: Option<f64>,
    max_tokens: Option<i64>,
    tools: Vec<String>,
    knowledge: bool,
    created_at: String,
    updated_at: String,
}

impl From<Agent> for AgentOut {
    fn from(a: Agent) -> Self {
        AgentOut {
            id: a.id,
            name: a.name,
            description: a.description,
            status: a.status,
            system_prompt: a.system_prompt,
            model: a.model,
            temperature: a.temperature,
            max_tokens: a.max_tokens,
            tools: a.tools,
            knowledge: a.knowledge,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateAgent {
    name: String,
    description: Option<String>,
    /// `active` (default) or `inactive` (refuses new turns).
    status: Option<AgentStatus>,
    system_prompt: String,
    /// A catalog model id.
    model: String,
    /// 0 to 2.
    temperature: Option<f64>,
    /// 1 to the model's output limit.
    max_tokens: Option<i64>,
    /// Tools the agent may call: `list_files`, `read_file`, `write_file`, `delete_file`,
    /// `search_files` (on a conversation's project), `search_knowledge`, `search_history`, and the
    /// user's tool servers' as `mcp:<server>` (all its tools) or `mcp:<server>/<tool>`.
    tools: Option<Vec<String>>,
    /// Retrieve from the user's knowledge base before answering.
    knowledge: Option<bool>,
}

impl From<CreateAgent> for AgentSettings {
    fn from(b: CreateAgent) -> Self {
        AgentSettings {
            name: b.name,
            description: b.description,
            status: b.status.unwrap_or(AgentStatus::Active),
            system_prompt: b.system_prompt,
            model: b.model,
            temperature: b.temperature,
            max_tokens: b.max_tokens,
            tools: b.tools.unwrap_or_default(),
            knowledge: b.knowledge.unwrap_or(false),
        }
    }
}

/// Every field optional; `null` clears `description`, `temperature` and `max_tokens`.
#[derive(Debug, Deserialize, ToSchema)]
struct PatchAgent {
    name: Option<String>,
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    status: Option<AgentStatus>,
    system_prompt: Option<String>,
    model: Option<String>,
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<f64>)]
    temperature: Option<Option<f64>>,
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<i64>)]
    max_tokens: Option<Option<i64>>,
    tools: Option<Vec<String>>,
    knowledge: Option<bool>,
}

impl From<PatchAgent> for AgentPatch {
    fn from(b: PatchAgent) -> Self {
        AgentPatch {
            name: b.name,
            description: b.description,
            status: b.status,
            system_prompt: b.system_prompt,
            model: b.model,
            temperature: b.temperature,
            max_tokens: b.max_tokens,
            tools: b.tools,
            knowledge: b.knowledge,
        }
    }
}

type AgentPage = Paginated<AgentOut>;

/// Creates an agent.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", security(("bearer" = [])), request_body = CreateAgent,
    responses((status = 201, body = AgentOut), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn create_agent(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateAgent>,
) -> Result<(StatusCode, Json<AgentOut>)> {
    let settings = AgentSettings::from(body).check(
        &state.catalog(),
        state.config().chat.max_system_prompt_chars,
    )?;
    let conn = state.store().conn().await?;
    let agent = agents::create(&conn, user.id, &settings).await?;
    Ok((StatusCode::CREATED, Json(agent.into())))
}

/// The user's agents, newest first.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = AgentPage), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn list_agents(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<AgentPage>> {
    let page = query.parse()?;
    let conn = state.store().conn().await?;
    Ok(Json(
        agents::list(&conn, user.id, page).await?.map(Into::into),
    ))
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", security(("bearer" = [])),
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = AgentOut), (status = 404, body = Problem)))]
async fn get_agent(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<AgentId>,
) -> Result<Json<AgentOut>> {
    let conn = state.store().conn().await?;
    Ok(Json(agents::get(&conn, user.id, id).await?.into()))
}

/// Changes an agent; the result is checked whole (e.g. `max_tokens` against a new `model`).
#[utoipa::path(patch, path = "/api/v1/agents/{id}", tag = "agents", security(("bearer" = [])), request_body = PatchAgent,
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = AgentOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn patch_agent(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<AgentId>,
    ApiJson(body): ApiJson<PatchAgent>,
) -> Result<Json<AgentOut>> {
    let conn = state.store().conn().await?;
    let agent = agents::update(
        &conn,
        &state.catalog(),
        state.config().chat.max_system_prompt_chars,
        user.id,
        id,
        body.into(),
    )
    .await?;
    Ok(Json(agent.into()))
}

/// Deletes an agent. Conversations that used it keep their history; new turns on them must name
/// another agent or clear it.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents", security(("bearer" = [])),
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_agent(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<AgentId>,
) -> Result<StatusCode> {
    let conn = state.store().conn().await?;
    agents::delete(&conn, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
