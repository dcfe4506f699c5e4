//! [`ProjectPath`]: every path enters a project through it, whichever the door.

const MAX_PATH_BYTES: usize = 1024;
const MAX_SEGMENT_BYTES: usize = 255;
const MAX_DEPTH: usize = 32;

/// A file's path inside a project: relative, `/`-separated, normalised once and checked against
/// every rule (no `..` or `.`, no absolute path, no backslash, no NUL, control or invisible format
/// character (bidi overrides, zero-width characters: a spoofed name in the tree or in the agent's
/// prompt), no empty segment, at most 32 levels and 1024 bytes, segments of at most 255 bytes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectPath(String);

impl ProjectPath {
    pub fn parse(raw: &str) -> std::result::Result<Self, String> {
        if raw.is_empty() {
            return Err("is empty".into());
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(format!("is longer than {MAX_PATH_BYTES} bytes"));
        }
        if raw.starts_with('/') || raw.as_bytes().get(1) == Some(&b':') {
            return Err("must be relative (no leading / or drive letter)".into());
        }
        if raw.contains('\\') {
            return Err("must use / between segments, not \\".into());
        }
        if raw.chars().any(|c| c.is_control()) {
            return Err("must not contain NUL or control characters".into());
        }
        if crate::text::has_hidden_characters(raw) {
            return Err(
                "must not contain invisible characters (bidi controls, zero-width characters)"
                    .into(),
            );
        }
        let segments: Vec<&str> = raw.split('/').collect();
        if segments.len() > MAX_DEPTH {
            return Err(format!("is deeper than {MAX_DEPTH} levels"));
        }
        for s in &segments {
            match *s {
                "" => return Err("has an empty segment".into()),
                "." | ".." => return Err("must not contain . or .. segments".into()),
                s if s.len() > MAX_SEGMENT_BYTES => {
                    return Err(format!(
                        "has a segment longer than {MAX_SEGMENT_BYTES} bytes"
                    ))
                }
                _ => {}
            }
        }
        Ok(ProjectPath(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_every_rule() {
        for ok in [
            "a.txt",
            "src/main.rs",
            "a/b/c/d.md",
            ".github/workflows/ci.yml",
            "dir/.env",
            "é/ü.txt",
        ] {
            assert_eq!(ProjectPath::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "src/\u{202e}sr.exe",
            "a\u{200b}.txt",
            "\u{feff}main.rs",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/./b",
            "./a",
            "a//b",
            "a/",
            "a\\b",
            "C:/x",
            "a\0b",
            "a\nb",
        ] {
            assert!(ProjectPath::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ProjectPath::parse(&"x".repeat(256)).is_err());
        assert!(ProjectPath::parse(&"x".repeat(255)).is_ok());
        assert!(
            ProjectPath::parse(&vec!["y".repeat(200); 6].join("/")).is_err(),
            "over 1024 bytes"
        );
        let deep = vec!["d"; 33].join("/");
        assert!(ProjectPath::parse(&deep).is_err());
        let ok_deep = vec!["d"; 32].join("/");
        assert!(ProjectPath::parse(&ok_deep).is_ok());
    }
}
