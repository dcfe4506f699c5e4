//! Amazon Bedrock through the Converse and ConverseStream APIs (aws-sdk-bedrockruntime).
//!
//! The SDK's own retries are off: the chat turn retries itself, and only before any output.

use std::time::Duration;

use aws_sdk_bedrockruntime::{
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    types::{
        error::ConverseStreamOutputError, ContentBlock, ContentBlockDelta, ConversationRole,
        ConverseOutput, ConverseStreamOutput, InferenceConfiguration, Message, SystemContentBlock,
    },
    Client,
};
use tokio::sync::mpsc;

use super::{
    prompt_cache, Completion, EventStream, ModelRequest, ProviderError, Speaker, StreamEvent,
    TokenUsage,
};
use crate::{config::ProvidersConfig, models::Model};

/// What the client is built from; taken from [`Config`] so tests configure it without touching the
/// process environment.
#[derive(Clone)]
pub struct Settings {
    region: Option<String>,
    endpoint_url: Option<String>,
    credentials: Option<(String, String, Option<String>)>,
    timeout: Duration,
}

impl From<&ProvidersConfig> for Settings {
    fn from(config: &ProvidersConfig) -> Self {
        Settings {
            region: config.bedrock.region.clone(),
            endpoint_url: config.bedrock.endpoint_url.clone(),
            credentials: config.bedrock.credentials.clone(),
            timeout: config.provider_timeout,
        }
    }
}

/// A Converse call's system prompt, messages, inference settings and tools.
type CallParts = (
    Option<Vec<SystemContentBlock>>,
    Vec<Message>,
    InferenceConfiguration,
    Option<aws_sdk_bedrockruntime::types::ToolConfiguration>,
);

pub struct Bedrock {
    client: Client,
    timeout: Duration,
}

impl Bedrock {
    pub async fn new(settings: &Settings) -> Self {
        let mut loader =
            crate::aws::loader(settings.region.as_deref(), settings.credentials.as_ref())
                .retry_config(aws_config::retry::RetryConfig::disabled());
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk = loader.load().await;
        Bedrock {
            client: Client::new(&sdk),
            timeout: settings.timeout,
        }
    }

    /// The Converse request's parts; with `cache`, prompt-cache points after the system prompt and
    /// after the history before the newest turn ([`prompt_cache::mark`]).
    fn parts(request: &ModelRequest, cache: bool) -> Result<CallParts, ProviderError> {
        let mut system = request
            .system
            .clone()
            .map(|s| vec![SystemContentBlock::Text(s)]);
        let mut messages = request
            .turns
            .iter()
            .map(|t| {
                let mut message = Message::builder().role(match t.speaker {
                    Speaker::User => ConversationRole::User,
                    Speaker::Assistant => ConversationRole::Assistant,
                });
                for output in &t.tool_outputs {
                    message = message.content(tool_result_block(output)?);
                }
                for (i, file) in t.files.iter().enumerate() {
                    message = message.content(file_block(i, file)?);
                }
                // Converse refuses empty text blocks; a turn of tool calls or outputs may have none.
                let only_tools = !(t.tool_calls.is_empty() && t.tool_outputs.is_empty());
                if !(t.text.is_empty() && only_tools) {
                    message = message.content(ContentBlock::Text(t.text.clone()));
                }
                for call in &t.tool_calls {
                    message = message.content(tool_use_block(call)?);
                }
                message
                    .build()
                    .map_err(|e| ProviderError::Rejected(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let inference = InferenceConfiguration::builder()
            .max_tokens(request.max_tokens.min(i32::MAX as u32) as i32)
            .set_temperature(request.temperature)
            .build();
        if cache {
            prompt_cache::mark(request, &mut system, &mut messages)?;
        }
        Ok((system, messages, inference, tool_configuration(request)?))
    }

    /// One Titan Text Embeddings v2 call (InvokeModel): the vector and the tokens billed.
    pub async fn embed(
        &self,
        model_id: &str,
        text: &str,
        dimensions: usize,
    ) -> Result<(Vec<f32>, u64), ProviderError> {
        let body =
            serde_json::json!({"inputText": text, "dimensions": dimensions, "normalize": true});
        let call = self
            .client
            .invoke_model()
            .model_id(model_id)
            .content_type("application/json")
            .accept("application/json")
            .body(aws_smithy_types::Blob::new(body.to_string()))
            .send();
        let out = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ProviderError::Timeout)?
            .map_err(classify)?;
        let v: serde_json::Value = serde_json::from_slice(out.body().as_ref())
            .map_err(|e| ProviderError::Unavailable(format!("unreadable answer: {e}")))?;
        let vector: Vec<f32> = v["embedding"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_f64().map(|x| x as f32))
                    .collect()
            })
            .filter(|v: &Vec<f32>| v.len() == dimensions)
            .ok_or_else(|| {
                ProviderError::Unavailable(format!(
                    "the answer lacks a {dimensions}-dimension embedding"
                ))
            })?;
        Ok((vector, v["inputTextTokenCount"].as_u64().unwrap_or(0)))
    }

    pub async fn complete(
        &self,
        model: &Model,
        request: &ModelRequest,
    ) -> Result<Completion, ProviderError> {
        let (system, messages, inference, tools) =
            Self::parts(request, model.capabilities.prompt_cache)?;
        let call = self
            .client
            .converse()
            .model_id(&model.provider_model_id)
            .set_system(system)
            .set_messages(Some(messages))
            .inference_config(inference)
            .set_tool_config(tools)
            .send();
        let out = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ProviderError::Timeout)?
            .map_err(classify)?;
        let (text, tool_calls) = match out.output() {
            Some(ConverseOutput::Message(m)) => (
                m.content()
                    .iter()
                    .filter_map(|b| b.as_text().ok())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(""),
                m.content()
                    .iter()
                    .filter_map(|b| b.as_tool_use().ok())
                    .map(|t| super::ToolCall {
                        id: t.tool_use_id().to_string(),
                        name: t.name().to_string(),
                        input: json_of(t.input()),
                    })
                    .collect(),
            ),
            _ => {
                return Err(ProviderError::Unavailable(
                    "the answer has no message".into(),
                ))
            }
        };
        Ok(Completion {
            text,
            usage: out.usage().map(prompt_cache::usage).unwrap_or_default(),
            stop_reason: Some(out.stop_reason().as_str().to_string()),
            tool_calls,
        })
    }

    pub async fn stream(
        &self,
        model: &Model,
        request: &ModelRequest,
    ) -> Result<EventStream, ProviderError> {
        let (system, messages, inference, _tools) =
            Self::parts(request, model.capabilities.prompt_cache)?;
        let call = self
            .client
            .converse_stream()
            .model_id(&model.provider_model_id)
            .set_system(system)
            .set_messages(Some(messages))
            .inference_config(inference)
            .send();
        let mut out = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ProviderError::Timeout)?
            .map_err(classify)?;
        let (tx, rx) = mpsc::channel(32);
        tokio::spawn(async move {
            let mut usage_seen = TokenUsage::default();
            let mut stop_reason = None;
            loop {
                let event = match out.stream.recv().await {
                    Ok(Some(event)) => event,
                    // The metadata event (with usage) follows messageStop; a stream that ends before
                    // messageStop was cut.
                    Ok(None) if stop_reason.is_some() => {
                        let _ = tx
                            .send(Ok(StreamEvent::End {
                                usage: usage_seen,
                                stop_reason,
                            }))
                            .await;
                        return;
                    }
                    Ok(None) => {
                        let _ = tx
                            .send(Err(ProviderError::Stream(
                                "the stream ended before messageStop".into(),
                            )))
                            .await;
                        return;
                    }
                    Err(e) => {
                        let detail = match e.as_service_error() {
                            Some(se) => {
                                format!("{}: {}", stream_error_name(se), se.message().unwrap_or(""))
                            }
                            None => DisplayErrorContext(&e).to_string(),
                        };
                        let _ = tx.send(Err(ProviderError::Stream(detail))).await;
                        return;
                    }
                };
                match event {
                    ConverseStreamOutput::ContentBlockDelta(d) => {
                        if let Some(ContentBlockDelta::Text(text)) = d.delta() {
                            if tx.send(Ok(StreamEvent::Delta(text.clone()))).await.is_err() {
                                return;
                            }
                        }
                    }
                    ConverseStreamOutput::MessageStop(stop) => {
                        stop_reason = Some(stop.stop_reason().as_str().to_string())
                    }
                    ConverseStreamOutput::Metadata(meta) => {
                        if let Some(u) = meta.usage() {
                            usage_seen = prompt_cache::usage(u);
                        }
                    }
                    _ => {}
                }
            }
        });
        Ok(rx)
    }
}

/// Exceptions inside an event stream carry their type in a frame header, not in error metadata.
fn stream_error_name(e: &ConverseStreamOutputError) -> &'static str {
    match e {
        ConverseStreamOutputError::ModelStreamErrorException(_) => "modelStreamErrorException",
        ConverseStreamOutputError::ThrottlingException(_) => "throttlingException",
        ConverseStreamOutputError::ValidationException(_) => "validationException",
        ConverseStreamOutputError::InternalServerException(_) => "internalServerException",
        ConverseStreamOutputError::ServiceUnavailableException(_) => "serviceUnavailableException",
        _ => "streamError",
    }
}

fn classify<E, R>(e: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::TimeoutError(_) => ProviderError::Timeout,
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            let message = se.err().message().unwrap_or("");
            match code {
                "ThrottlingException" => ProviderError::Throttled { retry_after: None },
                "ServiceUnavailableException"
                | "InternalServerException"
                | "ModelNotReadyException" => {
                    ProviderError::Unavailable(format!("{code}: {message}"))
                }
                "ModelTimeoutException" => ProviderError::Timeout,
                _ => ProviderError::Rejected(format!("{code}: {message}")),
            }
        }
        _ => ProviderError::Unavailable(DisplayErrorContext(&e).to_string()),
    }
}

/// A file as a Converse content block: images as `image`, PDFs and text as `document`.
fn file_block(index: usize, file: &super::FilePart) -> Result<ContentBlock, ProviderError> {
    use aws_sdk_bedrockruntime::{
        primitives::Blob,
        types::{
            DocumentBlock, DocumentFormat, DocumentSource, ImageBlock, ImageFormat, ImageSource,
        },
    };
    let rejected =
        |e: aws_sdk_bedrockruntime::error::BuildError| ProviderError::Rejected(e.to_string());
    let bytes = Blob::new(file.bytes.to_vec());
    Ok(match file.kind {
        super::FileKind::Image => ContentBlock::Image(
            ImageBlock::builder()
                .format(match file.media_type.as_str() {
                    "image/png" => ImageFormat::Png,
                    "image/gif" => ImageFormat::Gif,
                    "image/webp" => ImageFormat::Webp,
                    _ => ImageFormat::Jpeg,
                })
                .source(ImageSource::Bytes(bytes))
                .build()
                .map_err(rejected)?,
        ),
        super::FileKind::Pdf | super::FileKind::Text => ContentBlock::Document(
            DocumentBlock::builder()
                .format(match (file.kind, file.media_type.as_str()) {
                    (super::FileKind::Pdf, _) => DocumentFormat::Pdf,
                    (_, "text/markdown") => DocumentFormat::Md,
                    (_, "text/csv") => DocumentFormat::Csv,
                    (_, "text/html") => DocumentFormat::Html,
                    _ => DocumentFormat::Txt,
                })
                .name(document_name(index, &file.name))
                .source(DocumentSource::Bytes(bytes))
                .build()
                .map_err(rejected)?,
        ),
    })
}

/// Converse takes document names of letters, digits, single spaces, hyphens, parentheses and square
/// brackets, unique within the request: other characters become spaces, and the position makes
/// the name unique.
fn document_name(index: usize, filename: &str) -> String {
    let mut name = String::new();
    for c in filename.chars() {
        let c = if c.is_ascii_alphanumeric() || "-()[]".contains(c) {
            c
        } else {
            ' '
        };
        if !(c == ' ' && (name.is_empty() || name.ends_with(' '))) {
            name.push(c);
        }
    }
    format!("{} ({})", name.trim_end(), index + 1)
}

fn tool_configuration(
    request: &ModelRequest,
) -> Result<Option<aws_sdk_bedrockruntime::types::ToolConfiguration>, ProviderError> {
    use aws_sdk_bedrockruntime::types::{
        AnyToolChoice, SpecificToolChoice, Tool, ToolChoice as Choice, ToolConfiguration,
        ToolInputSchema, ToolSpecification,
    };
    let tool_blocks = request
        .turns
        .iter()
        .any(|t| !(t.tool_calls.is_empty() && t.tool_outputs.is_empty()));
    // Converse cannot forbid tool calls; without tool blocks in the turns the tools are left out.
    if request.tools.is_empty() || (request.tool_choice == super::ToolChoice::None && !tool_blocks)
    {
        return Ok(None);
    }
    let rejected =
        |e: aws_sdk_bedrockruntime::error::BuildError| ProviderError::Rejected(e.to_string());
    let mut config = ToolConfiguration::builder();
    for t in &request.tools {
        config = config.tools(Tool::ToolSpec(
            ToolSpecification::builder()
                .name(&t.name)
                .description(&t.description)
                .input_schema(ToolInputSchema::Json(document_of(&t.input_schema)))
                .build()
                .map_err(rejected)?,
        ));
    }
    config = match &request.tool_choice {
        super::ToolChoice::Auto | super::ToolChoice::None => config,
        super::ToolChoice::Required => {
            config.tool_choice(Choice::Any(AnyToolChoice::builder().build()))
        }
        super::ToolChoice::Named(name) => config.tool_choice(Choice::Tool(
            SpecificToolChoice::builder()
                .name(name)
                .build()
                .map_err(rejected)?,
        )),
    };
    config.build().map(Some).map_err(rejected)
}

fn tool_use_block(call: &super::ToolCall) -> Result<ContentBlock, ProviderError> {
    aws_sdk_bedrockruntime::types::ToolUseBlock::builder()
        .tool_use_id(&call.id)
        .name(&call.name)
        .input(document_of(&call.input))
        .build()
        .map(ContentBlock::ToolUse)
        .map_err(|e| ProviderError::Rejected(e.to_string()))
}

fn tool_result_block(output: &super::ToolOutput) -> Result<ContentBlock, ProviderError> {
    use aws_sdk_bedrockruntime::types::{
        ToolResultBlock, ToolResultContentBlock, ToolResultStatus,
    };
    ToolResultBlock::builder()
        .tool_use_id(&output.call_id)
        .content(ToolResultContentBlock::Text(output.content.clone()))
        .status(if output.is_error {
            ToolResultStatus::Error
        } else {
            ToolResultStatus::Success
        })
        .build()
        .map(ContentBlock::ToolResult)
        .map_err(|e| ProviderError::Rejected(e.to_string()))
}

/// JSON as the SDK's document type (tool schemas and inputs).
fn document_of(v: &serde_json::Value) -> aws_smithy_types::Document {
    use aws_smithy_types::{Document, Number};
    match v {
        serde_json::Value::Null => Document::Null,
        serde_json::Value::Bool(b) => Document::Bool(*b),
        serde_json::Value::Number(n) => Document::Number(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Number::PosInt(u),
            (None, Some(i)) => Number::NegInt(i),
            _ => Number::Float(n.as_f64().unwrap_or(0.0)),
        }),
        serde_json::Value::String(s) => Document::String(s.clone()),
        serde_json::Value::Array(a) => Document::Array(a.iter().map(document_of).collect()),
        serde_json::Value::Object(o) => {
            Document::Object(o.iter().map(|(k, v)| (k.clone(), document_of(v))).collect())
        }
    }
}

fn json_of(d: &aws_smithy_types::Document) -> serde_json::Value {
    use aws_smithy_types::{Document, Number};
    match d {
        Document::Null => serde_json::Value::Null,
        Document::Bool(b) => serde_json::Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => serde_json::json!(u),
        Document::Number(Number::NegInt(i)) => serde_json::json!(i),
        Document::Number(Number::Float(f)) => serde_json::json!(f),
        Document::String(s) => serde_json::Value::String(s.clone()),
        Document::Array(a) => serde_json::Value::Array(a.iter().map(json_of).collect()),
        Document::Object(o) => {
            serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
    }
}
