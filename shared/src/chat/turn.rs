//! One chat turn, whatever carries it (`POST /chat`, the WebSocket, the OpenAI-compatible
//! endpoint): the budget, the start (the user message stored before any model is called), the
//! model's answer, and, under an `Idempotency-Key`, the claim's release, attachment and record.
//! The transports are adapters: they parse and authorise, call [`turn`], and map its [`Reply`] and
//! [`Event`]s to their own wire format.

use std::sync::Arc;

use tracing::Instrument;

use super::*;
use crate::{idempotency::Claim, store::User};

/// What a turn uses of the process; cheap to clone into the task that runs a streamed turn.
#[derive(Clone)]
pub struct Services {
    pub catalog: Arc<Catalog>,
    pub providers: Arc<Providers>,
    pub mcp: Arc<crate::mcp::Hub>,
    pub blobs: BlobStore,
    pub embedding_model: crate::config::EmbeddingModel,
    pub settings: TurnSettings,
    pub quotas: quotas::QuotaSettings,
}

impl Services {
    fn embedding(&self) -> knowledge::Embedding<'_> {
        knowledge::Embedding {
            model: &self.embedding_model,
            providers: &self.providers,
            retry: self.settings.retry,
        }
    }
}

/// A turn's progress, in the order it happens: `Started` once, then the answer's text and the
/// coding agent's steps, then `Done` or `Failed` once.
#[derive(Debug)]
pub enum Event {
    /// The user message is stored (and, for a new chat, its conversation).
    Started {
        conversation_id: ConversationId,
        user_message: Box<Message>,
        /// The answer's id, before it is stored: what a client resumes the stream by.
        assistant_message_id: MessageId,
    },
    /// Text of the answer; `seq` numbers the deltas of a streamed answer from 1 (0 until the
    /// journal numbers it).
    Delta {
        seq: i64,
        text: String,
    },
    ToolCall(ToolCall),
    ToolResult(crate::providers::ToolOutput),
    FileChanged(crate::store::FileChange),
    /// The answer, stored with its usage.
    Done(Box<Outcome>),
    /// The model call failed: the answer is stored `failed` (or `incomplete` with its text).
    Failed(Error),
}

/// How a started turn ends for its caller. A turn refused before it started (bad input, over
impl Event {
    /// A delta of text, numbered by the journal of a streamed answer.
    pub fn delta(text: String) -> Event {
        Event::Delta { seq: 0, text }
    }
}

/// budget, an unknown conversation) is the `Err` of [`turn`] instead, and stored nothing.
pub enum Reply {
    /// The whole answer, stored.
    Answered(Box<Outcome>),
    /// The model call failed after the user message was stored; the answer is stored `failed`.
    Failed(Error),
    /// The turn runs in its own task and reports as it goes.
    Streaming(Running),
}

/// A streamed turn: its events, and the task that runs it. The task runs to its end and stores the
/// answer even when `events` is dropped (the client left: it may resume the stream); callers await
/// it before their response ends, because Lambda may freeze the sandbox right after.
pub struct Running {
    pub events: mpsc::Receiver<Event>,
    pub task: tokio::task::JoinHandle<()>,
}

/// An `Idempotency-Key`'s claim on this turn, and how the transport encodes the answer for replays
/// (a status and a body: what a retried request is answered).
pub struct Record {
    pub claim: Claim,
    pub encode: fn(&Result<Outcome>) -> Result<(u16, String)>,
}

impl Record {
    async fn complete(self, conn: &Conn, result: &Result<Outcome>) -> Result<()> {
        let (status, body) = (self.encode)(result)?;
        self.claim.complete(conn, status, &body).await
    }
}

/// Runs one turn for `user`: started (checked, reserved, the user message stored), then answered
/// whole or, with `stream`, in its own task.
pub async fn turn(
    services: &Services,
    conn: Conn,
    user: &User,
    input: ChatInput,
    record: Option<Record>,
    stream: bool,
) -> Result<Reply> {
    let budget = Budget::of(user, services.quotas);
    let deps = StartDeps {
        conn: &conn,
        catalog: &services.catalog,
        mcp: &services.mcp,
        blobs: &services.blobs,
        embedding: services.embedding(),
        settings: &services.settings,
    };
    let started = start(deps, &budget, input).await;
    let started = match started {
        Ok(started) => started,
        Err(e) => {
            // Nothing was stored, so the key is free for a corrected retry.
            if let Some(record) = record {
                record.claim.release(&conn).await?;
            }
            return Err(e);
        }
    };
    tracing::Span::current().record(
        "conversation_id",
        tracing::field::display(started.conversation.id),
    );
    if let Some(record) = &record {
        record.claim.attach(&conn, started.conversation.id).await?;
    }

    if !stream {
        let result = answer(services, &conn, user.id, started, None).await;
        if let Some(record) = record {
            record.complete(&conn, &result).await?;
        }
        return Ok(match result {
            Ok(outcome) => Reply::Answered(Box::new(outcome)),
            Err(e) => Reply::Failed(e),
        });
    }

    let (events, rx) = mpsc::channel::<Event>(64);
    let _ = events.try_send(Event::Started {
        conversation_id: started.conversation.id,
        user_message: Box::new(started.user_message.clone()),
        assistant_message_id: started.answer_id,
    });
    let services = services.clone();
    let user_id = user.id;
    let journal = Journal::start(
        conn.fork().await?,
        started.answer_id,
        user_id,
        started.conversation.id,
        events,
    );
    let task = async move {
        let result = answer(&services, &conn, user_id, started, Some(&journal)).await;
        if let Some(record) = record {
            if let Err(e) = record.complete(&conn, &result).await {
                tracing::error!(error = %e, "could not record the idempotent answer");
            }
        }
        let last = match result {
            Ok(outcome) => Event::Done(Box::new(outcome)),
            Err(e) => Event::Failed(e),
        };
        let _ = journal.send(last).await;
    };
    Ok(Reply::Streaming(Running {
        events: rx,
        task: tokio::spawn(task.instrument(tracing::Span::current())),
    }))
}

/// A started turn's model call with this process's providers, blob store and embedding model;
/// `events` takes its progress when it streams.
async fn answer(
    services: &Services,
    conn: &Conn,
    user_id: UserId,
    started: Started,
    events: Option<&Journal>,
) -> Result<Outcome> {
    let deps = RunDeps {
        providers: &services.providers,
        blobs: &services.blobs,
        embedding: services.embedding(),
        settings: services.settings,
    };
    run(conn, deps, user_id, started, events).await
}
