//! Attachments through the release `attachments` binary: a 5 MiB inline upload (duration, and how
//! much the process's peak RSS grows: it should stream, not hold several copies), on the local
//! store and on S3; and the presigned flow's own requests (start, complete) against a local S3
//! server (s3s-fs on loopback, as the tests use).

use std::{path::Path, time::Duration};

use serde_json::{json, Value};

use crate::{
    percentile,
    runtime::{body, event, multipart_event, status, Function, StoreTarget},
    seed::bench_user,
};
use codechat_api_tests::s3::S3Server;

const UPLOAD_BYTES: usize = 5 * 1024 * 1024;
const UPLOADS: usize = 5;
const PRESIGNED: usize = 10;

pub struct UploadRow {
    pub label: String,
    pub p50: Duration,
    /// Growth of the process's peak RSS over the uploads, in MiB.
    pub rss_growth_mib: f64,
}

/// A PNG-looking file of `size` bytes (the magic bytes, then noise that does not compress).
fn file(size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while bytes.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(size);
    bytes
}

fn upload_event(token: &str, bytes: &[u8]) -> Value {
    multipart_event("/api/v1/attachments", token, "big.png", "image/png", bytes)
}

async fn inline(binary: &Path, auth: &Path, label: &str, store: &StoreTarget) -> UploadRow {
    let auth = Function::start(auth, "auth", store).await;
    let (_, token) = bench_user(&auth, &format!("uploads-{}@bench.dev", label.len())).await;
    drop(auth);
    let f = Function::start(binary, "attachments", store).await;
    // Warm: one small upload, so the growth measured is the large ones'.
    let (res, _) = f.invoke(upload_event(&token, &file(1024))).await;
    assert_eq!(status(&res), 201, "{label}: {res}");
    let before = f.peak_rss_kib();
    let bytes = file(UPLOAD_BYTES);
    let mut times = Vec::new();
    for _ in 0..UPLOADS {
        let (res, took) = f.invoke(upload_event(&token, &bytes)).await;
        assert_eq!(status(&res), 201, "{label}: {res}");
        times.push(took);
    }
    times.sort();
    UploadRow {
        label: format!("inline 5 MiB upload, {label}"),
        p50: percentile(&times, 0.5),
        rss_growth_mib: (f.peak_rss_kib() - before) as f64 / 1024.0,
    }
}

pub async fn measure(binary: &dyn Fn(&str) -> std::path::PathBuf, data: &Path) -> Vec<UploadRow> {
    let limit = [(
        "MAX_INLINE_UPLOAD_BYTES".to_string(),
        (6 * 1024 * 1024).to_string(),
    )];
    let mut rows = Vec::new();
    let mut local = StoreTarget::local(&data.join("uploads-local"));
    local.env.extend(limit.clone());
    std::fs::create_dir_all(&local.data_dir).unwrap();
    rows.push(
        inline(
            &binary("attachments"),
            &binary("auth"),
            "local store",
            &local,
        )
        .await,
    );

    let s3 = S3Server::start().await;
    let mut remote = StoreTarget::local(&data.join("uploads-s3"));
    std::fs::create_dir_all(&remote.data_dir).unwrap();
    remote.env.extend(limit);
    remote
        .env
        .extend(s3.env().into_iter().map(|(k, v)| (k.to_string(), v)));
    rows.push(
        inline(
            &binary("attachments"),
            &binary("auth"),
            "S3 (s3s-fs on loopback)",
            &remote,
        )
        .await,
    );

    // The presigned flow: start (presign), the client's PUT straight to S3, complete (S3 reads the
    // object back for its size, type and SHA-256, then copies it into place).
    let auth = Function::start(&binary("auth"), "auth", &remote).await;
    let (_, token) = bench_user(&auth, "presigned@bench.dev").await;
    drop(auth);
    let f = Function::start(&binary("attachments"), "attachments", &remote).await;
    let bytes = file(UPLOAD_BYTES);
    let http = reqwest::Client::new();
    let (mut starts, mut completes) = (Vec::new(), Vec::new());
    for _ in 0..PRESIGNED {
        let request =
            json!({"filename": "big.png", "content_type": "image/png", "size": bytes.len()});
        let (res, took) = f
            .invoke(event(
                "POST",
                "/api/v1/attachments/uploads",
                Some(&token),
                Some(request),
            ))
            .await;
        assert_eq!(status(&res), 201, "{res}");
        starts.push(took);
        let started = body(&res);
        let upload = &started["upload"];
        let mut put = http
            .put(upload["url"].as_str().unwrap())
            .body(bytes.clone());
        for (k, v) in upload["headers"].as_object().unwrap() {
            if k != "content-length" {
                put = put.header(k, v.as_str().unwrap());
            }
        }
        assert!(put.send().await.unwrap().status().is_success());
        let id = started["attachment"]["id"].as_str().unwrap();
        let (res, took) = f
            .invoke(event(
                "POST",
                &format!("/api/v1/attachments/{id}/complete"),
                Some(&token),
                Some(json!({})),
            ))
            .await;
        assert_eq!(status(&res), 200, "{res}");
        completes.push(took);
    }
    starts.sort();
    completes.sort();
    rows.push(UploadRow {
        label: "presigned upload: start (presign)".into(),
        p50: percentile(&starts, 0.5),
        rss_growth_mib: f64::NAN,
    });
    rows.push(UploadRow {
        label: "presigned upload: complete, 5 MiB".into(),
        p50: percentile(&completes, 0.5),
        rss_growth_mib: f64::NAN,
    });
    rows
}

pub fn print(rows: &[UploadRow]) {
    println!("\nAttachments (release binary through the Runtime API; growth of peak RSS over the uploads):");
    println!("{:<44} {:>10} {:>16}", "route", "p50 ms", "RSS growth MiB");
    for r in rows {
        let growth = if r.rss_growth_mib.is_nan() {
            "-".to_string()
        } else {
            format!("{:.1}", r.rss_growth_mib)
        };
        println!(
            "{:<44} {:>10.3} {:>16}",
            r.label,
            r.p50.as_secs_f64() * 1000.0,
            growth
        );
    }
}
