//! What a file sent to a model is estimated to cost in input tokens: what a turn reserves against
//! the user's budget before the call, and bills when the provider never reports usage (when it does,
//! its count is billed). Text and PDFs by size, a token per four bytes, the rule used for text
//! (an estimate, not a bound: a compressed PDF can hold more text than its size suggests, and
//! providers bill its pages' images too). Images by the formulas documented for Claude's standard
//! tier (width × height / 750 within 1568 px and about 1.15 megapixels) and GPT-4o-class models
//! (512-px tiles), the larger of the two. Models that bill images by another rule (gpt-4o-mini's
//! multiplier, newer Claude tiers' larger images) are reserved for less than they bill.

use super::{FileKind, FilePart};

/// The most an image costs where its size cannot be read: the larger formula's ceiling.
const UNKNOWN_IMAGE_TOKENS: u64 = 1_600;

pub fn file_tokens(file: &FilePart) -> u64 {
    match file.kind {
        FileKind::Text | FileKind::Pdf => (file.bytes.len() as u64).div_ceil(4),
        FileKind::Image => match image_size(&file.bytes) {
            Some((w, h)) => anthropic_image_tokens(w, h).max(openai_image_tokens(w, h)),
            None => UNKNOWN_IMAGE_TOKENS,
        },
    }
}

/// `(w, h)` scaled down, aspect kept, so that `side` of them (the longer or the shorter) is at most
/// `max`.
fn scaled(w: f64, h: f64, side: fn(f64, f64) -> f64, max: f64) -> (f64, f64) {
    let s = (max / side(w, h)).min(1.0);
    (w * s, h * s)
}

/// Claude's standard tier: scaled to at most 1568 px on the long edge and about 1.15 megapixels,
/// then width × height / 750.
fn anthropic_image_tokens(w: u64, h: u64) -> u64 {
    let (mut w, mut h) = scaled(w as f64, h as f64, f64::max, 1568.0);
    let pixels = w * h;
    if pixels > 1_150_000.0 {
        let s = (1_150_000.0 / pixels).sqrt();
        (w, h) = (w * s, h * s);
    }
    ((w * h) / 750.0).ceil() as u64
}

/// GPT-4o-class models (high detail): fit within 2048 × 2048, the short side scaled to 768, then
/// 170 tokens a 512-px tile and 85 more.
fn openai_image_tokens(w: u64, h: u64) -> u64 {
    let (w, h) = scaled(w as f64, h as f64, f64::max, 2048.0);
    let (w, h) = scaled(w, h, f64::min, 768.0);
    let tiles = (w / 512.0).ceil() as u64 * (h / 512.0).ceil() as u64;
    85 + 170 * tiles
}

/// Width and height from a PNG, GIF, JPEG or WebP header.
fn image_size(b: &[u8]) -> Option<(u64, u64)> {
    let be16 = |i: usize| Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?) as u64);
    let le16 = |i: usize| Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?) as u64);
    let be32 = |i: usize| Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?) as u64);
    let le24 = |i: usize| {
        let x = b.get(i..i + 3)?;
        Some(x[0] as u64 | (x[1] as u64) << 8 | (x[2] as u64) << 16)
    };
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some((be32(16)?, be32(20)?));
    }
    if b.starts_with(b"GIF8") {
        return Some((le16(6)?, le16(8)?));
    }
    if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        return match b.get(12..16)? {
            b"VP8 " => Some((le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
            b"VP8L" => {
                let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?) as u64;
                Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
            }
            b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
            _ => None,
        };
    }
    if b.starts_with(&[0xff, 0xd8]) {
        // Walk the markers to the first start-of-frame (SOF0–SOF15 but DHT, JPG and DAC).
        let mut i = 2;
        while i + 4 <= b.len() {
            if b[i] != 0xff {
                return None;
            }
            let marker = b[i + 1];
            let len = be16(i + 2)? as usize;
            if (0xc0..=0xcf).contains(&marker) && ![0xc4, 0xc8, 0xcc].contains(&marker) {
                return Some((be16(i + 7)?, be16(i + 5)?));
            }
            i += 2 + len;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(kind: FileKind, bytes: Vec<u8>) -> FilePart {
        FilePart {
            name: "f".into(),
            media_type: "x/y".into(),
            kind,
            bytes: bytes.into(),
        }
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b
    }

    #[test]
    fn text_and_pdfs_count_by_size() {
        assert_eq!(
            file_tokens(&part(FileKind::Text, vec![b'a'; 200_000])),
            50_000
        );
        assert_eq!(file_tokens(&part(FileKind::Pdf, vec![0; 4001])), 1001);
    }

    #[test]
    fn images_count_by_the_larger_formula() {
        // 1000 × 1000: Anthropic 1334 (1 000 000 / 750); OpenAI 768 × 768, 4 tiles: 765.
        assert_eq!(file_tokens(&part(FileKind::Image, png(1000, 1000))), 1334);
        // 512 × 512: Anthropic 350; OpenAI one tile: 255.
        assert_eq!(file_tokens(&part(FileKind::Image, png(512, 512))), 350);
        // 4000 × 1000: Anthropic 1568 × 392 = 820; OpenAI 2048 × 512, 4 tiles: 765.
        assert_eq!(file_tokens(&part(FileKind::Image, png(4000, 1000))), 820);
        // Unreadable: the ceiling.
        assert_eq!(
            file_tokens(&part(FileKind::Image, b"not an image".to_vec())),
            UNKNOWN_IMAGE_TOKENS
        );
    }

    #[test]
    fn sizes_come_from_each_format_header() {
        assert_eq!(image_size(&png(640, 480)), Some((640, 480)));
        assert_eq!(image_size(b"GIF89a\x40\x01\xf0\x00"), Some((320, 240)));
        let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00];
        jpeg.extend_from_slice(&[0xff, 0xc0, 0x00, 0x11, 0x08, 0x01, 0xe0, 0x02, 0x80]);
        assert_eq!(image_size(&jpeg), Some((640, 480)));
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0\0\0\0\0".to_vec();
        webp.extend_from_slice(&[0x7f, 0x02, 0x00, 0xdf, 0x01, 0x00]);
        assert_eq!(image_size(&webp), Some((640, 480)));
        assert_eq!(image_size(&[0xff, 0xd8, 0x00]), None);
    }
}
