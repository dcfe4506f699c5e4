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
    /// How a PDF's text is read: bounded in memory and time.
    pub pdf: PdfLimits,
    /// What one user may store in all (`MAX_USER_STORAGE_BYTES`, 1 GiB): attachments, project
    /// files and knowledge documents together.
    pub max_user_storage_bytes: u64,
    /// Knowledge documents one user may hold (`MAX_DOCUMENTS_PER_USER`, 1000).
    pub max_documents_per_user: u64,
}

/// The bounds of reading a PDF's text: its compressed streams may inflate to at most
/// `max_inflated_bytes` in all (`MAX_PDF_INFLATED_BYTES`, 64 MiB: checked before parsing, so a
/// crafted stream cannot take the process's memory), and the parse may take at most `timeout`
/// (`PDF_EXTRACT_TIMEOUT_SECONDS`, 20 s); past either the file is a 422.
#[derive(Debug, Clone, Copy)]
pub struct PdfLimits {
    pub max_inflated_bytes: u64,
    pub timeout: Duration,
}

impl KnowledgeConfig {
    pub(super) fn load(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(KnowledgeConfig {
            max_document_bytes: number(var, "MAX_DOCUMENT_BYTES", 4 * 1024 * 1024)?,
            max_index_in_request_bytes: number(var, "MAX_INDEX_IN_REQUEST_BYTES", 512 * 1024)?,
            chunk_tokens: number(var, "KNOWLEDGE_CHUNK_TOKENS", 200usize)?.clamp(20, 2000),
            pdf: PdfLimits {
                max_inflated_bytes: number(var, "MAX_PDF_INFLATED_BYTES", 64 * 1024 * 1024)?,
                timeout: Duration::from_secs(
                    number(var, "PDF_EXTRACT_TIMEOUT_SECONDS", 20)?.max(1),
                ),
            },
            max_user_storage_bytes: max_user_storage_bytes(var)?,
            max_documents_per_user: number(var, "MAX_DOCUMENTS_PER_USER", 1000)?,
        })
    }
}
