//! The `openai` function: the OpenAI Chat Completions wire format, so OpenAI SDKs and tools work
//! against CodeChat with `base_url = <API>/api/v1/openai/v1` and an API key (or an access token).
//! A completion is an ordinary chat turn (`api::chat::turn_input`): the same providers, retries,
//! budgets and usage rows; it is stored as a conversation marked as the API's (listed with
//! `GET /conversations?source=api`). Errors on these routes use OpenAI's shape
//! `{"error": {"message", "type", "param", "code"}}`.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, FromRequestParts, State},
    http::{header, request::Parts, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    chat::{self, Answer, Frame},
    CurrentUser,
};
use crate::{
    attachments::{self, Sniffed},
    chat::{AttachmentsInput, ChatInput, ClientTurns},
    error::Error,
    function::{Function, Limits, Transport},
    http::{parse_json, sse},
    providers::{FileKind, FilePart, Speaker, ToolCall, ToolChoice, ToolOutput, ToolSpec, Turn},
    state::AppState,
    store::User,
};

/// Streamed completions, as the chat function streams its turns.
pub const FUNCTION: Function = Function {
    name: "openai",
    transport: Transport::Streaming(routes),
    limits: Limits {
        timeout_secs: 300,
        memory_mb: 256,
    },
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat_completions))
        .routes(routes!(list_models))
}

/// An error in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    code: Option<&'static str>,
    param: Option<String>,
    retry_after: Option<u64>,
}

impl OpenAiError {
    fn invalid(param: &str, message: impl Into<String>) -> Self {
        OpenAiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code: None,
            param: Some(param.to_string()),
            retry_after: None,
        }
    }

    fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl From<Error> for OpenAiError {
    fn from(e: Error) -> Self {
        let problem = e.problem();
        let status = e.status();
        if status.is_server_error() {
            tracing::error!(error = %e, "completion failed");
        }
        let fields: Vec<String> = problem
            .errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect();
        let message = if fields.is_empty() {
            problem.detail.clone()
        } else {
            fields.join("; ")
        };
        let (kind, code) = match (status.as_u16(), e.code()) {
            (401, _) => ("invalid_request_error", Some("invalid_api_key")),
            (403, _) => ("invalid_request_error", Some("permission_denied")),
            (404, _) => ("invalid_request_error", Some("not_found")),
            (429, Some("daily_token_limit")) => ("insufficient_quota", Some("insufficient_quota")),
            (429, _) => ("rate_limit_exceeded", Some("rate_limit_exceeded")),
            (400..=499, _) => ("invalid_request_error", None),
            (_, code) => ("api_error", code.or(Some("server_error"))),
        };
        OpenAiError {
            // Field errors are OpenAI's 400s.
            status: if status == StatusCode::UNPROCESSABLE_ENTITY {
                StatusCode::BAD_REQUEST
            } else {
                status
            },
            message,
            kind,
            code,
            param: problem.errors.first().map(|f| f.field.clone()),
            retry_after: e.retry_after_secs(),
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The caller behind `Authorization: Bearer <API key or access token>`, refused in OpenAI's shape.
pub struct Caller(User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = OpenAiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OpenAiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        Ok(Caller(user))
    }
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    messages: Option<Vec<InMessage>>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    n: Option<u32>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    content: Option<Value>,
    /// An assistant message's calls.
    tool_calls: Option<Vec<Value>>,
    /// A `tool` message: the call it answers.
    tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// A completion request checked and turned into a chat turn's input.
struct Checked {
    input: ChatInput,
    model: String,
    stream: bool,
    include_usage: bool,
}

/// The most tools a request may offer (OpenAI's limit).
const MAX_TOOLS: usize = 128;

/// A message's content: its text parts joined, and its images. `max_image_bytes` is set where
/// images are taken (user messages); a message without it may also have no content.
fn content_of(
    content: &Option<Value>,
    param: &str,
    max_image_bytes: Option<u64>,
) -> Result<(String, Vec<FilePart>), OpenAiError> {
    let parts = match content {
        Some(Value::String(s)) => return Ok((s.clone(), Vec::new())),
        None | Some(Value::Null) if max_image_bytes.is_none() => {
            return Ok((String::new(), Vec::new()))
        }
        Some(Value::Array(parts)) => parts,
        _ => {
            return Err(OpenAiError::invalid(
                param,
                "content must be a string or an array of content parts",
            ))
        }
    };
    let mut text = Vec::new();
    let mut images = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{param}[{j}]");
        match (part["type"].as_str(), max_image_bytes) {
            (Some("text"), _) => match part["text"].as_str() {
                Some(t) => text.push(t.to_string()),
                None => return Err(OpenAiError::invalid(&at, "a text part needs `text`")),
            },
            (Some("image_url"), Some(max_bytes)) => {
                images.push(image_of(&part["image_url"], &at, max_bytes)?)
            }
            (Some("image_url"), None) => {
                return Err(OpenAiError::invalid(&at, "only user messages take images"))
            }
            (Some("input_audio" | "file"), _) => {
                return Err(OpenAiError::invalid(
                    &at,
                    "audio and file parts are not supported here; upload files as attachments",
                ))
            }
            _ => {
                return Err(OpenAiError::invalid(
                    &at,
                    "a content part is {\"type\": \"text\", \"text\": ...} or {\"type\": \"image_url\", \"image_url\": {\"url\": ...}}",
                ))
            }
        }
    }
    Ok((text.join("\n"), images))
}

/// An `image_url` part as a file for the model. Only `data:` URLs: fetching a caller's URL from
/// inside the deployment would let it reach private addresses.
fn image_of(image: &Value, param: &str, max_bytes: u64) -> Result<FilePart, OpenAiError> {
    use base64::Engine;
    let url = image["url"]
        .as_str()
        .ok_or_else(|| OpenAiError::invalid(param, "an image part needs `image_url.url`"))?;
    let Some(data_url) = url.strip_prefix("data:") else {
        return Err(OpenAiError::invalid(
            param,
            "only data: URLs (data:image/png;base64,...) are taken; this server does not fetch URLs",
        ));
    };
    let (media_type, data) = data_url
        .split_once(',')
        .and_then(|(header, data)| Some((header.strip_suffix(";base64")?, data)))
        .ok_or_else(|| {
            OpenAiError::invalid(
                param,
                "the data URL must be data:<image type>;base64,<data>",
            )
        })?;
    // Reckoned from the encoded length first, so an oversized image is not decoded.
    if data.len() as u64 / 4 * 3 > max_bytes + 2 {
        return Err(image_too_large(param, max_bytes));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| OpenAiError::invalid(param, "the image's data is not valid base64"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(image_too_large(param, max_bytes));
    }
    let Some(extension) = ["png", "jpeg", "gif", "webp"]
        .into_iter()
        .find(|t| media_type.strip_prefix("image/") == Some(*t))
    else {
        return Err(OpenAiError::invalid(
            param,
            "the image must be image/png, image/jpeg, image/gif or image/webp",
        ));
    };
    // The bytes must be what the URL says, as for uploaded attachments.
    attachments::check_type(media_type, Sniffed::of(&bytes[..bytes.len().min(16)]))
        .map_err(|e| OpenAiError::invalid(param, format!("the data URL's type {}", e.message)))?;
    Ok(FilePart {
        name: format!("image.{extension}"),
        media_type: media_type.to_string(),
        kind: FileKind::Image,
        bytes: bytes.into(),
    })
}

fn image_too_large(param: &str, max_bytes: u64) -> OpenAiError {
    OpenAiError::invalid(
        param,
        format!("the image is larger than the {max_bytes} bytes a model is sent"),
    )
}

/// The client's tools, checked as OpenAI checks them.
fn tools_of(tools: Vec<Value>) -> Result<Vec<ToolSpec>, OpenAiError> {
    if tools.len() > MAX_TOOLS {
        return Err(OpenAiError::invalid(
            "tools",
            format!("at most {MAX_TOOLS} tools"),
        ));
    }
    let mut specs: Vec<ToolSpec> = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if tool["type"] != "function" {
            return Err(OpenAiError::invalid(
                &format!("tools[{i}].type"),
                "only `function` tools are supported",
            ));
        }
        let function = &tool["function"];
        let name = function["name"].as_str().unwrap_or_default();
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(OpenAiError::invalid(
                &format!("tools[{i}].function.name"),
                "a tool's name is 1 to 64 letters, digits, _ or -",
            ));
        }
        if specs.iter().any(|s| s.name == name) {
            return Err(OpenAiError::invalid(
                &format!("tools[{i}].function.name"),
                format!("the tool `{name}` is named twice"),
            ));
        }
        let input_schema = match &function["parameters"] {
            Value::Null => json!({"type": "object", "properties": {}}),
            schema @ Value::Object(_) => schema.clone(),
            _ => {
                return Err(OpenAiError::invalid(
                    &format!("tools[{i}].function.parameters"),
                    "must be a JSON schema object",
                ))
            }
        };
        specs.push(ToolSpec {
            name: name.to_string(),
            description: function["description"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            input_schema,
        });
    }
    Ok(specs)
}

fn tool_choice_of(choice: Option<Value>, tools: &[ToolSpec]) -> Result<ToolChoice, OpenAiError> {
    let Some(choice) = choice else {
        return Ok(ToolChoice::Auto);
    };
    if tools.is_empty() {
        return Err(OpenAiError::invalid(
            "tool_choice",
            "tool_choice is only allowed when tools are given",
        ));
    }
    match (&choice, choice["function"]["name"].as_str()) {
        (Value::String(s), _) if s == "auto" => Ok(ToolChoice::Auto),
        (Value::String(s), _) if s == "none" => Ok(ToolChoice::None),
        (Value::String(s), _) if s == "required" => Ok(ToolChoice::Required),
        (Value::Object(_), Some(name)) if choice["type"] == "function" => {
            if tools.iter().any(|t| t.name == name) {
                Ok(ToolChoice::Named(name.to_string()))
            } else {
                Err(OpenAiError::invalid(
                    "tool_choice",
                    format!("no tool is named `{name}`"),
                ))
            }
        }
        _ => Err(OpenAiError::invalid(
            "tool_choice",
            "one of \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}",
        )),
    }
}

/// An assistant message's `tool_calls`.
fn calls_of(calls: &[Value], at: usize) -> Result<Vec<ToolCall>, OpenAiError> {
    calls
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let param = format!("messages[{at}].tool_calls[{j}]");
            let (Some(id), Some(name)) = (c["id"].as_str(), c["function"]["name"].as_str()) else {
                return Err(OpenAiError::invalid(
                    &param,
                    "a tool call is {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}",
                ));
            };
            let input = match &c["function"]["arguments"] {
                Value::String(a) => {
                    serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone()))
                }
                Value::Null => json!({}),
                other => other.clone(),
            };
            Ok(ToolCall {
                id: id.to_string(),
                name: name.to_string(),
                input,
            })
        })
        .collect()
}

/// The client's messages as the model's turns (consecutive messages of one speaker joined; tool
/// messages carried by the user turn after the calls they answer), and the system prompt.
fn turns_of(
    messages: &[InMessage],
    max_image_bytes: u64,
) -> Result<(Vec<String>, Vec<Turn>), OpenAiError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let param = format!("messages[{i}].content");
        let speaker = match m.role.as_str() {
            "system" | "developer" => {
                system.push(content_of(&m.content, &param, None)?.0);
                continue;
            }
            "user" | "tool" => Speaker::User,
            "assistant" => Speaker::Assistant,
            other => {
                return Err(OpenAiError::invalid(
                    &format!("messages[{i}].role"),
                    format!("unknown role `{other}`"),
                ))
            }
        };
        if turns.last().is_none_or(|t| t.speaker != speaker) {
            turns.push(Turn::new(speaker, ""));
        }
        let open = turns.len() - 1;
        let (text, files) = content_of(
            &m.content,
            &param,
            (m.role == "user").then_some(max_image_bytes),
        )?;
        if m.role == "tool" {
            let Some(call_id) = m.tool_call_id.clone() else {
                return Err(OpenAiError::invalid(
                    &format!("messages[{i}].tool_call_id"),
                    "a tool message needs the id of the call it answers",
                ));
            };
            let asked = open
                .checked_sub(1)
                .is_some_and(|k| turns[k].tool_calls.iter().any(|c| c.id == call_id));
            if !asked {
                return Err(OpenAiError::invalid(
                    &format!("messages[{i}].tool_call_id"),
                    "a tool message must answer a call of the assistant message before it",
                ));
            }
            turns[open].tool_outputs.push(ToolOutput {
                call_id,
                content: text,
                is_error: false,
            });
            continue;
        }
        let turn = &mut turns[open];
        if !text.is_empty() {
            if !turn.text.is_empty() {
                turn.text.push_str("\n\n");
            }
            turn.text.push_str(&text);
        }
        turn.files.extend(files);
        if let Some(calls) = &m.tool_calls {
            if m.role != "assistant" {
                return Err(OpenAiError::invalid(
                    &format!("messages[{i}].tool_calls"),
                    "only assistant messages make tool calls",
                ));
            }
            turn.tool_calls.extend(calls_of(calls, i)?);
        }
    }
    // Providers want the user first: leading assistant text is dropped, as in conversations.
    if turns
        .first()
        .is_some_and(|t| t.speaker == Speaker::Assistant)
    {
        let dropped = turns.remove(0);
        if !dropped.tool_calls.is_empty() {
            return Err(OpenAiError::invalid(
                "messages",
                "the first message with tool calls must follow a user message",
            ));
        }
    }
    // Every call is answered before the conversation goes on (both providers insist).
    for pair in turns.windows(2) {
        let unanswered = pair[0]
            .tool_calls
            .iter()
            .find(|c| !pair[1].tool_outputs.iter().any(|o| o.call_id == c.id));
        if let Some(call) = unanswered {
            return Err(OpenAiError::invalid(
                "messages",
                format!(
                    "the tool call `{}` has no tool message answering it",
                    call.id
                ),
            ));
        }
    }
    Ok((system, turns))
}

/// The newest turn as the conversation stores it: its text, the tool outputs it answers with, and
/// a line per image (the images themselves go to the model only).
fn stored_text(turn: &Turn) -> String {
    let mut parts = Vec::new();
    for output in &turn.tool_outputs {
        parts.push(format!(
            "[tool result {}]\n{}",
            output.call_id, output.content
        ));
    }
    if !turn.text.is_empty() {
        parts.push(turn.text.clone());
    }
    for file in &turn.files {
        parts.push(format!(
            "[image: {}, {} bytes]",
            file.media_type,
            file.bytes.len()
        ));
    }
    parts.join("\n\n")
}

fn check(state: &AppState, req: CompletionRequest) -> Result<Checked, OpenAiError> {
    let model_id = req
        .model
        .ok_or_else(|| OpenAiError::invalid("model", "you must provide a model"))?;
    let model = match state.catalog().get(&model_id) {
        None => {
            return Err(OpenAiError {
                status: StatusCode::NOT_FOUND,
                message: format!("the model `{model_id}` does not exist"),
                kind: "invalid_request_error",
                code: Some("model_not_found"),
                param: Some("model".into()),
                retry_after: None,
            })
        }
        Some(m) if !m.available => {
            return Err(OpenAiError::invalid(
                "model",
                format!("the model `{model_id}` is not available on this deployment"),
            ))
        }
        Some(m) => m.clone(),
    };
    if req.n.is_some_and(|n| n != 1) {
        return Err(OpenAiError::invalid("n", "only n = 1 is supported"));
    }
    let tools = tools_of(req.tools.unwrap_or_default())?;
    let tool_choice = tool_choice_of(req.tool_choice, &tools)?;
    if !tools.is_empty() && !model.capabilities.tools {
        return Err(OpenAiError::invalid(
            "tools",
            format!("{} does not call tools", model.id),
        ));
    }
    if req.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(OpenAiError::invalid(
            "temperature",
            "must be between 0 and 2",
        ));
    }
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    if max_tokens == Some(0) {
        return Err(OpenAiError::invalid("max_tokens", "must be at least 1"));
    }
    let messages = req.messages.unwrap_or_default();
    let Some(at) = messages.len().checked_sub(1) else {
        return Err(OpenAiError::invalid(
            "messages",
            "messages must hold at least one message",
        ));
    };
    let last_role = || {
        OpenAiError::invalid(
            &format!("messages[{at}].role"),
            "the last message must be the user's or a tool's",
        )
    };
    if !matches!(messages[at].role.as_str(), "user" | "tool") {
        return Err(last_role());
    }
    let max_image_bytes = state.config().max_chat_attachment_bytes;
    let (system, turns) = turns_of(&messages, max_image_bytes)?;
    // A last user or tool message always makes a last user turn; this only avoids a panic path.
    let Some(newest) = turns.last() else {
        return Err(last_role());
    };
    if turns.iter().any(|t| !t.files.is_empty()) && !model.capabilities.vision {
        return Err(OpenAiError::invalid(
            "messages",
            format!("{} does not read images", model.id),
        ));
    }
    let message = stored_text(newest);
    let max_chars = state.config().max_message_chars;
    if message.trim().is_empty() {
        return Err(OpenAiError::invalid(
            &format!("messages[{at}].content"),
            "must not be empty",
        ));
    }
    if message.chars().count() > max_chars {
        return Err(OpenAiError::invalid(
            &format!("messages[{at}].content"),
            format!("the newest turn must be at most {max_chars} characters"),
        ));
    }
    Ok(Checked {
        model: model.id.clone(),
        stream: req.stream,
        include_usage: req.stream_options.is_some_and(|o| o.include_usage),
        input: ChatInput {
            conversation_id: None,
            message,
            model: Some(model),
            agent_id: None,
            temperature: req.temperature,
            max_tokens,
            attachments: AttachmentsInput {
                ids: Vec::new(),
                max_bytes: max_image_bytes,
            },
            project_id: None,
            knowledge: Some(false),
            knowledge_tokens: state.config().knowledge_context_tokens,
            system_prompt: (!system.is_empty()).then(|| system.join("\n\n")),
            client: Some(ClientTurns {
                turns,
                tools,
                tool_choice,
            }),
            from_api: true,
        },
    })
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn usage_of(usage: &Value) -> Value {
    let input = usage["input_tokens"].as_i64().unwrap_or(0);
    let output = usage["output_tokens"].as_i64().unwrap_or(0);
    json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": input + output,
        "prompt_tokens_details": {"cached_tokens": usage["cached_tokens"].as_i64().unwrap_or(0)},
    })
}

fn finish_reason(assistant: &Value) -> &'static str {
    if assistant["tool_calls"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
    {
        "tool_calls"
    } else if assistant["status"] == "complete" {
        "stop"
    } else {
        "length"
    }
}

/// The answer's tool calls in OpenAI's shape (`arguments` as a JSON string); with `index` for
/// stream deltas.
fn tool_calls_of(assistant: &Value, indexed: bool) -> Option<Vec<Value>> {
    let calls = assistant["tool_calls"]
        .as_array()
        .filter(|c| !c.is_empty())?;
    Some(
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut call = json!({
                    "id": c["id"], "type": "function",
                    "function": {"name": c["name"], "arguments": c["input"].to_string()},
                });
                if indexed {
                    call["index"] = json!(i);
                }
                call
            })
            .collect(),
    )
}

/// Creates a chat completion (OpenAI's Chat Completions), whole or streamed (`stream: true`:
/// `chat.completion.chunk` events ending with `data: [DONE]`; `stream_options.include_usage` adds
/// a last chunk with `usage`).
#[utoipa::path(post, path = "/api/v1/openai/v1/chat/completions", tag = "openai", security(("bearer" = [])),
    request_body(content = Object, description = "An OpenAI Chat Completions request"),
    responses((status = 200, description = "`chat.completion`, or `text/event-stream` chunks"),
        (status = 400, description = "OpenAI error shape"), (status = 401), (status = 404), (status = 429), (status = 502)))]
async fn chat_completions(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => OpenAiError::from(Error::PayloadTooLarge {
            limit: state.config().max_json_body_bytes,
        }),
        _ => OpenAiError::invalid("body", e.body_text()),
    })?;
    let request: CompletionRequest = parse_json(&body)?;
    let checked = check(&state, request)?;
    let model = checked.model.clone();
    match chat::turn_input(&state, &user, checked.input, checked.stream).await? {
        Answer::Whole { status, body } => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if !status.is_success() {
                return Err(problem_error(status, &v));
            }
            let assistant = &v["assistant_message"];
            let mut message =
                json!({"role": "assistant", "content": assistant["content"], "refusal": null});
            if let Some(calls) = tool_calls_of(assistant, false) {
                if assistant["content"] == "" {
                    message["content"] = Value::Null;
                }
                message["tool_calls"] = Value::Array(calls);
            }
            Ok(Json(json!({
                "id": format!("chatcmpl-{}", assistant["id"].as_str().unwrap_or("")),
                "object": "chat.completion",
                "created": now(),
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": message,
                    "logprobs": null,
                    "finish_reason": finish_reason(assistant),
                }],
                "usage": usage_of(&v["usage"]),
            }))
            .into_response())
        }
        Answer::Frames { frames, turn } => Ok(stream(frames, turn, model, checked.include_usage)),
    }
}

/// A failed turn's problem (as the chat turn answered it), in OpenAI's shape.
fn problem_error(status: StatusCode, problem: &Value) -> OpenAiError {
    let code = problem["code"].as_str();
    OpenAiError {
        status,
        message: problem["detail"]
            .as_str()
            .unwrap_or("the completion failed")
            .to_string(),
        kind: if status == StatusCode::TOO_MANY_REQUESTS {
            "rate_limit_exceeded"
        } else if status.is_server_error() {
            "api_error"
        } else {
            "invalid_request_error"
        },
        code: match code {
            Some("timeout") => Some("timeout"),
            Some("provider_throttled") => Some("provider_throttled"),
            Some("provider_unavailable") => Some("provider_unavailable"),
            _ if status.is_server_error() => Some("server_error"),
            _ => None,
        },
        param: None,
        retry_after: None,
    }
}

/// The turn's frames as `chat.completion.chunk` events.
fn stream(
    mut frames: mpsc::Receiver<Frame>,
    turn: Option<tokio::task::JoinHandle<()>>,
    model: String,
    include_usage: bool,
) -> Response {
    let (tx, rx) = mpsc::channel::<sse::Event>(64);
    let relay = tokio::spawn(async move {
        let created = now();
        let mut id = String::from("chatcmpl");
        let chunk = |id: &str, delta: Value, finish: Option<&str>| {
            let mut c = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            });
            if include_usage {
                c["usage"] = Value::Null;
            }
            c
        };
        while let Some(frame) = frames.recv().await {
            let events: Vec<Value> = match frame.kind {
                "meta" => {
                    id = format!(
                        "chatcmpl-{}",
                        frame.data["user_message_id"].as_str().unwrap_or("")
                    );
                    vec![chunk(
                        &id,
                        json!({"role": "assistant", "content": ""}),
                        None,
                    )]
                }
                "delta" => vec![chunk(&id, json!({"content": frame.data["text"]}), None)],
                "done" => {
                    let assistant = &frame.data["assistant_message"];
                    let mut out = Vec::new();
                    if let Some(calls) = tool_calls_of(assistant, true) {
                        out.push(chunk(&id, json!({"tool_calls": calls}), None));
                    }
                    out.push(chunk(&id, json!({}), Some(finish_reason(assistant))));
                    if include_usage {
                        out.push(json!({
                            "id": id, "object": "chat.completion.chunk", "created": created,
                            "model": model, "choices": [], "usage": usage_of(&frame.data["usage"]),
                        }));
                    }
                    out
                }
                "error" => {
                    let status = frame.data["status"]
                        .as_u64()
                        .and_then(|s| StatusCode::from_u16(s as u16).ok())
                        .unwrap_or(StatusCode::BAD_GATEWAY);
                    vec![problem_error(status, &frame.data).body()]
                }
                _ => Vec::new(),
            };
            for e in events {
                if tx
                    .send(sse::Event::default().data(e.to_string()))
                    .await
                    .is_err()
                {
                    // The client left: dropping `frames` ends the turn as `incomplete`.
                    return;
                }
            }
        }
        let _ = tx.send(sse::Event::default().data("[DONE]")).await;
    });
    sse::stream_then(rx, async move {
        let _ = relay.await;
        if let Some(turn) = turn {
            if let Err(e) = turn.await {
                tracing::error!(error = %e, "the completion's turn task failed");
            }
        }
    })
}

/// The models this deployment can call, in OpenAI's list shape.
#[utoipa::path(get, path = "/api/v1/openai/v1/models", tag = "openai", security(("bearer" = [])),
    responses((status = 200, description = "`{object: list, data: [{id, object: model, created, owned_by}]}`"), (status = 401)))]
async fn list_models(State(state): State<AppState>, Caller(_): Caller) -> Json<Value> {
    let data: Vec<Value> = state
        .catalog()
        .all()
        .iter()
        .filter(|m| m.available)
        .map(|m| {
            json!({"id": m.id, "object": "model", "created": 0,
                "owned_by": serde_json::to_value(m.provider).unwrap_or(Value::Null)})
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}
