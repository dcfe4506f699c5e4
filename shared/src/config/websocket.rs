//! The WebSocket API: the `ws` function and, locally, its adapter.

use super::*;

/// The WebSocket API: the `ws` function and, locally, its adapter.
#[derive(Clone)]
pub struct WebSocketConfig {
    /// What `GET /health` publishes as `websocket_url` (`WEBSOCKET_URL`; the template sets the
    /// API's `wss://` URL; locally `ws://127.0.0.1:9001/ws`, the adapter `scripts/dev` starts).
    pub url: Option<String>,
    /// Where frames are posted (`PostToConnection`): `WEBSOCKET_MANAGEMENT_ENDPOINT` when set
    /// (tests), else the event's own `https://{domain}/{stage}`.
    pub management_endpoint: Option<String>,
    pub region: Option<String>,
    pub credentials: Option<(String, String, Option<String>)>,
    /// Frames a connection may send per second (`WS_MAX_FRAMES_PER_SECOND`, 10); more are refused
    /// with a 429 `error` frame.
    pub max_frames_per_second: u32,
    /// Largest inbound frame (`WS_MAX_MESSAGE_BYTES`, 32 000 bytes): API Gateway takes at most
    /// 32 KB per frame, and a browser sends a message as one frame. Longer messages go over
    /// `POST /chat` (the web client always uses it).
    pub max_message_bytes: usize,
    /// Largest frame posted (`WS_MAX_FRAME_BYTES`, 128 000 bytes, under API Gateway's 128 KiB);
    /// longer text goes in several `delta` frames, another longer frame in `part` frames.
    pub max_frame_bytes: usize,
    /// `PostToConnection` calls a streamed answer may make per second and connection
    /// (`WS_MAX_POSTS_PER_SECOND`, 50): deltas in between are sent together.
    pub max_posts_per_second: u32,
    /// The local adapter closes a socket idle this long (`WS_IDLE_TIMEOUT_SECONDS`, 600) or open
    /// this long (`WS_MAX_CONNECTION_SECONDS`, 7200), as API Gateway does.
    pub idle_timeout: Duration,
    pub max_connection: Duration,
}

impl std::fmt::Debug for WebSocketConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketConfig")
            .field("url", &self.url)
            .field("management_endpoint", &self.management_endpoint)
            .finish_non_exhaustive()
    }
}

impl WebSocketConfig {
    pub(super) fn load(
        var: &impl Fn(&str) -> Option<String>,
        local: bool,
    ) -> Result<Self, ConfigError> {
        Ok(WebSocketConfig {
            url: var("WEBSOCKET_URL").or_else(|| local.then(|| "ws://127.0.0.1:9001/ws".into())),
            management_endpoint: var("WEBSOCKET_MANAGEMENT_ENDPOINT"),
            region: var("AWS_REGION"),
            credentials: aws_credentials(var),
            max_frames_per_second: number(var, "WS_MAX_FRAMES_PER_SECOND", 10u32)?.max(1),
            max_message_bytes: number(var, "WS_MAX_MESSAGE_BYTES", 32_000)?,
            max_frame_bytes: number(var, "WS_MAX_FRAME_BYTES", 128_000usize)?.max(1024),
            max_posts_per_second: number(var, "WS_MAX_POSTS_PER_SECOND", 50u32)?.max(1),
            idle_timeout: Duration::from_secs(number(var, "WS_IDLE_TIMEOUT_SECONDS", 600)?),
            max_connection: Duration::from_secs(number(var, "WS_MAX_CONNECTION_SECONDS", 7200)?),
        })
    }
}
