//! Knowledge: a user's documents, chunked and indexed in the store (FTS5 always, vectors from the
//! embedder), and hybrid retrieval (BM25 and vector ranks fused by reciprocal rank fusion) that
//! search and chat turns use. Every retrieval is filtered to the owner inside its statement.

pub mod chunking;
pub mod embedder;
pub mod extract;
mod indexing;
mod search;

use crate::{
    attachments,
    blobs::{BlobKey, BlobStore},
    config::EmbeddingModel,
    error::{Error, FieldError, FieldErrors, Result},
    ids::{AttachmentId, DocumentId, UserId},
    kinds::{AttachmentStatus, DocumentStatus},
    pagination::{Page, Paginated},
    providers::{estimate_tokens, Providers, RetryPolicy},
    quotas::{self, Budget},
    store::{Conn, Document, EmbeddingBill, NewChunk, NewDocument},
};
use chunking::ChunkSize;
pub use extract::Kind;
pub use indexing::{create, index_stored, sweep, Created, IndexSettings};
pub use search::{context_for, search, Hit};

const MAX_TITLE_CHARS: usize = 200;
/// Reciprocal rank fusion's constant: ranks beyond the first few differ little.
const RRF_K: f64 = 60.0;
/// Results either search contributes before fusion, per result asked for.
const CANDIDATES_PER_RESULT: u32 = 3;
/// At most, neighbours the vector index is asked for before the owner filter, per candidate.
const ANN_OVERSAMPLE: u32 = 10;
/// Distinct words of a query looked up, and kept for full-text search (the rarest).
const MAX_LOOKUP_TERMS: usize = 64;
const MAX_QUERY_TERMS: usize = 16;
/// Common words are left out of full-text search once the user holds 10 000 chunks, when more than
/// one of their chunks in 20 holds them.
const COMMON_WORDS: crate::store::CommonWords = crate::store::CommonWords {
    from_chunks: 10_000,
    share: 20,
};
/// Characters of a chunk shown as a result's snippet.
const SNIPPET_CHARS: usize = 240;

/// A document's text with its title and kind, checked by [`NewDocumentInput::check`].
#[derive(Debug)]
pub struct NewDocumentInput {
    pub title: String,
    pub content: String,
    pub kind: Kind,
}

/// The kind of a document given as JSON text (`content_type`, default Markdown).
pub fn text_kind(content_type: Option<&str>) -> std::result::Result<Kind, FieldError> {
    match content_type
        .map(|t| t.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("text/markdown") => Ok(Kind::Markdown),
        Some("text/plain") => Ok(Kind::Text),
        Some(_) => Err(FieldError::new(
            "content_type",
            "must be text/markdown or text/plain (upload a PDF as a file)",
        )),
    }
}

impl NewDocumentInput {
    /// Trims the title and checks it and the text, naming each bad field in one 422; a text over
    /// `max_bytes` is a 413.
    pub fn check(self, max_bytes: usize) -> Result<Self> {
        self.check_with(max_bytes, FieldErrors::default())
    }

    /// A document given as JSON text: its `content_type` is checked with the other fields.
    pub fn from_text(
        title: Option<String>,
        content: String,
        content_type: Option<&str>,
        max_bytes: usize,
    ) -> Result<Self> {
        let mut errors = FieldErrors::default();
        let kind = errors
            .take(text_kind(content_type))
            .unwrap_or(Kind::Markdown);
        NewDocumentInput {
            title: title.unwrap_or_default(),
            content,
            kind,
        }
        .check_with(max_bytes, errors)
    }

    fn check_with(mut self, max_bytes: usize, mut errors: FieldErrors) -> Result<Self> {
        if self.content.len() > max_bytes {
            return Err(Error::PayloadTooLarge { limit: max_bytes });
        }
        self.title = self.title.trim().to_string();
        if let Err(e) = check_title(&self.title) {
            errors.push(e);
        }
        if self.content.trim().is_empty() {
            errors.push(FieldError::new("content", "must not be empty"));
        } else if embedder::words(&self.content).is_empty() {
            errors.push(FieldError::new("content", "has no words to index"));
        }
        errors.finish()?;
        Ok(self)
    }

    /// A document from an uploaded file (`.txt`, `.md`, `.pdf`); the title defaults to the file's
    /// name without its extension. Another kind of file is a 415.
    pub async fn from_file(
        bytes: bytes::Bytes,
        declared: Option<&str>,
        filename: &str,
        title: Option<String>,
        field: &str,
        pdf: crate::config::PdfLimits,
    ) -> Result<Self> {
        let kind = Kind::of(&bytes, declared, filename).ok_or(Error::UnsupportedMediaType(
            "a knowledge document is text (.txt), Markdown (.md) or PDF (.pdf)",
        ))?;
        let content = extract::text(bytes, kind, field, pdf).await?;
        let base = filename.rsplit(['/', '\\']).next().unwrap_or("");
        let stem = base.rsplit_once('.').map_or(base, |(stem, _)| stem);
        let title = title.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| {
            if stem.trim().is_empty() {
                "Untitled".into()
            } else {
                stem.to_string()
            }
        });
        Ok(NewDocumentInput {
            title,
            content,
            kind,
        })
    }
}

/// The bytes of the user's ready attachment, for a document made from it (up to `max_bytes`).
pub async fn attachment_bytes(
    conn: &Conn,
    blobs: &BlobStore,
    user_id: UserId,
    id: AttachmentId,
    max_bytes: u64,
) -> Result<(bytes::Bytes, crate::store::Attachment)> {
    let attachment = match attachments::get(conn, user_id, id).await {
        Err(Error::NotFound) => return Err(Error::invalid("attachment_id", "no such attachment")),
        other => other?,
    };
    if attachment.status != AttachmentStatus::Ready {
        return Err(Error::invalid(
            "attachment_id",
            "the upload is not complete yet",
        ));
    }
    if attachment.size as u64 > max_bytes {
        return Err(Error::PayloadTooLarge {
            limit: max_bytes as usize,
        });
    }
    let bytes = blobs
        .read_all(&BlobKey::attachment(user_id, id))
        .await
        .map_err(Error::from)?;
    Ok((bytes.into(), attachment))
}

fn check_title(title: &str) -> std::result::Result<(), FieldError> {
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(FieldError::new(
            "title",
            format!("must be 1 to {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(())
}

/// How chunks and queries become vectors in this deployment: the offline embedder, or a remote
/// model called through the providers (retried like chat calls, billed as usage rows).
#[derive(Clone, Copy)]
pub struct Embedding<'a> {
    pub model: &'a EmbeddingModel,
    pub providers: &'a Providers,
    pub retry: RetryPolicy,
}

impl<'a> Embedding<'a> {
    /// This deployment's embedder, retried as its chat calls are.
    pub fn new(config: &'a crate::config::ProvidersConfig, providers: &'a Providers) -> Self {
        Embedding {
            model: &config.embedding_model,
            providers,
            retry: RetryPolicy::from(config),
        }
    }

    /// The name stored on documents; vectors of different embedders are never compared.
    pub fn name(&self) -> String {
        match self.model {
            EmbeddingModel::Local => embedder::LOCAL_EMBEDDER.to_string(),
            EmbeddingModel::OpenAi { model, .. } => format!("openai/{model}"),
            EmbeddingModel::Bedrock { model, .. } => format!("bedrock/{model}"),
        }
    }

    /// A query's vector (none without direction). A remote model's call is reserved against the
    /// user's budget first (429 when it does not fit, no call made) and billed; a query repeated
    /// within the cache's time costs no call.
    async fn query_vector(
        &self,
        conn: &Conn,
        budget: &Budget,
        query: &str,
    ) -> Result<Option<String>> {
        if *self.model == EmbeddingModel::Local {
            return Ok(local_vector(query));
        }
        let holds = quotas::reserve(conn, budget, estimate_tokens(query)).await?;
        let billed = self.embed_and_bill(conn, budget.user_id, query).await;
        holds.release(conn).await;
        billed.map(Some)
    }

    async fn embed_and_bill(&self, conn: &Conn, user_id: UserId, query: &str) -> Result<String> {
        let (vector, tokens) = self
            .providers
            .embed_query(self.model, query, embedder::DIMENSIONS, self.retry)
            .await?;
        if tokens > 0 {
            conn.insert_embedding_usage(user_id, &self.bill(tokens))
                .await?;
        }
        Ok(embedder::to_json(&vector))
    }

    /// What `tokens` of this (remote) model cost.
    fn bill(&self, tokens: u64) -> EmbeddingBill {
        let price = match self.model {
            EmbeddingModel::Local => 0.0,
            EmbeddingModel::OpenAi {
                usd_per_million, ..
            }
            | EmbeddingModel::Bedrock {
                usd_per_million, ..
            } => *usd_per_million,
        };
        EmbeddingBill {
            model: self.name(),
            tokens: tokens as i64,
            cost_usd: tokens as f64 * price / 1_000_000.0,
        }
    }

    /// The texts' vectors as `vector32` reads them (none for a text without direction under the
    /// offline embedder), and what a remote model's calls cost.
    async fn vectors(
        &self,
        texts: &[String],
    ) -> Result<(Vec<Option<String>>, Option<EmbeddingBill>)> {
        if *self.model == EmbeddingModel::Local {
            return Ok((texts.iter().map(|t| local_vector(t)).collect(), None));
        }
        let (vectors, tokens) = self
            .providers
            .embed(self.model, texts, embedder::DIMENSIONS, self.retry)
            .await?;
        Ok((
            vectors.iter().map(|v| Some(embedder::to_json(v))).collect(),
            Some(self.bill(tokens)),
        ))
    }
}

/// The offline embedder's vector of `text`; none for only stop words (no direction: found by full
/// text alone).
fn local_vector(text: &str) -> Option<String> {
    let v = embedder::embed(text);
    v.iter().any(|x| *x != 0.0).then(|| embedder::to_json(&v))
}

/// The user's document, or 404 (also for another user's).
pub async fn get(conn: &Conn, user_id: UserId, id: DocumentId) -> Result<Document> {
    conn.document(id, user_id).await?.ok_or(Error::NotFound)
}

pub async fn list(
    conn: &Conn,
    user_id: UserId,
    page: Page<(String, String)>,
) -> Result<Paginated<Document>> {
    let rows = conn.list_documents(user_id, page.after, page.limit).await?;
    Ok(Paginated::from_rows(rows, page.limit, |d| {
        (d.created_at.clone(), d.id.to_string())
    }))
}

pub async fn rename(conn: &Conn, user_id: UserId, id: DocumentId, title: &str) -> Result<Document> {
    let title = title.trim();
    check_title(title).map_err(Error::from)?;
    conn.rename_document(id, user_id, title)
        .await?
        .ok_or(Error::NotFound)
}

/// Deletes the document; one still waiting for the worker takes its stored text with it.
pub async fn delete(conn: &Conn, blobs: &BlobStore, user_id: UserId, id: DocumentId) -> Result<()> {
    match conn.delete_document(id, user_id).await? {
        None => Err(Error::NotFound),
        Some(DocumentStatus::Indexing) => {
            // A worker run that comes later finds no document and removes the text itself.
            if let Err(e) = blobs.delete(&BlobKey::knowledge_text(user_id, id)).await {
                tracing::warn!(error = %e, "a deleted document's text was not removed");
            }
            Ok(())
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn checks_name_each_field_and_size_is_413() {
        let input = NewDocumentInput {
            title: " ".into(),
            content: "  ".into(),
            kind: Kind::Text,
        };
        let err = input.check(100).unwrap_err();
        let text = format!("{err:?}");
        for field in ["title", "content"] {
            assert!(text.contains(field), "{text}");
        }
        let big = NewDocumentInput {
            title: "t".into(),
            content: "a".repeat(101),
            kind: Kind::Text,
        };
        assert!(matches!(
            big.check(100),
            Err(Error::PayloadTooLarge { limit: 100 })
        ));
        assert!(text_kind(Some("application/pdf")).is_err());
        assert_eq!(text_kind(None).unwrap(), Kind::Markdown);
    }
}
