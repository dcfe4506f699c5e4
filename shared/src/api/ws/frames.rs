//! Frames as JSON text within API Gateway's frame size: long deltas split, other long frames in
//! `part` frames.

use super::*;

/// A frame as JSON text: `{"type": kind, "request_id"?, ...data}`, in pieces of at most
/// `max_bytes`. A long `delta` becomes several deltas; another long frame becomes `part` frames
/// (`of`, `index`, `count`, `data`: consecutive slices of the frame's JSON text, to join and parse).
pub(crate) fn encode(
    kind: &str,
    request_id: Option<&str>,
    data: Value,
    max_bytes: usize,
) -> Vec<String> {
    let frame = |data: Value| {
        let mut object = match data {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        object.insert("type".into(), json!(kind));
        if let Some(id) = request_id {
            object.insert("request_id".into(), json!(id));
        }
        Value::Object(object).to_string()
    };
    let text = frame(data.clone());
    if text.len() <= max_bytes {
        return vec![text];
    }
    // Room for the envelope; JSON escaping can at most double a piece's size for these texts
    // (quotes and backslashes; control characters are rare in model text and in JSON).
    let room = max_bytes.saturating_sub(256 + request_id.map_or(0, str::len)) / 2;
    let room = room.max(64);
    if kind == "delta" {
        if let Some(delta) = data.get("text").and_then(Value::as_str) {
            return pieces(delta, room)
                .map(|piece| frame(json!({ "text": piece })))
                .collect();
        }
    }
    let slices: Vec<&str> = pieces(&text, room).collect();
    let count = slices.len();
    slices
        .into_iter()
        .enumerate()
        .map(|(index, slice)| {
            let mut object = Map::new();
            object.insert("type".into(), json!("part"));
            if let Some(id) = request_id {
                object.insert("request_id".into(), json!(id));
            }
            object.insert("of".into(), json!(kind));
            object.insert("index".into(), json!(index));
            object.insert("count".into(), json!(count));
            object.insert("data".into(), json!(slice));
            Value::Object(object).to_string()
        })
        .collect()
}

/// `text` in consecutive pieces of at most `max` bytes, cut at character boundaries.
fn pieces(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_frames_are_split_under_the_limit() {
        let text = "é".repeat(3000) + &"\"".repeat(3000);
        let frames = encode("delta", Some("r1"), json!({ "text": text }), 2048);
        assert!(frames.len() > 1);
        let mut joined = String::new();
        for f in &frames {
            assert!(f.len() <= 2048, "{}", f.len());
            let v: Value = serde_json::from_str(f).unwrap();
            assert_eq!(
                (v["type"].as_str(), v["request_id"].as_str()),
                (Some("delta"), Some("r1"))
            );
            joined.push_str(v["text"].as_str().unwrap());
        }
        assert_eq!(joined, text);

        let done = json!({ "assistant_message": { "content": text } });
        let parts = encode("done", None, done.clone(), 2048);
        let mut json_text = String::new();
        for (i, f) in parts.iter().enumerate() {
            assert!(f.len() <= 2048);
            let v: Value = serde_json::from_str(f).unwrap();
            assert_eq!(v["type"], "part");
            assert_eq!(v["of"], "done");
            assert_eq!(v["index"], i);
            assert_eq!(v["count"], parts.len());
            json_text.push_str(v["data"].as_str().unwrap());
        }
        let whole: Value = serde_json::from_str(&json_text).unwrap();
        assert_eq!(whole["type"], "done");
        assert_eq!(whole["assistant_message"], done["assistant_message"]);

        assert_eq!(
            encode("pong", None, json!({}), 2048),
            vec![r#"{"type":"pong"}"#]
        );
    }
}
