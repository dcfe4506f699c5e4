//! An OpenAI request's messages, images, tools and tool calls, parsed into the turn's types.

use super::*;

/// The most tools a request may offer (OpenAI's limit).
pub(super) const MAX_TOOLS: usize = 128;

/// A message's content: its text parts joined, and its images. `max_image_bytes` is set where
/// images are taken (user messages); a message without it may also have no content.
pub(super) fn content_of(
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
pub(super) fn image_of(
    image: &Value,
    param: &str,
    max_bytes: u64,
) -> Result<FilePart, OpenAiError> {
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
    media::check_type(media_type, Sniffed::of(&bytes[..bytes.len().min(16)]))
        .map_err(|e| OpenAiError::invalid(param, format!("the data URL's type {}", e.message)))?;
    Ok(FilePart {
        name: format!("image.{extension}"),
        media_type: media_type.to_string(),
        kind: FileKind::Image,
        bytes: bytes.into(),
    })
}

pub(super) fn image_too_large(param: &str, max_bytes: u64) -> OpenAiError {
    OpenAiError::invalid(
        param,
        format!("the image is larger than the {max_bytes} bytes a model is sent"),
    )
}

/// The client's tools, checked as OpenAI checks them.
pub(super) fn tools_of(tools: Vec<Value>) -> Result<Vec<ToolSpec>, OpenAiError> {
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

pub(super) fn tool_choice_of(
    choice: Option<Value>,
    tools: &[ToolSpec],
) -> Result<ToolChoice, OpenAiError> {
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
pub(super) fn calls_of(calls: &[Value], at: usize) -> Result<Vec<ToolCall>, OpenAiError> {
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
pub(super) fn turns_of(
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
pub(super) fn stored_text(turn: &Turn) -> String {
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
