//! Routes without any transport: every function's router driven in-process, so the figures are the
//! routes' own cost (validation, store reads and writes, the offline model, JSON and SSE framing)
//! with no Runtime API in between.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::{percentile, Row, JWT_SECRET};

pub struct InProcess {
    app: Router,
}

impl InProcess {
    /// The whole API on the local store under `data_dir` (the same file the function processes use).
    pub async fn start(data_dir: &Path) -> InProcess {
        Self::start_with(data_dir, &[]).await.0
    }

    /// [`InProcess::start`] with more settings; also answers the app's state.
    pub async fn start_with(
        data_dir: &Path,
        extra: &[(&'static str, &str)],
    ) -> (InProcess, codechat::AppState) {
        let mut vars: HashMap<&str, String> = [
            ("CODECHAT_PROFILE", "local".to_string()),
            ("CODECHAT_DATA_DIR", data_dir.display().to_string()),
            ("JWT_SECRET", JWT_SECRET.to_string()),
            ("ECHO_DELAY_MS", "0".to_string()),
            (
                "BOOTSTRAP_ADMIN_EMAIL",
                crate::quotas::ADMIN_EMAIL.to_string(),
            ),
        ]
        .into_iter()
        .collect();
        vars.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let config = codechat::config::Config::load(|k| vars.get(k).cloned())
            .await
            .unwrap();
        let state = codechat::AppState::new(config).await.unwrap();
        let app = InProcess {
            app: codechat::http::app(state.clone(), codechat::api::all_routes()),
        };
        (app, state)
    }

    /// One request until its whole body is read: status and body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = axum::http::Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(axum::body::Body::from(b.to_string())),
            None => req.body(axum::body::Body::empty()),
        }
        .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A request's status, the time to the first bytes of its body, and those bytes (then the
    /// body is dropped).
    pub async fn first_byte(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Duration, String) {
        let started = Instant::now();
        let res = self.send(method, path, token, body).await;
        let status = res.status().as_u16();
        let mut body = res.into_body();
        let first = body.frame().await;
        let took = started.elapsed();
        let text = first
            .and_then(|f| f.ok())
            .and_then(|f| f.into_data().ok())
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .unwrap_or_default();
        (status, took, text)
    }

    /// A streamed request read to its end: status and the whole body as text.
    pub async fn text(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let res = self.send(method, path, token, body).await;
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> axum::response::Response {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(axum::body::Body::from(b.to_string())),
            None => req.body(axum::body::Body::empty()),
        }
        .unwrap();
        self.app.clone().oneshot(req).await.unwrap()
    }

    /// Times `n` requests made by `make`, each expected to answer `expect`.
    pub async fn measure(
        &self,
        route: &str,
        n: usize,
        mut make: impl FnMut(usize) -> (&'static str, String, Option<Value>),
        token: &str,
        expect: u16,
    ) -> Row {
        let mut times: Vec<Duration> = Vec::with_capacity(n);
        for i in 0..n {
            let (method, path, body) = make(i);
            let started = Instant::now();
            let (status, answer) = self.call(method, &path, Some(token), body).await;
            times.push(started.elapsed());
            assert_eq!(status, expect, "{route}: {answer}");
        }
        times.sort();
        Row {
            function: "in-process",
            route: route.into(),
            n,
            p50: percentile(&times, 0.5),
            p90: percentile(&times, 0.9),
        }
    }

    pub async fn register(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/api/v1/auth/register",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// Registers `email`, or `None` if it is taken.
    pub async fn try_register(&self, email: &str, password: &str) -> Option<String> {
        let (status, body) = self
            .call(
                "POST",
                "/api/v1/auth/register",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        (status == 201).then(|| body["access_token"].as_str().unwrap().to_string())
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }
}
