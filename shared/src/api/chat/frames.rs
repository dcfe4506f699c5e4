//! A turn's answer as it travels: frames (a Server-Sent Event or a WebSocket frame), a whole
//! JSON answer, and a recorded answer replayed.

use super::*;

/// One event of a turn, whatever carries it: a Server-Sent Event (`event: kind`, `data: data`) or
/// a WebSocket frame (`{"type": kind, ...data}`).
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub kind: &'static str,
    pub data: serde_json::Value,
}

impl Frame {
    pub(super) fn new(kind: &'static str, data: &impl Serialize) -> Frame {
        Frame {
            kind,
            data: serde_json::to_value(data).unwrap_or_else(|_| serde_json::json!({})),
        }
    }
}

impl From<Frame> for Event {
    fn from(frame: Frame) -> Event {
        sse::event(frame.kind, &frame.data)
    }
}

/// How a turn answers: whole (a turn that does not stream, or a recorded answer that failed), or
/// its frames as they come (`meta`, `delta`…, then `done` or `error`).
pub(crate) enum Answer {
    Whole {
        status: StatusCode,
        body: String,
    },
    Frames {
        frames: mpsc::Receiver<Frame>,
        /// The task running the turn (none for a replay): it finishes, and stores what it has,
        /// even when the receiver goes away, which ends the turn as `incomplete`.
        turn: Option<tokio::task::JoinHandle<()>>,
    },
}

/// A turn's event as a frame: `delta` text, and the coding agent's `tool_call`, `tool_result` and
/// `file_changed` between the deltas.
pub(super) fn turn_frame(event: chat::TurnEvent) -> Frame {
    use serde_json::json;
    match event {
        chat::TurnEvent::Delta(text) => Frame::new("delta", &json!({ "text": text })),
        chat::TurnEvent::ToolCall(call) => Frame::new(
            "tool_call",
            &json!({"id": call.id, "name": call.name, "input": call.input}),
        ),
        chat::TurnEvent::ToolResult(output) => Frame::new(
            "tool_result",
            &json!({"id": output.call_id, "content": output.content, "is_error": output.is_error}),
        ),
        chat::TurnEvent::FileChanged(change) => Frame::new("file_changed", &change),
    }
}

/// A finished turn as it is answered and recorded for replays: status, JSON body, and the frame that
/// ends a stream (`done`, or `error` with the problem).
pub(super) fn finish(result: Result<Outcome>) -> Result<(StatusCode, String, Frame)> {
    fn encode(v: &impl Serialize) -> Result<String> {
        serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))
    }
    Ok(match result {
        Ok(outcome) => {
            let response = ChatResponse::from(outcome);
            (StatusCode::OK, encode(&response)?, done_frame(&response))
        }
        Err(error) => {
            let problem = error.problem();
            (
                error.status(),
                encode(&problem)?,
                Frame::new("error", &problem),
            )
        }
    })
}

pub(super) fn meta_frame(conversation_id: ConversationId, user_message: &MessageOut) -> Frame {
    Frame::new(
        "meta",
        &serde_json::json!({
            "conversation_id": conversation_id,
            "user_message_id": user_message.id,
            "user_message": user_message,
        }),
    )
}

fn done_frame(response: &ChatResponse) -> Frame {
    Frame::new(
        "done",
        &serde_json::json!({ "assistant_message": response.assistant_message, "usage": response.usage }),
    )
}

/// A recorded answer: the JSON as it was, or, for a streaming client, the same turn as frames
/// (`meta`, one `delta` with the whole text, `done`).
pub(super) fn replay(status: u16, answer: String, stream: bool) -> Answer {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let ok: Option<ChatResponse> = (stream && status.is_success())
        .then(|| serde_json::from_str(&answer).ok())
        .flatten();
    match ok {
        Some(response) => {
            let (tx, rx) = mpsc::channel(3);
            for frame in [
                meta_frame(response.conversation_id, &response.user_message),
                Frame::new(
                    "delta",
                    &serde_json::json!({ "text": response.assistant_message.content }),
                ),
                done_frame(&response),
            ] {
                // The channel holds them all, so nothing waits.
                let _ = tx.try_send(frame);
            }
            Answer::Frames {
                frames: rx,
                turn: None,
            }
        }
        None => Answer::Whole {
            status,
            body: answer,
        },
    }
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
