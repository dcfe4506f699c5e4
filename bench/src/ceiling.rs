//! How far one database goes. One libSQL primary takes one writer at a time, so its write rate
//! bounds the service. Here K users at once run chat turns (the turn's own statements, through the
//! whole app in-process) against one sqld, through a proxy that adds no delay and counts the
//! write statements that reach the server; each K runs for a fixed time.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use codechat_api_tests::{proxy::LatencyProxy, sqld::Sqld};
use serde_json::json;

use crate::{in_process::InProcess, ms, percentile, PASSWORD};

pub struct CeilingRow {
    /// What each user repeated: chat turns, or message pages (`BENCH_CEILING_READS`).
    pub what: &'static str,
    pub users: usize,
    pub turns: usize,
    pub errors: usize,
    pub turns_per_second: f64,
    pub writes_per_second: f64,
    pub writes_per_turn: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Share of one core sqld and the bench (the app) used over the run.
    pub sqld_cpu: f64,
    pub app_cpu: f64,
}

/// `None` when `../shared/tools/sqld` is absent.
pub async fn run(data: &std::path::Path, duration: Duration) -> Option<Vec<CeilingRow>> {
    // RUST_LOG=warn shows why a request failed (the app logs it); unset, the rows stay readable.
    if std::env::var_os("RUST_LOG").is_some() {
        codechat::http::init_tracing();
    }
    let sqld = Sqld::start().await?;
    let proxy = LatencyProxy::start(sqld.addr(), Duration::ZERO).await;
    // BENCH_CEILING_DIRECT=1: straight to sqld, without the proxy (no write counts then).
    let direct = std::env::var_os("BENCH_CEILING_DIRECT").is_some();
    // BENCH_CEILING_READS=1: message pages instead of turns (reads only), to tell the two apart.
    let reads_only = std::env::var_os("BENCH_CEILING_READS").is_some();
    let url = if direct {
        format!("http://{}", sqld.addr())
    } else {
        proxy.url()
    };
    let token = sqld.token();
    let (app, _) = InProcess::start_with(
        &data.join("ceiling"),
        &[("LIBSQL_URL", &url), ("LIBSQL_AUTH_TOKEN", &token)],
    )
    .await;
    let app = Arc::new(app);
    let mut rows = Vec::new();
    for users in [1, 4, 16, 64] {
        let mut sessions = Vec::with_capacity(users);
        for i in 0..users {
            let token = app
                .register(&format!("ceiling-{users}-{i}@bench.dev"), PASSWORD)
                .await;
            let (status, first) = app
                .call(
                    "POST",
                    "/api/v1/chat",
                    Some(&token),
                    Some(json!({"message": "first"})),
                )
                .await;
            assert_eq!(status, 200, "{first}");
            let conversation = first["conversation_id"].as_str().unwrap().to_string();
            sessions.push((token, conversation));
        }
        let writes_before = proxy.writes();
        let cpu_before = (cpu_ticks(sqld.pid()), cpu_ticks(Some(std::process::id())));
        let started = Instant::now();
        let deadline = started + duration;
        let runs = sessions.into_iter().map(|(token, conversation)| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut i = 0;
                let messages = format!("/api/v1/conversations/{conversation}/messages");
                while Instant::now() < deadline {
                    let began = Instant::now();
                    let (status, _) = if reads_only {
                        app.call("GET", &messages, Some(&token), None).await
                    } else {
                        let body = json!({"conversation_id": conversation, "message": format!("turn {i}")});
                        app.call("POST", "/api/v1/chat", Some(&token), Some(body))
                            .await
                    };
                    samples.push((began.elapsed(), status == 200));
                    i += 1;
                }
                samples
            })
        });
        let mut samples = Vec::new();
        for run in runs.collect::<Vec<_>>() {
            samples.extend(run.await.unwrap());
        }
        let elapsed = started.elapsed().as_secs_f64();
        let writes = proxy.writes() - writes_before;
        let cpu_after = (cpu_ticks(sqld.pid()), cpu_ticks(Some(std::process::id())));
        let share = |before: Option<u64>, after: Option<u64>| match (before, after) {
            (Some(b), Some(a)) => (a - b) as f64 / TICKS_PER_SECOND / elapsed,
            _ => f64::NAN,
        };
        let mut times: Vec<Duration> = samples.iter().map(|s| s.0).collect();
        times.sort();
        let turns = samples.len();
        rows.push(CeilingRow {
            what: if reads_only {
                "message pages"
            } else {
                "chat turns"
            },
            users,
            turns,
            errors: samples.iter().filter(|s| !s.1).count(),
            turns_per_second: turns as f64 / elapsed,
            writes_per_second: writes as f64 / elapsed,
            writes_per_turn: writes as f64 / turns.max(1) as f64,
            p50: percentile(&times, 0.5),
            p99: percentile(&times, 0.99),
            sqld_cpu: share(cpu_before.0, cpu_after.0),
            app_cpu: share(cpu_before.1, cpu_after.1),
        });
    }
    Some(rows)
}

/// Linux's `USER_HZ`, the unit of the CPU times in `/proc/<pid>/stat`.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of a process, in ticks.
fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // The fields after the command name (which may hold spaces) start after its closing paren.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

pub fn print(rows: &[CeilingRow], duration: Duration) {
    println!(
        "\nOne database: {} in-process against one sqld (no added delay), {}s per row:",
        rows.first().map_or("chat turns", |r| r.what),
        duration.as_secs()
    );
    println!(
        "{:>6} {:>7} {:>8} {:>9} {:>9} {:>7} {:>8} {:>8} {:>7} {:>7}",
        "users",
        "turns",
        "turns/s",
        "writes/s",
        "wr/turn",
        "errors",
        "p50 ms",
        "p99 ms",
        "sqld",
        "app"
    );
    for r in rows {
        println!(
            "{:>6} {:>7} {:>8.1} {:>9.1} {:>9.2} {:>7} {:>8} {:>8} {:>6.0}% {:>6.0}%",
            r.users,
            r.turns,
            r.turns_per_second,
            r.writes_per_second,
            r.writes_per_turn,
            r.errors,
            ms(r.p50),
            ms(r.p99),
            r.sqld_cpu * 100.0,
            r.app_cpu * 100.0
        );
    }
}
