use std::collections::BTreeMap;

use axum::{
    body::Body,
    extract::{multipart::MultipartRejection, DefaultBodyLimit, Multipart, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{CurrentUser, IdPath};
use crate::{
    attachments::{self, Chunks, Content, UploadRequest, UploadRules},
    error::{Error, Problem, Result},
    function::{Function, Limits, Needs, Transport},
    http::{ApiJson, ApiQuery},
    ids::{AttachmentId, ConversationId, MessageId},
    kinds::{AttachmentStatus, UploadPurpose},
    pagination::{PageQuery, Paginated},
    state::AppState,
    store::Attachment,
};

pub const FUNCTION: Function = Function {
    name: "attachments",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
    needs: Needs::Store,
};

/// Uploads (inline and presigned), metadata, content and deletion of attachments.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // Uploads count their bytes against their own limits as they stream (the JSON body limit
        // would refuse any real file).
        .routes(routes!(upload_attachment))
        .routes(routes!(receive_upload))
        .layer(DefaultBodyLimit::disable())
        .routes(routes!(list_attachments))
        .routes(routes!(start_upload))
        .routes(routes!(complete_upload))
        .routes(routes!(get_attachment, delete_attachment))
        .routes(routes!(attachment_content))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttachmentOut {
    #[schema(value_type = String)]
    pub id: AttachmentId,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// Hex SHA-256 of the bytes; null until a presigned upload is completed.
    pub sha256: Option<String>,
    pub status: AttachmentStatus,
    /// The conversation and message it was sent with, once it was.
    #[schema(value_type = Option<String>)]
    pub conversation_id: Option<ConversationId>,
    #[schema(value_type = Option<String>)]
    pub message_id: Option<MessageId>,
    pub created_at: String,
}

impl From<Attachment> for AttachmentOut {
    fn from(a: Attachment) -> Self {
        AttachmentOut {
            id: a.id,
            filename: a.filename,
            content_type: a.content_type,
            size: a.size,
            sha256: a.sha256,
            status: a.status,
            conversation_id: a.conversation_id,
            message_id: a.message_id,
            created_at: a.created_at,
        }
    }
}

type AttachmentPage = Paginated<AttachmentOut>;

/// A multipart field's bytes, chunk by chunk.
struct FieldChunks<'a>(axum::extract::multipart::Field<'a>);

impl Chunks for FieldChunks<'_> {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>> {
        self.0.chunk().await.map_err(multipart_error)
    }
}

/// A raw request body's bytes, chunk by chunk.
struct BodyChunks(Body);

impl Chunks for BodyChunks {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>> {
        loop {
            match self.0.frame().await {
                None => return Ok(None),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
                Some(Err(_)) => {
                    return Err(Error::BadRequest(
                        "the request body could not be read".into(),
                    ))
                }
            }
        }
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> Error {
    Error::BadRequest(format!(
        "the multipart body is malformed: {}",
        e.body_text()
    ))
}

#[derive(ToSchema)]
#[allow(dead_code)] // describes the multipart body for the OpenAPI document
struct UploadForm {
    /// The file; its part's filename and Content-Type are used (the type is guessed from the name
    /// when the part says only `application/octet-stream`).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Uploads one file inline (multipart/form-data, a part named `file`), up to `MAX_INLINE_UPLOAD_BYTES`.
#[utoipa::path(post, path = "/api/v1/attachments", tag = "attachments", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = AttachmentOut), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn upload_attachment(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<AttachmentOut>)> {
    let mut multipart = multipart.map_err(|_| {
        Error::UnsupportedMediaType("the body must be multipart/form-data with a `file` part")
    })?;
    let rules = UploadRules::from(&state.config().uploads);
    let conn = state.store().conn().await?;
    let mut stored: Option<Attachment> = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        if let Some(first) = &stored {
            // One file per upload: the first is not kept either, so a retry starts clean.
            attachments::delete(&conn, state.blobs(), user.id, first.id).await?;
            return Err(Error::invalid("file", "only one file per upload"));
        }
        let filename = field.file_name().unwrap_or("").to_string();
        let declared = field
            .content_type()
            .map(str::to_string)
            .filter(|t| !t.eq_ignore_ascii_case("application/octet-stream"))
            .or_else(|| crate::media::guess_type(&filename).map(str::to_string))
            .unwrap_or_else(|| "application/octet-stream".into());
        let mut chunks = FieldChunks(field);
        stored = Some(
            attachments::upload_inline(
                &conn,
                state.blobs(),
                &rules,
                user.id,
                &filename,
                &declared,
                &mut chunks,
            )
            .await?,
        );
    }
    let attachment = stored
        .ok_or_else(|| Error::invalid("file", "is required (a multipart part named `file`)"))?;
    Ok((StatusCode::CREATED, Json(attachment.into())))
}

/// The user's attachments, newest first.
#[utoipa::path(get, path = "/api/v1/attachments", tag = "attachments", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = AttachmentPage), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn list_attachments(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<AttachmentPage>> {
    let page = query.parse()?;
    let conn = state.store().conn().await?;
    Ok(Json(
        attachments::list(&conn, user.id, page)
            .await?
            .map(Into::into),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
struct StartUpload {
    filename: String,
    content_type: String,
    /// Exact size in bytes, up to `MAX_UPLOAD_BYTES`.
    size: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct UploadOut {
    /// Always `PUT`.
    method: &'static str,
    url: String,
    /// Headers to send with the PUT, exactly: they are part of the signature.
    headers: BTreeMap<String, String>,
    expires_at: String,
}

impl From<attachments::UploadTarget> for UploadOut {
    fn from(target: attachments::UploadTarget) -> Self {
        UploadOut {
            method: "PUT",
            url: target.url,
            headers: target.headers.into_iter().collect(),
            expires_at: crate::ids::format_time(target.expires_at.into()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct StartedUpload {
    attachment: AttachmentOut,
    upload: UploadOut,
}

/// Where this function is reached, for the local store's upload URL.
pub(super) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1:9000");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// Starts an upload of a large file: then PUT the bytes to `upload.url` with `upload.headers`, and
/// complete it. With S3 the URL is presigned (type and length signed); on the local store it
/// points at this function with a short-lived signed token.
#[utoipa::path(post, path = "/api/v1/attachments/uploads", tag = "attachments", security(("bearer" = [])), request_body = StartUpload,
    responses((status = 201, body = StartedUpload), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn start_upload(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<StartUpload>,
) -> Result<(StatusCode, Json<StartedUpload>)> {
    let rules = UploadRules::from(&state.config().uploads);
    let conn = state.store().conn().await?;
    let (attachment, target) = attachments::start_upload(
        &conn,
        state.blobs(),
        state.tokens(),
        &rules,
        user.id,
        UploadRequest {
            filename: &body.filename,
            content_type: &body.content_type,
            size: body.size,
        },
        &base_url(&headers),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(StartedUpload {
            attachment: attachment.into(),
            upload: target.into(),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UploadToken {
    /// The signed token of the upload URL.
    token: String,
}

/// The local store's upload URL (the presigned PUT's stand-in): the token authorises it, no bearer
/// header. Deployments on S3 never hand out this URL.
#[utoipa::path(put, path = "/api/v1/attachments/uploads/{id}", tag = "attachments", params(("id" = String, Path), UploadToken),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn receive_upload(
    State(state): State<AppState>,
    IdPath(id): IdPath<AttachmentId>,
    query: std::result::Result<Query<UploadToken>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode> {
    if state.blobs().presigns() {
        return Err(Error::NotFound);
    }
    let Query(UploadToken { token }) =
        query.map_err(|_| Error::Unauthorized("the upload URL is invalid or expired"))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let conn = state.store().conn().await?;
    attachments::receive_upload(
        &conn,
        state.blobs(),
        state.tokens(),
        id,
        &token,
        content_type,
        &mut BodyChunks(body),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the uploaded object (exists, size, type from its first bytes, SHA-256) and makes the
/// attachment ready. Completing a ready attachment answers it unchanged.
#[utoipa::path(post, path = "/api/v1/attachments/{id}/complete", tag = "attachments", security(("bearer" = [])),
    params(("id" = String, Path, description = "Attachment id")),
    responses((status = 200, body = AttachmentOut), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn complete_upload(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<AttachmentId>,
) -> Result<Json<AttachmentOut>> {
    let conn = state.store().conn().await?;
    Ok(Json(
        attachments::complete(&conn, state.blobs(), user.id, id, UploadPurpose::Attachment)
            .await?
            .into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/attachments/{id}", tag = "attachments", security(("bearer" = [])),
    params(("id" = String, Path, description = "Attachment id")),
    responses((status = 200, body = AttachmentOut), (status = 404, body = Problem)))]
async fn get_attachment(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<AttachmentId>,
) -> Result<Json<AttachmentOut>> {
    let conn = state.store().conn().await?;
    Ok(Json(attachments::get(&conn, user.id, id).await?.into()))
}

/// Removes the attachment and its bytes.
#[utoipa::path(delete, path = "/api/v1/attachments/{id}", tag = "attachments", security(("bearer" = [])),
    params(("id" = String, Path, description = "Attachment id")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_attachment(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<AttachmentId>,
) -> Result<StatusCode> {
    let conn = state.store().conn().await?;
    attachments::delete(&conn, state.blobs(), user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The bytes: a redirect to a short-lived presigned GET on S3, the bytes themselves locally.
#[utoipa::path(get, path = "/api/v1/attachments/{id}/content", tag = "attachments", security(("bearer" = [])),
    params(("id" = String, Path, description = "Attachment id")),
    responses((status = 200, description = "The file"), (status = 302, description = "Redirect to the presigned GET"), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn attachment_content(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<AttachmentId>,
) -> Result<Response> {
    let conn = state.store().conn().await?;
    let attachment = attachments::get(&conn, user.id, id).await?;
    drop(conn);
    let header_value =
        |v: &str| HeaderValue::from_str(v).map_err(|e| Error::Internal(e.to_string()));
    match attachments::content(state.blobs(), &attachment).await? {
        Content::Redirect(url) => Ok((
            StatusCode::FOUND,
            [
                (header::LOCATION, header_value(&url)?),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, no-store"),
                ),
            ],
        )
            .into_response()),
        Content::Stream(reader) => {
            let content_type = match crate::media::is_text_type(&attachment.content_type) {
                true => format!("{}; charset=utf-8", attachment.content_type),
                false => attachment.content_type.clone(),
            };
            let mut response = Body::from_stream(reader.into_stream()).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, header_value(&content_type)?);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(attachment.size));
            headers.insert(
                header::CONTENT_DISPOSITION,
                header_value(&attachments::content_disposition(&attachment.filename))?,
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-cache"),
            );
            if let Some(sha) = &attachment.sha256 {
                headers.insert(header::ETAG, header_value(&format!("\"{sha}\""))?);
            }
            Ok(response)
        }
    }
}
