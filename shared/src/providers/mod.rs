//! Model providers behind one small interface: complete a turn, or stream it as text deltas that end
//! with usage. Which provider serves a model comes from the catalog ([`crate::models`]).
//!
//! Streams are channels: the provider's task reads the wire and sends [`StreamEvent`]s; dropping the
//! receiver (the client went away) stops that task and with it the upstream request.
//! [`RetryPolicy::run`] retries a call; the caller decides when that is safe (before any output).

mod bedrock;
mod echo;
mod file_tokens;
mod openai;
mod prompt_cache;

use std::time::Duration;

use tokio::sync::{mpsc, OnceCell};

use crate::{
    config::{EmbeddingModel, ProvidersConfig},
    models::{Model, Provider},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    User,
    Assistant,
}

#[derive(Debug, Clone)]
pub struct Turn {
    pub speaker: Speaker,
    pub text: String,
    /// Files sent with this turn (the newest user turn only).
    pub files: Vec<FilePart>,
    /// Tools the model called in this (assistant) turn.
    pub tool_calls: Vec<ToolCall>,
    /// What those calls returned, in the (user) turn that follows.
    pub tool_outputs: Vec<ToolOutput>,
}

impl Turn {
    pub fn new(speaker: Speaker, text: impl Into<String>) -> Self {
        Turn {
            speaker,
            text: text.into(),
            files: Vec::new(),
            tool_calls: Vec::new(),
            tool_outputs: Vec::new(),
        }
    }
}

/// A tool a model may call: its name, what it does, and the JSON schema of its input.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

/// Whether the model must call a tool (the OpenAI-compatible endpoint's `tool_choice`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// No tool is called. Converse has no such choice: Bedrock gets no tools, unless the turns
    /// hold tool blocks (which need the tool list), and then `auto`.
    None,
    /// Some tool is called.
    Required,
    /// This tool is called.
    Named(String),
}

pub use crate::kinds::ToolCall;
pub use file_tokens::file_tokens;

/// What a tool call returned.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub call_id: String,
    pub content: String,
    pub is_error: bool,
}

/// How a file reaches a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Image content (vision models): PNG, JPEG, GIF or WebP.
    Image,
    /// A PDF document (models with document input).
    Pdf,
    /// UTF-8 text (plain, Markdown, CSV, JSON, source code): a document where the provider takes
    /// them, else text.
    Text,
}

#[derive(Debug, Clone)]
pub struct FilePart {
    pub name: String,
    pub media_type: String,
    pub kind: FileKind,
    pub bytes: bytes::Bytes,
}

/// Rough token count (four characters a token): what the offline model reports, what context
/// budgeting and estimated billing use.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// A turn's rough token count: its text, the tool calls it makes and the tool outputs it carries.
pub fn estimate_turn_tokens(turn: &Turn) -> u64 {
    estimate_tokens(&turn.text)
        + turn
            .tool_calls
            .iter()
            .map(|c| estimate_tokens(&c.name) + estimate_tokens(&c.input.to_string()))
            .sum::<u64>()
        + turn
            .tool_outputs
            .iter()
            .map(|o| estimate_tokens(&o.content))
            .sum::<u64>()
}

/// Why a call is made: a turn's answer, or folding older turns into the rolling summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Chat,
    Summary,
}

/// One model call.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    pub system: Option<String>,
    /// Alternating turns, oldest first, ending with the user's.
    pub turns: Vec<Turn>,
    pub temperature: Option<f32>,
    pub max_tokens: u32,
    pub purpose: Purpose,
    /// Tools the model may call (empty: none).
    pub tools: Vec<ToolSpec>,
    pub tool_choice: ToolChoice,
}

impl ModelRequest {
    /// The most tokens the call can bill: its input's estimate (files included) and all of the
    /// answer's room (what a turn reserves against its budget before calling, and bills when the
    /// provider's own count never comes).
    pub fn most_tokens(&self) -> u64 {
        TokenUsage::estimate(self, "").input_tokens + self.max_tokens as u64
    }

    /// The files the call sends, in tokens at most ([`file_tokens`]).
    pub fn file_tokens(&self) -> u64 {
        self.turns
            .iter()
            .flat_map(|t| &t.files)
            .map(file_tokens)
            .sum()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens served from the provider's prompt cache (a subset of `input_tokens`).
    pub cached_tokens: u64,
    /// Input tokens written to the provider's prompt cache (a subset of `input_tokens`).
    pub cache_write_tokens: u64,
    /// Tokens the model spent reasoning (a subset of `output_tokens`).
    pub reasoning_tokens: u64,
}

impl TokenUsage {
    /// The usage of `request` answered with `reply`, by the rough four-characters-a-token rule: what
    /// the offline model reports, and what is billed when a provider never reported usage.
    pub fn estimate(request: &ModelRequest, reply: &str) -> Self {
        let input = request.system.as_deref().map(estimate_tokens).unwrap_or(0)
            + request.turns.iter().map(estimate_turn_tokens).sum::<u64>()
            + request.file_tokens();
        TokenUsage {
            input_tokens: input,
            output_tokens: estimate_tokens(reply),
            ..TokenUsage::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub usage: TokenUsage,
    pub stop_reason: Option<String>,
    /// Tools the model wants called before it answers (then `text` may be empty).
    pub tool_calls: Vec<ToolCall>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Delta(String),
    /// The last event of a successful stream.
    End {
        usage: TokenUsage,
        stop_reason: Option<String>,
    },
}

pub type EventStream = mpsc::Receiver<Result<StreamEvent, ProviderError>>;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProviderError {
    #[error("the provider is throttling requests")]
    Throttled { retry_after: Option<Duration> },
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    #[error("the provider did not answer in time")]
    Timeout,
    #[error("the provider rejected the request: {0}")]
    Rejected(String),
    #[error("the provider's stream failed: {0}")]
    Stream(String),
    #[error("the model's provider is not configured: {0}")]
    NotConfigured(&'static str),
}

impl ProviderError {
    /// The stable code clients see (in the problem and on the stored message), and its generic
    /// message. The provider's own text can hold a key fragment or a private URL: it goes to the log
    /// only.
    pub fn public(&self) -> (&'static str, &'static str) {
        match self {
            ProviderError::Throttled { .. } => (
                "provider_throttled",
                "the model provider is throttling requests; try again later",
            ),
            ProviderError::Unavailable(_) => (
                "provider_unavailable",
                "the model provider is unavailable; try again later",
            ),
            ProviderError::Timeout => ("timeout", "the model provider did not answer in time"),
            ProviderError::Rejected(_) => (
                "provider_rejected",
                "the model provider refused the request",
            ),
            ProviderError::Stream(_) => (
                "provider_stream_failed",
                "the model provider's answer broke off",
            ),
            ProviderError::NotConfigured(_) => (
                "provider_not_configured",
                "the model's provider is not configured in this deployment",
            ),
        }
    }

    /// Whether trying again may succeed (only ever done before any output reached the client).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Throttled { .. }
                | ProviderError::Unavailable(_)
                | ProviderError::Timeout
        )
    }
}

/// A failed model or embedding call as the API answers it: its stable code and generic message
/// (the provider's own text goes to the log only).
impl From<ProviderError> for crate::error::Error {
    fn from(e: ProviderError) -> Self {
        let (code, message) = e.public();
        tracing::warn!(code, error = %e, "the provider call failed");
        crate::error::Error::Provider { code, message }
    }
}

/// Bounded retries with exponential backoff (a provider's Retry-After wins, capped at 20 s).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per call, counting the first (1 to 10).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub base: Duration,
}

impl From<&crate::config::ProvidersConfig> for RetryPolicy {
    fn from(config: &crate::config::ProvidersConfig) -> Self {
        RetryPolicy {
            max_attempts: config.provider_max_attempts,
            base: config.provider_retry_base,
        }
    }
}

impl RetryPolicy {
    /// Runs `call`, retrying throttling, 5xx and timeouts. Callers only use it before any output
    /// exists, so a retry cannot duplicate text.
    pub async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < self.max_attempts => {
                    let backoff = self.base.saturating_mul(2u32.saturating_pow(attempt - 1));
                    let wait = match &e {
                        ProviderError::Throttled {
                            retry_after: Some(after),
                        } => *after,
                        _ => backoff,
                    }
                    .min(Duration::from_secs(20));
                    tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %e, "model call failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Texts per OpenAI-compatible `/embeddings` request.
pub const EMBED_BATCH: usize = 64;
/// Titan embedding calls in flight at once (one text per call).
pub const EMBED_CONCURRENCY: usize = 8;

/// The providers this process can call. Clients are built on first use, so functions that never
/// call a model pay nothing for them at cold start (nor carry their code: the linker drops it).
pub struct Providers {
    /// OpenAI-compatible providers by name, `openai` among them when configured.
    compatible: Vec<(
        String,
        OnceCell<openai::OpenAi>,
        crate::config::OpenAiConfig,
    )>,
    provider_timeout: Duration,
    bedrock: Option<OnceCell<bedrock::Bedrock>>,
    bedrock_settings: bedrock::Settings,
    echo: echo::Echo,
    /// Vectors of recent queries, per instance: a repeated search makes no call (and bills none).
    query_vectors: QueryCache,
}

/// Query vectors kept, and for how long: bounded so an instance's memory stays flat.
const QUERY_CACHE_ENTRIES: usize = 512;
const QUERY_CACHE_TTL: Duration = Duration::from_secs(600);

/// Query vectors keyed by (model, text).
type QueryCache = crate::cache::TtlCache<(String, String), Vec<f32>>;

impl Providers {
    pub fn new(config: &ProvidersConfig) -> Self {
        Providers {
            compatible: config
                .compatible_providers()
                .map(|(name, c)| (name.to_string(), OnceCell::new(), c.clone()))
                .collect(),
            provider_timeout: config.provider_timeout,
            bedrock: config.bedrock_enabled.then(OnceCell::new),
            bedrock_settings: bedrock::Settings::from(config),
            echo: echo::Echo::new(config.echo_delay),
            query_vectors: QueryCache::new(QUERY_CACHE_ENTRIES, QUERY_CACHE_TTL),
        }
    }

    async fn bedrock(&self) -> Result<&bedrock::Bedrock, ProviderError> {
        let cell = self
            .bedrock
            .as_ref()
            .ok_or(ProviderError::NotConfigured("Bedrock is disabled"))?;
        Ok(cell
            .get_or_init(|| bedrock::Bedrock::new(&self.bedrock_settings))
            .await)
    }

    /// The OpenAI-compatible provider `name`'s client, built on first use.
    async fn compatible(&self, name: &str) -> Result<&openai::OpenAi, ProviderError> {
        let (_, cell, config) = self.compatible.iter().find(|(n, _, _)| n == name).ok_or(
            ProviderError::NotConfigured(
                "set OPENAI_BASE_URL or OPENAI_API_KEY, or name the provider in PROVIDERS_FILE",
            ),
        )?;
        Ok(cell
            .get_or_init(|| async { openai::OpenAi::new(config, self.provider_timeout) })
            .await)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(model = %model.id))]
    pub async fn complete(
        &self,
        model: &Model,
        request: &ModelRequest,
    ) -> Result<Completion, ProviderError> {
        match &model.provider {
            Provider::Local => Ok(self.echo.complete(request)),
            Provider::OpenAiCompatible(name) => {
                self.compatible(name).await?.complete(model, request).await
            }
            Provider::Bedrock => self.bedrock().await?.complete(model, request).await,
        }
    }

    /// Embeds `texts` with a remote embedding model into `dimensions`-long vectors, in input
    /// order, with the input tokens billed. OpenAI-compatible endpoints take batches of
    /// [`EMBED_BATCH`]; Titan takes one text a call, [`EMBED_CONCURRENCY`] at a time. Each call is
    /// retried like a chat call.
    pub async fn embed(
        &self,
        model: &EmbeddingModel,
        texts: &[String],
        dimensions: usize,
        retry: RetryPolicy,
    ) -> Result<(Vec<Vec<f32>>, u64), ProviderError> {
        match model {
            EmbeddingModel::Local => Err(ProviderError::NotConfigured(
                "the offline embedder runs in process",
            )),
            EmbeddingModel::OpenAi { model, .. } => {
                let client = self.compatible("openai").await?;
                let mut vectors = Vec::with_capacity(texts.len());
                let mut tokens = 0;
                for batch in texts.chunks(EMBED_BATCH) {
                    let (v, t) = retry.run(|| client.embed(model, batch, dimensions)).await?;
                    vectors.extend(v);
                    tokens += t;
                }
                Ok((vectors, tokens))
            }
            EmbeddingModel::Bedrock { model, .. } => {
                let client = self.bedrock().await?;
                let mut vectors = Vec::with_capacity(texts.len());
                let mut tokens = 0;
                for group in texts.chunks(EMBED_CONCURRENCY) {
                    // Collected first: a lazy iterator of borrowing futures held across the
                    // await would not be `Send`.
                    let calls: Vec<_> = group
                        .iter()
                        .map(|text| retry.run(move || client.embed(model, text, dimensions)))
                        .collect();
                    for (v, t) in futures_util::future::try_join_all(calls).await? {
                        vectors.push(v);
                        tokens += t;
                    }
                }
                Ok((vectors, tokens))
            }
        }
    }

    /// A query's vector, from this instance's cache when the same model embedded the same text in
    /// the last ten minutes (then no call is made and no tokens are billed).
    pub async fn embed_query(
        &self,
        model: &EmbeddingModel,
        text: &str,
        dimensions: usize,
        retry: RetryPolicy,
    ) -> Result<(Vec<f32>, u64), ProviderError> {
        let key = (format!("{model:?}"), text.to_string());
        if let Some(vector) = self.query_vectors.get(&key) {
            return Ok((vector, 0));
        }
        let (mut vectors, tokens) = self
            .embed(model, &[text.to_string()], dimensions, retry)
            .await?;
        let vector = vectors
            .pop()
            .ok_or_else(|| ProviderError::Unavailable("the answer has no embedding".into()))?;
        self.query_vectors.put(key, vector.clone());
        Ok((vector, tokens))
    }

    /// Starts a streamed call. An error here happened before any output.
    #[tracing::instrument(level = "debug", skip_all, fields(model = %model.id))]
    pub async fn stream(
        &self,
        model: &Model,
        request: &ModelRequest,
    ) -> Result<EventStream, ProviderError> {
        match &model.provider {
            Provider::Local => Ok(self.echo.stream(request)),
            Provider::OpenAiCompatible(name) => {
                self.compatible(name).await?.stream(model, request).await
            }
            Provider::Bedrock => self.bedrock().await?.stream(model, request).await,
        }
    }
}
