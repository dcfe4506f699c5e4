//! Server-Sent Events: framing and keep-alives.
//!
//! A live stream is a channel of events: the producer (a turn running in its own task) sends them,
//! the response body relays them, and a client that goes away closes the channel, which the
//! producer sees on its next send.

use std::{convert::Infallible, future::Future};

use axum::{
    http::{header, HeaderMap},
    response::{
        sse::{KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use serde::Serialize;
use tokio::sync::mpsc;

pub use axum::response::sse::Event;

/// Whether the client asked for a stream: an explicit flag in the body, or `Accept: text/event-stream`.
pub fn wanted(flag: Option<bool>, headers: &HeaderMap) -> bool {
    flag.unwrap_or(false)
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"))
}

/// An event named `name` whose data is `data` as JSON.
pub fn event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event("error").data("{}"))
}

/// The response that relays `rx` until it closes, with keep-alive comments every 15 s so idle
/// connections (and API Gateway's idle timeout) hold while a model thinks. The body ends only once
/// `finished` has too (the producer's task): in Lambda the invocation is over when the body ends,
/// and the sandbox may freeze right after, so whatever the producer still had to store is stored
/// first.
pub fn stream_then<T: Into<Event> + Send + 'static>(
    rx: mpsc::Receiver<T>,
    finished: impl Future<Output = ()> + Send + 'static,
) -> Response {
    let events = futures_util::stream::unfold(
        (rx, Some(Box::pin(finished))),
        |(mut rx, mut finished)| async move {
            match rx.recv().await {
                Some(e) => Some((Ok::<_, Infallible>(e.into()), (rx, finished))),
                None => {
                    if let Some(f) = finished.take() {
                        f.await;
                    }
                    None
                }
            }
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
