//! A chat completion request, checked as a whole.

use super::*;

#[derive(Debug, Deserialize)]
pub(super) struct CompletionRequest {
    pub(super) model: Option<String>,
    pub(super) messages: Option<Vec<InMessage>>,
    pub(super) temperature: Option<f32>,
    pub(super) max_tokens: Option<u32>,
    pub(super) max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub(super) stream: bool,
    pub(super) stream_options: Option<StreamOptions>,
    pub(super) n: Option<u32>,
    pub(super) tools: Option<Vec<Value>>,
    pub(super) tool_choice: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct InMessage {
    pub(super) role: String,
    pub(super) content: Option<Value>,
    /// An assistant message's calls.
    pub(super) tool_calls: Option<Vec<Value>>,
    /// A `tool` message: the call it answers.
    pub(super) tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct StreamOptions {
    #[serde(default)]
    pub(super) include_usage: bool,
}

/// A completion request checked and turned into a chat turn's input.
pub(super) struct Checked {
    pub(super) input: ChatInput,
    pub(super) model: String,
    pub(super) stream: bool,
    pub(super) include_usage: bool,
}

pub(super) fn check(state: &AppState, req: CompletionRequest) -> Result<Checked, OpenAiError> {
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
    chat::check_temperature(req.temperature)
        .map_err(|reason| OpenAiError::invalid("temperature", reason))?;
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    chat::check_max_tokens(max_tokens)
        .map_err(|reason| OpenAiError::invalid("max_tokens", reason))?;
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
    let max_image_bytes = state.config().chat.max_chat_attachment_bytes;
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
    chat::InputLimits::from(&state.config().chat)
        .check_message(&message)
        .map_err(|reason| OpenAiError::invalid(&format!("messages[{at}].content"), reason))?;
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
            attachments: Vec::new(),
            project_id: None,
            knowledge: Some(false),
            system_prompt: (!system.is_empty()).then(|| system.join("\n\n")),
            client: Some(ClientTurns {
                turns,
                tools,
                tool_choice,
            }),
            from_api: true,
            parent: crate::store::TurnParent::ActiveLeaf,
        },
    })
}
