//! Knowledge: a user's documents, chunked and indexed in the store (FTS5 always, vectors from the
//! embedder), and hybrid retrieval (BM25 and vector ranks fused by reciprocal rank fusion) that
//! search and chat turns use. Every retrieval is filtered to the owner inside its statement.

pub mod chunking;
pub mod embedder;
pub mod extract;

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
    store::{ChunkHit, Citation, Conn, Document, EmbeddingBill, NewChunk, NewDocument},
};
use chunking::ChunkSize;
pub use extract::Kind;

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
/// Common words are left out of full-text search from this many chunks on…
const PRUNE_FROM_CHUNKS: i64 = 10_000;
/// …when more than one chunk in this many holds them.
const COMMON_TERM_SHARE: i64 = 20;
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
    ) -> Result<Self> {
        let kind = Kind::of(&bytes, declared, filename).ok_or(Error::UnsupportedMediaType(
            "a knowledge document is text (.txt), Markdown (.md) or PDF (.pdf)",
        ))?;
        let content = extract::text(bytes, kind, field).await?;
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
    pub fn new(config: &'a crate::config::Config, providers: &'a Providers) -> Self {
        Embedding {
            model: &config.embedding_model,
            providers,
            retry: RetryPolicy {
                max_attempts: config.provider_max_attempts,
                base: config.provider_retry_base,
            },
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

/// How documents are indexed: chunk sizes, and the largest text indexed inside the request.
#[derive(Debug, Clone, Copy)]
pub struct IndexSettings {
    pub chunk: ChunkSize,
    pub in_request_bytes: usize,
}

impl IndexSettings {
    pub fn from(config: &crate::config::Config) -> Self {
        IndexSettings {
            chunk: ChunkSize {
                max_tokens: config.knowledge_chunk_tokens,
                overlap_tokens: config.knowledge_chunk_tokens / 7,
            },
            in_request_bytes: config.max_index_in_request_bytes,
        }
    }
}

/// A created document: indexed, or waiting for the worker.
pub enum Created {
    Ready(Document),
    Indexing(Document),
}

/// Chunks, embeds and stores a checked document, with its embedding calls' usage. The embedding
/// calls come first: a failed call stores nothing (a 502). A remote model's calls count against
/// the user's daily token budget, reserved before they are made (429 as for chat when they do not
/// fit). The chunks go to the store in bounded batches ([`store_chunks`]) behind the `indexing`
/// status, so no write holds the database for long; the document answers `ready` once the last
/// batch has landed, and a request that fails part-way removes what it stored.
///
/// A text over `in_request_bytes` is stored `indexing`, its text in the blob store, and indexed
/// by [`index_stored`] after the answer (the budget is checked now, and the calls billed then).
pub async fn create(
    conn: &Conn,
    blobs: &BlobStore,
    embedding: Embedding<'_>,
    budget: &Budget,
    input: &NewDocumentInput,
    settings: IndexSettings,
) -> Result<Created> {
    sweep(conn, blobs).await;
    let user_id = budget.user_id;
    let (embedder, sha256) = (
        embedding.name(),
        crate::projects::sha256_hex(input.content.as_bytes()),
    );
    let estimate = |text: &str| match embedding.model {
        EmbeddingModel::Local => 0,
        _ => estimate_tokens(text),
    };
    if input.content.len() > settings.in_request_bytes {
        if estimate(&input.content) > 0 {
            quotas::reserve(conn, budget, estimate(&input.content))
                .await?
                .release(conn)
                .await;
        }
        let document = conn
            .insert_indexing_document(new_document(user_id, input, &embedder, &sha256), None)
            .await?;
        let put = blobs
            .put(
                &BlobKey::knowledge_text(user_id, document.id),
                "text/plain; charset=utf-8",
                input.content.clone().into(),
            )
            .await;
        if let Err(e) = put {
            conn.delete_document(document.id, user_id).await?;
            return Err(e.into());
        }
        return Ok(Created::Indexing(document));
    }
    let markdown = input.kind == Kind::Markdown;
    let pieces = chunking::chunk(&input.content, markdown, settings.chunk);
    let texts = embedding_texts(&pieces);
    let holds = match texts.iter().map(|t| estimate(t)).sum() {
        0 => None,
        tokens => Some(quotas::reserve(conn, budget, tokens).await?),
    };
    let stored = async {
        let (chunks, bill) = embed(embedding, pieces, &texts).await?;
        let lease = crate::ids::format_time((std::time::SystemTime::now() + REQUEST_LEASE).into());
        let new = new_document(user_id, input, &embedder, &sha256);
        let document = conn.insert_indexing_document(new, Some(&lease)).await?;
        let stored = async {
            let complete = store_chunks(conn, document.id, user_id, &chunks).await?
                && conn
                    .finish_indexing(document.id, user_id, chunks.len(), bill.as_ref())
                    .await?;
            // Deleted by its owner before it was ready.
            if !complete {
                return Err(Error::NotFound);
            }
            conn.document(document.id, user_id).await?.ok_or(Error::NotFound)
        }
        .await;
        if stored.is_err() {
            if let Err(e) = conn.delete_document(document.id, user_id).await {
                tracing::warn!(error = %e, "a document that failed part-way was left for the sweep");
            }
        }
        stored
    }
    .await;
    if let Some(holds) = holds {
        holds.release(conn).await;
    }
    stored.map(Created::Ready)
}

/// Chunks written per statement. Each chunk's vector goes into the DiskANN index as it is
/// inserted: 471 rows/s for random vectors on this machine (migration 0014), so a batch of 24 is
/// about 50 ms of lock at that rate (derived, not timed). All of a 512 KiB document's chunks in
/// one statement held the lock past 500 ms even on an idle machine (the sqld test with one batch).
const CHUNK_BATCH: usize = 24;

/// Writes a document's chunks in batches; false when the document was deleted (or finished)
/// meanwhile, and nothing more is written.
async fn store_chunks(
    conn: &Conn,
    id: DocumentId,
    user_id: UserId,
    chunks: &[NewChunk],
) -> Result<bool> {
    for batch in chunks.chunks(CHUNK_BATCH) {
        if !conn.add_chunks(id, user_id, batch).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// How long a request indexing a document may take before the sweep counts it as dead: past the
/// knowledge function's timeout.
const REQUEST_LEASE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// How long a worker run holds a document: past the worker's timeout.
const INDEX_LEASE: std::time::Duration = std::time::Duration::from_secs(16 * 60);

/// Removes what runs that died part-way left: documents still `indexing` past their lease whose
/// text is not waiting in the blob store (a request's; a worker's is resumed by its retry, see
/// [`index_stored`]). Runs before each new document; a few at a time, and its failures are only
/// logged, since they are not the caller's.
pub async fn sweep(conn: &Conn, blobs: &BlobStore) {
    let now = crate::ids::now();
    let stale = match conn.stale_indexing(&now, 4).await {
        Ok(stale) => stale,
        Err(e) => {
            tracing::warn!(error = %e, "the knowledge sweep could not list stale documents");
            return;
        }
    };
    for (id, user_id) in stale {
        match blobs.read(&BlobKey::knowledge_text(user_id, id)).await {
            Err(crate::blobs::BlobError::Missing) => {}
            // The worker's: its event's retry resumes it.
            _ => continue,
        }
        if let Err(e) = conn.delete_document(id, user_id).await {
            tracing::warn!(error = %e, "the knowledge sweep could not remove a stale document");
        }
    }
}

/// Indexes a document stored `indexing` by [`create`]: once, however often its event comes (a run
/// claims it first). A run that died part-way is resumed where it stopped, by the next delivery
/// of its event once its claim has expired: chunking is deterministic, so the chunks already
/// stored are skipped (and not embedded again). A failed embedding call marks it `failed` with
/// the provider's public reason; a store or blob failure is returned, so that the event is
/// delivered again.
pub async fn index_stored(
    conn: &Conn,
    blobs: &BlobStore,
    embedding: Embedding<'_>,
    chunk: ChunkSize,
    user_id: UserId,
    id: DocumentId,
) -> Result<()> {
    let key = BlobKey::knowledge_text(user_id, id);
    let now = std::time::SystemTime::now();
    let claimed = conn
        .claim_indexing(
            id,
            user_id,
            &crate::ids::format_time(now.into()),
            &crate::ids::format_time((now + INDEX_LEASE).into()),
        )
        .await?;
    let Some(document) = claimed else {
        // Done, failed or deleted: the text is no longer needed. Claimed by a live run: its own.
        if conn
            .document(id, user_id)
            .await?
            .is_none_or(|d| d.status != DocumentStatus::Indexing)
        {
            blobs.delete(&key).await?;
        }
        return Ok(());
    };
    let text = match blobs.read_all(&key).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(crate::blobs::BlobError::Missing) => {
            conn.fail_indexing(id, user_id, "the document's text was lost; add it again")
                .await?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let markdown = document.content_type == Kind::Markdown.content_type();
    let mut pieces = chunking::chunk(&text, markdown, chunk);
    let total = pieces.len();
    let done = conn
        .indexed_through(id)
        .await?
        .map_or(0, |last| (last + 1) as usize)
        .min(total);
    let rest = pieces.split_off(done);
    let texts = embedding_texts(&rest);
    match embed(embedding, rest, &texts).await {
        Ok((mut chunks, bill)) => {
            for c in &mut chunks {
                c.ord += done as i64;
            }
            if store_chunks(conn, id, user_id, &chunks).await? {
                conn.finish_indexing(id, user_id, total, bill.as_ref())
                    .await?;
            }
        }
        Err(Error::Provider { message, .. }) => {
            conn.fail_indexing(id, user_id, message).await?;
        }
        Err(e) => return Err(e),
    }
    blobs.delete(&key).await?;
    Ok(())
}

fn new_document<'a>(
    user_id: UserId,
    input: &'a NewDocumentInput,
    embedder: &'a str,
    sha256: &'a str,
) -> NewDocument<'a> {
    NewDocument {
        user_id,
        title: &input.title,
        content_type: input.kind.content_type(),
        size: input.content.len() as i64,
        sha256,
        embedder: Some(embedder),
    }
}

/// What is embedded of each chunk: its heading path, then its text.
fn embedding_texts(pieces: &[chunking::Chunk]) -> Vec<String> {
    pieces
        .iter()
        .map(|c| format!("{}\n{}", c.heading, c.content))
        .collect()
}

/// The chunks with their vectors, and what a remote model's calls cost.
async fn embed(
    embedding: Embedding<'_>,
    pieces: Vec<chunking::Chunk>,
    texts: &[String],
) -> Result<(Vec<NewChunk>, Option<EmbeddingBill>)> {
    let (vectors, bill) = embedding.vectors(texts).await?;
    let chunks = pieces
        .into_iter()
        .zip(vectors)
        .enumerate()
        .map(|(i, (c, embedding))| NewChunk {
            ord: i as i64,
            tokens: estimate_tokens(&c.content) as i64,
            heading: c.heading,
            content: c.content,
            embedding,
        })
        .collect();
    Ok((chunks, bill))
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

/// A retrieved chunk with its fused score.
#[derive(Debug, Clone)]
pub struct Hit {
    pub chunk: ChunkHit,
    pub score: f64,
    /// A piece of the chunk around the first query word it holds.
    pub snippet: String,
}

impl Hit {
    pub fn citation(&self) -> Citation {
        Citation {
            document_id: self.chunk.document_id.to_string(),
            title: self.chunk.title.clone(),
            chunk: self.chunk.ord,
            heading: self.chunk.heading.clone(),
            score: self.score,
            snippet: self.snippet.clone(),
        }
    }
}

/// The user's `limit` best chunks for `query`: FTS5 BM25 and vector ranks fused by reciprocal
/// rank fusion. A query without a word to search for is a 422 on `field`.
pub async fn search(
    conn: &Conn,
    embedding: Embedding<'_>,
    budget: &Budget,
    query: &str,
    limit: u32,
    field: &str,
) -> Result<Vec<Hit>> {
    let words = embedder::words(query);
    if words.is_empty() {
        return Err(Error::invalid(field, "must contain a word to search for"));
    }
    let user_id = budget.user_id;
    let candidates = limit * CANDIDATES_PER_RESULT;
    // Two steps, each of two parts run together. First the words' counts and the query's vector
    // (a remote embedder's call overlaps the statement). Then the full-text statement here and
    // the vector statement on a second connection in its own task: on a local file the two run on
    // two cores (at 100k chunks about 6 and 4.5 ms p50; README, Benchmarks), against a remote store
    // their round trips overlap.
    let ((terms, factor), vector) = tokio::try_join!(
        search_terms(conn, user_id, &words),
        embedding.query_vector(conn, budget, query),
    )?;
    let by_vector = match vector {
        Some(vector) => {
            let other = conn.fork().await?;
            let embedder = embedding.name();
            Some(tokio::spawn(async move {
                other
                    .search_chunks_vector(
                        user_id,
                        &embedder,
                        &vector,
                        candidates,
                        candidates * factor,
                    )
                    .await
            }))
        }
        None => None,
    };
    let by_text = if terms.is_empty() {
        Vec::new()
    } else {
        // Each word quoted (FTS5 syntax in the query is text, not operators), any may match.
        let fts_query = terms
            .iter()
            .map(|w| format!("\"{w}\""))
            .collect::<Vec<_>>()
            .join(" OR ");
        conn.search_chunks_text(user_id, &fts_query, candidates)
            .await?
    };
    let by_vector = match by_vector {
        Some(task) => task
            .await
            .map_err(|e| Error::Internal(format!("the vector search task failed: {e}")))??,
        None => Vec::new(),
    };
    Ok(fuse(&[by_text, by_vector], limit as usize)
        .into_iter()
        .map(|(chunk, score)| Hit {
            snippet: snippet(&chunk.content, &words),
            chunk,
            score,
        })
        .collect())
}

/// The words full-text search looks for: distinct, at most [`MAX_QUERY_TERMS`] of the rarest. In a
/// large index (over [`PRUNE_FROM_CHUNKS`] chunks) a word held by more than one chunk in
/// [`COMMON_TERM_SHARE`] is left out: BM25 gives it almost no weight, and matching it means
/// scoring a large part of the index (160 ms a query at 100k chunks, against about 10 without;
/// README, Benchmarks). A query of only such words is answered by its vector neighbours alone.
/// Also returns how many times the candidates the vector index is asked for (see [`oversample`]).
async fn search_terms(
    conn: &Conn,
    user_id: UserId,
    words: &[String],
) -> Result<(Vec<String>, u32)> {
    let mut unique: Vec<String> = Vec::new();
    for w in words {
        if !unique.contains(w) && unique.len() < MAX_LOOKUP_TERMS {
            unique.push(w.clone());
        }
    }
    let stats = conn.term_frequencies(user_id, &unique).await?;
    let factor = oversample(stats.total, stats.own);
    Ok((rarest_terms(unique, stats.counts, stats.total), factor))
}

/// How many neighbours per wanted candidate to ask the vector index for, which ranks all users'
/// chunks: about the index's size over the user's share of it, up to [`ANN_OVERSAMPLE`] (past
/// that, the exact scan of the user's own chunks answers). A user who holds most of the index
/// asks for no more than needed: every neighbour visited costs time.
fn oversample(total: i64, own: i64) -> u32 {
    if own <= 0 {
        return ANN_OVERSAMPLE;
    }
    let ratio = (total + own - 1) / own;
    ratio.clamp(1, ANN_OVERSAMPLE as i64) as u32
}

/// The words to search for, given how many chunks hold each and about how many there are.
fn rarest_terms(words: Vec<String>, counts: Vec<i64>, total: i64) -> Vec<String> {
    let mut ranked: Vec<(i64, String)> = counts.into_iter().zip(words).collect();
    if total >= PRUNE_FROM_CHUNKS {
        ranked.retain(|(n, _)| *n * COMMON_TERM_SHARE <= total);
    }
    ranked.sort();
    ranked.truncate(MAX_QUERY_TERMS);
    ranked.into_iter().map(|(_, w)| w).collect()
}

/// Reciprocal rank fusion: each list gives a chunk 1 / (k + rank); the best sums first (ties by
/// chunk id, so equal scores order the same every time).
fn fuse(lists: &[Vec<ChunkHit>], limit: usize) -> Vec<(ChunkHit, f64)> {
    let mut scored: Vec<(ChunkHit, f64)> = Vec::new();
    for list in lists {
        for (rank, hit) in list.iter().enumerate() {
            let add = 1.0 / (RRF_K + rank as f64 + 1.0);
            match scored.iter_mut().find(|(h, _)| h.chunk_id == hit.chunk_id) {
                Some((_, score)) => *score += add,
                None => scored.push((hit.clone(), add)),
            }
        }
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.chunk_id.cmp(&b.0.chunk_id)));
    scored.truncate(limit);
    scored
}

/// About [`SNIPPET_CHARS`] of `content`, starting a little before the first query word it holds.
fn snippet(content: &str, words: &[String]) -> String {
    let lower = content.to_lowercase();
    let at = words
        .iter()
        .filter_map(|w| lower.find(w.as_str()))
        .min()
        .unwrap_or(0);
    // `lower` can differ in length from `content` for some scripts; fall back to the start.
    let at = if lower.len() == content.len() { at } else { 0 };
    let chars: Vec<char> = content.chars().collect();
    let start_char = content[..floor_boundary(content, at)]
        .chars()
        .count()
        .saturating_sub(40);
    let end_char = (start_char + SNIPPET_CHARS).min(chars.len());
    let mut out: String = chars[start_char..end_char].iter().collect();
    out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if start_char > 0 {
        out.insert(0, '…');
    }
    if end_char < chars.len() {
        out.push('…');
    }
    out
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// What a chat turn is given from the user's knowledge: numbered sources for the system prompt,
/// as many of the best chunks as fit in `max_tokens`, and their citations in the same order.
pub async fn context_for(
    conn: &Conn,
    embedding: Embedding<'_>,
    budget: &Budget,
    question: &str,
    max_tokens: usize,
) -> Result<Option<(String, Vec<Citation>)>> {
    // A question without a searchable word retrieves nothing rather than refusing the turn.
    if embedder::words(question).is_empty() {
        return Ok(None);
    }
    let hits = search(conn, embedding, budget, question, 5, "message").await?;
    let mut text = String::from(
        "Sources from the user's knowledge base follow. Use them when they answer the question and \
         cite them by number, like [1]. Say so when they do not.",
    );
    let mut citations = Vec::new();
    let mut used = estimate_tokens(&text) as usize;
    for hit in hits {
        let n = citations.len() + 1;
        let heading = if hit.chunk.heading.is_empty() {
            String::new()
        } else {
            format!(" › {}", hit.chunk.heading)
        };
        let source = format!(
            "\n\n[{n}] {}{heading}\n{}",
            hit.chunk.title, hit.chunk.content
        );
        let cost = estimate_tokens(&source) as usize;
        if used + cost > max_tokens {
            break;
        }
        used += cost;
        text.push_str(&source);
        citations.push(hit.citation());
    }
    Ok((!citations.is_empty()).then_some((text, citations)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_start_near_the_first_word_and_mark_cuts() {
        let long = format!("{} whale {}", "x ".repeat(200), "y ".repeat(200));
        let s = snippet(&long, &["whale".to_string()]);
        assert!(
            s.starts_with('…') && s.ends_with('…') && s.contains("whale"),
            "{s}"
        );
        assert_eq!(snippet("short text", &["none".into()]), "short text");
        assert_eq!(snippet("ÄÖÜ straße", &["straße".into()]), "ÄÖÜ straße");
    }

    #[test]
    fn the_vector_index_is_asked_for_the_users_share() {
        assert_eq!(oversample(100_000, 100_000), 1);
        assert_eq!(oversample(100_000, 60_000), 2);
        assert_eq!(oversample(100_000, 25_000), 4);
        assert_eq!(oversample(100_000, 100), ANN_OVERSAMPLE);
        assert_eq!(oversample(0, 0), ANN_OVERSAMPLE);
    }

    #[test]
    fn common_words_leave_full_text_search_only_in_a_large_index() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Small index: every word stays, rarest first.
        assert_eq!(
            rarest_terms(words(&["common", "rare"]), vec![900, 3], 1000),
            words(&["rare", "common"])
        );
        // Large index: a word in more than 1 chunk of 20 goes; all of them may go.
        assert_eq!(
            rarest_terms(
                words(&["common", "rare", "edge"]),
                vec![9000, 3, 5000],
                100_000
            ),
            words(&["rare", "edge"])
        );
        assert!(rarest_terms(words(&["the"]), vec![90_000], 100_000).is_empty());
        let many: Vec<String> = (0..40).map(|i| format!("w{i:02}")).collect();
        let counts: Vec<i64> = (0..40).rev().collect();
        let kept = rarest_terms(many, counts, 1000);
        assert_eq!(kept.len(), MAX_QUERY_TERMS);
        assert_eq!(kept[0], "w39", "the rarest first");
    }

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
