//! Knowledge on the local store, in-process: indexing throughput (chunking, the offline embedder,
//! FTS5 and the vector index, through `POST /knowledge/documents`) and retrieval latency
//! (`GET /knowledge/search`, and a chat turn with and without knowledge) at 1k and 100k chunks;
//! at 100k also a search by a second user who holds one document of that index (a user's words are
//! counted and matched among their own chunks, so the other user's 100k should cost them little).
//!
//! The corpus is synthetic Markdown from a fixed seed: a 4 000-word vocabulary drawn with a
//! Zipf-like skew (a few words are everywhere, most are rare, as in prose), headings every few
//! paragraphs, so full-text matches and vector neighbours behave like a real corpus's.

use std::time::{Duration, Instant};

use serde_json::json;

use codechat::store::{FullText, BACKFILL_STEP};

use crate::{in_process::InProcess, Row, PASSWORD};

const SEARCHES: usize = 60;
const CHAT_TURNS: usize = 40;
/// Characters per generated document (about 250 chunks of 200 tokens).
const DOCUMENT_CHARS: usize = 200_000;

pub async fn measure(app: &InProcess) -> Vec<Row> {
    let token = app.register("knowledge@bench.dev", PASSWORD).await;
    let mut text = Corpus::new(7);
    let mut rows = Vec::new();
    let mut chunks = 0u64;
    for target in [1_000u64, 100_000] {
        let started = Instant::now();
        let before = chunks;
        let mut per_doc = Vec::new();
        while chunks < target {
            let doc = text.document(DOCUMENT_CHARS);
            let t = Instant::now();
            let (status, body) = app
                .call(
                    "POST",
                    "/api/v1/knowledge/documents",
                    Some(&token),
                    Some(json!({"title": format!("Doc {chunks}"), "content": doc})),
                )
                .await;
            per_doc.push(t.elapsed());
            assert_eq!(status, 201, "{body}");
            chunks += body["chunk_count"].as_u64().unwrap();
        }
        let took = started.elapsed();
        eprintln!(
            "bench: indexed {} chunks in {:.1} s ({:.0} chunks/s)",
            chunks - before,
            took.as_secs_f64(),
            (chunks - before) as f64 / took.as_secs_f64()
        );
        let mut row = Row::from_times(
            "in-process",
            &format!(
                "POST /knowledge/documents, 200 kB (~250 chunks), to {}k chunks: {:.0} chunks/s",
                target / 1000,
                (chunks - before) as f64 / took.as_secs_f64()
            ),
            per_doc,
        );
        row.route = row.route.replace("  ", " ");
        rows.push(row);

        rows.extend(retrieval(app, &token, &mut text, chunks).await);
    }
    let small = app.register("small@bench.dev", PASSWORD).await;
    let doc = text.document(DOCUMENT_CHARS);
    let (status, body) = app
        .call(
            "POST",
            "/api/v1/knowledge/documents",
            Some(&small),
            Some(json!({"title": "One document", "content": doc})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    rows.push(small_user_search(app, &small, &mut text, chunks).await);
    rows
}

/// Search latency for the second user, who holds one document among `chunks`.
async fn small_user_search(app: &InProcess, token: &str, text: &mut Corpus, chunks: u64) -> Row {
    let queries: Vec<String> = (0..SEARCHES).map(|_| text.question()).collect();
    let route = format!(
        "GET /knowledge/search, {}k chunks, by a user holding one document",
        chunks / 1000
    );
    searches(app, token, &queries, route).await
}

/// `queries` searched one after the other, as the row `route`.
async fn searches(app: &InProcess, token: &str, queries: &[String], route: String) -> Row {
    let mut row = app
        .measure(
            "",
            queries.len(),
            |i| {
                let q = queries[i].replace(' ', "%20");
                ("GET", format!("/api/v1/knowledge/search?q={q}"), None)
            },
            token,
            200,
        )
        .await;
    row.route = route;
    row
}

/// Search and chat-turn latency over what is indexed (`chunks` of it).
async fn retrieval(app: &InProcess, token: &str, text: &mut Corpus, chunks: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    let queries: Vec<String> = (0..SEARCHES).map(|_| text.question()).collect();
    let route = format!("GET /knowledge/search, {}k chunks", chunks / 1000);
    rows.push(searches(app, token, &queries, route).await);

    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..CHAT_TURNS * 2 {
        let knowledge = i % 2 == 1;
        let body = json!({"message": queries[i % SEARCHES], "knowledge": knowledge});
        let t = Instant::now();
        let (status, answer) = app
            .call("POST", "/api/v1/chat", Some(token), Some(body))
            .await;
        let took: Duration = t.elapsed();
        assert_eq!(status, 200, "{answer}");
        if knowledge { &mut with } else { &mut without }.push(took);
    }
    rows.push(Row::from_times(
        "in-process",
        &format!("POST /chat without knowledge, {}k chunks", chunks / 1000),
        without,
    ));
    rows.push(Row::from_times(
        "in-process",
        &format!("POST /chat with knowledge, {}k chunks", chunks / 1000),
        with,
    ));
    rows
}

/// Retrieval alone over a store the full run kept (`BENCH_KEEP_DATA`): its user logs in, and the
/// questions come from the same generator.
pub async fn measure_kept(app: &InProcess) -> Vec<Row> {
    let token = app.login("knowledge@bench.dev", PASSWORD).await;
    let mut text = Corpus::new(7);
    let (mut chunks, mut cursor) = (0, String::new());
    loop {
        let (status, body) = app
            .call(
                "GET",
                &format!("/api/v1/knowledge/documents?limit=100{cursor}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        for d in body["items"].as_array().unwrap() {
            chunks += d["chunk_count"].as_u64().unwrap();
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let mut rows = retrieval(app, &token, &mut text, chunks).await;
    let small = app.login("small@bench.dev", PASSWORD).await;
    rows.push(small_user_search(app, &small, &mut text, chunks).await);
    rows
}

/// Indexes for full-text search, in the store's own steps, whatever a store kept by an older build
/// holds from before migration 23, and prints how long that took (nothing when nothing was left).
pub async fn finish_backfill(state: &codechat::AppState) {
    let conn = state.store().conn().await.unwrap();
    let started = Instant::now();
    let mut steps = Vec::new();
    loop {
        let t = Instant::now();
        let more = conn
            .backfill_step(FullText::Chunks, BACKFILL_STEP)
            .await
            .unwrap();
        steps.push(t.elapsed());
        if !more {
            break;
        }
    }
    if steps.len() > 1 {
        steps.sort();
        eprintln!(
            "bench: full-text backfill, {} steps of up to {BACKFILL_STEP} chunks in {:.2} s, \
             a step {:.1} ms p50, {:.1} ms max",
            steps.len(),
            started.elapsed().as_secs_f64(),
            steps[steps.len() / 2].as_secs_f64() * 1000.0,
            steps[steps.len() - 1].as_secs_f64() * 1000.0,
        );
    }
}

/// Deterministic pseudo-prose.
struct Corpus {
    state: u64,
    vocabulary: Vec<String>,
}

impl Corpus {
    fn new(seed: u64) -> Corpus {
        let mut c = Corpus {
            state: seed,
            vocabulary: Vec::new(),
        };
        const SYLLABLES: [&str; 24] = [
            "ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "den", "mar", "pel", "quo", "ris",
            "sol", "tun", "bra", "cle", "dro", "fen", "gal", "hop", "jin", "lum", "nox",
        ];
        while c.vocabulary.len() < 4000 {
            let n = 1 + c.next() % 3;
            let word: String = (0..n)
                .map(|_| SYLLABLES[(c.next() % 24) as usize])
                .collect();
            if !c.vocabulary.contains(&word) {
                c.vocabulary.push(word);
            }
        }
        c
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545F4914F6CDD1D)
    }

    /// A word, skewed towards the start of the vocabulary.
    fn word(&mut self) -> &str {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        let i = ((self.vocabulary.len() as f64).powf(u) as usize).saturating_sub(1);
        &self.vocabulary[i]
    }

    fn sentence(&mut self) -> String {
        let n = 8 + self.next() % 8;
        let words: Vec<String> = (0..n).map(|_| self.word().to_string()).collect();
        format!("{}.", words.join(" "))
    }

    fn document(&mut self, chars: usize) -> String {
        let mut out = String::with_capacity(chars + 200);
        let mut paragraphs = 0;
        while out.len() < chars {
            if paragraphs % 5 == 0 {
                let first = self.word().to_owned();
                let second = self.word();
                out.push_str(&format!("## {first} {second}\n\n"));
            }
            let n = 3 + self.next() % 4;
            for _ in 0..n {
                out.push_str(&self.sentence());
                out.push(' ');
            }
            out.push_str("\n\n");
            paragraphs += 1;
        }
        out
    }

    fn question(&mut self) -> String {
        let n = 3 + self.next() % 3;
        (0..n)
            .map(|_| self.word().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}
