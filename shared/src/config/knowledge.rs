//! Knowledge documents: sizes and chunking.

use super::*;

/// Knowledge documents: sizes and chunking.
#[derive(Debug, Clone)]
pub struct KnowledgeConfig {
    /// Largest knowledge document (its text's UTF-8 bytes); the JSON body limit applies too.
    pub max_document_bytes: usize,
    /// Largest document text indexed inside the request; a larger one is indexed after it.
    pub max_index_in_request_bytes: usize,
    /// Longest knowledge chunk, in estimated tokens.
    pub chunk_tokens: usize,
}

impl KnowledgeConfig {
    pub(super) fn load(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(KnowledgeConfig {
            max_document_bytes: number(var, "MAX_DOCUMENT_BYTES", 4 * 1024 * 1024)?,
            max_index_in_request_bytes: number(var, "MAX_INDEX_IN_REQUEST_BYTES", 512 * 1024)?,
            chunk_tokens: number(var, "KNOWLEDGE_CHUNK_TOKENS", 200usize)?.clamp(20, 2000),
        })
    }
}
