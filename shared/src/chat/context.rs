//! What the model sees: the system prompt, a rolling summary of older turns once the history
//! outgrows the model's budget, and the most recent turns.

use crate::{
    kinds::{MessageRole, MessageStatus},
    models::Model,
    providers::{
        estimate_tokens as estimate, estimate_turn_tokens, ModelRequest, Purpose, Speaker,
        ToolChoice, Turn,
    },
    store::Message,
};

pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are CodeChat, a helpful assistant for software developers. Answer clearly and concisely.";

/// The system prompt of summarisation calls.
const SUMMARY_INSTRUCTION: &str = "Summarise the conversation so far";

/// Tokens kept free for framing and estimation error.
const MARGIN_TOKENS: u64 = 256;

pub struct Plan {
    pub request: ModelRequest,
    /// Older messages that no longer fit: fold them into the summary first.
    pub to_summarise: Vec<Message>,
}

/// How many tokens of history fit beside the answer.
fn history_budget(model: &Model, max_tokens: u32, system: &str) -> u64 {
    (model.context_window as u64)
        .saturating_sub(max_tokens as u64 + estimate(system) + MARGIN_TOKENS)
}

fn usable(m: &Message) -> bool {
    m.role != MessageRole::System && !(m.status == MessageStatus::Failed && m.content.is_empty())
}

/// Plans a call over `history` (the messages after the current summary, ending with the new user
/// message). The newest messages that fit the budget go verbatim; the rest are to be summarised.
pub fn plan(
    model: &Model,
    base_system: &str,
    summary: Option<&str>,
    history: &[Message],
    max_tokens: u32,
    temperature: Option<f32>,
) -> Plan {
    let system = system_prompt(base_system, summary);
    let budget = history_budget(model, max_tokens, &system);
    let usable: Vec<&Message> = history.iter().filter(|m| usable(m)).collect();
    let mut used = 0u64;
    let mut keep_from = usable.len();
    for (i, m) in usable.iter().enumerate().rev() {
        let cost = estimate(&m.content);
        // The newest message always goes, even alone over budget.
        if keep_from < usable.len() && used + cost > budget {
            break;
        }
        used += cost;
        keep_from = i;
    }
    let to_summarise = usable[..keep_from].iter().map(|m| (*m).clone()).collect();
    Plan {
        request: ModelRequest {
            system: Some(system),
            turns: turns(&usable[keep_from..]),
            temperature,
            max_tokens,
            purpose: Purpose::Chat,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
        },
        to_summarise,
    }
}

/// The output tokens that fit beside `request`'s input in the model's window.
pub fn answer_room(model: &Model, request: &ModelRequest) -> u32 {
    let input = request.system.as_deref().map(estimate).unwrap_or(0)
        + request.turns.iter().map(estimate_turn_tokens).sum::<u64>();
    (model.context_window as u64)
        .saturating_sub(input + MARGIN_TOKENS)
        .min(u32::MAX as u64) as u32
}

/// The system prompt: `base` (the agent's, or [`DEFAULT_SYSTEM_PROMPT`], with the project's view)
/// and the summary of older turns.
pub fn system_prompt(base: &str, summary: Option<&str>) -> String {
    match summary {
        Some(s) => format!("{base}\n\nSummary of the earlier conversation:\n{s}"),
        None => base.to_string(),
    }
}

/// Providers want alternating turns that start with the user: consecutive messages of one speaker
/// are joined, and leading assistant messages dropped.
fn turns(messages: &[&Message]) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::new();
    for m in messages {
        let speaker = if m.role == MessageRole::User {
            Speaker::User
        } else {
            Speaker::Assistant
        };
        match out.last_mut() {
            Some(last) if last.speaker == speaker => {
                last.text.push_str("\n\n");
                last.text.push_str(&m.content);
            }
            None if speaker == Speaker::Assistant => {}
            _ => out.push(Turn::new(speaker, m.content.clone())),
        }
    }
    out
}

/// The call that folds `older` into `previous`, cut to fit the model.
pub fn summary_request(model: &Model, previous: Option<&str>, older: &[Message]) -> ModelRequest {
    let max_tokens = 1024.min(model.max_output_tokens);
    let budget_chars = (history_budget(model, max_tokens, SUMMARY_INSTRUCTION) * 4) as usize;
    let mut transcript = String::new();
    if let Some(p) = previous {
        transcript.push_str("Earlier summary: ");
        transcript.push_str(p);
        transcript.push_str("\n\n");
    }
    for m in older {
        transcript.push_str(m.role.as_str());
        transcript.push_str(": ");
        transcript.push_str(&m.content);
        transcript.push_str("\n\n");
    }
    // Keep the most recent part of an oversized transcript.
    let chars = transcript.chars().count();
    if chars > budget_chars {
        transcript = transcript.chars().skip(chars - budget_chars).collect();
    }
    ModelRequest {
        system: Some(format!(
            "{SUMMARY_INSTRUCTION}: keep facts, decisions, names, code identifiers and open questions. Answer with the summary only."
        )),
        turns: vec![Turn::new(Speaker::User, transcript)],
        temperature: Some(0.0),
        max_tokens,
        purpose: Purpose::Summary,
        tools: Vec::new(),
        tool_choice: ToolChoice::Auto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(context_window: u32) -> Model {
        serde_json::from_value(serde_json::json!({
            "id": "t/m", "provider": "local", "provider_model_id": "m", "display_name": "m",
            "context_window": context_window, "max_output_tokens": 100,
            "pricing": {"input_per_mtok_usd": 0.0, "output_per_mtok_usd": 0.0},
            "capabilities": {"streaming": true, "vision": false, "documents": false, "tools": false},
            "offline": true, "available": true,
        }))
        .unwrap()
    }

    fn msg(seq: i64, role: MessageRole, chars: usize) -> Message {
        Message::unstored(
            seq,
            crate::ids::MessageId::new(),
            crate::ids::ConversationId::new(),
            role,
            "x".repeat(chars),
        )
    }

    #[test]
    fn everything_fits_so_nothing_is_summarised() {
        let history = [
            msg(1, MessageRole::User, 40),
            msg(2, MessageRole::Assistant, 40),
            msg(3, MessageRole::User, 40),
        ];
        let p = plan(
            &model(10_000),
            DEFAULT_SYSTEM_PROMPT,
            None,
            &history,
            100,
            None,
        );
        assert!(p.to_summarise.is_empty());
        assert_eq!(p.request.turns.len(), 3);
        assert_eq!(p.request.turns[2].speaker, Speaker::User);
    }

    #[test]
    fn older_messages_over_budget_are_summarised() {
        // Budget: 2000 - 100 - system (27) - 256 = 1617 tokens; each long message is 750.
        let history = [
            msg(1, MessageRole::User, 3000),
            msg(2, MessageRole::Assistant, 3000),
            msg(3, MessageRole::User, 3000),
            msg(4, MessageRole::Assistant, 3000),
            msg(5, MessageRole::User, 100),
        ];
        let p = plan(
            &model(2000),
            DEFAULT_SYSTEM_PROMPT,
            None,
            &history,
            100,
            None,
        );
        let summarised: Vec<i64> = p.to_summarise.iter().map(|m| m.seq).collect();
        assert_eq!(summarised, [1, 2]);
        assert_eq!(p.request.turns.len(), 3);
        assert_eq!(p.request.turns[0].speaker, Speaker::User);

        // One more long assistant message and the kept suffix would start with it: it is dropped.
        let history = [
            msg(1, MessageRole::User, 3000),
            msg(2, MessageRole::Assistant, 3000),
            msg(3, MessageRole::User, 3000),
            msg(4, MessageRole::Assistant, 5000),
            msg(5, MessageRole::User, 100),
        ];
        let p = plan(
            &model(2000),
            DEFAULT_SYSTEM_PROMPT,
            None,
            &history,
            100,
            None,
        );
        assert_eq!(
            p.to_summarise.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(p.request.turns.len(), 1);
        assert_eq!(p.request.turns[0].speaker, Speaker::User);
    }

    #[test]
    fn the_answer_gets_the_room_left_in_the_window() {
        let p = plan(
            &model(2000),
            DEFAULT_SYSTEM_PROMPT,
            None,
            &[msg(1, MessageRole::User, 4000)],
            100,
            None,
        );
        // 1000 input tokens + the system prompt + the margin leave ~700 of 2000.
        let room = answer_room(&model(2000), &p.request);
        assert!((600..=744).contains(&room), "{room}");
        let p = plan(
            &model(2000),
            DEFAULT_SYSTEM_PROMPT,
            None,
            &[msg(1, MessageRole::User, 8000)],
            100,
            None,
        );
        assert_eq!(answer_room(&model(2000), &p.request), 0);
    }

    #[test]
    fn the_new_message_always_goes_and_turns_alternate() {
        let history = [msg(1, MessageRole::User, 50_000)];
        let p = plan(
            &model(2000),
            DEFAULT_SYSTEM_PROMPT,
            None,
            &history,
            100,
            None,
        );
        assert_eq!(p.request.turns.len(), 1);
        let mut failed = msg(2, MessageRole::Assistant, 0);
        failed.status = MessageStatus::Failed;
        let history = [
            msg(1, MessageRole::User, 10),
            failed,
            msg(3, MessageRole::User, 10),
        ];
        let p = plan(
            &model(10_000),
            DEFAULT_SYSTEM_PROMPT,
            Some("earlier"),
            &history,
            100,
            None,
        );
        assert_eq!(
            p.request.turns.len(),
            1,
            "two user messages in a row are joined"
        );
        assert!(p.request.system.unwrap().contains("earlier"));
    }
}
