//! What the release function binaries cost, measured as Lambda runs them.
//!
//! Each function binary runs against a Runtime API (a fake one on loopback that, like AWS's, turns
//! Nagle off) which hands out API Gateway events and times the answers. Printed, medians unless noted:
//! - init (process spawn until the first poll), peak RSS and binary size per function;
//! - per-invoke time per route on the local store, and the same routes in-process (no transport);
//! - what a daily token budget adds to a chat turn, and the admin usage report over 100k and 1M rows;
//! - attachments: a 5 MiB inline upload (time, RSS growth) on both blob stores, the presigned flow;
//! - the auth routes (argon2) at the CPU Lambda gives each memory size, with their price;
//! - store round trips per route against the libSQL server (`../shared/tools/sqld`) through a proxy
//!   adding 5 ms each way, and their time;
//! - N instances at once (N = 1, 8, 32) on one shared store, local and remote: throughput, p50/p99, errors;
//! - the machine's load before and after, since these machines are shared and noisy.
//!
//! Run: `cargo run --release -p bench` (builds the function binaries in release mode first);
//! `-- --load-only` runs only the instances-at-once section (`BENCH_LOAD_STORE=remote|local` and
//! `BENCH_LOAD_N=32` narrow it; `BENCH_FUNCTION_LOG=<file>` keeps the functions' logs), `-- --uploads-only` only the
//! attachments and projects, `-- --in-process-only` only the chat turn in-process (no release binaries are
//! built), for profiling, `-- --quotas-only` only the budget and usage-report figures,
//! `-- --resume-only` streamed answers stored as they grow and resumed, `-- --mcp-only` calls and tool
//! offers of an MCP tool server on loopback, `-- --history-only` branches (a 10k-message tree's active path beside a flat conversation) and
//! search over 1M messages, `-- --knowledge-only` only indexing and retrieval at 1k and 100k chunks (`BENCH_KEEP_DATA=<dir>`
//! keeps the store; `-- --knowledge-search-only` then measures retrieval over it again), `-- --ws-only`
//! WebSocket turns (first delta, posts per turn) with and without coalescing, `-- --web-only` the
//! web client's page and an asset in-process, `-- --openai-only` a turn through `POST /chat` and
//! through the OpenAI-compatible endpoint, `-- --runtime-only` a streamed turn of the release `chat`
//! function under the fake Runtime API acknowledging at once and with Linux's delayed ACKs, beside
//! the same turn in-process (builds only `chat`), `-- --database-only` the round trips and write
//! statements per route against sqld, then chat turns from 1 to 64 users at once on one sqld
//! (turns/s, writes/s: how far one database goes).

mod ceiling;
mod cpu;
mod history;
mod in_process;
mod knowledge;
mod load;
mod mcp;
mod projects;
mod quotas;
mod resume;
mod runtime;
mod seed;
mod uploads;
mod ws;

use std::{
    cell::RefCell,
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use codechat_api_tests::{proxy::LatencyProxy, sqld::Sqld};
use cpu::{cost_per_million, CpuShare};
use in_process::InProcess;
use runtime::{body, event, status, Acks, Function, StoreTarget};
use seed::{bench_user, seed_conversation, seed_conversations};

const COLD_STARTS: usize = 7;
const FAST_INVOKES: usize = 300;
const HASHING_INVOKES: usize = 15;
const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123456789";
const CHAT_INVOKES: usize = 200;
const PAGE_INVOKES: usize = 200;
const REMOTE_INVOKES: usize = 20;
const REMOTE_DELAY: Duration = Duration::from_millis(5);
const LOAD_DURATION: Duration = Duration::from_secs(8);
const CEILING_DURATION: Duration = Duration::from_secs(10);
const PASSWORD: &str = "bench password 123";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One line a row: route, count, p50 and p90 in ms.
fn print_rows(rows: &[Row], width: usize) {
    for r in rows {
        println!(
            "{:<width$} {:>5} {:>10} {:>10}",
            r.route,
            r.n,
            ms(r.p50),
            ms(r.p90)
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

struct Row {
    function: &'static str,
    route: String,
    n: usize,
    p50: Duration,
    p90: Duration,
}

impl Row {
    fn from_times(function: &'static str, route: &str, mut times: Vec<Duration>) -> Row {
        times.sort();
        Row {
            function,
            route: route.to_string(),
            n: times.len(),
            p50: percentile(&times, 0.5),
            p90: percentile(&times, 0.9),
        }
    }
}

async fn measure(
    f: &Function,
    function: &'static str,
    route: &str,
    n: usize,
    mut make: impl FnMut(usize) -> Value,
    expect: u64,
) -> Row {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let (res, took) = f.invoke(make(i)).await;
        assert_eq!(status(&res), expect, "{function} {route}: {res}");
        times.push(took);
    }
    Row::from_times(function, route, times)
}

/// Refreshes `n` times, each spending the token the previous answer gave.
async fn refresh_chain(auth: &Function, first: String, n: usize) -> Vec<Duration> {
    let token = RefCell::new(first);
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let ev = event(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": token.borrow().clone()})),
        );
        let (res, took) = auth.invoke(ev).await;
        assert_eq!(status(&res), 200, "refresh: {res}");
        *token.borrow_mut() = body(&res)["refresh_token"].as_str().unwrap().to_string();
        times.push(took);
    }
    times
}

/// The one-minute load average and, where the kernel reports it, the share of time tasks waited
/// for a CPU over the last 10 s.
fn machine_noise() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let pressure = std::fs::read_to_string("/proc/pressure/cpu")
        .ok()
        .and_then(|p| {
            p.lines()
                .next()
                .and_then(|l| l.split_whitespace().find(|w| w.starts_with("avg10=")))
                .map(|w| format!(", CPU pressure {w}%"))
        })
        .unwrap_or_default();
    format!("load average {load}{pressure}")
}

/// The auth function (argon2 on register and login) at the CPU of each memory size it could be given.
async fn auth_at_memory_sizes(binary: &Path, data: &Path) -> Option<Vec<(u64, Vec<Row>)>> {
    let mut out = Vec::new();
    for memory_mb in [128u64, 256, 512, 1024, 1769] {
        let share = CpuShare::new(memory_mb)?;
        let auth = Function::start(binary, "auth", &StoreTarget::local(data)).await;
        if !share.add(auth.child.id()?) {
            return None;
        }
        let password = PASSWORD;
        let email = |i: usize| format!("m{memory_mb}-{i}@bench.dev");
        let n = 7;
        let register = measure(
            &auth,
            "auth",
            "POST /auth/register",
            n,
            |i| {
                event(
                    "POST",
                    "/api/v1/auth/register",
                    None,
                    Some(json!({"email": email(i), "password": password})),
                )
            },
            201,
        )
        .await;
        let login = measure(
            &auth,
            "auth",
            "POST /auth/login",
            n,
            |i| {
                event(
                    "POST",
                    "/api/v1/auth/login",
                    None,
                    Some(json!({"email": email(i), "password": password})),
                )
            },
            200,
        )
        .await;
        let (res, _) = auth
            .invoke(event(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email(0), "password": password})),
            ))
            .await;
        let first = body(&res)["refresh_token"].as_str()?.to_string();
        let refresh = Row::from_times(
            "auth",
            "POST /auth/refresh",
            refresh_chain(&auth, first, 30).await,
        );
        drop(auth);
        // The killed process must have left the group before it can be removed.
        tokio::time::sleep(Duration::from_millis(50)).await;
        out.push((memory_mb, vec![register, login, refresh]));
    }
    Some(out)
}

/// A route's store round trips (median per invoke) and time, against the remote store.
struct TripRow {
    route: String,
    trips: u64,
    /// Write statements (INSERT, UPDATE, DELETE) that reached the server, median per invoke.
    writes: u64,
    p50: Duration,
}

/// The libSQL server behind the latency proxy, and where functions find it.
struct RemoteStore {
    _sqld: Sqld,
    proxy: LatencyProxy,
    target: StoreTarget,
}

impl RemoteStore {
    /// `None` when `../shared/tools/sqld` is absent.
    async fn start(data: &Path) -> Option<RemoteStore> {
        let sqld = Sqld::start().await?;
        let proxy = LatencyProxy::start(sqld.addr(), REMOTE_DELAY).await;
        let target = StoreTarget {
            data_dir: data.join("remote"),
            libsql_url: Some(proxy.url()),
            libsql_auth_token: Some(sqld.token()),
            env: Vec::new(),
        };
        Some(RemoteStore {
            _sqld: sqld,
            proxy,
            target,
        })
    }

    /// Invokes `n` events made by `make`, showing each answer to `seen`; the median round trips
    /// per invoke and the median time.
    async fn trips(
        &self,
        f: &Function,
        route: &str,
        n: usize,
        mut make: impl FnMut(usize) -> Value,
        expect: u64,
        mut seen: impl FnMut(&Value),
    ) -> TripRow {
        let mut counts = Vec::with_capacity(n);
        let mut writes = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let (before, writes_before) = (self.proxy.requests(), self.proxy.writes());
            let (res, took) = f.invoke(make(i)).await;
            assert_eq!(status(&res), expect, "remote {route}: {res}");
            counts.push(self.proxy.requests() - before);
            writes.push(self.proxy.writes() - writes_before);
            times.push(took);
            seen(&res);
        }
        counts.sort();
        writes.sort();
        times.sort();
        TripRow {
            route: route.into(),
            trips: counts[counts.len() / 2],
            writes: writes[writes.len() / 2],
            p50: percentile(&times, 0.5),
        }
    }
}

fn print_remote_rows(rows: Option<&[TripRow]>) {
    let Some(rows) = rows else {
        println!("\nRemote libSQL: skipped (../shared/tools/sqld is absent)");
        return;
    };
    println!(
        "\nRemote libSQL (../shared/tools/sqld behind a proxy adding {} ms each way), per invoke:",
        REMOTE_DELAY.as_millis()
    );
    println!(
        "{:<34} {:>12} {:>7} {:>10}",
        "route", "round trips", "writes", "p50 ms"
    );
    for r in rows {
        println!(
            "{:<34} {:>12} {:>7} {:>10}",
            r.route,
            r.trips,
            r.writes,
            ms(r.p50)
        );
    }
}

/// The routes against the libSQL server through the latency proxy: how many round trips each
/// costs, and what that costs in time.
async fn remote_routes(remote: &RemoteStore, binary: &dyn Fn(&str) -> PathBuf) -> Vec<TripRow> {
    let store = &remote.target;
    let mut rows = Vec::new();
    // The first start migrates the empty database; what a cold start costs is the second's.
    for name in ["auth", "users", "chat", "conversations"] {
        drop(Function::start(&binary(name), name, store).await);
        let (before, writes_before) = (remote.proxy.requests(), remote.proxy.writes());
        let f = Function::start(&binary(name), name, store).await;
        rows.push(TripRow {
            route: format!("{name} cold start (init)"),
            trips: remote.proxy.requests() - before,
            writes: remote.proxy.writes() - writes_before,
            p50: f.init,
        });
    }
    let auth = Function::start(&binary("auth"), "auth", store).await;
    let users = Function::start(&binary("users"), "users", store).await;
    let chat = Function::start(&binary("chat"), "chat", store).await;
    let conversations = Function::start(&binary("conversations"), "conversations", store).await;
    let credentials =
        |i: usize| Some(json!({"email": format!("remote{i}@bench.dev"), "password": PASSWORD}));
    let register = |i| event("POST", "/api/v1/auth/register", None, credentials(i));
    let login = |i| event("POST", "/api/v1/auth/login", None, credentials(i));
    let ignore = |_: &Value| {};
    rows.push(
        remote
            .trips(&auth, "POST /auth/register", 5, register, 201, ignore)
            .await,
    );
    let tokens = RefCell::new(Value::Null);
    let keep = |res: &Value| *tokens.borrow_mut() = body(res);
    rows.push(
        remote
            .trips(&auth, "POST /auth/login", 5, login, 200, keep)
            .await,
    );
    let access = tokens.borrow()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Each refresh spends the token the previous answer gave.
    let refresh = |_| {
        let token = tokens.borrow()["refresh_token"].clone();
        event(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": token})),
        )
    };
    rows.push(
        remote
            .trips(
                &auth,
                "POST /auth/refresh",
                REMOTE_INVOKES,
                refresh,
                200,
                keep,
            )
            .await,
    );
    let me = |_| event("GET", "/api/v1/users/me", Some(&access), None);
    rows.push(
        remote
            .trips(&users, "GET /users/me", REMOTE_INVOKES, me, 200, ignore)
            .await,
    );
    let new_chat = |i: usize| {
        event(
            "POST",
            "/api/v1/chat",
            Some(&access),
            Some(json!({"message": format!("new {i}")})),
        )
    };
    let conversation = RefCell::new(String::new());
    let remember = |res: &Value| {
        let id = body(res)["conversation_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        *conversation.borrow_mut() = id;
    };
    rows.push(
        remote
            .trips(
                &chat,
                "POST /chat, new conversation",
                REMOTE_INVOKES,
                new_chat,
                200,
                remember,
            )
            .await,
    );
    let conversation = conversation.into_inner();
    for (route, stream) in [("POST /chat", false), ("POST /chat stream", true)] {
        let turn = |i: usize| {
            event(
                "POST",
                "/api/v1/chat",
                Some(&access),
                Some(
                    json!({"conversation_id": conversation, "message": format!("turn {i}"), "stream": stream}),
                ),
            )
        };
        rows.push(
            remote
                .trips(&chat, route, REMOTE_INVOKES, turn, 200, ignore)
                .await,
        );
    }
    let messages = format!("/api/v1/conversations/{conversation}/messages");
    let page = |_| event("GET", &messages, Some(&access), None);
    rows.push(
        remote
            .trips(
                &conversations,
                "messages page 1",
                REMOTE_INVOKES,
                page,
                200,
                ignore,
            )
            .await,
    );
    let list = |_| event("GET", "/api/v1/conversations", Some(&access), None);
    rows.push(
        remote
            .trips(
                &conversations,
                "conversation list",
                REMOTE_INVOKES,
                list,
                200,
                ignore,
            )
            .await,
    );
    rows
}

/// N instances of the auth, chat and conversations functions at once, on the local file and on
/// the remote store.
async fn instances_at_once(
    binary: &dyn Fn(&str) -> PathBuf,
    data: &Path,
    remote: Option<&RemoteStore>,
) -> Vec<(&'static str, load::LoadReport)> {
    let mut stores = vec![("local file", StoreTarget::local(&data.join("load")))];
    if let Some(remote) = remote {
        stores.push(("remote libSQL", remote.target.clone()));
    }
    // BENCH_LOAD_STORE=remote (or local) and BENCH_LOAD_N=32 (a comma list) run fewer rows.
    if let Ok(only) = std::env::var("BENCH_LOAD_STORE") {
        stores.retain(|(label, _)| label.starts_with(only.as_str()));
    }
    let counts: Vec<usize> = std::env::var("BENCH_LOAD_N")
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|_| vec![1, 8, 32]);
    let mut loads = Vec::new();
    for (label, store) in &stores {
        for &n in &counts {
            let tag = label.replace(' ', "-");
            loads.push((
                *label,
                load::run(binary, store, &tag, n, LOAD_DURATION).await,
            ));
        }
    }
    loads
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The chat turn in-process: a new conversation; a turn in a conversation of 20 messages (a fresh
/// one each time, so every turn sees the same history); and turns that keep adding to one
/// conversation, whose history grows to 400 messages (the JSON turns) and 800 (the streamed ones).
async fn chat_in_process(app: &InProcess, token: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let turn = |conversation: Option<&str>, message: String, stream: bool| {
        let mut body = json!({"message": message, "stream": stream});
        if let Some(c) = conversation {
            body["conversation_id"] = json!(c);
        }
        ("POST", "/api/v1/chat".to_string(), Some(body))
    };
    let (_, first) = app
        .call(
            "POST",
            "/api/v1/chat",
            Some(token),
            Some(json!({"message": "warm up"})),
        )
        .await;
    let growing = first["conversation_id"].as_str().unwrap().to_string();
    rows.push(
        app.measure(
            "POST /chat, new conversation",
            CHAT_INVOKES,
            |i| turn(None, format!("new {i}"), false),
            token,
            200,
        )
        .await,
    );
    // The coding agent on local/echo: a new conversation on a project, one tool step (a read) and
    // the answer, against the plain new-conversation turn above.
    let (_, project) = app
        .call(
            "POST",
            "/api/v1/projects",
            Some(token),
            Some(json!({"name": "bench"})),
        )
        .await;
    let project = project["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .call(
            "POST",
            "/api/v1/chat",
            Some(token),
            Some(json!({"message": "/write src/main.rs\nfn main() {}\n", "project_id": project})),
        )
        .await;
    assert_eq!(status, 200);
    rows.push(
        app.measure(
            "POST /chat, agent: one tool step (read)",
            CHAT_INVOKES,
            |_| {
                (
                    "POST",
                    "/api/v1/chat".to_string(),
                    Some(json!({"message": "/read src/main.rs", "project_id": project})),
                )
            },
            token,
            200,
        )
        .await,
    );
    let mut twenty = Vec::with_capacity(CHAT_INVOKES);
    for i in 0..CHAT_INVOKES {
        let (_, answer) = app
            .call(
                "POST",
                "/api/v1/chat",
                Some(token),
                Some(json!({"message": format!("seed {i}")})),
            )
            .await;
        let id = answer["conversation_id"].as_str().unwrap().to_string();
        for t in 1..10 {
            let (method, path, body) = turn(Some(&id), format!("seed {i}.{t}"), false);
            app.call(method, &path, Some(token), body).await;
        }
        twenty.push(id);
    }
    rows.push(
        app.measure(
            "POST /chat, 20-message conversation",
            CHAT_INVOKES,
            |i| turn(Some(&twenty[i]), format!("turn {i}"), false),
            token,
            200,
        )
        .await,
    );
    for (route, stream) in [
        ("POST /chat, history growing to 400", false),
        ("POST /chat stream, growing to 800", true),
    ] {
        rows.push(
            app.measure(
                route,
                CHAT_INVOKES,
                |i| turn(Some(&growing), format!("turn {i}"), stream),
                token,
                200,
            )
            .await,
        );
    }
    rows
}

/// What the OpenAI-compatible endpoint adds to a turn: `POST /chat` and the same turn as a chat
/// completion (`local/echo`, a new conversation each, whole answers), interleaved so both see the
/// same machine.
async fn openai_rows(app: &InProcess, token: &str) -> Vec<Row> {
    let (mut chat, mut completion) = (Vec::new(), Vec::new());
    for i in 0..CHAT_INVOKES * 2 {
        let (path, body) = if i % 2 == 0 {
            ("/api/v1/chat", json!({"message": format!("turn {i}")}))
        } else {
            (
                "/api/v1/openai/v1/chat/completions",
                json!({"model": "local/echo", "messages": [{"role": "user", "content": format!("turn {i}")}]}),
            )
        };
        let started = Instant::now();
        let (status, answer) = app.call("POST", path, Some(token), Some(body)).await;
        let took = started.elapsed();
        assert_eq!(status, 200, "{path}: {answer}");
        if i % 2 == 0 {
            &mut chat
        } else {
            &mut completion
        }
        .push(took);
    }
    vec![
        Row::from_times(
            "in-process",
            "POST /chat, new conversation (local/echo)",
            chat,
        ),
        Row::from_times(
            "in-process",
            "POST /openai/v1/chat/completions, the same turn",
            completion,
        ),
    ]
}

/// The web function's answers in-process: the client's page and its largest asset.
async fn web_rows(app: &InProcess, token: &str) -> Vec<Row> {
    let asset = format!("/assets/{}/app.js", codechat::api::web::VERSION);
    vec![
        app.measure(
            "GET / (the web client's page)",
            PAGE_INVOKES,
            |_| ("GET", "/".to_string(), None),
            token,
            200,
        )
        .await,
        app.measure(
            "GET /assets/<hash>/app.js",
            PAGE_INVOKES,
            |_| ("GET", asset.clone(), None),
            token,
            200,
        )
        .await,
    ]
}

/// A streamed chat turn per invoke of the release `chat` binary under the fake Runtime API, with
/// each ACK policy ([`Acks`]), and the same turn in-process (no transport), interleaved in rounds
/// so that the machine's noise falls on all three alike.
async fn runtime_ack_rows(chat: &Path, data: &Path) -> Vec<Row> {
    const ROUNDS: usize = 4;
    let app = InProcess::start(data).await;
    let token = app.register("acks@bench.dev", PASSWORD).await;
    let store = StoreTarget::local(data);
    let quick = Function::start_with_acks(chat, "chat", &store, Acks::Quick).await;
    let delayed = Function::start_with_acks(chat, "chat", &store, Acks::Delayed).await;
    let turn = |i: usize| {
        event(
            "POST",
            "/api/v1/chat",
            Some(&token),
            Some(json!({"message": format!("acks {i}"), "stream": true})),
        )
    };
    // Warm both processes (store connections, first-use allocations).
    for f in [&quick, &delayed] {
        for i in 0..5 {
            assert_eq!(status(&f.invoke(turn(i)).await.0), 200);
        }
    }
    let per_round = CHAT_INVOKES / ROUNDS;
    let (mut q, mut d, mut inproc) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for (f, times) in [(&quick, &mut q), (&delayed, &mut d)] {
            for i in 0..per_round {
                let (res, took) = f.invoke(turn(round * per_round + i)).await;
                assert_eq!(status(&res), 200, "{res}");
                times.push(took);
            }
        }
        for i in 0..per_round {
            let started = Instant::now();
            let (status, _) = app
                .call(
                    "POST",
                    "/api/v1/chat",
                    Some(&token),
                    Some(json!({"message": format!("in-process {round} {i}"), "stream": true})),
                )
                .await;
            assert_eq!(status, 200);
            inproc.push(started.elapsed());
        }
    }
    vec![
        Row::from_times("chat", "POST /chat stream, Runtime API ACKs at once", q),
        Row::from_times("chat", "POST /chat stream, Runtime API delays ACKs", d),
        Row::from_times("chat", "POST /chat stream, in-process", inproc),
    ]
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--knowledge-only") {
        // Indexing and retrieval at 1k and 100k chunks: no release binaries are started.
        // BENCH_KEEP_DATA=<dir> keeps the indexed store there, to study its queries afterwards.
        let keep = std::env::var_os("BENCH_KEEP_DATA").map(std::path::PathBuf::from);
        let data = keep.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("codechat-bench-{}", std::process::id()))
        });
        let app = InProcess::start(&data).await;
        print_rows(&knowledge::measure(&app).await, 78);
        if keep.is_none() {
            let _ = std::fs::remove_dir_all(&data);
        }
        return;
    }
    if std::env::args().any(|a| a == "--history-only") {
        // Branches (a tree's active path beside a flat conversation) and search over 1M messages.
        // BENCH_KEEP_DATA=<dir> keeps the seeded store (and a later run reuses it).
        let keep = std::env::var_os("BENCH_KEEP_DATA").map(std::path::PathBuf::from);
        let data = keep.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("codechat-bench-history-{}", std::process::id()))
        });
        let app = InProcess::start(&data).await;
        print_rows(&history::measure(&app, &data).await, 78);
        if keep.is_none() {
            let _ = std::fs::remove_dir_all(&data);
        }
        return;
    }
    if std::env::args().any(|a| a == "--resume-only") {
        // Streamed answers stored as they grow, and resumed: in-process, and on sqld when present.
        let data =
            std::env::temp_dir().join(format!("codechat-bench-resume-{}", std::process::id()));
        let (app, state) = InProcess::start_with(&data, &[("ECHO_DELAY_MS", "15")]).await;
        let sqld = Sqld::start().await;
        let remote = match &sqld {
            Some(sqld) => {
                let proxy = LatencyProxy::start(sqld.addr(), Duration::ZERO).await;
                let (remote, _) = InProcess::start_with(
                    &data.join("remote"),
                    &[
                        ("ECHO_DELAY_MS", "15"),
                        ("LIBSQL_URL", &proxy.url()),
                        ("LIBSQL_AUTH_TOKEN", &sqld.token()),
                    ],
                )
                .await;
                Some((remote, proxy))
            }
            None => None,
        };
        let rows = resume::measure(&app, &state, remote.as_ref().map(|(a, p)| (a, p))).await;
        print_rows(&rows, 78);
        let _ = std::fs::remove_dir_all(&data);
        return;
    }
    if std::env::args().any(|a| a == "--mcp-only") {
        // Tool servers: calls and tool offers against the tests' MCP server on loopback.
        let Some(server) = codechat_api_tests::McpTestServer::start(false) else {
            eprintln!("bench: the MCP test server did not start (pip install 'mcp>=2,<3')");
            return;
        };
        let data = std::env::temp_dir().join(format!("codechat-bench-mcp-{}", std::process::id()));
        let (app, state) = InProcess::start_with(&data, &[]).await;
        print_rows(&mcp::measure(&app, &state, &server.url).await, 78);
        let _ = std::fs::remove_dir_all(&data);
        return;
    }
    if std::env::args().any(|a| a == "--openai-only") {
        // A turn through POST /chat and through the OpenAI-compatible endpoint, in-process.
        let data =
            std::env::temp_dir().join(format!("codechat-bench-openai-{}", std::process::id()));
        let app = InProcess::start(&data).await;
        let token = app.register("openai@bench.dev", PASSWORD).await;
        print_rows(&openai_rows(&app, &token).await, 78);
        let _ = std::fs::remove_dir_all(&data);
        return;
    }
    if std::env::args().any(|a| a == "--web-only") {
        // The web client's page and an asset, in-process.
        let data = std::env::temp_dir().join(format!("codechat-bench-web-{}", std::process::id()));
        let app = InProcess::start(&data).await;
        let token = app.register("web@bench.dev", PASSWORD).await;
        print_rows(&web_rows(&app, &token).await, 78);
        let _ = std::fs::remove_dir_all(&data);
        return;
    }
    if std::env::args().any(|a| a == "--ws-only") {
        // WebSocket turns through the ws handler and a fake Management API, in-process.
        print_rows(&ws::measure().await, 78);
        return;
    }
    if std::env::args().any(|a| a == "--knowledge-search-only") {
        // Retrieval alone over the store a `--knowledge-only` run kept with BENCH_KEEP_DATA.
        let data = std::env::var_os("BENCH_KEEP_DATA")
            .map(std::path::PathBuf::from)
            .expect("BENCH_KEEP_DATA names the kept store");
        let opened = std::time::Instant::now();
        let (app, state) = InProcess::start_with(&data, &[]).await;
        eprintln!(
            "bench: opened the kept store (pending migrations included) in {:.2} s",
            opened.elapsed().as_secs_f64()
        );
        knowledge::finish_backfill(&state).await;
        print_rows(&knowledge::measure_kept(&app).await, 78);
        return;
    }
    if std::env::args().any(|a| a == "--quotas-only") {
        // Budgets on a chat turn and the admin usage report: no release binaries are started.
        let data = std::env::temp_dir().join(format!("codechat-bench-{}", std::process::id()));
        let app = InProcess::start(&data).await;
        print_rows(&quotas::measure(&app, &data).await, 44);
        let _ = std::fs::remove_dir_all(&data);
        return;
    }
    if std::env::args().any(|a| a == "--in-process-only") {
        // The chat routes alone, for profiling a turn: no release binaries are started.
        let data = std::env::temp_dir().join(format!("codechat-bench-{}", std::process::id()));
        let app = InProcess::start(&data).await;
        let token = app.register("u0@bench.dev", PASSWORD).await;
        let rows = chat_in_process(&app, &token).await;
        for r in rows {
            println!(
                "{:<44} {:>5} {:>10} {:>10}",
                r.route,
                r.n,
                ms(r.p50),
                ms(r.p90)
            );
        }
        let _ = std::fs::remove_dir_all(&data);
        return;
    }
    if std::env::args().any(|a| a == "--ceiling-only") {
        // The turns-per-second ceiling of one sqld alone (in-process: no release binaries).
        let data = std::env::temp_dir().join(format!("codechat-bench-db-{}", std::process::id()));
        std::fs::create_dir_all(&data).unwrap();
        match ceiling::run(&data, CEILING_DURATION).await {
            Some(rows) => ceiling::print(&rows, CEILING_DURATION),
            None => println!("\nOne database: skipped (../shared/tools/sqld is absent)"),
        }
        let _ = std::fs::remove_dir_all(&data);
        return;
    }
    if std::env::args().any(|a| a == "--runtime-only") {
        let root = workspace_root();
        eprintln!("bench: building the release chat binary");
        let built =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(&root)
                .args(["build", "--release", "--quiet", "-p", "chat"])
                .status()
                .expect("cargo");
        assert!(built.success(), "release build failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        let data = std::env::temp_dir().join(format!("codechat-bench-rt-{}", std::process::id()));
        std::fs::create_dir_all(&data).unwrap();
        print_rows(
            &runtime_ack_rows(&target.join("release").join("chat"), &data).await,
            78,
        );
        let _ = std::fs::remove_dir_all(&data);
        return;
    }
    let noise_before = machine_noise();
    // Every function of the service, from its one list: a new function is built, started and
    // measured for init time and size without touching this file.
    let mut functions: Vec<&'static str> =
        codechat::api::FUNCTIONS.iter().map(|f| f.name).collect();
    // The sections run alone build only the functions they start.
    if std::env::args().any(|a| a == "--database-only") {
        functions = vec!["auth", "users", "chat", "conversations"];
    } else if std::env::args().any(|a| a == "--load-only") {
        functions = vec!["auth", "chat", "conversations"];
    }
    let root = workspace_root();
    eprintln!("bench: building release binaries of {functions:?}");
    let mut build =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(&root)
        .args(["build", "--release", "--quiet"]);
    for f in &functions {
        build.args(["-p", f]);
    }
    assert!(
        build.status().expect("cargo").success(),
        "release build failed"
    );
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let binary = move |name: &str| target.join("release").join(name);

    let data = std::env::temp_dir().join(format!("codechat-bench-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();
    let local = StoreTarget::local(&data);
    if std::env::args().any(|a| a == "--uploads-only") {
        uploads::print(&uploads::measure(&binary, &data).await);
        projects::print(&projects::measure(&binary, &data).await);
        let _ = std::fs::remove_dir_all(&data);
        return;
    }
    if std::env::args().any(|a| a == "--database-only") {
        // What one database costs and takes: round trips and writes per route, then the ceiling.
        let remote = RemoteStore::start(&data).await;
        let rows = match &remote {
            Some(remote) => Some(remote_routes(remote, &binary).await),
            None => None,
        };
        drop(remote);
        print_remote_rows(rows.as_deref());
        match ceiling::run(&data, CEILING_DURATION).await {
            Some(rows) => ceiling::print(&rows, CEILING_DURATION),
            None => println!("\nOne database: skipped (../shared/tools/sqld is absent)"),
        }
        println!(
            "Machine before: {noise_before}; after: {}.",
            machine_noise()
        );
        let _ = std::fs::remove_dir_all(&data);
        return;
    }
    if std::env::args().any(|a| a == "--load-only") {
        let remote = RemoteStore::start(&data).await;
        let loads = instances_at_once(&binary, &data, remote.as_ref()).await;
        println!(
            "Machine before: {noise_before}; after: {}.",
            machine_noise()
        );
        load::print(&loads, LOAD_DURATION);
        drop(remote);
        let _ = std::fs::remove_dir_all(&data);
        return;
    }

    eprintln!("bench: cold starts");
    // A fresh process each time; the database file already exists after the first.
    let mut inits: HashMap<&str, Vec<Duration>> = HashMap::new();
    for _ in 0..COLD_STARTS {
        for &f in &functions {
            let started = Function::start(&binary(f), f, &local).await;
            inits.entry(f).or_default().push(started.init);
        }
    }

    eprintln!("bench: routes through the Runtime API");
    let mut rows = Vec::new();
    let mut peaks = HashMap::new();

    let health = Function::start(&binary("health"), "health", &local).await;
    rows.push(
        measure(
            &health,
            "health",
            "GET /health",
            FAST_INVOKES,
            |_| event("GET", "/api/v1/health", None, None),
            200,
        )
        .await,
    );
    peaks.insert("health", health.peak_rss_kib());
    drop(health);

    let models = Function::start(&binary("models"), "models", &local).await;
    rows.push(
        measure(
            &models,
            "models",
            "GET /models",
            FAST_INVOKES,
            |_| event("GET", "/api/v1/models", None, None),
            200,
        )
        .await,
    );
    // The floor: an unmatched path answered 404 by the router, i.e. the runtime round trip itself.
    rows.push(
        measure(
            &models,
            "models",
            "GET /nope (404 floor)",
            FAST_INVOKES,
            |_| event("GET", "/api/v1/nope", None, None),
            404,
        )
        .await,
    );
    peaks.insert("models", models.peak_rss_kib());
    drop(models);

    let auth = Function::start(&binary("auth"), "auth", &local).await;
    let credentials =
        |i: usize| Some(json!({"email": format!("u{i}@bench.dev"), "password": PASSWORD}));
    rows.push(
        measure(
            &auth,
            "auth",
            "POST /auth/register",
            HASHING_INVOKES,
            |i| event("POST", "/api/v1/auth/register", None, credentials(i)),
            201,
        )
        .await,
    );
    rows.push(
        measure(
            &auth,
            "auth",
            "POST /auth/login",
            HASHING_INVOKES,
            |i| event("POST", "/api/v1/auth/login", None, credentials(i)),
            200,
        )
        .await,
    );
    let (login, _) = auth
        .invoke(event("POST", "/api/v1/auth/login", None, credentials(0)))
        .await;
    let tokens = body(&login);
    let first = tokens["refresh_token"].as_str().unwrap().to_string();
    rows.push(Row::from_times(
        "auth",
        "POST /auth/refresh",
        refresh_chain(&auth, first, FAST_INVOKES).await,
    ));
    peaks.insert("auth", auth.peak_rss_kib());

    let users = Function::start(&binary("users"), "users", &local).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    rows.push(
        measure(
            &users,
            "users",
            "GET /users/me",
            FAST_INVOKES,
            |_| event("GET", "/api/v1/users/me", Some(&access), None),
            200,
        )
        .await,
    );
    peaks.insert("users", users.peak_rss_kib());
    drop(users);

    let user_id = tokens["user"]["id"].as_str().unwrap().to_string();
    let chat = Function::start(&binary("chat"), "chat", &local).await;
    let (first, _) = chat
        .invoke(event(
            "POST",
            "/api/v1/chat",
            Some(&access),
            Some(json!({"message": "warm up"})),
        ))
        .await;
    let chat_conversation = body(&first)["conversation_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The streaming runtime's own floor (prelude, NUL separator, chunked body to the Runtime API).
    rows.push(
        measure(
            &chat,
            "chat",
            "GET /nope (404 floor)",
            CHAT_INVOKES,
            |_| event("GET", "/api/v1/nope", None, None),
            404,
        )
        .await,
    );
    rows.push(
        measure(
            &chat,
            "chat",
            "POST /chat, new conversation",
            CHAT_INVOKES,
            |i| {
                event(
                    "POST",
                    "/api/v1/chat",
                    Some(&access),
                    Some(json!({"message": format!("new {i}")})),
                )
            },
            200,
        )
        .await,
    );
    for (route, stream) in [("POST /chat", false), ("POST /chat stream", true)] {
        rows.push(
            measure(&chat, "chat", route, CHAT_INVOKES, |i| {
                event("POST", "/api/v1/chat", Some(&access), Some(json!({"conversation_id": chat_conversation, "message": format!("turn {i}"), "stream": stream})))
            }, 200)
            .await,
        );
    }
    peaks.insert("chat", chat.peak_rss_kib());
    drop(chat);

    eprintln!("bench: seeding large tables");
    // Pages must cost the same however large the table: seed small and large, fetch from both.
    let db = libsql::Builder::new_local(data.join("codechat.db"))
        .build()
        .await
        .unwrap();
    let conn = db.connect().unwrap();
    let small_conv = seed_conversation(&conn, &user_id, 1, 1_000).await;
    let large_conv = seed_conversation(&conn, &user_id, 2, 100_000).await;
    let (small_user, small_token) = bench_user(&auth, "small@bench.dev").await;
    let (large_user, large_token) = bench_user(&auth, "large@bench.dev").await;
    seed_conversations(&conn, &small_user, 100).await;
    seed_conversations(&conn, &large_user, 10_000).await;
    drop(auth);

    let conversations = Function::start(&binary("conversations"), "conversations", &local).await;
    let mut pages: Vec<(String, String, String)> = Vec::new();
    for (label, conv) in [("1k", &small_conv), ("100k", &large_conv)] {
        let path = format!("/api/v1/conversations/{conv}/messages");
        pages.push((
            format!("messages page 1 ({label})"),
            path.clone(),
            access.clone(),
        ));
        // A page from the middle: follow cursors 25 pages in.
        let mut res = conversations
            .invoke(event(
                "GET",
                &format!("{path}?limit=20"),
                Some(&access),
                None,
            ))
            .await
            .0;
        let mut cursor = String::new();
        for _ in 0..25 {
            cursor = body(&res)["next_cursor"].as_str().unwrap().to_string();
            res = conversations
                .invoke(event(
                    "GET",
                    &format!("{path}?limit=20&cursor={cursor}"),
                    Some(&access),
                    None,
                ))
                .await
                .0;
        }
        pages.push((
            format!("messages page 26 ({label})"),
            format!("{path}?limit=20&cursor={cursor}"),
            access.clone(),
        ));
    }
    pages.push((
        "conversation list (100)".into(),
        "/api/v1/conversations".into(),
        small_token.clone(),
    ));
    pages.push((
        "conversation list (10k)".into(),
        "/api/v1/conversations".into(),
        large_token.clone(),
    ));
    for (label, path, token) in &pages {
        rows.push(
            measure(
                &conversations,
                "conversations",
                label,
                PAGE_INVOKES,
                |_| event("GET", path, Some(token), None),
                200,
            )
            .await,
        );
    }
    peaks.insert("conversations", conversations.peak_rss_kib());
    drop(conversations);

    eprintln!("bench: in-process");
    let app = InProcess::start(&data).await;
    let token = app.login("u0@bench.dev", PASSWORD).await;
    let mut in_process = chat_in_process(&app, &token).await;
    in_process.push(
        app.measure(
            "GET /users/me",
            FAST_INVOKES,
            |_| ("GET", "/api/v1/users/me".into(), None),
            &token,
            200,
        )
        .await,
    );
    in_process.extend(quotas::measure(&app, &data).await);
    in_process.extend(knowledge::measure(&app).await);
    in_process.extend(web_rows(&app, &token).await);
    in_process.extend(openai_rows(&app, &token).await);
    for (label, path, token) in &pages {
        in_process.push(
            app.measure(
                label,
                PAGE_INVOKES,
                |_| ("GET", path.clone(), None),
                token,
                200,
            )
            .await,
        );
    }
    drop(app);

    eprintln!("bench: attachments");
    let upload_rows = uploads::measure(&binary, &data).await;
    let project_rows = projects::measure(&binary, &data).await;

    eprintln!("bench: auth per memory size");
    let memory_sizes = auth_at_memory_sizes(&binary("auth"), &data).await;

    eprintln!("bench: remote store");
    let remote = RemoteStore::start(&data).await;
    let remote_rows = match &remote {
        Some(remote) => Some(remote_routes(remote, &binary).await),
        None => None,
    };

    println!("\nCodeChat function benchmark (release, x86_64 here; Lambda runs arm64). Medians unless noted.");
    println!("Machine before: {noise_before}.\n");
    println!(
        "{:<14} {:>10} {:>10} {:>10}",
        "function", "init ms", "peak RSS", "binary"
    );
    for &f in &functions {
        let v = {
            let mut v = inits[f].clone();
            v.sort();
            v
        };
        let size = std::fs::metadata(binary(f)).map(|m| m.len()).unwrap_or(0);
        let peak = peaks
            .get(f)
            .map(|kib| format!("{:>7.1} MB", *kib as f64 / 1024.0))
            .unwrap_or_else(|| format!("{:>10}", "-"));
        println!(
            "{:<14} {:>10} {peak} {:>7.1} MB",
            f,
            ms(percentile(&v, 0.5)),
            size as f64 / 1024.0 / 1024.0
        );
    }
    let print_rows = |title: &str, rows: &[Row]| {
        println!("\n{title}");
        println!(
            "{:<14} {:<32} {:>5} {:>10} {:>10}",
            "function", "route", "n", "p50 ms", "p90 ms"
        );
        for r in rows {
            println!(
                "{:<14} {:<32} {:>5} {:>10} {:>10}",
                r.function,
                r.route,
                r.n,
                ms(r.p50),
                ms(r.p90)
            );
        }
    };
    print_rows(
        "Through the Runtime API (event handed out until the response is posted), local store:",
        &rows,
    );
    print_rows(
        "In-process (request to the router until the whole body is read, no transport):",
        &in_process,
    );
    match &memory_sizes {
        Some(sizes) => {
            println!("\nauth at Lambda's CPU share per memory size (memory/1769 of a vCPU as a cgroup CFS quota):");
            println!(
                "{:<8} {:<22} {:>10} {:>10} {:>14}",
                "MB", "route", "p50 ms", "p90 ms", "$ per million"
            );
            for (mb, rows) in sizes {
                for r in rows {
                    println!(
                        "{:<8} {:<22} {:>10} {:>10} {:>14.2}",
                        mb,
                        r.route,
                        ms(r.p50),
                        ms(r.p90),
                        cost_per_million(*mb, r.p50)
                    );
                }
            }
        }
        None => println!(
            "\nauth per memory size: skipped (no cgroup with a CPU quota could be made here)"
        ),
    }
    print_remote_rows(remote_rows.as_deref());
    uploads::print(&upload_rows);
    projects::print(&project_rows);
    println!("\ninit = process start until the first poll of the Runtime API ({COLD_STARTS} starts each).");

    // Last, after everything else is printed: the heaviest section on a small machine.
    eprintln!("bench: instances at once");
    let loads = instances_at_once(&binary, &data, remote.as_ref()).await;
    load::print(&loads, LOAD_DURATION);
    println!("\nMachine after: {}.", machine_noise());
    drop(remote);
    let _ = std::fs::remove_dir_all(&data);
}
