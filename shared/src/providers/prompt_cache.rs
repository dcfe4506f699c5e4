//! Bedrock prompt caching: where a Converse request marks cache points, and the usage Bedrock
//! reports with them.
//!
//! A turn resends the same system prompt and history every time; with cache points Bedrock reads
//! them back at the cached rate (a tenth of the input price for Claude) after writing them once at
//! the cache-write rate. Only models whose catalog entry says `prompt_cache` get the points.

use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, Message, SystemContentBlock,
};

use super::{estimate_tokens, estimate_turn_tokens, ModelRequest, ProviderError, TokenUsage};

/// The fewest tokens (by the four-characters estimate) before a cache point: Bedrock caches
/// nothing shorter than a model's minimum (1 024 tokens for Claude Sonnet and Opus, 2 048 for
/// Claude 3.5 Haiku, as Bedrock's documentation gives them; not checked against Bedrock here), so
/// a point is only marked past the largest of those.
const MIN_CACHED_TOKENS: u64 = 2048;

fn cache_point() -> Result<CachePointBlock, ProviderError> {
    CachePointBlock::builder()
        .r#type(CachePointType::Default)
        .build()
        .map_err(|e| ProviderError::Rejected(e.to_string()))
}

/// Marks a cache point after the system prompt, and one after the history before the newest turn
/// (what the next call of the conversation sends again), each when what precedes it is long enough
/// to be cached.
pub(super) fn mark(
    request: &ModelRequest,
    system: &mut Option<Vec<SystemContentBlock>>,
    messages: &mut [Message],
) -> Result<(), ProviderError> {
    let system_tokens = request.system.as_deref().map(estimate_tokens).unwrap_or(0);
    if let Some(blocks) = system.as_mut() {
        if system_tokens >= MIN_CACHED_TOKENS {
            blocks.push(SystemContentBlock::CachePoint(cache_point()?));
        }
    }
    let Some((_newest, stable)) = request.turns.split_last() else {
        return Ok(());
    };
    let history_tokens: u64 = stable.iter().map(estimate_turn_tokens).sum();
    let at = messages.len().checked_sub(2);
    if let (Some(at), true) = (at, system_tokens + history_tokens >= MIN_CACHED_TOKENS) {
        let message = &messages[at];
        let mut content = message.content().to_vec();
        content.push(ContentBlock::CachePoint(cache_point()?));
        messages[at] = Message::builder()
            .role(message.role().clone())
            .set_content(Some(content))
            .build()
            .map_err(|e| ProviderError::Rejected(e.to_string()))?;
    }
    Ok(())
}

/// Bedrock counts cache reads and writes apart from `inputTokens`; ours include both in the input,
/// as OpenAI's count includes cache reads.
pub(super) fn usage(u: &aws_sdk_bedrockruntime::types::TokenUsage) -> TokenUsage {
    let cached = u.cache_read_input_tokens().unwrap_or(0).max(0) as u64;
    let written = u.cache_write_input_tokens().unwrap_or(0).max(0) as u64;
    TokenUsage {
        input_tokens: u.input_tokens().max(0) as u64 + cached + written,
        output_tokens: u.output_tokens().max(0) as u64,
        cached_tokens: cached,
        cache_write_tokens: written,
        reasoning_tokens: 0,
    }
}
