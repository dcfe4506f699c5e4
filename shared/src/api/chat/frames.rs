//! A chat turn on the wire, for `POST /chat` and the WebSocket: its events as frames (a
//! Server-Sent Event or a WebSocket frame, the same kinds and data), a whole JSON answer, and a
//! recorded answer replayed.

use serde_json::json;

use super::*;

/// One event of a turn, whatever carries it: a Server-Sent Event (`event: kind`, `data: data`) or
/// a WebSocket frame (`{"type": kind, ...data}`).
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub kind: &'static str,
    pub data: serde_json::Value,
    /// A delta's sequence number within its answer: the event's `id:` (what a client resumes
    /// after), and `seq` in its data.
    pub id: Option<i64>,
}

impl Frame {
    pub(crate) fn new(kind: &'static str, data: &impl Serialize) -> Frame {
        Frame {
            kind,
            data: serde_json::to_value(data).unwrap_or_else(|_| json!({})),
            id: None,
        }
    }

    /// Text of an answer, through delta `seq`.
    pub(crate) fn delta(seq: i64, text: &str) -> Frame {
        Frame {
            kind: "delta",
            data: json!({ "text": text, "seq": seq }),
            id: Some(seq),
        }
    }
}

/// How long a client told to `reconnect` waits first (the event's `retry:`).
const RECONNECT_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl From<Frame> for sse::Event {
    fn from(frame: Frame) -> sse::Event {
        let mut event = sse::event(frame.kind, &frame.data);
        if let Some(id) = frame.id {
            event = event.id(id.to_string());
        }
        if frame.kind == "reconnect" {
            event = event.retry(RECONNECT_AFTER);
        }
        event
    }
}

/// `meta` (the stored user message), `delta` text, the coding agent's `tool_call`, `tool_result`
/// and `file_changed`, then `done` (the stored answer and its usage) or `error` (the problem).
impl From<chat::Event> for Frame {
    fn from(event: chat::Event) -> Frame {
        match event {
            chat::Event::Started {
                conversation_id,
                user_message,
                assistant_message_id,
            } => meta_frame(
                conversation_id,
                &MessageOut::from(*user_message),
                Some(assistant_message_id),
            ),
            chat::Event::Delta { seq, text } if seq > 0 => Frame::delta(seq, &text),
            chat::Event::Delta { text, .. } => Frame::new("delta", &json!({ "text": text })),
            chat::Event::ToolCall(call) => Frame::new(
                "tool_call",
                &json!({"id": call.id, "name": call.name, "input": call.input}),
            ),
            chat::Event::ToolResult(output) => Frame::new(
                "tool_result",
                &json!({"id": output.call_id, "content": output.content, "is_error": output.is_error}),
            ),
            chat::Event::FileChanged(change) => {
                Frame::new("file_changed", &FileChangeOut::from(change))
            }
            chat::Event::Done(outcome) => done_frame(&ChatResponse::from(*outcome)),
            chat::Event::Failed(error) => Frame::new("error", &error.problem()),
        }
    }
}

impl From<chat::Event> for sse::Event {
    fn from(event: chat::Event) -> sse::Event {
        Frame::from(event).into()
    }
}

/// A finished turn as it is answered whole and recorded for replays: its status and JSON body.
pub(super) fn encode(result: &Result<Outcome>) -> Result<(u16, String)> {
    let body = match result {
        Ok(outcome) => serde_json::to_string(&ChatResponse::from(outcome.clone())),
        Err(error) => serde_json::to_string(&error.problem()),
    };
    let status = match result {
        Ok(_) => StatusCode::OK,
        Err(error) => error.status(),
    };
    Ok((
        status.as_u16(),
        body.map_err(|e| Error::Internal(e.to_string()))?,
    ))
}

fn meta_frame(
    conversation_id: ConversationId,
    user_message: &MessageOut,
    assistant_message_id: Option<crate::ids::MessageId>,
) -> Frame {
    Frame::new(
        "meta",
        &json!({
            "conversation_id": conversation_id,
            "user_message_id": user_message.id,
            "user_message": user_message,
            "assistant_message_id": assistant_message_id,
        }),
    )
}

fn done_frame(response: &ChatResponse) -> Frame {
    Frame::new(
        "done",
        &json!({ "assistant_message": response.assistant_message, "usage": response.usage }),
    )
}

/// A recorded answer: for a streaming client that succeeded, the same turn to replay as frames;
/// otherwise the JSON as it was.
pub(super) fn replay(status: u16, answer: String, stream: bool) -> ChatReply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let ok: Option<ChatResponse> = (stream && status.is_success())
        .then(|| serde_json::from_str(&answer).ok())
        .flatten();
    match ok {
        Some(response) => ChatReply::Replayed(Box::new(response)),
        None => ChatReply::Whole {
            status,
            body: answer,
        },
    }
}

/// A replayed answer's frames: `meta`, one `delta` with the whole text, `done`.
pub(crate) fn replay_frames(response: &ChatResponse) -> [Frame; 3] {
    [
        meta_frame(
            response.conversation_id,
            &response.user_message,
            Some(response.assistant_message.id),
        ),
        Frame::new(
            "delta",
            &json!({ "text": response.assistant_message.content }),
        ),
        done_frame(response),
    ]
}

/// A whole answer: the turn's JSON, or its problem.
pub(super) fn whole(status: StatusCode, body: String) -> Response {
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}
