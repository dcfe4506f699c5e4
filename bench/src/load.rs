//! Many instances at once. Lambda runs one request per instance and scales out, so N concurrent
//! instances are N processes of each function sharing one store. Here N clients each own one
//! auth, chat and conversations process and drive a mix (a login, chat turns, page reads) for a
//! fixed time; every answer that is not the expected success counts as an error.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{
    ms, percentile,
    runtime::{body, event, status, Function, StoreTarget},
    seed::bench_user,
};

pub struct LoadReport {
    pub instances: usize,
    pub requests: usize,
    pub errors: usize,
    /// Of the errors, 503 answers (the store was busy).
    pub busy: usize,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// The first unexpected answer, to say what went wrong.
    pub first_error: Option<String>,
}

struct Client {
    auth: Function,
    chat: Function,
    conversations: Function,
    email: String,
    token: String,
    conversation: String,
}

impl Client {
    async fn start(binary: &dyn Fn(&str) -> PathBuf, store: &StoreTarget, email: String) -> Client {
        let auth = Function::start(&binary("auth"), "auth", store).await;
        let chat = Function::start(&binary("chat"), "chat", store).await;
        let conversations = Function::start(&binary("conversations"), "conversations", store).await;
        let (_, token) = bench_user(&auth, &email).await;
        let (res, _) = chat
            .invoke(event(
                "POST",
                "/api/v1/chat",
                Some(&token),
                Some(json!({"message": "first"})),
            ))
            .await;
        assert_eq!(status(&res), 200, "first turn: {res}");
        let conversation = body(&res)["conversation_id"].as_str().unwrap().to_string();
        Client {
            auth,
            chat,
            conversations,
            email,
            token,
            conversation,
        }
    }

    /// Step `k` of the mix: 1 login, 5 chat turns (one of them in a new conversation), 4 page reads
    /// in every 10. Returns the time taken and whether the answer was the expected success.
    async fn step(&mut self, k: usize) -> (Duration, u64, bool, Option<String>) {
        let (f, ev, expect) = match k % 10 {
            0 => (
                &self.auth,
                event(
                    "POST",
                    "/api/v1/auth/login",
                    None,
                    Some(json!({"email": self.email, "password": crate::PASSWORD})),
                ),
                200,
            ),
            1 => (
                &self.chat,
                event(
                    "POST",
                    "/api/v1/chat",
                    Some(&self.token),
                    Some(json!({"message": format!("new {k}")})),
                ),
                200,
            ),
            3 | 5 | 7 | 9 => (
                &self.chat,
                event(
                    "POST",
                    "/api/v1/chat",
                    Some(&self.token),
                    Some(
                        json!({"conversation_id": self.conversation, "message": format!("turn {k}")}),
                    ),
                ),
                200,
            ),
            2 | 6 => (
                &self.conversations,
                event("GET", "/api/v1/conversations", Some(&self.token), None),
                200,
            ),
            _ => (
                &self.conversations,
                event(
                    "GET",
                    &format!("/api/v1/conversations/{}/messages", self.conversation),
                    Some(&self.token),
                    None,
                ),
                200,
            ),
        };
        let Some((res, took)) = f.try_invoke(ev).await else {
            let error = Some("no answer within 30 s".to_string());
            return (Duration::from_secs(30), 0, false, error);
        };
        let code = status(&res);
        if k.is_multiple_of(10) && code == 200 {
            self.token = body(&res)["access_token"].as_str().unwrap().to_string();
        }
        let error = (code != expect).then(|| format!("{code}: {}", body(&res)));
        (took, code, code == expect, error)
    }
}

/// Starts `instances` clients (not timed), then drives them all for `duration`.
pub async fn run(
    binary: &dyn Fn(&str) -> PathBuf,
    store: &StoreTarget,
    label: &str,
    instances: usize,
    duration: Duration,
) -> LoadReport {
    let mut clients = Vec::with_capacity(instances);
    for i in 0..instances {
        clients.push(
            Client::start(
                binary,
                store,
                format!("load-{label}-{instances}-{i}@bench.dev"),
            )
            .await,
        );
    }
    let started = Instant::now();
    let deadline = started + duration;
    let runs = clients.into_iter().enumerate().map(|(i, mut client)| {
        tokio::spawn(async move {
            let mut samples = Vec::new();
            // Clients start at different points of the mix, so logins do not all land at once.
            let mut k = i;
            while Instant::now() < deadline {
                samples.push(client.step(k).await);
                k += 1;
            }
            samples
        })
    });
    let mut samples = Vec::new();
    for run in runs.collect::<Vec<_>>() {
        samples.extend(run.await.unwrap());
    }
    let elapsed = started.elapsed();
    let mut times: Vec<Duration> = samples.iter().map(|s| s.0).collect();
    times.sort();
    LoadReport {
        instances,
        requests: samples.len(),
        errors: samples.iter().filter(|s| !s.2).count(),
        busy: samples.iter().filter(|s| s.1 == 503).count(),
        per_second: samples.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        first_error: samples.iter().find_map(|s| s.3.clone()),
    }
}

pub fn print(loads: &[(&str, LoadReport)], duration: Duration) {
    println!(
        "\nInstances at once ({}s of a mix per row: 1 login, 5 chat turns, 4 page reads in 10):",
        duration.as_secs()
    );
    println!(
        "{:<14} {:>4} {:>9} {:>9} {:>10} {:>10} {:>7} {:>6}",
        "store", "N", "requests", "req/s", "p50 ms", "p99 ms", "errors", "503s"
    );
    for (label, r) in loads {
        println!(
            "{:<14} {:>4} {:>9} {:>9.1} {:>10} {:>10} {:>7} {:>6}",
            label,
            r.instances,
            r.requests,
            r.per_second,
            ms(r.p50),
            ms(r.p99),
            r.errors,
            r.busy
        );
        if let Some(e) = &r.first_error {
            println!("    first error: {e}");
        }
    }
}
