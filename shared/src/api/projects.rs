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
    function::{Function, Limits, Transport},
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
};

/// The one route whose last parameter spans segments (`src/main.rs`): axum matches it as a
/// wildcard, the OpenAPI document (and API Gateway's `{path+}`) name it `{path}`.
const FILE_ROUTE: &str = "/api/v1/projects/{id}/files/{*path}";

/// Projects, their files and tree, JSON export and import.
pub fn routes() -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new()
        .routes(routes!(create_project, list_projects))
        .routes(routes!(get_project, patch_project, delete_project))
        .routes(routes!(project_tree))
        .routes(routes!(export_project))
        .routes(routes!(project_archive))
        .routes(routes!(import_project))
        .routes(routes!(upload_project))
        .routes(routes!(start_project_upload))
        .routes(routes!(complete_project_upload))
        .routes(routes!(project_upload_status))
        // File bodies and imports count their bytes against their own limits.
        .layer(DefaultBodyLimit::disable());
    with_wildcard(router, routes!(read_file, write_file, delete_file))
}

fn with_wildcard(
    router: OpenApiRouter<AppState>,
    (schemas, paths, method_router): UtoipaMethodRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let mut router = router.route(FILE_ROUTE, method_router.layer(DefaultBodyLimit::disable()));
    let doc = router.get_openapi_mut();
    for (path, item) in paths.paths {
        doc.paths.paths.insert(path, item);
    }
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(schemas);
    router
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

#[derive(Debug, Serialize, ToSchema)]
struct FileOut {
    path: String,
    size: i64,
    sha256: String,
    /// `text` (kept in the store) or `binary` (in the blob store).
    kind: &'static str,
    updated_at: String,
}

impl From<ProjectFile> for FileOut {
    fn from(f: ProjectFile) -> Self {
        FileOut {
            kind: if f.text.is_some() { "text" } else { "binary" },
            path: f.path,
            size: f.size,
            sha256: f.sha256,
            updated_at: f.updated_at,
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
    let project = projects::create(&conn, user.id, &body.name, body.description.as_deref()).await?;
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
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
}

/// Tells an absent field (None) from an explicit null (Some(None)).
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
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

/// The project as JSON: metadata and every file (text as UTF-8, binaries base64).
#[utoipa::path(get, path = "/api/v1/projects/{id}/export", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "Project id")),
    responses((status = 200, body = ProjectDump), (status = 404, body = Problem)))]
async fn export_project(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<ProjectId>,
) -> Result<Json<ProjectDump>> {
    let conn = state.store().conn().await?;
    Ok(Json(
        projects::export(&conn, state.blobs(), user.id, id).await?,
    ))
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
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    let disposition = crate::attachments::content_disposition(&format!("{name}.zip"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
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

/// A new project from an export (`GET /projects/{id}/export`'s JSON), up to `MAX_PROJECT_IMPORT_BYTES`.
#[utoipa::path(post, path = "/api/v1/projects/import", tag = "projects", security(("bearer" = [])), request_body = ProjectDump,
    responses((status = 201, body = ProjectOut), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn import_project(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ProjectOut>)> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    if !is_json {
        return Err(Error::UnsupportedMediaType(
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    let bytes = body_bytes(body, state.config().max_project_import_bytes).await?;
    let dump: ProjectDump = parse_json(&bytes)?;
    let limits = ProjectLimits::from(state.config());
    let conn = state.store().conn().await?;
    let project = projects::import(&conn, state.blobs(), &limits, user.id, dump).await?;
    Ok((StatusCode::CREATED, Json(project.into())))
}

type FilePath =
    std::result::Result<Path<(String, String)>, axum::extract::rejection::PathRejection>;

#[derive(ToSchema)]
#[allow(dead_code)] // describes the multipart body for the OpenAPI document
struct ZipUpload {
    /// The zip archive.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The project's name; the archive's file name (without `.zip`) when absent.
    name: Option<String>,
}

/// A new project from a zip archive (multipart/form-data: `file`, optional `name`), up to
/// `MAX_INLINE_UPLOAD_BYTES`. Every entry is checked while it is inflated; a refusal names the
/// entry and the rule, and nothing is kept.
#[utoipa::path(post, path = "/api/v1/projects/upload", tag = "projects", security(("bearer" = [])),
    request_body(content = ZipUpload, content_type = "multipart/form-data"),
    responses((status = 201, body = ProjectOut), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn upload_project(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    multipart: std::result::Result<
        axum::extract::Multipart,
        axum::extract::multipart::MultipartRejection,
    >,
) -> Result<(StatusCode, Json<ProjectOut>)> {
    let mut multipart = multipart.map_err(|_| {
        Error::UnsupportedMediaType("the body must be multipart/form-data with a `file` part")
    })?;
    let malformed = |e: axum::extract::multipart::MultipartError| {
        Error::BadRequest(format!(
            "the multipart body is malformed: {}",
            e.body_text()
        ))
    };
    let limit = state.config().max_inline_upload_bytes;
    let (mut archive, mut filename, mut name) = (None, None, None);
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("file") => {
                filename = field.file_name().map(str::to_string);
                let mut bytes = bytes::BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    if (bytes.len() + chunk.len()) as u64 > limit {
                        return Err(Error::PayloadTooLarge {
                            limit: limit as usize,
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                archive = Some(bytes.freeze());
            }
            Some("name") => name = Some(field.text().await.map_err(malformed)?),
            _ => {}
        }
    }
    let archive = archive
        .ok_or_else(|| Error::invalid("file", "is required (a multipart part named `file`)"))?;
    let name = name.or_else(|| {
        filename.map(|f| {
            let base = f.rsplit(['/', '\\']).next().unwrap_or("").to_string();
            base.strip_suffix(".zip")
                .map(str::to_string)
                .unwrap_or(base)
        })
    });
    let name = name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "Uploaded project".into());
    let rules = projects::archive::ZipRules::from(state.config());
    let conn = state.store().conn().await?;
    let project = projects::archive::unpack(
        &conn,
        state.blobs(),
        &rules,
        user.id,
        &name,
        std::io::Cursor::new(archive),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(project.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
struct StartProjectUpload {
    /// The zip's file name (the project's name by default, without `.zip`).
    filename: String,
    /// Exact size in bytes, up to `MAX_UPLOAD_BYTES`.
    size: u64,
}

#[derive(Debug, Serialize, ToSchema)]
struct StartedProjectUpload {
    /// Complete it with `POST /projects/uploads/{upload_id}/complete` once the PUT is done.
    #[schema(value_type = String)]
    upload_id: crate::ids::AttachmentId,
    upload: super::attachments::UploadOut,
}

/// Starts a presigned upload of a zip (for archives past the inline limit): PUT it to `upload.url`
/// with `upload.headers`, then complete it.
#[utoipa::path(post, path = "/api/v1/projects/uploads", tag = "projects", security(("bearer" = [])), request_body = StartProjectUpload,
    responses((status = 201, body = StartedProjectUpload), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn start_project_upload(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<StartProjectUpload>,
) -> Result<(StatusCode, Json<StartedProjectUpload>)> {
    let rules = crate::attachments::UploadRules::project_archives(state.config());
    let conn = state.store().conn().await?;
    let (upload, target) = projects::archive::start_upload(
        &conn,
        state.blobs(),
        state.tokens(),
        &rules,
        user.id,
        &body.filename,
        body.size,
        &super::attachments::base_url(&headers),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(StartedProjectUpload {
            upload_id: upload.id,
            upload: target.into(),
        }),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
struct CompleteProjectUpload {
    /// The project's name; the zip's file name without `.zip` when absent.
    name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct UploadStatusOut {
    #[schema(value_type = String)]
    upload_id: crate::ids::AttachmentId,
    /// `pending` (not completed), `unpacking`, `done` or `failed`.
    status: &'static str,
    #[schema(value_type = Option<String>)]
    project_id: Option<ProjectId>,
    /// Why the archive was refused, naming the entry and the rule.
    error: Option<String>,
    /// Where to ask again.
    status_url: String,
}

fn status_out(
    id: crate::ids::AttachmentId,
    status: projects::archive::UploadStatus,
) -> UploadStatusOut {
    UploadStatusOut {
        upload_id: id,
        status: status.status,
        project_id: status.project_id,
        error: status.error,
        status_url: format!("/api/v1/projects/uploads/{id}"),
    }
}

/// Checks the uploaded zip (size, zip magic, SHA-256). Up to `MAX_UNPACK_IN_REQUEST_BYTES` it is
/// unpacked at once (201 with the project; the same rules as an inline upload); larger ones answer
/// 202 with a status URL and are unpacked next (the `unpacker` worker deployed, a background task
/// locally).
#[utoipa::path(post, path = "/api/v1/projects/uploads/{id}/complete", tag = "projects", security(("bearer" = [])),
    request_body(content = Option<CompleteProjectUpload>, description = "Optional"),
    params(("id" = String, Path, description = "The upload id")),
    responses((status = 201, body = ProjectOut), (status = 202, body = UploadStatusOut), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn complete_project_upload(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<crate::ids::AttachmentId>,
    body: bytes::Bytes,
) -> Result<Response> {
    let options: CompleteProjectUpload = match body.is_empty() {
        true => CompleteProjectUpload::default(),
        false => parse_json(&body)?,
    };
    let rules = projects::archive::ZipRules::from(state.config());
    let conn = state.store().conn().await?;
    let completed = projects::archive::complete_upload(
        &conn,
        state.blobs(),
        &rules,
        state.config().max_unpack_in_request_bytes,
        user.id,
        id,
        options.name.as_deref(),
    )
    .await?;
    match completed {
        projects::archive::Completed::Project(project) => {
            Ok((StatusCode::CREATED, Json(ProjectOut::from(project))).into_response())
        }
        projects::archive::Completed::Unpacking(_) => {
            if !state.config().unpack_in_worker {
                let state = state.clone();
                let user_id = user.id;
                tokio::spawn(async move {
                    let unpacked = async {
                        let conn = state.store().conn().await?;
                        projects::archive::unpack_stored(&conn, state.blobs(), &rules, user_id, id)
                            .await
                    };
                    if let Err(e) = unpacked.await {
                        tracing::error!(error = %e, "unpacking a project upload failed");
                    }
                });
            }
            let status = projects::archive::upload_status(&conn, user.id, id).await?;
            let out = status_out(id, status);
            let location = HeaderValue::from_str(&out.status_url)
                .map_err(|e| Error::Internal(e.to_string()))?;
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, location)],
                Json(out),
            )
                .into_response())
        }
    }
}

/// Where a project upload is: `pending`, `unpacking`, `done` (with `project_id`) or `failed` (with
/// `error`).
#[utoipa::path(get, path = "/api/v1/projects/uploads/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "The upload id")),
    responses((status = 200, body = UploadStatusOut), (status = 404, body = Problem)))]
async fn project_upload_status(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<crate::ids::AttachmentId>,
) -> Result<Json<UploadStatusOut>> {
    let conn = state.store().conn().await?;
    let status = projects::archive::upload_status(&conn, user.id, id).await?;
    Ok(Json(status_out(id, status)))
}

/// The project id and file path of a file route, checked before any query.
fn file_target(raw: FilePath) -> Result<(ProjectId, ProjectPath)> {
    let Path((id, path)) = raw.map_err(|_| Error::NotFound)?;
    let id = id.parse().map_err(|_| Error::NotFound)?;
    let path = ProjectPath::parse(&path).map_err(|rule| FieldError::new("path", rule))?;
    Ok((id, path))
}

/// A file's bytes: `text/plain; charset=utf-8` for text, `application/octet-stream` for binaries.
#[utoipa::path(get, path = "/api/v1/projects/{id}/files/{path}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "Project id"), ("path" = String, Path, description = "The file's path; may span segments (src/main.rs)")),
    responses((status = 200, description = "The file's bytes"), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn read_file(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    target: FilePath,
) -> Result<Response> {
    let (id, path) = file_target(target)?;
    let conn = state.store().conn().await?;
    let content = projects::read_file(&conn, state.blobs(), user.id, id, &path).await?;
    let content_type = match content.file.text {
        Some(_) => "text/plain; charset=utf-8",
        None => "application/octet-stream",
    };
    let mut response = Body::from(content.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", content.file.sha256)) {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}

/// Creates or replaces a file with the raw request body (up to `MAX_PROJECT_FILE_BYTES`).
#[utoipa::path(put, path = "/api/v1/projects/{id}/files/{path}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "Project id"), ("path" = String, Path, description = "The file's path; may span segments (src/main.rs)")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = FileOut), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
async fn write_file(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    target: FilePath,
    body: Body,
) -> Result<Json<FileOut>> {
    let (id, path) = file_target(target)?;
    let limits = ProjectLimits::from(state.config());
    let bytes = body_bytes(body, limits.max_file_bytes as usize).await?;
    let conn = state.store().conn().await?;
    let file = projects::write_file(&conn, state.blobs(), &limits, user.id, id, &path, bytes)
        .await?
        .file;
    Ok(Json(file.into()))
}

#[utoipa::path(delete, path = "/api/v1/projects/{id}/files/{path}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "Project id"), ("path" = String, Path, description = "The file's path; may span segments (src/main.rs)")),
    responses((status = 204), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn delete_file(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    target: FilePath,
) -> Result<StatusCode> {
    let (id, path) = file_target(target)?;
    let conn = state.store().conn().await?;
    projects::delete_file(&conn, state.blobs(), user.id, id, &path).await?;
    Ok(StatusCode::NO_CONTENT)
}
