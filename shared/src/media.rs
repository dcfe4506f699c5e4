//! What a file is, for every part that takes files (attachments, project zips, knowledge
//! documents, the OpenAI endpoint's images): its cleaned name, the type its first bytes show and
//! whether that matches the declared one, the type a name suggests, and which types are text.

use crate::error::FieldError;

/// The longest filename kept, in characters (display data only: the blob key never uses it).
const MAX_FILENAME_CHARS: usize = 255;

/// A client's filename made safe to show: the last path part only, control characters removed,
/// surrounding spaces and dots trimmed. Refused when nothing is left or it is absurdly long.
pub fn clean_filename(raw: &str) -> Result<String, FieldError> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim_matches(|c: char| c.is_whitespace() || c == '.');
    if cleaned.is_empty() {
        return Err(FieldError::new("filename", "must name a file"));
    }
    if cleaned.chars().count() > MAX_FILENAME_CHARS {
        return Err(FieldError::new(
            "filename",
            format!("must be at most {MAX_FILENAME_CHARS} characters"),
        ));
    }
    Ok(cleaned.to_string())
}

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Png,
    Jpeg,
    Gif,
    Webp,
    Pdf,
    Zip,
    /// UTF-8 without NUL bytes.
    Text,
    /// Anything else.
    Binary,
}

impl Sniffed {
    pub fn of(first: &[u8]) -> Sniffed {
        if first.starts_with(b"\x89PNG\r\n\x1a\n") {
            Sniffed::Png
        } else if first.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Sniffed::Jpeg
        } else if first.starts_with(b"GIF87a") || first.starts_with(b"GIF89a") {
            Sniffed::Gif
        } else if first.len() >= 12 && &first[..4] == b"RIFF" && &first[8..12] == b"WEBP" {
            Sniffed::Webp
        } else if first.starts_with(b"%PDF-") {
            Sniffed::Pdf
        } else if first.starts_with(b"PK\x03\x04") || first.starts_with(b"PK\x05\x06") {
            Sniffed::Zip
        } else if is_text(first) {
            Sniffed::Text
        } else {
            Sniffed::Binary
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Sniffed::Png => "a PNG image",
            Sniffed::Jpeg => "a JPEG image",
            Sniffed::Gif => "a GIF image",
            Sniffed::Webp => "a WebP image",
            Sniffed::Pdf => "a PDF document",
            Sniffed::Zip => "a zip archive",
            Sniffed::Text => "text",
            Sniffed::Binary => "binary data",
        }
    }
}

/// UTF-8 with no NUL byte; a multi-byte character cut by the end of the sample still counts.
pub(super) fn is_text(sample: &[u8]) -> bool {
    if sample.contains(&0) {
        return false;
    }
    match std::str::from_utf8(sample) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && sample.len() - e.valid_up_to() < 4,
    }
}

/// Whether the bytes are what the declared type says. Types this service knows how to recognise
/// must match; others (an operator may allow more) pass when they are not text posing as binary.
pub fn check_type(declared: &str, sniffed: Sniffed) -> Result<(), FieldError> {
    let expected = match declared {
        "image/png" => Some(Sniffed::Png),
        "image/jpeg" => Some(Sniffed::Jpeg),
        "image/gif" => Some(Sniffed::Gif),
        "image/webp" => Some(Sniffed::Webp),
        "application/pdf" => Some(Sniffed::Pdf),
        "application/zip" => Some(Sniffed::Zip),
        t if is_text_type(t) => Some(Sniffed::Text),
        _ => None,
    };
    match expected {
        Some(e) if e != sniffed => Err(FieldError::new(
            "content_type",
            format!("is {declared}, but the file is {}", sniffed.describe()),
        )),
        _ => Ok(()),
    }
}

/// The type a filename's extension implies, for clients that label every file
/// `application/octet-stream` (the bytes are still sniffed).
pub fn guess_type(filename: &str) -> Option<&'static str> {
    let ext = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "csv" => "text/csv",
        "json" => "application/json",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "toml" => "application/toml",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" | "cjs" | "jsx" => "text/javascript",
        "ts" | "tsx" => "text/x-typescript",
        "py" => "text/x-python",
        "rs" => "text/x-rust",
        "go" => "text/x-go",
        "java" => "text/x-java",
        "kt" | "kts" => "text/x-kotlin",
        "c" | "h" => "text/x-c",
        "cc" | "cpp" | "cxx" | "hpp" => "text/x-c++",
        "cs" => "text/x-csharp",
        "rb" => "text/x-ruby",
        "php" => "text/x-php",
        "swift" => "text/x-swift",
        "sh" | "bash" => "text/x-shellscript",
        "sql" => "application/sql",
        _ => return None,
    })
}

/// A Content-Type's media type, without parameters, lowercase (`Text/Plain; charset=x` → `text/plain`).
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Text types: sent to models as text documents.
pub fn is_text_type(mime: &str) -> bool {
    mime.starts_with("text/")
        || matches!(
            mime,
            "application/json"
                | "application/xml"
                | "application/yaml"
                | "application/x-yaml"
                | "application/toml"
                | "application/javascript"
                | "application/typescript"
                | "application/x-sh"
                | "application/sql"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_display_data() {
        assert_eq!(clean_filename("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(
            clean_filename("C:\\Users\\me\\notes.md").unwrap(),
            "notes.md"
        );
        assert_eq!(clean_filename("re\u{0}port\n.pdf").unwrap(), "report.pdf");
        assert_eq!(clean_filename("  .hidden. ").unwrap(), "hidden");
        assert!(clean_filename("dir/").is_err());
        assert!(clean_filename("..").is_err());
        assert!(clean_filename(&"a".repeat(256)).is_err());
        assert!(clean_filename(&"é".repeat(255)).is_ok());
    }

    #[test]
    fn bytes_must_be_what_the_type_says() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(Sniffed::of(png), Sniffed::Png);
        assert_eq!(Sniffed::of(b"%PDF-1.7\n"), Sniffed::Pdf);
        assert_eq!(Sniffed::of(b"RIFF\0\0\0\0WEBPVP8 "), Sniffed::Webp);
        assert_eq!(Sniffed::of("# Titre é".as_bytes()), Sniffed::Text);
        // A sample that ends inside a multi-byte character is still text.
        assert_eq!(Sniffed::of(&"é".as_bytes()[..1]), Sniffed::Text);
        assert_eq!(Sniffed::of(b"MZ\x90\0\x03"), Sniffed::Binary);
        assert!(check_type("image/png", Sniffed::of(png)).is_ok());
        assert!(check_type("image/png", Sniffed::Pdf).is_err());
        assert!(check_type("application/pdf", Sniffed::Text).is_err());
        assert!(check_type("text/plain", Sniffed::Binary).is_err());
        assert!(check_type("text/csv", Sniffed::Text).is_ok());
    }
}
