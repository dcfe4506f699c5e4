use axum::{
    body::Body,
    extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{CurrentUser, IdPath};
use crate::{
    error::{Error, Problem, Result},
    function::{Function, Limits, Needs, Transport},
    http::{ApiJson, ApiQuery},
    ids::{AttachmentId, DocumentId},
    kinds::DocumentStatus,
    knowledge::{self, NewDocumentInput},
    pagination::{PageQuery, Paginated},
    state::AppState,
    store::Document,
};

pub const FUNCTION: Function = Function {
    name: "knowledge",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
    needs: Needs::Store,
};

/// Knowledge documents and search.
pub fn routes() -> OpenApiRouter<AppState> {
    // Uploads count their bytes against their own limits (JSON, or a multipart file).
    let (schemas, paths, documents) = routes!(create_document, list_documents);
    OpenApiRouter::new()
        .routes((schemas, paths, documents.layer(DefaultBodyLimit::disable())))
        .routes(routes!(get_document, patch_document, delete_document))
        .routes(routes!(search_knowledge))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentOut {
    #[schema(value_type = String)]
    id: DocumentId,
    title: String,
    content_type: String,
    /// The text's size in bytes.
    size: i64,
    sha256: String,
    chunk_count: i64,
    /// `ready`: chunked and indexed; `indexing`: a text over `MAX_INDEX_IN_REQUEST_BYTES`, indexed
    /// after the answer (poll this document); `failed`: indexing failed (see `error`).
    status: DocumentStatus,
    /// Why indexing failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The embedder whose vectors the chunks hold (`local/hashed-ngrams-256`: offline, not semantic).
    embedder: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<Document> for DocumentOut {
    fn from(d: Document) -> Self {
        DocumentOut {
            id: d.id,
            title: d.title,
            content_type: d.content_type,
            size: d.size,
            sha256: d.sha256,
            chunk_count: d.chunk_count,
            status: d.status,
            error: d.error,
            embedder: d.embedder,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// Either `content` (with `title`) or `attachment_id`.
#[derive(Debug, Deserialize, ToSchema)]
struct CreateDocument {
    /// Required with `content`; from an attachment, its file name by default.
    title: Option<String>,
    /// The document's text, up to `MAX_DOCUMENT_BYTES`.
    content: Option<String>,
    /// `text/plain` or `text/markdown` (headings make sections); default `text/markdown`.
    content_type: Option<String>,
    /// A ready attachment of the user's (`.txt`, `.md` or `.pdf`) to take the text from.
    attachment_id: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)] // describes the multipart body for the OpenAPI document
struct DocumentUpload {
    /// A `.txt`, `.md` or `.pdf` file, up to `MAX_INLINE_UPLOAD_BYTES`.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The file's name without its extension by default.
    title: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct PatchDocument {
    title: String,
}

#[derive(Debug, Deserialize, IntoParams)]
struct SearchQuery {
    /// What to look for (words; search syntax is taken as text).
    q: Option<String>,
    /// Results, 1 to 50 (default 10).
    limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct SearchHit {
    /// Reciprocal rank fusion of the full-text and vector ranks (higher is better).
    score: f64,
    #[schema(value_type = String)]
    document_id: DocumentId,
    title: String,
    /// The chunk's position in its document, from 0.
    chunk: i64,
    heading: String,
    snippet: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct SearchResults {
    items: Vec<SearchHit>,
}

type DocumentPage = Paginated<DocumentOut>;

/// Adds a document: JSON text, JSON `attachment_id`, or a multipart `file` (.txt, .md, .pdf). Its
/// text is chunked and indexed before the answer (201), or, over `MAX_INDEX_IN_REQUEST_BYTES`,
/// after it (202 with `Location`, status `indexing`).
#[utoipa::path(post, path = "/api/v1/knowledge/documents", tag = "knowledge", security(("bearer" = [])),
    request_body(content(
        (CreateDocument = "application/json"),
        (DocumentUpload = "multipart/form-data"),
    )),
    responses((status = 201, body = DocumentOut), (status = 202, body = DocumentOut), (status = 401, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem)))]
async fn create_document(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    req: Request,
) -> Result<Response> {
    let config = state.config();
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    let max_bytes = config.knowledge.max_document_bytes;
    let input = if is_multipart {
        from_multipart(&state, req).await?.check(max_bytes)?
    } else {
        let limit = config.http.max_json_body_bytes;
        let req = req.map(|b| Body::new(http_body_util::Limited::new(b, limit)));
        let ApiJson(body) = ApiJson::<CreateDocument>::from_request(req, &state).await?;
        match (body.content, body.attachment_id) {
            (Some(content), None) => NewDocumentInput::from_text(
                body.title,
                content,
                body.content_type.as_deref(),
                max_bytes,
            )?,
            (None, Some(raw)) => {
                let id: AttachmentId = raw
                    .parse()
                    .map_err(|_| Error::invalid("attachment_id", "no such attachment"))?;
                let conn = state.store().conn().await?;
                let (bytes, attachment) = knowledge::attachment_bytes(
                    &conn,
                    state.blobs(),
                    user.id,
                    id,
                    config.uploads.max_inline_upload_bytes,
                )
                .await?;
                NewDocumentInput::from_file(
                    bytes,
                    Some(&attachment.content_type),
                    &attachment.filename,
                    body.title,
                    "attachment_id",
                    config.knowledge.pdf,
                )
                .await?
                .check(max_bytes)?
            }
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "attachment_id",
                    "give either content or attachment_id, not both",
                ))
            }
            (None, None) => {
                return Err(Error::invalid(
                    "content",
                    "is required (or attachment_id, or a multipart file)",
                ))
            }
        }
    };
    let conn = state.store().conn().await?;
    let embedding = knowledge::Embedding::new(&config.providers, state.providers());
    let budget = crate::quotas::Budget::of(&user, quota_settings(&state));
    let settings = knowledge::IndexSettings::from(&config.knowledge);
    let created =
        knowledge::create(&conn, state.blobs(), embedding, &budget, &input, settings).await?;
    match created {
        knowledge::Created::Ready(document) => {
            Ok((StatusCode::CREATED, Json(DocumentOut::from(document))).into_response())
        }
        knowledge::Created::Indexing(document) => {
            super::jobs::dispatch(
                &state,
                super::jobs::Job::Index {
                    user_id: user.id,
                    document_id: document.id,
                },
            );
            let location =
                HeaderValue::from_str(&format!("/api/v1/knowledge/documents/{}", document.id))
                    .map_err(|e| Error::Internal(e.to_string()))?;
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, location)],
                Json(DocumentOut::from(document)),
            )
                .into_response())
        }
    }
}

/// A document from a multipart body: a `file` part up to `MAX_INLINE_UPLOAD_BYTES` and an
/// optional `title` part.
async fn from_multipart(state: &AppState, req: Request) -> Result<NewDocumentInput> {
    let limit = state.config().uploads.max_inline_upload_bytes;
    // Room for the multipart framing and a title beyond the file itself.
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, limit as usize + 64 * 1024)));
    let mut multipart = Multipart::from_request(req, state).await.map_err(|_| {
        Error::UnsupportedMediaType("the body must be multipart/form-data with a `file` part")
    })?;
    let too_large = Error::PayloadTooLarge {
        limit: limit as usize,
    };
    let malformed = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge {
                limit: limit as usize,
            }
        } else {
            Error::BadRequest(format!(
                "the multipart body is malformed: {}",
                e.body_text()
            ))
        }
    };
    let (mut file, mut title) = (None, None);
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("file") => {
                if file.is_some() {
                    return Err(Error::invalid("file", "only one file per document"));
                }
                let filename = field.file_name().unwrap_or("").to_string();
                let declared = field.content_type().map(str::to_string);
                let mut bytes = bytes::BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    if (bytes.len() + chunk.len()) as u64 > limit {
                        return Err(too_large);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some((bytes.freeze(), filename, declared));
            }
            Some("title") => title = Some(field.text().await.map_err(malformed)?),
            _ => {}
        }
    }
    let (bytes, filename, declared) =
        file.ok_or_else(|| Error::invalid("file", "is required (a multipart part named `file`)"))?;
    let pdf = state.config().knowledge.pdf;
    NewDocumentInput::from_file(bytes, declared.as_deref(), &filename, title, "file", pdf).await
}

/// The user's documents, newest first.
#[utoipa::path(get, path = "/api/v1/knowledge/documents", tag = "knowledge", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = DocumentPage), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn list_documents(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<DocumentPage>> {
    let page = query.parse()?;
    let conn = state.store().conn().await?;
    Ok(Json(
        knowledge::list(&conn, user.id, page).await?.map(Into::into),
    ))
}

#[utoipa::path(get, path = "/api/v1/knowledge/documents/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Document id")),
    responses((status = 200, body = DocumentOut), (status = 404, body = Problem)))]
async fn get_document(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<DocumentId>,
) -> Result<Json<DocumentOut>> {
    let conn = state.store().conn().await?;
    Ok(Json(knowledge::get(&conn, user.id, id).await?.into()))
}

/// Renames a document.
#[utoipa::path(patch, path = "/api/v1/knowledge/documents/{id}", tag = "knowledge", security(("bearer" = [])), request_body = PatchDocument,
    params(("id" = String, Path, description = "Document id")),
    responses((status = 200, body = DocumentOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn patch_document(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<DocumentId>,
    ApiJson(body): ApiJson<PatchDocument>,
) -> Result<Json<DocumentOut>> {
    let conn = state.store().conn().await?;
    Ok(Json(
        knowledge::rename(&conn, user.id, id, &body.title)
            .await?
            .into(),
    ))
}

/// Deletes a document with its chunks and vectors.
#[utoipa::path(delete, path = "/api/v1/knowledge/documents/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Document id")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_document(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<DocumentId>,
) -> Result<StatusCode> {
    let conn = state.store().conn().await?;
    knowledge::delete(&conn, state.blobs(), user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Searches the user's documents: full-text (BM25) and vector ranks fused, best first.
#[utoipa::path(get, path = "/api/v1/knowledge/search", tag = "knowledge", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = SearchResults), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn search_knowledge(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<SearchResults>> {
    let limit = match query.limit.as_deref() {
        None => 10,
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(n @ 1..=50) => n,
            _ => {
                return Err(Error::invalid(
                    "limit",
                    "must be a whole number from 1 to 50",
                ))
            }
        },
    };
    let q = query.q.unwrap_or_default();
    let conn = state.store().conn().await?;
    let embedding = knowledge::Embedding::new(&state.config().providers, state.providers());
    let budget = crate::quotas::Budget::of(&user, quota_settings(&state));
    let hits = knowledge::search(&conn, embedding, &budget, &q, limit, "q").await?;
    Ok(Json(SearchResults {
        items: hits
            .into_iter()
            .map(|h| SearchHit {
                score: h.score,
                document_id: h.chunk.document_id,
                title: h.chunk.title,
                chunk: h.chunk.ord,
                heading: h.chunk.heading,
                snippet: h.snippet,
            })
            .collect(),
    }))
}

fn quota_settings(state: &AppState) -> crate::quotas::QuotaSettings {
    crate::quotas::QuotaSettings::new(&state.config().quotas, &state.config().chat)
}
