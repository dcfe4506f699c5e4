//! Resuming a streamed answer (`GET /messages/{id}/stream`, and the WebSocket's `resume`), and
//! stopping one (`POST /messages/{id}/stop`).

use serde_json::json;
use utoipa::IntoParams;

use super::*;
use crate::{
    api::IdPath,
    chat::resume::{Resume, ResumeSettings, Resumed},
    http::ApiQuery,
    ids::MessageId,
};

/// The resume and stop routes.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stream_message))
        .routes(routes!(stop_message))
}

/// A resumed stream's event as a frame (the same kinds a turn's stream has, and `reconnect`).
pub(crate) fn resumed_frame(event: Resumed) -> Frame {
    match event {
        Resumed::Delta { seq, text } => Frame::delta(seq, &text),
        Resumed::Done(answer, usage) => Frame::new(
            "done",
            &json!({
                "assistant_message": MessageOut::from(*answer),
                "usage": usage.map(UsageRow::from),
            }),
        ),
        Resumed::Failed(answer) => {
            let code = answer.error.clone().unwrap_or_else(|| "failed".into());
            Frame::new(
                "error",
                &json!({
                    "type": "https://codechat.dev/problems/upstream",
                    "title": "The answer failed",
                    "status": 502,
                    "detail": format!("the model call failed ({code}); the text so far is stored"),
                    "code": code,
                }),
            )
        }
        Resumed::Stopped => Frame::new(
            "error",
            &json!({
                "type": "https://codechat.dev/problems/upstream",
                "title": "The answer stopped",
                "status": 504,
                "detail": "the turn making this answer ended without storing it",
                "code": "answer_lost",
            }),
        ),
        Resumed::Reconnect { after } => Frame::new("reconnect", &json!({ "after": after })),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// The last delta received (its `id:`); 0 or absent: from the start. Default: the
    /// `Last-Event-ID` header.
    after: Option<String>,
}

fn after(query: &StreamQuery, headers: &HeaderMap) -> Result<i64> {
    let raw = match &query.after {
        Some(after) => Some(after.as_str()),
        None => headers.get("last-event-id").and_then(|v| v.to_str().ok()),
    };
    match raw.map(str::trim) {
        None | Some("") => Ok(0),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n),
            _ => Err(Error::invalid(
                "after",
                "must be a whole number of at least 0",
            )),
        },
    }
}

/// Picks a streamed answer up again: Server-Sent Events of what followed the delta named
/// (`?after=` or `Last-Event-ID`), then live deltas until `done` (or `error`), on any instance.
/// After its own time the stream says `reconnect` (with `retry:`) and the delta to resume after.
#[utoipa::path(get, path = "/api/v1/messages/{id}/stream", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "The answer's id (the `meta` event's `assistant_message_id`)"), StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The last delta received")),
    responses(
        (status = 200, description = "`text/event-stream`: `delta` (with `id:`), then `done`, `error` or `reconnect`"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn stream_message(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<MessageId>,
    ApiQuery(query): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let after = after(&query, &headers)?;
    let conn = state.store().conn().await?;
    let resume = Resume::open(&conn, user.id, id, after).await?;
    let (tx, mut rx) = mpsc::channel::<Resumed>(16);
    let (frames, out) = mpsc::channel::<Frame>(16);
    let settings = ResumeSettings::from(&state.config().chat);
    let task = tokio::spawn(async move {
        let last = frames.clone();
        let relay = async move {
            while let Some(event) = rx.recv().await {
                if frames.send(resumed_frame(event)).await.is_err() {
                    break;
                }
            }
        };
        let follow = async move { resume.follow(&conn, settings, &tx).await };
        let ((), followed) = tokio::join!(relay, follow);
        if let Err(e) = followed {
            if e.status().is_server_error() {
                tracing::warn!(error = %e, "a resumed stream ended early");
            }
            let _ = last.send(Frame::new("error", &e.problem())).await;
        }
    });
    Ok(sse::stream_then(out, async move {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "a resumed stream failed");
        }
    }))
}

/// Asks the turn making this answer to stop it where it is: the answer is stored `incomplete`
/// with its text so far (within about half a second). The client's own stream ends then too.
#[utoipa::path(post, path = "/api/v1/messages/{id}/stop", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "The answer's id")),
    responses((status = 202, description = "Asked"), (status = 404, body = Problem)))]
async fn stop_message(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    IdPath(id): IdPath<MessageId>,
) -> Result<StatusCode> {
    let conn = state.store().conn().await?;
    if conn.request_stop(id, user.id).await? {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(Error::NotFound)
    }
}
