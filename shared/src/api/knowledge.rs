use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{CurrentUser, IdPath};
use crate::{
    error::{Error, Problem, Result},
    function::{Function, Limits, Transport},
    http::{ApiJson, ApiQuery},
    ids::DocumentId,
    knowledge::{self, chunking::ChunkSize, NewDocumentInput},
    pagination::{PageQuery, Paginated},
    state::AppState,
    store::Document,
};

pub const FUNCTION: Function = Function {
    name: "knowledge",
    transport: Transport::Buffered(routes),
    limits: Limits::API,
};

/// Knowledge documents and search.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_document, list_documents))
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
    /// `ready`: chunked and indexed (documents are indexed inside the request that creates them).
    status: &'static str,
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
            status: "ready",
            embedder: d.embedder,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateDocument {
    title: String,
    /// The document's text, up to `MAX_DOCUMENT_BYTES`.
    content: String,
    /// `text/plain` or `text/markdown` (headings make sections); default `text/markdown`.
    content_type: Option<String>,
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

/// Adds a document: its text is chunked and indexed before the answer.
#[utoipa::path(post, path = "/api/v1/knowledge/documents", tag = "knowledge", security(("bearer" = [])), request_body = CreateDocument,
    responses((status = 201, body = DocumentOut), (status = 401, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
async fn create_document(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateDocument>,
) -> Result<(StatusCode, Json<DocumentOut>)> {
    let config = state.config();
    let input = NewDocumentInput {
        title: body.title,
        content: body.content,
        content_type: body.content_type.unwrap_or_else(|| "text/markdown".into()),
    }
    .check(config.max_document_bytes)?;
    let size = ChunkSize {
        max_tokens: config.knowledge_chunk_tokens,
        overlap_tokens: config.knowledge_chunk_tokens / 7,
    };
    let conn = state.store().conn().await?;
    let document = knowledge::create(&conn, user.id, &input, size).await?;
    Ok((StatusCode::CREATED, Json(document.into())))
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
    knowledge::delete(&conn, user.id, id).await?;
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
    let hits = knowledge::search(&conn, user.id, &q, limit, "q").await?;
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
