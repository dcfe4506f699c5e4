//! A project from a zip: inline (`POST /projects/upload`), or presigned (start, complete, status).

use super::*;

/// The inline zip route: its body is the zip, under its own limit.
pub(super) fn inline_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload_project))
}

/// The presigned upload's routes (JSON bodies).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_project_upload))
        .routes(routes!(complete_project_upload))
        .routes(routes!(project_upload_status))
}

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
    let multipart = multipart.map_err(|_| {
        Error::UnsupportedMediaType("the body must be multipart/form-data with a `file` part")
    })?;
    let limit = state.config().uploads.max_inline_upload_bytes as usize;
    let FilePart {
        bytes: archive,
        filename,
        name,
    } = file_part(multipart, limit).await?;
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
    let rules = projects::archive::ZipRules::from(&state.config().projects);
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
    upload: crate::api::attachments::UploadOut,
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
    let rules = crate::attachments::UploadRules::project_archives(&state.config().uploads);
    let conn = state.store().conn().await?;
    projects::uploads::sweep_stuck(
        &conn,
        state.blobs(),
        state.config().projects.unpack_deadline,
    )
    .await;
    let (upload, target) = projects::uploads::start_upload(
        &conn,
        state.blobs(),
        state.tokens(),
        &rules,
        user.id,
        projects::uploads::ZipUpload {
            filename: &body.filename,
            size: body.size,
        },
        &crate::api::attachments::base_url(&headers),
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
    status: projects::uploads::UploadStatus,
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
    let rules = projects::archive::ZipRules::from(&state.config().projects);
    let conn = state.store().conn().await?;
    let completed = projects::uploads::complete_upload(
        &conn,
        state.blobs(),
        &rules,
        state.config().projects.max_unpack_in_request_bytes,
        user.id,
        id,
        options.name.as_deref(),
    )
    .await?;
    match completed {
        projects::uploads::Completed::Project(project) => {
            Ok((StatusCode::CREATED, Json(ProjectOut::from(project))).into_response())
        }
        projects::uploads::Completed::Unpacking(_) => {
            crate::api::jobs::dispatch(
                &state,
                crate::api::jobs::Job::Unpack {
                    user_id: user.id,
                    upload_id: id,
                },
            );
            let status = projects::uploads::upload_status(&conn, user.id, id).await?;
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
    let deadline = state.config().projects.unpack_deadline;
    let status =
        projects::uploads::polled_status(&conn, state.blobs(), deadline, user.id, id).await?;
    Ok(Json(status_out(id, status)))
}
