//! Cutting a document into chunks: by structure first (Markdown headings, then paragraphs), then by
//! length with overlap. Chunks never cross a heading, so each one's heading path says where it is.

use crate::providers::estimate_tokens;

/// A piece of a document: its heading path (`Book › Chapter`, empty above the first heading) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub heading: String,
    pub content: String,
}

/// How long chunks are, in estimated tokens (four characters a token, as everywhere).
#[derive(Debug, Clone, Copy)]
pub struct ChunkSize {
    pub max_tokens: usize,
    /// Tokens repeated from the end of a long paragraph's previous window at the start of the next.
    pub overlap_tokens: usize,
}

impl Default for ChunkSize {
    fn default() -> Self {
        ChunkSize {
            max_tokens: 200,
            overlap_tokens: 30,
        }
    }
}

/// Chunks of `text`; `markdown` makes `#` headings (outside code fences) start sections.
pub fn chunk(text: &str, markdown: bool, size: ChunkSize) -> Vec<Chunk> {
    let mut out = Vec::new();
    for (heading, paragraphs) in sections(text, markdown) {
        let mut current = String::new();
        for paragraph in paragraphs {
            if estimate_tokens(&paragraph) as usize > size.max_tokens {
                flush(&mut out, &heading, &mut current);
                for window in windows(&paragraph, size) {
                    out.push(Chunk {
                        heading: heading.clone(),
                        content: window,
                    });
                }
                continue;
            }
            let joined = estimate_tokens(&current) as usize + estimate_tokens(&paragraph) as usize;
            if !current.is_empty() && joined > size.max_tokens {
                flush(&mut out, &heading, &mut current);
            }
            if !current.is_empty() {
                current.push_str("\n\n");
            }
            current.push_str(&paragraph);
        }
        flush(&mut out, &heading, &mut current);
    }
    out
}

fn flush(out: &mut Vec<Chunk>, heading: &str, current: &mut String) {
    if !current.trim().is_empty() {
        out.push(Chunk {
            heading: heading.to_string(),
            content: std::mem::take(current),
        });
    }
    current.clear();
}

/// The document's sections: each heading path with its paragraphs (blank-line separated; a code
/// fence is one paragraph however many blank lines it holds).
fn sections(text: &str, markdown: bool) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut paragraph = String::new();
    let mut in_fence = false;
    let end_paragraph = |sections: &mut Vec<(String, Vec<String>)>, paragraph: &mut String| {
        let p = paragraph.trim();
        if !p.is_empty() {
            if let Some(last) = sections.last_mut() {
                last.1.push(p.to_string());
            }
        }
        paragraph.clear();
    };
    for line in text.lines() {
        let trimmed = line.trim_start();
        if markdown && (trimmed.starts_with("```") || trimmed.starts_with("~~~")) {
            in_fence = !in_fence;
        }
        if markdown && !in_fence {
            if let Some((level, title)) = heading(trimmed) {
                end_paragraph(&mut sections, &mut paragraph);
                path.retain(|(l, _)| *l < level);
                path.push((level, title.to_string()));
                let name = path
                    .iter()
                    .map(|(_, t)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" › ");
                sections.push((name, Vec::new()));
                continue;
            }
        }
        if line.trim().is_empty() && !in_fence {
            end_paragraph(&mut sections, &mut paragraph);
        } else {
            if !paragraph.is_empty() {
                paragraph.push('\n');
            }
            paragraph.push_str(line);
        }
    }
    end_paragraph(&mut sections, &mut paragraph);
    sections.retain(|(_, p)| !p.is_empty());
    sections
}

/// `## Title` → (2, "Title").
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !rest.starts_with(' ') && !rest.starts_with('\t') {
        return None;
    }
    let title = rest.trim().trim_end_matches('#').trim();
    (!title.is_empty()).then_some((level, title))
}

/// A paragraph longer than a chunk, cut at word boundaries into windows that overlap.
fn windows(paragraph: &str, size: ChunkSize) -> Vec<String> {
    let max_chars = size.max_tokens.max(1) * 4;
    let overlap_chars = (size.overlap_tokens * 4).min(max_chars / 2);
    let words: Vec<&str> = paragraph.split_whitespace().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < words.len() {
        let mut end = start;
        let mut chars = 0;
        while end < words.len()
            && (end == start || chars + 1 + words[end].chars().count() <= max_chars)
        {
            chars += words[end].chars().count() + 1;
            end += 1;
        }
        out.push(words[start..end].join(" "));
        if end >= words.len() {
            break;
        }
        // Step back over about `overlap_chars` of words, always moving forward.
        let mut back = end;
        let mut overlap = 0;
        while back > start + 1 && overlap + words[back - 1].chars().count() < overlap_chars {
            back -= 1;
            overlap += words[back].chars().count() + 1;
        }
        start = back;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_make_paths_and_chunks_do_not_cross_them() {
        let doc = "Intro line.\n\n# Book\n\nFirst.\n\n## Chapter 1\n\nOne.\n\n```\n# not a heading\n\ncode\n```\n\n## Chapter 2\n\nTwo.\n";
        let chunks = chunk(doc, true, ChunkSize::default());
        let got: Vec<(&str, &str)> = chunks
            .iter()
            .map(|c| (c.heading.as_str(), c.content.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("", "Intro line."),
                ("Book", "First."),
                (
                    "Book › Chapter 1",
                    "One.\n\n```\n# not a heading\n\ncode\n```"
                ),
                ("Book › Chapter 2", "Two."),
            ]
        );
        // Plain text has no headings.
        assert_eq!(chunk("# a\n\nb", false, ChunkSize::default()).len(), 1);
    }

    #[test]
    fn long_paragraphs_split_with_overlap_and_short_ones_pack() {
        let size = ChunkSize {
            max_tokens: 10,
            overlap_tokens: 3,
        };
        let long: String = (0..40).map(|i| format!("w{i:02} ")).collect();
        let chunks = chunk(&long, false, size);
        assert!(chunks.len() > 3, "{chunks:?}");
        for c in &chunks {
            assert!(c.content.chars().count() <= 40, "{c:?}");
        }
        // Consecutive windows share words, and every word is somewhere.
        let first: Vec<&str> = chunks[0].content.split(' ').collect();
        let next_starts = chunks[1].content.split(' ').next().unwrap();
        assert!(
            first.contains(&next_starts) && next_starts != first[0],
            "{chunks:?}"
        );
        for i in 0..40 {
            assert!(chunks
                .iter()
                .any(|c| c.content.contains(&format!("w{i:02}"))));
        }
        let packed = chunk("a b\n\nc d\n\ne f", false, size);
        assert_eq!(packed.len(), 1);
        assert_eq!(packed[0].content, "a b\n\nc d\n\ne f");
    }
}
