mod files;
mod uploads;

use axum::{
    body::Body,
    extract::{DefaultBodyLimit, Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{
    router::{OpenApiRouter, UtoipaMethodRouter},
    routes,
};

use super::{CurrentUser, IdPath};
use crate::{
    error::{Error, FieldError, Problem, Result},
    function::{Function, Limits, Needs, Transport},
    http::{parse_json, ApiJson, ApiQuery},
    ids::ProjectId,
    pagination::{PageQuery, Paginated},
    projects::{self, ProjectDump, ProjectLimits, ProjectPath, TreeNode},
    state::AppState,
    store::{Project, ProjectFile},
};

pub const FUNCTION: Function = Function {
    name: "projects",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
    needs: Needs::Store,
};

/// Projects, their files and tree, JSON export and import.
pub fn routes() -> OpenApiRouter<AppState> {
    // Imports and inline zips count their bytes against their own limits; every other route keeps
    // the JSON body limit (file bodies are read as a stream, under their own limit too).
    let own_limits = OpenApiRouter::new()
        .routes(routes!(import_project))
        .merge(uploads::inline_routes())
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .routes(routes!(create_project, list_projects))
        .routes(routes!(get_project, patch_project, delete_project))
        .routes(routes!(project_tree))
        .routes(routes!(export_project))
        .routes(routes!(project_archive))
        .merge(uploads::routes())
        .merge(own_limits)
        .merge(files::routes())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectOut {
    #[schema(value_type = String)]
    id: ProjectId,
    name: String,
    description: Option<String>,
    file_count: i64,
    total_bytes: i64,
    created_at: String,
    updated_at: String,
}

impl From<Project> for ProjectOut {
    fn from(p: Project) -> Self {
        ProjectOut {
            id: p.id,
            name: p.name,
            description: p.description,
            file_count: p.file_count,
            total_bytes: p.total_bytes,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

type ProjectPage = Paginated<ProjectOut>;

#[derive(Debug, Deserialize, ToSchema)]
struct CreateProject {
    name: String,
    description: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", security(("bearer" = [])), request_body = CreateProject,
    responses((status = 201, body = ProjectOut), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn create_project(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<(StatusCode, Json<ProjectOut>)> {
    let conn = state.store().conn().await?;
    let max_projects = state.config().projects.max_projects_per_user;
    let project = projects::create(
        &conn,
        user.id,
        &body.name,
        body.description.as_deref(),
        max_projects,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(project.into())))
}

/// The user's projects, newest first.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = ProjectPage), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn list_projects(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ProjectPage>> {
    let page = query.parse()?;
    let conn = state.store().conn().await?;
    Ok(Json(
        projects::list(&conn, user.id, page).await?.map(Into::into),
    ))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, body = ProjectOut), (status = 404, body = Problem)))]
async fn get_project(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ProjectId>,
) -> Result<Json<ProjectOut>> {
    let conn = state.store().conn().await?;
    Ok(Json(projects::get(&conn, user.id, id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
struct PatchProject {
    name: Option<String>,
    /// A string sets it, `null` clears it, absent leaves it.
    #[serde(default, deserialize_with = "crate::api::extract::present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
}

#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects", security(("bearer" = [])), request_body = PatchProject,
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, body = ProjectOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn patch_project(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ProjectId>,
    ApiJson(body): ApiJson<PatchProject>,
) -> Result<Json<ProjectOut>> {
    let conn = state.store().conn().await?;
    let description = body.description.as_ref().map(|d| d.as_deref());
    Ok(Json(
        projects::update(&conn, user.id, id, body.name.as_deref(), description)
            .await?
            .into(),
    ))
}

/// Deletes the project with all its files.
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "Project id")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_project(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ProjectId>,
) -> Result<StatusCode> {
    let conn = state.store().conn().await?;
    projects::delete(&conn, state.blobs(), user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The files as a nested tree: directories first, then files, by name; sizes summed per directory.
#[utoipa::path(get, path = "/api/v1/projects/{id}/tree", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, body = TreeNode), (status = 404, body = Problem)))]
async fn project_tree(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ProjectId>,
) -> Result<Json<TreeNode>> {
    let conn = state.store().conn().await?;
    Ok(Json(projects::tree(&conn, user.id, id).await?))
}

/// The project as JSON: metadata and every file (text as UTF-8, binaries base64). Past
/// `MAX_INLINE_ANSWER_BYTES` on S3 (deployed), 303 See Other to the JSON stored for 15 minutes.
#[utoipa::path(get, path = "/api/v1/projects/{id}/export", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, body = ProjectDump), (status = 303, description = "Location: the export, stored"), (status = 404, body = Problem)))]
async fn export_project(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ProjectId>,
) -> Result<Response> {
    let conn = state.store().conn().await?;
    let dump = projects::export(&conn, state.blobs(), user.id, id).await?;
    let json =
        serde_json::to_vec(&dump).map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    let chunks = futures_util::stream::iter([Ok(bytes::Bytes::from(json))]);
    let name = format!("project-{id}.json");
    crate::api::large_answer::answer(&state, user.id, "application/json", &name, chunks).await
}

/// The project as a zip (deflated), produced file by file as it is sent.
#[utoipa::path(get, path = "/api/v1/projects/{id}/archive", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, description = "application/zip"), (status = 404, body = Problem)))]
async fn project_archive(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ProjectId>,
) -> Result<Response> {
    let conn = state.store().conn().await?;
    let (name, chunks) = projects::archive::zip_stream(&conn, state.blobs(), user.id, id).await?;
    let stream = futures_util::stream::unfold(chunks, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let zip = format!("{name}.zip");
    crate::api::large_answer::answer(&state, user.id, "application/zip", &zip, Box::pin(stream))
        .await
}

/// Reads a body whole, up to `limit` bytes (413 past it).
async fn body_bytes(body: Body, limit: usize) -> Result<bytes::Bytes> {
    http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(
            |e| match e.downcast_ref::<http_body_util::LengthLimitError>() {
                Some(_) => Error::PayloadTooLarge { limit },
                None => Error::BadRequest("the request body could not be read".into()),
            },
        )
}

/// The most a multipart `name` part may hold (a name is far shorter; this bounds the read).
const MAX_NAME_PART_BYTES: usize = 4096;

/// A multipart body's `file` part (read up to `limit` bytes, 413 past it) and its `name` part.
pub(super) struct FilePart {
    pub bytes: bytes::Bytes,
    /// The file's own name, as the client sent it.
    pub filename: Option<String>,
    pub name: Option<String>,
}

pub(super) async fn file_part(
    mut multipart: axum::extract::Multipart,
    limit: usize,
) -> Result<FilePart> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        Error::BadRequest(format!(
            "the multipart body is malformed: {}",
            e.body_text()
        ))
    };
    let (mut file, mut filename, mut name) = (None, None, None);
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("file") => {
                filename = field.file_name().map(str::to_string);
                let mut bytes = bytes::BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    if bytes.len() + chunk.len() > limit {
                        return Err(Error::PayloadTooLarge { limit });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some(bytes.freeze());
            }
            Some("name") => {
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    if bytes.len() + chunk.len() > MAX_NAME_PART_BYTES {
                        return Err(Error::invalid("name", "is too long"));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                let text = String::from_utf8(bytes)
                    .map_err(|_| Error::invalid("name", "must be UTF-8 text"))?;
                name = Some(text);
            }
            _ => {}
        }
    }
    let bytes =
        file.ok_or_else(|| Error::invalid("file", "is required (a multipart part named `file`)"))?;
    Ok(FilePart {
        bytes,
        filename,
        name,
    })
}

#[derive(ToSchema)]
#[allow(dead_code)] // describes the multipart body for the OpenAPI document
struct DumpUpload {
    /// A project export (`GET /projects/{id}/export`'s JSON) as a file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A new project from an export (`GET /projects/{id}/export`'s JSON), up to
/// `MAX_PROJECT_IMPORT_BYTES`: the JSON as the body, or as a multipart/form-data `file` part (as
/// clients that upload the exported file send it).
#[utoipa::path(post, path = "/api/v1/projects/import", tag = "projects", security(("bearer" = [])),
    request_body(content(
        (ProjectDump = "application/json"),
        (DumpUpload = "multipart/form-data"),
    )),
    responses((status = 201, body = ProjectOut), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn import_project(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    request: axum::extract::Request,
) -> Result<(StatusCode, Json<ProjectOut>)> {
    let media_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let limit = state.config().projects.max_project_import_bytes;
    let bytes = match media_type.as_str() {
        "application/json" => body_bytes(request.into_body(), limit).await?,
        "multipart/form-data" => {
            use axum::extract::FromRequest;
            let multipart = axum::extract::Multipart::from_request(request, &state)
                .await
                .map_err(|e| Error::BadRequest(e.body_text()))?;
            file_part(multipart, limit).await?.bytes
        }
        _ => {
            return Err(Error::UnsupportedMediaType(
                "the body must be JSON (Content-Type: application/json) or multipart/form-data with a `file` part",
            ))
        }
    };
    let dump: ProjectDump = parse_json(&bytes)?;
    let limits = ProjectLimits::from(&state.config().projects);
    let conn = state.store().conn().await?;
    let project = projects::import(&conn, state.blobs(), &limits, user.id, dump).await?;
    Ok((StatusCode::CREATED, Json(project.into())))
}
