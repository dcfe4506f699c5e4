//! A document's text from an uploaded file: plain text and Markdown as they are (UTF-8), PDF
//! through `pdf-extract`. The type comes from the bytes where they say (`%PDF-`), else from the
//! declared type or the file name's extension.

use crate::error::{Error, FieldError, Result};

/// What a file is taken as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Markdown,
    Pdf,
}

impl Kind {
    /// The content type stored on the document.
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Text => "text/plain",
            Kind::Markdown => "text/markdown",
            Kind::Pdf => "application/pdf",
        }
    }

    /// The kind of a file: its bytes first, then its declared type, then its name; `None` for
    /// anything else (a 415).
    pub fn of(bytes: &[u8], declared: Option<&str>, filename: &str) -> Option<Kind> {
        if bytes.starts_with(b"%PDF-") {
            return Some(Kind::Pdf);
        }
        let declared = declared
            .map(crate::media::media_type)
            .filter(|t| t != "application/octet-stream");
        let by_type = match declared.as_deref() {
            Some("text/plain") => Some(Kind::Text),
            Some("text/markdown" | "text/x-markdown") => Some(Kind::Markdown),
            Some("application/pdf") => Some(Kind::Pdf),
            _ => None,
        };
        by_type.or_else(|| {
            let ext = filename.rsplit_once('.')?.1.to_ascii_lowercase();
            match ext.as_str() {
                "txt" | "text" => Some(Kind::Text),
                "md" | "markdown" => Some(Kind::Markdown),
                "pdf" => Some(Kind::Pdf),
                _ => None,
            }
        })
    }
}

/// The file's text. Text must be UTF-8; a PDF that cannot be read, or has no text (a scan),
/// is a 422 on `field`. PDF parsing runs on a blocking thread and a panic inside the parser is
/// a refusal of that file, never a failed request.
pub async fn text(bytes: bytes::Bytes, kind: Kind, field: &str) -> Result<String> {
    match kind {
        Kind::Text | Kind::Markdown => String::from_utf8(bytes.to_vec())
            .map_err(|_| Error::invalid(field, "is not UTF-8 text")),
        Kind::Pdf => {
            let parsed = tokio::task::spawn_blocking(move || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    pdf_extract::extract_text_from_mem(&bytes)
                }))
            })
            .await;
            match parsed {
                Ok(Ok(Ok(text))) if text.chars().any(char::is_alphanumeric) => Ok(text),
                Ok(Ok(Ok(_))) => Err(FieldError::new(
                    field,
                    "the PDF has no extractable text (a scanned PDF needs OCR first)",
                )
                .into()),
                _ => Err(Error::invalid(field, "is not a PDF this service can read")),
            }
        }
    }
}
