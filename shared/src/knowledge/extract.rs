//! A document's text from an uploaded file: plain text and Markdown as they are (UTF-8), PDF
//! through `pdf-extract`. The type comes from the bytes where they say (`%PDF-`), else from the
//! declared type or the file name's extension.

use std::io::Read;

use crate::{
    config::PdfLimits,
    error::{Error, FieldError, Result},
};

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

/// The file's text. Text must be UTF-8; a PDF that cannot be read, has no text (a scan), inflates
/// past `pdf.max_inflated_bytes` or takes longer than `pdf.timeout` to read is a 422 on `field`.
/// PDF parsing runs on a blocking thread and a panic inside the parser is a refusal of that file,
/// never a failed request.
pub async fn text(bytes: bytes::Bytes, kind: Kind, field: &str, pdf: PdfLimits) -> Result<String> {
    match kind {
        Kind::Text | Kind::Markdown => String::from_utf8(bytes.to_vec())
            .map_err(|_| Error::invalid(field, "is not UTF-8 text")),
        Kind::Pdf => {
            let check = bytes.clone();
            let within = tokio::task::spawn_blocking(move || {
                inflates_within(&check, pdf.max_inflated_bytes)
            })
            .await
            .unwrap_or(false);
            if !within {
                return Err(Error::invalid(
                    field,
                    format!(
                        "the PDF's compressed streams inflate past {} bytes",
                        pdf.max_inflated_bytes
                    ),
                ));
            }
            let parse = tokio::task::spawn_blocking(move || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    pdf_extract::extract_text_from_mem(&bytes)
                }))
            });
            // A parse past its time is refused; its thread finishes on its own (a blocking thread
            // cannot be stopped), under the inflate bound above.
            let parsed = match tokio::time::timeout(pdf.timeout, parse).await {
                Ok(parsed) => parsed,
                Err(_) => {
                    return Err(Error::invalid(
                        field,
                        format!("the PDF took longer than {:?} to read", pdf.timeout),
                    ))
                }
            };
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

/// Whether every zlib (FlateDecode) stream of a PDF inflates to at most `cap` bytes in all. Each
/// `stream` keyword's data is inflated as far as it goes (a stream in another encoding stops at
/// once); nothing is kept.
fn inflates_within(pdf: &[u8], cap: u64) -> bool {
    let mut total = 0u64;
    let mut at = 0;
    while let Some(found) = find(&pdf[at..], b"stream") {
        let mut start = at + found + b"stream".len();
        at = start;
        match pdf.get(start..start + 2) {
            Some(b"\r\n") => start += 2,
            Some([b'\n', _]) => start += 1,
            _ => continue,
        }
        let room = cap.saturating_sub(total) + 1;
        let mut decoder = flate2::read::ZlibDecoder::new(&pdf[start..]).take(room);
        let inflated = std::io::copy(&mut decoder, &mut std::io::sink()).unwrap_or(0);
        total += inflated;
        if total > cap {
            return false;
        }
    }
    true
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pdf_with_stream(inflated: usize) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&vec![b' '; inflated]).unwrap();
        let mut pdf = b"%PDF-1.4\n1 0 obj\n<< /Filter /FlateDecode >>\nstream\n".to_vec();
        pdf.extend_from_slice(&z.finish().unwrap());
        pdf.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
        pdf
    }

    #[test]
    fn a_pdf_inflating_past_the_bound_is_refused_before_parsing() {
        assert!(inflates_within(&pdf_with_stream(1000), 1000));
        assert!(!inflates_within(&pdf_with_stream(1001), 1000));
        // A bomb: 16 MiB of spaces compress to a few KiB; refused once the cap is read.
        let bomb = pdf_with_stream(16 * 1024 * 1024);
        assert!(!inflates_within(&bomb, 1024 * 1024));
        assert!(inflates_within(b"%PDF-1.4\nno streams here", 0));
    }

    #[tokio::test]
    async fn the_bound_is_a_422_on_the_field() {
        let limits = PdfLimits {
            max_inflated_bytes: 1000,
            timeout: std::time::Duration::from_secs(5),
        };
        let err = text(pdf_with_stream(5000).into(), Kind::Pdf, "file", limits)
            .await
            .unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        let problem = err.problem();
        assert_eq!(problem.errors[0].field, "file");
        assert!(problem.errors[0].message.contains("inflate past 1000"));
    }
}
