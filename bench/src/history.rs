//! Branches and search over history, in-process on the local store (issue 31):
//!
//! - reading the active path of a 10 000-message tree with 1 000 branch points, page by page,
//!   beside a flat conversation of the path's length (5 000 messages), pages taken alternately;
//! - a plain turn at the end of each (its context is the path's newest 399 messages);
//! - `GET /search/messages` over 1 000 000 messages of one user (1 000 conversations of 1 000
//!   messages, 20 words each from a Zipf-distributed vocabulary of 20 000 words), for words of
//!   several frequencies.
//!
//! `BENCH_KEEP_DATA=<dir>` keeps (and reuses) the seeded store.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{in_process::InProcess, Row, PASSWORD};

const PATH_MESSAGES: usize = 5_000;
const BRANCH_POINTS: usize = 1_000;
const BRANCH_LENGTH: usize = 5;
const PAGE: usize = 50;
const PAGE_READS: usize = 300;
const TURNS: usize = 40;
const SEARCH_CONVERSATIONS: usize = 1_000;
const SEARCH_PER_CONVERSATION: usize = 1_000;
const WORDS_PER_MESSAGE: usize = 20;
const VOCABULARY: usize = 20_000;
const SEARCHES: usize = 60;

pub async fn measure(app: &InProcess, data: &std::path::Path) -> Vec<Row> {
    let db = libsql::Builder::new_local(data.join("codechat.db"))
        .build()
        .await
        .unwrap();
    let raw = db.connect().unwrap();
    raw.busy_timeout(Duration::from_secs(30)).unwrap();
    let mut rows = paths(app, &raw).await;
    rows.extend(search(app, &raw).await);
    rows
}

async fn token_of(app: &InProcess, email: &str) -> String {
    match app.try_register(email, PASSWORD).await {
        Some(token) => token,
        None => app.login(email, PASSWORD).await,
    }
}

async fn user_id(app: &InProcess, token: &str) -> String {
    let (_, me) = app.call("GET", "/api/v1/users/me", Some(token), None).await;
    me["id"].as_str().unwrap().to_string()
}

/// A conversation of the user's, by title: the one seeded by an earlier run, or a new one.
async fn conversation(app: &InProcess, token: &str, title: &str) -> (String, bool) {
    let (_, list) = app
        .call(
            "GET",
            &format!("/api/v1/conversations?q={title}"),
            Some(token),
            None,
        )
        .await;
    if let Some(c) = list["items"].as_array().and_then(|i| i.first()) {
        return (c["id"].as_str().unwrap().to_string(), false);
    }
    let (status, c) = app
        .call(
            "POST",
            "/api/v1/conversations",
            Some(token),
            Some(json!({"title": title})),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    (c["id"].as_str().unwrap().to_string(), true)
}

/// Inserts a message under `parent` (0: a root) and answers its seq; the triggers keep the path.
async fn insert(raw: &libsql::Connection, conversation: &str, parent: i64, i: usize) -> i64 {
    let role = if i.is_multiple_of(2) {
        "user"
    } else {
        "assistant"
    };
    let mut rows = raw
        .query(
            "INSERT INTO messages (id, conversation_id, role, content, status, created_at, parent_seq)
             VALUES (?1, ?2, ?3, ?4, 'complete', '2026-06-01T00:00:00Z', ?5) RETURNING seq",
            libsql::params![
                codechat::ids::MessageId::new().to_string(),
                conversation,
                role,
                format!("message {i}: some words of text to read back, as a message would have"),
                parent
            ],
        )
        .await
        .unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
}

async fn paths(app: &InProcess, raw: &libsql::Connection) -> Vec<Row> {
    let token = token_of(app, "branches@bench.dev").await;
    let (tree, new_tree) = conversation(app, &token, "tree").await;
    let (flat, new_flat) = conversation(app, &token, "flat").await;
    if new_tree {
        let started = Instant::now();
        raw.execute("BEGIN", ()).await.unwrap();
        let mut path = Vec::with_capacity(PATH_MESSAGES);
        let mut parent = 0;
        for i in 0..PATH_MESSAGES {
            parent = insert(raw, &tree, parent, i).await;
            path.push(parent);
        }
        // A side branch of 5 messages beside every 5th message of the path: a sibling of it
        // (an edit or a regeneration) and what followed there.
        for b in 0..BRANCH_POINTS {
            let at = b * (PATH_MESSAGES / BRANCH_POINTS) + 1;
            let mut parent = path[at - 1];
            for j in 0..BRANCH_LENGTH {
                parent = insert(raw, &tree, parent, at + j).await;
            }
        }
        raw.execute("COMMIT", ()).await.unwrap();
        let leaf = {
            let mut rows = raw
                .query(
                    "SELECT id FROM messages WHERE seq = ?1",
                    [path[PATH_MESSAGES - 1]],
                )
                .await
                .unwrap();
            rows.next()
                .await
                .unwrap()
                .unwrap()
                .get::<String>(0)
                .unwrap()
        };
        let (status, body) = app
            .call(
                "PUT",
                &format!("/api/v1/conversations/{tree}/active-leaf"),
                Some(&token),
                Some(json!({"message_id": leaf})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        eprintln!(
            "bench: seeded a tree of {} messages in {:.1} s",
            PATH_MESSAGES + BRANCH_POINTS * BRANCH_LENGTH,
            started.elapsed().as_secs_f64()
        );
    }
    if new_flat {
        raw.execute("BEGIN", ()).await.unwrap();
        let mut parent = 0;
        for i in 0..PATH_MESSAGES {
            parent = insert(raw, &flat, parent, i).await;
        }
        raw.execute("COMMIT", ()).await.unwrap();
    }

    // Every page's cursor, walking each path once (and checking its length).
    let mut cursors = Vec::new();
    for c in [&tree, &flat] {
        let mut cursor: Option<String> = None;
        let mut pages = Vec::new();
        let mut seen = 0;
        loop {
            let (_, page) = app
                .call("GET", &page_path(c, cursor.as_deref()), Some(&token), None)
                .await;
            seen += page["items"].as_array().unwrap().len();
            pages.push(cursor.clone());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        assert!(seen >= PATH_MESSAGES, "{c}: a path of {seen}");
        cursors.push(pages);
    }

    let (mut tree_times, mut flat_times) = (Vec::new(), Vec::new());
    for i in 0..PAGE_READS {
        for (k, (c, times)) in [(&tree, &mut tree_times), (&flat, &mut flat_times)]
            .into_iter()
            .enumerate()
        {
            let pages = &cursors[k];
            let path = page_path(c, pages[(i * 37) % pages.len()].as_deref());
            let started = Instant::now();
            let (status, _) = app.call("GET", &path, Some(&token), None).await;
            times.push(started.elapsed());
            assert_eq!(status, 200);
        }
    }
    let (mut tree_turns, mut flat_turns) = (Vec::new(), Vec::new());
    for i in 0..TURNS {
        for (c, times) in [(&tree, &mut tree_turns), (&flat, &mut flat_turns)] {
            let body = json!({"conversation_id": c, "message": format!("turn {i}")});
            let started = Instant::now();
            let (status, answer) = app
                .call("POST", "/api/v1/chat", Some(&token), Some(body))
                .await;
            times.push(started.elapsed());
            assert_eq!(status, 200, "{answer}");
        }
    }
    vec![
        Row::from_times(
            "in-process",
            "GET …/messages?limit=50, 10k tree (path 5k, 1k branches)",
            tree_times,
        ),
        Row::from_times(
            "in-process",
            "GET …/messages?limit=50, flat 5k conversation",
            flat_times,
        ),
        Row::from_times(
            "in-process",
            "POST /chat at the end of the 10k tree's path",
            tree_turns,
        ),
        Row::from_times(
            "in-process",
            "POST /chat at the end of the flat 5k",
            flat_turns,
        ),
    ]
}

fn page_path(conversation: &str, cursor: Option<&str>) -> String {
    match cursor {
        Some(c) => format!("/api/v1/conversations/{conversation}/messages?limit={PAGE}&cursor={c}"),
        None => format!("/api/v1/conversations/{conversation}/messages?limit={PAGE}"),
    }
}

/// A word of the synthetic vocabulary: letters only (the tokenizer keeps it whole), by rank.
fn word(rank: usize) -> String {
    let mut n = rank;
    let mut w = String::from("q");
    loop {
        w.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    w.push('x');
    w
}

/// A deterministic Zipf(1) sampler over ranks 1..=VOCABULARY.
struct Zipf {
    cumulative: Vec<f64>,
    state: u64,
}

impl Zipf {
    fn new() -> Self {
        let mut total = 0.0;
        let cumulative = (1..=VOCABULARY)
            .map(|r| {
                total += 1.0 / r as f64;
                total
            })
            .collect::<Vec<_>>();
        let cumulative = cumulative.iter().map(|c| c / total).collect();
        Zipf {
            cumulative,
            state: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn next(&mut self) -> usize {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let x = (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        self.cumulative.partition_point(|c| *c < x) + 1
    }
}

async fn search(app: &InProcess, raw: &libsql::Connection) -> Vec<Row> {
    let token = token_of(app, "history@bench.dev").await;
    let user = user_id(app, &token).await;
    let mut count = raw
        .query(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE c.user_id = ?1",
            [user.as_str()],
        )
        .await
        .unwrap();
    let have = count.next().await.unwrap().unwrap().get::<i64>(0).unwrap() as usize;
    if have < SEARCH_CONVERSATIONS * SEARCH_PER_CONVERSATION {
        let started = Instant::now();
        let mut zipf = Zipf::new();
        for c in 0..SEARCH_CONVERSATIONS {
            let id = codechat::ids::ConversationId::new().to_string();
            raw.execute("BEGIN", ()).await.unwrap();
            raw.execute(
                "INSERT INTO conversations (id, user_id, title, model, created_at, updated_at, activity_at)
                 VALUES (?1, ?2, ?3, 'local/echo', '2026-06-01T00:00:00Z', '2026-06-01T00:00:00Z',
                         '2026-06-01T00:00:00Z')",
                libsql::params![id.as_str(), user.as_str(), format!("history {c}")],
            )
            .await
            .unwrap();
            // 100 messages a statement, as a flat conversation (parents implicit).
            for chunk in 0..SEARCH_PER_CONVERSATION / 100 {
                let mut values = Vec::with_capacity(100);
                for i in 0..100 {
                    let text: Vec<String> =
                        (0..WORDS_PER_MESSAGE).map(|_| word(zipf.next())).collect();
                    let role = if (chunk * 100 + i).is_multiple_of(2) {
                        "user"
                    } else {
                        "assistant"
                    };
                    values.push(format!(
                        "('{}', '{id}', '{role}', '{}', 'complete', '2026-06-01T00:00:00Z')",
                        codechat::ids::MessageId::new(),
                        text.join(" ")
                    ));
                }
                raw.execute(
                    &format!(
                        "INSERT INTO messages (id, conversation_id, role, content, status, created_at) VALUES {}",
                        values.join(", ")
                    ),
                    (),
                )
                .await
                .unwrap();
            }
            raw.execute(
                "UPDATE conversations SET message_count = ?2 WHERE id = ?1",
                libsql::params![id.as_str(), SEARCH_PER_CONVERSATION as i64],
            )
            .await
            .unwrap();
            raw.execute("COMMIT", ()).await.unwrap();
        }
        eprintln!(
            "bench: seeded and indexed {} messages in {:.1} s",
            SEARCH_CONVERSATIONS * SEARCH_PER_CONVERSATION,
            started.elapsed().as_secs_f64()
        );
    }

    // Words by how many of the million messages hold them (Zipf(1) over 20 000 words, 20 a
    // message): rank 10 000 about 190, rank 1 000 about 1 900, rank 100 about 19 000.
    let queries = [
        ("a rare word (rank 10 000)", word(10_000)),
        ("a word of rank 1 000", word(1_000)),
        ("a common word (rank 100)", word(100)),
        (
            "two words (ranks 100 and 1 000)",
            format!("{} {}", word(100), word(1_000)),
        ),
        ("a very common word (rank 10)", word(10)),
    ];
    let mut rows = Vec::new();
    for (what, q) in queries {
        let path = format!("/api/v1/search/messages?q={}", q.replace(' ', "%20"));
        let (status, first) = app.call("GET", &path, Some(&token), None).await;
        assert_eq!(status, 200, "{first}");
        let mut times = Vec::with_capacity(SEARCHES);
        for _ in 0..SEARCHES {
            let started = Instant::now();
            let (status, _) = app.call("GET", &path, Some(&token), None).await;
            times.push(started.elapsed());
            assert_eq!(status, 200);
        }
        rows.push(Row::from_times(
            "in-process",
            &format!("GET /search/messages, 1M messages: {what}"),
            times,
        ));
    }
    rows
}
