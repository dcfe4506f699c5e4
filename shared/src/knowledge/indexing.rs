//! Indexing a document: chunked, embedded, and written to the store in bounded batches behind
//! `indexing`, inside the request or by the worker; and the sweep of runs that died part-way.

use super::*;

/// How long a document indexed after its request keeps its reservation: past the worker's event
/// retries (an hour) and one run (15 minutes).
const WORKER_HOLD: std::time::Duration = std::time::Duration::from_secs(2 * 3600);

/// How documents are indexed: chunk sizes, and the largest text indexed inside the request.
#[derive(Debug, Clone, Copy)]
pub struct IndexSettings {
    pub chunk: ChunkSize,
    pub in_request_bytes: usize,
    /// What the user may store (a document past it is a 413 `storage-quota`), and how many
    /// documents they may hold (409 past it).
    pub caps: crate::store::DocumentCaps,
}

impl IndexSettings {
    pub fn from(config: &crate::config::KnowledgeConfig) -> Self {
        IndexSettings {
            chunk: ChunkSize {
                max_tokens: config.chunk_tokens,
                overlap_tokens: config.chunk_tokens / 7,
            },
            in_request_bytes: config.max_index_in_request_bytes,
            caps: crate::store::DocumentCaps {
                storage_bytes: config.max_user_storage_bytes,
                documents: config.max_documents_per_user,
            },
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
        // Its embedding calls are reserved now and the hold kept until the run that indexes it
        // bills (or fails): back-to-back large documents cannot all pass a budget.
        let id = DocumentId::new();
        let hold = crate::store::document_hold_id(id);
        if estimate(&input.content) > 0 {
            quotas::reserve_for_later(conn, budget, estimate(&input.content), &hold, WORKER_HOLD)
                .await?;
        }
        let stored = async {
            let new = new_document(user_id, input, &embedder, &sha256);
            let document = conn
                .insert_indexing_document(id, new, None, settings.caps)
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
            Ok(document)
        };
        return match stored.await {
            Ok(document) => Ok(Created::Indexing(document)),
            Err(e) => {
                if let Err(release) = conn.release_quota_holds(&[hold]).await {
                    tracing::warn!(error = %release, "releasing a document's hold failed");
                }
                Err(e)
            }
        };
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
        let document = conn
            .insert_indexing_document(DocumentId::new(), new, Some(&lease), settings.caps)
            .await?;
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
