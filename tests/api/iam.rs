//! Each function's S3 calls under exactly the IAM policy template.yaml gives it, checked by a policy
//! engine rather than read by eye: moto's server with IAM enforced, one IAM user per function
//! holding that function's policy documents from the transformed template (`scripts/template.py
//! policies`, bucket name substituted), and an app per function using that user's key, all on one
//! database and one bucket. The flows: attachments inline and presigned, their download and delete;
//! a chat turn reading an attachment; the coding agent writing and deleting project files; project
//! files, a presigned zip completed before and after its upload, its unpacking by the worker, the
//! archive and the export (through the bucket, as past Lambda's answer limit); a knowledge document inline and indexed by the worker; a conversation's
//! export and delete; health. Every S3 request moto refuses (403) fails the test, whatever the app
//! made of it.
//!
//! Needs `moto[server]`, boto3, PyYAML and aws-sam-translator (scripts/test installs them); skipped
//! with a message without them unless `CODECHAT_REQUIRE_TOOLS` is set, as scripts/test sets it.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use axum::http::StatusCode;
use codechat_api_tests::{repo_file, TestApp, TestResponse};
use serde_json::{json, Value};

const BUCKET: &str = "codechat-test-bucket";
/// Binary content: project files that are not text live in the bucket (text stays in the row).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

struct Moto {
    child: Child,
    endpoint: String,
    keys: HashMap<String, (String, String)>,
    log: tempfile::NamedTempFile,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Option<Moto> {
        let root = codechat_api_tests::repo_path("");
        let policies = Command::new("python3")
            .arg(root.join("scripts/template.py"))
            .arg("policies")
            .output()
            .expect("python3");
        if !policies.status.success() {
            let why = String::from_utf8_lossy(&policies.stderr).to_string();
            return skip(&format!("scripts/template.py policies failed: {why}"));
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &policies.stdout).unwrap();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("python3")
            .arg(root.join("tests/support/moto_iam.py"))
            .arg(file.path())
            .arg(BUCKET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Ok(started) = serde_json::from_str::<Value>(&line) else {
            let _ = child.kill();
            let _ = child.wait();
            let why = std::fs::read_to_string(log.path()).unwrap_or_default();
            return skip(&format!("moto did not start: {why}"));
        };
        let keys = started["keys"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(f, k)| {
                let k = (k[0].as_str().unwrap().into(), k[1].as_str().unwrap().into());
                (f.clone(), k)
            })
            .collect();
        Some(Moto {
            child,
            endpoint: started["endpoint"].as_str().unwrap().to_string(),
            keys,
            log,
        })
    }

    /// An app whose S3 calls carry `function`'s key, on the shared database `db`.
    async fn app(&self, function: &str, db: &str, extra: &[(&str, &str)]) -> TestApp {
        let (id, secret) = &self.keys[function];
        let mut env = vec![
            ("S3_BUCKET", BUCKET),
            ("S3_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
            ("LIBSQL_URL", db),
            ("UNPACK_IN_WORKER", "true"),
        ];
        env.extend_from_slice(extra);
        TestApp::with_env(&env).await
    }

    /// Makes the request a presigned URL stands for (a PUT of `body` with its content type, or a
    /// GET), signed with the same function's key in a header instead of the query: moto's IAM check
    /// reads only the Authorization header (it answers a presigned request 500), and S3 authorises
    /// both forms alike, as the key's user. Returns the HTTP status.
    async fn as_signer(&self, function: &str, url: &str, put: Option<(&[u8], &str)>) -> u16 {
        let (id, secret) = &self.keys[function];
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                id, secret, None, None, "iam-test",
            ))
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .endpoint_url(&self.endpoint)
                .force_path_style(true)
                .build(),
        );
        let path = url.split('?').next().unwrap();
        let key = path
            .split_once(&format!("/{BUCKET}/"))
            .map(|(_, key)| key)
            .unwrap_or_else(|| panic!("not a URL of the bucket: {url}"));
        let status = match put {
            Some((body, content_type)) => s3
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .content_type(content_type)
                .body(body.to_vec().into())
                .send()
                .await
                .map(|_| 200)
                .map_err(|e| e.raw_response().map_or(0, |r| r.status().as_u16())),
            None => s3
                .get_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .map(|_| 200)
                .map_err(|e| e.raw_response().map_or(0, |r| r.status().as_u16())),
        };
        status.unwrap_or_else(|code| code)
    }

    /// The end of moto's log, to say what it refused.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// moto's log lines for the S3 requests it refused after enforcement began.
    fn refusals(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        log.lines()
            .skip_while(|l| !l.contains("IAM enforced"))
            .filter(|l| l.contains("\" 403 "))
            .map(str::to_string)
            .collect()
    }
}

fn skip(why: &str) -> Option<Moto> {
    if std::env::var_os("CODECHAT_REQUIRE_TOOLS").is_some() {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    None
}

fn ok(res: &TestResponse, expected: StatusCode, what: &str) {
    assert_eq!(res.status, expected, "{what}: {}", res.text());
}

/// Completing an upload before its PUT: the object is missing, which S3 must say as such (404,
/// not 403: the policy's ListBucket), so the answer is the client's error, not a 5xx.
async fn too_early(app: &TestApp, complete: &str, token: &str) {
    let early = app.post(complete, json!({}), Some(token)).await;
    assert!(
        early.status.is_client_error(),
        "complete before the upload: {}",
        early.text()
    );
}

/// The worker's handler, as the Lambda runtime calls it on an "Object Created" event.
async fn worker(app: &TestApp, key: &str) -> Value {
    let codechat::function::Transport::Worker(handler) =
        codechat::api::unpacker::FUNCTION.transport
    else {
        panic!("the unpacker is a worker");
    };
    let event = repo_file("events/unpacker-object-created.json").replace(
        "project-zips/REPLACE_WITH_USER_ID/REPLACE_WITH_UPLOAD_ID",
        key,
    );
    handler(app.state.clone(), serde_json::from_str(&event).unwrap())
        .await
        .expect("the worker's run")
}

#[tokio::test]
async fn every_function_s3_flow_is_allowed_by_its_own_policy() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = format!("file:{}", dir.path().join("shared.db").display());
    // Small limits, so large-work paths run: zips and documents by the worker, exports through
    // the bucket.
    let small = [
        ("MAX_UNPACK_IN_REQUEST_BYTES", "10"),
        ("MAX_INDEX_IN_REQUEST_BYTES", "100"),
        ("MAX_INLINE_ANSWER_BYTES", "100"),
    ];
    let attachments = moto.app("AttachmentsFunction", &db, &[]).await;
    let chat = moto.app("ChatFunction", &db, &[]).await;
    let projects = moto.app("ProjectsFunction", &db, &small).await;
    let unpacker = moto.app("UnpackerFunction", &db, &small).await;
    let knowledge = moto.app("KnowledgeFunction", &db, &small).await;
    let conversations = moto.app("ConversationsFunction", &db, &small).await;
    let health = moto.app("HealthFunction", &db, &[]).await;

    let t = attachments.register("iam@example.com").await.access;
    let user = attachments.me(&t).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Attachments: inline, presigned, downloaded.
    let inline = attachments
        .post_multipart(
            "/api/v1/attachments",
            &t,
            &[(
                "file",
                Some("notes.txt"),
                Some("text/plain"),
                b"inline notes\n",
            )],
        )
        .await;
    ok(&inline, StatusCode::CREATED, "inline attachment");
    let inline_id = inline.json()["id"].as_str().unwrap().to_string();
    let bytes = b"presigned notes\n";
    let started = attachments
        .post(
            "/api/v1/attachments/uploads",
            json!({"filename": "big.txt", "content_type": "text/plain", "size": bytes.len()}),
            Some(&t),
        )
        .await;
    ok(&started, StatusCode::CREATED, "presigned attachment");
    let started = started.json();
    let upload = started["attachment"]["id"].as_str().unwrap().to_string();
    let complete = format!("/api/v1/attachments/{upload}/complete");
    too_early(&attachments, &complete, &t).await;
    let url = started["upload"]["url"].as_str().unwrap();
    let put = moto
        .as_signer("AttachmentsFunction", url, Some((bytes, "text/plain")))
        .await;
    assert_eq!(put, 200, "presigned PUT\n{}", moto.log_tail());
    let done = attachments.post(&complete, json!({}), Some(&t)).await;
    assert!(
        done.status.is_success(),
        "presigned attachment complete: {}",
        done.text()
    );
    let content = attachments
        .get(
            &format!("/api/v1/attachments/{inline_id}/content"),
            Some(&t),
        )
        .await;
    ok(&content, StatusCode::FOUND, "attachment content");
    let url = content.headers[axum::http::header::LOCATION]
        .to_str()
        .unwrap();
    assert_eq!(
        moto.as_signer("AttachmentsFunction", url, None).await,
        200,
        "presigned GET"
    );

    // A chat turn that reads the attachment.
    let turn = chat
        .chat(
            &t,
            json!({"message": "read this", "attachment_ids": [inline_id]}),
            None,
        )
        .await;
    ok(&turn, StatusCode::OK, "a turn with an attachment");
    let conversation = turn.json()["conversation_id"].as_str().unwrap().to_string();

    // Projects: files written, read, deleted; a presigned zip completed before and after its upload,
    // unpacked by the worker.
    let project = projects
        .post("/api/v1/projects", json!({"name": "iam"}), Some(&t))
        .await;
    ok(&project, StatusCode::CREATED, "project");
    let pid = project.json()["id"].as_str().unwrap().to_string();
    let file = format!("/api/v1/projects/{pid}/files/src/main.rs");
    let put = projects
        .send(
            axum::http::Request::put(&file)
                .header("authorization", format!("Bearer {t}"))
                .body(axum::body::Body::from("fn main() {}\n"))
                .unwrap(),
        )
        .await;
    assert!(put.status.is_success(), "project file PUT: {}", put.text());
    ok(
        &projects.get(&file, Some(&t)).await,
        StatusCode::OK,
        "project file GET",
    );
    let logo = format!("/api/v1/projects/{pid}/files/assets/logo.png");
    for version in [PNG.to_vec(), [PNG, b"\0v2"].concat()] {
        let put = projects
            .send(
                axum::http::Request::put(&logo)
                    .header("authorization", format!("Bearer {t}"))
                    .body(axum::body::Body::from(version))
                    .unwrap(),
            )
            .await;
        assert!(put.status.is_success(), "binary file PUT: {}", put.text());
    }
    ok(
        &projects.get(&logo, Some(&t)).await,
        StatusCode::OK,
        "binary file GET",
    );
    let zip = codechat_api_tests::zip_of(&[("src/lib.rs", b"pub fn f() {}\n"), ("logo.png", PNG)]);
    let started = projects
        .post(
            "/api/v1/projects/uploads",
            json!({"filename": "iam.zip", "size": zip.len()}),
            Some(&t),
        )
        .await
        .json();
    let zid = started["upload_id"].as_str().unwrap().to_string();
    let complete = format!("/api/v1/projects/uploads/{zid}/complete");
    too_early(&projects, &complete, &t).await;
    let url = started["upload"]["url"].as_str().unwrap();
    let put = moto
        .as_signer("ProjectsFunction", url, Some((&zip, "application/zip")))
        .await;
    assert_eq!(put, 200, "zip PUT\n{}", moto.log_tail());
    ok(
        &projects.post(&complete, json!({}), Some(&t)).await,
        StatusCode::ACCEPTED,
        "zip complete",
    );
    let ran = worker(&unpacker, &format!("project-zips/{user}/{zid}")).await;
    assert_eq!(ran["uploads"], 1, "{ran}");
    let status = projects
        .get(&format!("/api/v1/projects/uploads/{zid}"), Some(&t))
        .await
        .json();
    assert_eq!(status["status"], "done", "{status}");
    let unpacked = status["project_id"].as_str().unwrap().to_string();
    for path in ["archive", "export"] {
        let res = projects
            .get(&format!("/api/v1/projects/{unpacked}/{path}"), Some(&t))
            .await;
        ok(&res, StatusCode::SEE_OTHER, path);
        let url = res.headers[axum::http::header::LOCATION].to_str().unwrap();
        assert_eq!(
            moto.as_signer("ProjectsFunction", url, None).await,
            200,
            "{path}"
        );
    }

    // The coding agent writes and deletes project files, a binary one among them.
    for message in [
        "/write src/extra.rs\npub fn extra() {}\n",
        "/delete src/extra.rs",
        "/delete assets/logo.png",
    ] {
        let res = chat
            .chat(&t, json!({"message": message, "project_id": pid}), None)
            .await;
        ok(&res, StatusCode::OK, message);
    }
    let gone = projects
        .get(
            &format!("/api/v1/projects/{pid}/files/src/extra.rs"),
            Some(&t),
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text());
    let gone = projects.get(&logo, Some(&t)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text());
    ok(
        &projects.delete(&file, Some(&t)).await,
        StatusCode::NO_CONTENT,
        "project file DELETE",
    );

    // Knowledge: a document indexed inline, and a larger one by the worker.
    let docs = "/api/v1/knowledge/documents";
    let res = knowledge
        .post(
            docs,
            json!({"title": "Small", "content": "Tiny."}),
            Some(&t),
        )
        .await;
    ok(&res, StatusCode::CREATED, "inline document");
    let text = "Lighter than air craft drift slowly over fields. ".repeat(20);
    let res = knowledge
        .post(docs, json!({"title": "Large", "content": text}), Some(&t))
        .await;
    ok(&res, StatusCode::ACCEPTED, "large document");
    let doc = res.json()["id"].as_str().unwrap().to_string();
    let res = knowledge
        .post(docs, json!({"attachment_id": inline_id}), Some(&t))
        .await;
    ok(&res, StatusCode::CREATED, "a document from an attachment");
    let ran = worker(&unpacker, &format!("knowledge/{user}/{doc}")).await;
    assert_eq!(ran["documents"], 1, "{ran}");

    // Conversations: export, then delete with its attachment; attachments: delete.
    let res = conversations
        .get(
            &format!("/api/v1/conversations/{conversation}/export"),
            Some(&t),
        )
        .await;
    ok(&res, StatusCode::SEE_OTHER, "conversation export");
    let url = res.headers[axum::http::header::LOCATION].to_str().unwrap();
    let got = moto.as_signer("ConversationsFunction", url, None).await;
    assert_eq!(got, 200, "conversation export");
    let res = conversations
        .delete(&format!("/api/v1/conversations/{conversation}"), Some(&t))
        .await;
    ok(&res, StatusCode::NO_CONTENT, "conversation delete");
    let res = attachments
        .delete(&format!("/api/v1/attachments/{upload}"), Some(&t))
        .await;
    ok(&res, StatusCode::NO_CONTENT, "attachment delete");

    let res = health.get("/api/v1/health", None).await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "health: {}\n{}",
        res.text(),
        moto.log_tail()
    );
    assert_eq!(res.json()["status"], "ok", "{}", res.text());

    let refused = moto.refusals();
    assert!(
        refused.is_empty(),
        "S3 refused under the template's policies:\n{}",
        refused.join("\n")
    );
}
