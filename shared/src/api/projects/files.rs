//! A project's files: read, write and delete one by one, under the route whose last parameter
//! spans segments.

use super::*;

/// The one route whose last parameter spans segments (`src/main.rs`): axum matches it as a
/// wildcard, the OpenAPI document (and API Gateway's `{path+}`) name it `{path}`.
const FILE_ROUTE: &str = "/api/v1/projects/{id}/files/{*path}";

/// The file routes, with their wildcard parameter documented as `{path}`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    with_wildcard(
        OpenApiRouter::new(),
        routes!(read_file, write_file, delete_file),
    )
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

type FilePath =
    std::result::Result<Path<(String, String)>, axum::extract::rejection::PathRejection>;

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
    let limits = ProjectLimits::from(&state.config().projects);
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
