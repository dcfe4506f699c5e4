//! The offline embedder of the local default: hashed word and character-trigram features in a
//! fixed-size vector. It is NOT semantic (synonyms share nothing); it lets vector search, its
//! index and the fusion with full-text ranks run with no model and no keys, and it is
//! deterministic, so tests can rely on its ranks.

/// Dimensions of every stored vector (the `chunks.embedding` column's `F32_BLOB(256)`).
pub const DIMENSIONS: usize = 256;

/// The name stored on documents embedded by it.
pub const LOCAL_EMBEDDER: &str = "local/hashed-ngrams-256";

/// Words too common to tell chunks apart.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "he", "her", "his",
    "how", "i", "in", "is", "it", "its", "of", "on", "or", "she", "that", "the", "their", "they",
    "this", "to", "was", "were", "what", "when", "where", "which", "who", "why", "will", "with",
    "you",
];

/// The words of `text` that carry meaning: lowercase alphanumeric runs, without stop words.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// The unit-length vector of `text`: each word adds weight 1 at its hash's slot (with the hash's
/// sign), each trigram of `#word#` 0.3, so inflections ("index", "indexing") land close.
pub fn embed(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIMENSIONS];
    for word in words(text) {
        add(&mut v, word.as_bytes(), 1.0);
        let padded: Vec<char> = format!("#{word}#").chars().collect();
        for tri in padded.windows(3) {
            let s: String = tri.iter().collect();
            add(&mut v, s.as_bytes(), 0.3);
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// A vector as the JSON array `vector32()` reads.
pub fn to_json(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 8 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{x}"));
    }
    s.push(']');
    s
}

fn add(v: &mut [f32], feature: &[u8], weight: f32) {
    let h = fnv1a(feature);
    let slot = (h % DIMENSIONS as u64) as usize;
    let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
    v[slot] += sign * weight;
}

/// FNV-1a, 64-bit: stable across builds and platforms (std's hasher is seeded per process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn deterministic_unit_vectors_where_shared_words_are_closer() {
        let a = embed("The whale hunted by Captain Ahab");
        assert_eq!(a, embed("The whale hunted by Captain Ahab"));
        assert_eq!(a.len(), DIMENSIONS);
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        let near = embed("captain ahab and the white whale");
        let far = embed("a tea party with the mad hatter");
        assert!(cos(&a, &near) > cos(&a, &far) + 0.2);
        assert!(
            embed("the of and").iter().all(|x| *x == 0.0),
            "stop words only"
        );
        assert!(to_json(&[0.5, -1.0]).starts_with("[0.5,-1"));
    }
}
