//! One connection to a tool server: rmcp's Streamable HTTP client over this process's checked HTTP
//! client, the `initialize` handshake, `tools/list` and `tools/call`, each bounded in time, and
//! every answer bounded in size by the transport.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures_util::stream::BoxStream;
use rmcp::{
    model::{
        CallToolRequestParams, CallToolResult, ClientJsonRpcMessage, ContentBlock, ResourceContents,
    },
    service::RunningService,
    transport::{
        streamable_http_client::{
            SseError, StreamableHttpClient, StreamableHttpClientTransportConfig,
            StreamableHttpError, StreamableHttpPostResponse, StreamableHttpResponseLimits,
        },
        StreamableHttpClientTransport,
    },
    RoleClient, ServiceExt,
};

use super::RemoteTool;

/// Why a server's request failed; the text is what the model (or the user) reads. It never holds
/// the server's headers.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("the tool server did not answer within {0} s")]
    Timeout(u64),
    #[error("the tool server's answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the tool server could not be used: {0}")]
    Failed(String),
    #[error("the tool server refused the call: {0}")]
    Refused(String),
}

impl McpError {
    /// A stable word for logs (the message may quote the server).
    pub fn kind(&self) -> &'static str {
        match self {
            McpError::Timeout(_) => "timeout",
            McpError::TooLarge(_) => "too_large",
            McpError::Failed(_) => "failed",
            McpError::Refused(_) => "refused",
        }
    }
}

/// What bounds one server's requests.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub timeout: Duration,
    pub max_bytes: usize,
}

/// The most tools taken from one server (a list beyond it is cut).
const MAX_TOOLS: usize = 200;
/// The longest error text kept from a server or the transport.
const MAX_ERROR_CHARS: usize = 500;

/// A cause and its sources, as one line, cut to a readable length.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    if text.chars().count() > MAX_ERROR_CHARS {
        text = text.chars().take(MAX_ERROR_CHARS).collect::<String>() + "…";
    }
    text
}

fn failure(error: &(dyn std::error::Error + 'static), limits: CallLimits) -> McpError {
    let text = describe(error);
    if text.contains("maximum size") || text.contains("too large") || text.contains("exceeds") {
        McpError::TooLarge(limits.max_bytes)
    } else {
        McpError::Failed(text)
    }
}

async fn within<T, E>(
    limits: CallLimits,
    work: impl std::future::Future<Output = Result<T, E>>,
    map: impl FnOnce(E) -> McpError,
) -> Result<T, McpError> {
    match tokio::time::timeout(limits.timeout, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(map(e)),
        Err(_) => Err(McpError::Timeout(limits.timeout.as_secs().max(1))),
    }
}

/// An initialised session with one server.
pub struct Session {
    service: RunningService<RoleClient, ()>,
}

impl Session {
    /// Connects and initialises, sending `headers` with every request.
    pub async fn open(
        http: &reqwest::Client,
        url: &str,
        headers: HashMap<http::HeaderName, http::HeaderValue>,
        limits: CallLimits,
    ) -> Result<Session, McpError> {
        let config = StreamableHttpClientTransportConfig::with_uri(url)
            .custom_headers(headers)
            .max_json_response_size(limits.max_bytes)
            .max_sse_event_size(limits.max_bytes);
        let transport =
            StreamableHttpClientTransport::with_client(RequestsOnly(http.clone()), config);
        let service = within(limits, ().serve(transport), |e| failure(&e, limits)).await?;
        Ok(Session { service })
    }

    /// Whether the session ended (the server went away, or it was cancelled).
    pub fn is_closed(&self) -> bool {
        self.service.is_closed()
    }

    /// The server's tools (every page, at most [`MAX_TOOLS`]).
    pub async fn list_tools(&self, limits: CallLimits) -> Result<Vec<RemoteTool>, McpError> {
        let tools = within(limits, self.service.peer().list_all_tools(), |e| {
            service_error(e, limits)
        })
        .await?;
        Ok(tools
            .into_iter()
            .take(MAX_TOOLS)
            .map(|t| RemoteTool {
                name: t.name.into_owned(),
                description: t.description.map(|d| d.into_owned()),
                input_schema: serde_json::Value::Object((*t.input_schema).clone()),
            })
            .collect())
    }

    /// Calls `tool`; answers its text and whether the server marked it an error.
    pub async fn call(
        &self,
        tool: &str,
        arguments: serde_json::Value,
        limits: CallLimits,
    ) -> Result<(String, bool), McpError> {
        let arguments = match arguments {
            serde_json::Value::Object(map) => Some(map),
            serde_json::Value::Null => None,
            _ => {
                return Err(McpError::Refused(
                    "the arguments must be a JSON object".into(),
                ))
            }
        };
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = arguments;
        let result = within(limits, self.service.peer().call_tool(params), |e| {
            service_error(e, limits)
        })
        .await?;
        Ok(result_text(result))
    }
}

fn service_error(e: rmcp::ServiceError, limits: CallLimits) -> McpError {
    match e {
        rmcp::ServiceError::McpError(data) => McpError::Refused(
            data.message
                .chars()
                .take(MAX_ERROR_CHARS)
                .collect::<String>(),
        ),
        rmcp::ServiceError::Timeout { .. } => McpError::Timeout(limits.timeout.as_secs().max(1)),
        // What a streamed answer over the size cap ends as, too (the transport drops the stream).
        rmcp::ServiceError::TransportClosed => McpError::Failed(format!(
            "the connection ended without an answer (the server closed it, or its answer was over {} bytes)",
            limits.max_bytes
        )),
        other => failure(&other, limits),
    }
}

/// A call's result as the model reads it: its text blocks; other blocks named by their type;
/// the structured result when there is no text.
fn result_text(result: CallToolResult) -> (String, bool) {
    let mut parts: Vec<String> = result
        .content
        .iter()
        .map(|block| match block {
            ContentBlock::Text(t) => t.text.clone(),
            ContentBlock::Image(i) => format!("[an image, {}]", i.mime_type),
            ContentBlock::Audio(a) => format!("[audio, {}]", a.mime_type),
            ContentBlock::Resource(r) => match &r.resource {
                ResourceContents::TextResourceContents { uri, text, .. } => {
                    format!("[{uri}]\n{text}")
                }
                ResourceContents::BlobResourceContents { uri, .. } => {
                    format!("[binary resource {uri}]")
                }
                _ => "[a resource]".to_string(),
            },
            ContentBlock::ResourceLink(link) => format!("[resource {}]", link.uri),
            _ => "[content of a kind not shown]".to_string(),
        })
        .collect();
    if parts.is_empty() {
        if let Some(structured) = &result.structured_content {
            parts.push(structured.to_string());
        }
    }
    (parts.join("\n"), result.is_error.unwrap_or(false))
}

type Headers = HashMap<http::HeaderName, http::HeaderValue>;
type SseStream = BoxStream<'static, Result<sse_stream::Sse, SseError>>;
type HttpResult<T> = Result<T, StreamableHttpError<reqwest::Error>>;

/// The checked reqwest client, without a session's standalone GET stream: this client answers no
/// server-initiated request, so that stream would only hold a connection to the server open for
/// as long as the session is kept, and cost the server a request per session. A POST's own
/// answer stream, and its resumption, are the client's as usual.
#[derive(Clone)]
pub(super) struct RequestsOnly(reqwest::Client);

impl StreamableHttpClient for RequestsOnly {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> HttpResult<StreamableHttpPostResponse> {
        self.0
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> HttpResult<StreamableHttpPostResponse> {
        self.0
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: Headers,
        limits: StreamableHttpResponseLimits,
    ) -> HttpResult<StreamableHttpPostResponse> {
        self.0
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> HttpResult<()> {
        self.0
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> HttpResult<SseStream> {
        if last_event_id.is_none() {
            return Err(StreamableHttpError::ServerDoesNotSupportSse);
        }
        self.0
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> HttpResult<SseStream> {
        // No last event: the standalone stream (a resumption always names one).
        if last_event_id.is_none() {
            return Err(StreamableHttpError::ServerDoesNotSupportSse);
        }
        self.0
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}
