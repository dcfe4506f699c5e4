//! Attachments through HTTP, on both blob stores: the local directory, and S3 (a real S3-protocol
//! server on loopback that checks signatures, presigned URLs included). Every scenario runs on both.

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use codechat_api_tests::{request, s3::S3Server, Part, TestApp, TestResponse};
use serde_json::{json, Value};

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// An app on the local store, or on S3 (with the server kept alive beside it).
struct Setup {
    app: TestApp,
    s3: Option<S3Server>,
}

impl Setup {
    async fn local(extra: &[(&str, &str)]) -> Setup {
        Setup {
            app: TestApp::with_env(extra).await,
            s3: None,
        }
    }

    async fn s3(extra: &[(&str, &str)]) -> Setup {
        let s3 = S3Server::start().await;
        let mut env: Vec<(&str, String)> = s3.env();
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Setup {
            app: TestApp::with_env(&env).await,
            s3: Some(s3),
        }
    }

    async fn both(extra: &[(&str, &str)]) -> [Setup; 2] {
        [Setup::local(extra).await, Setup::s3(extra).await]
    }

    fn name(&self) -> &'static str {
        match self.s3 {
            Some(_) => "s3",
            None => "local",
        }
    }

    /// Every blob key the store holds.
    fn blobs(&self) -> Vec<String> {
        match &self.s3 {
            Some(s3) => s3.keys(),
            None => codechat_api_tests::files_under(&self.app.data_dir().join("blobs")),
        }
    }
}

async fn upload(
    app: &TestApp,
    token: &str,
    filename: &str,
    content_type: &str,
    bytes: &[u8],
) -> TestResponse {
    post_multipart(
        app,
        token,
        &[("file", Some(filename), Some(content_type), bytes)],
    )
    .await
}

async fn post_multipart(app: &TestApp, token: &str, parts: &[Part<'_>]) -> TestResponse {
    app.post_multipart("/api/v1/attachments", token, parts)
        .await
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bytes of an attachment as a client gets them: straight from the local store, or by
/// following the redirect to the presigned GET.
async fn content(setup: &Setup, token: &str, id: &str) -> (Vec<u8>, String, String) {
    let res = setup
        .app
        .get(&format!("/api/v1/attachments/{id}/content"), Some(token))
        .await;
    match &setup.s3 {
        None => {
            assert_eq!(res.status, StatusCode::OK, "{}", res.text());
            let header = |h| {
                res.headers
                    .get(h)
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default()
            };
            (
                res.body.to_vec(),
                header(header::CONTENT_TYPE),
                header(header::CONTENT_DISPOSITION),
            )
        }
        Some(_) => {
            assert_eq!(res.status, StatusCode::FOUND, "{}", res.text());
            let url = res.headers[header::LOCATION].to_str().unwrap();
            let got = reqwest::get(url).await.unwrap();
            assert_eq!(got.status(), 200);
            let header = |h| {
                got.headers()
                    .get(h)
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default()
            };
            let (ct, cd) = (
                header(header::CONTENT_TYPE),
                header(header::CONTENT_DISPOSITION),
            );
            (got.bytes().await.unwrap().to_vec(), ct, cd)
        }
    }
}

#[tokio::test]
async fn an_inline_upload_round_trips_and_deletes_on_both_stores() {
    for setup in Setup::both(&[]).await {
        let app = &setup.app;
        let token = app.register("files@example.com").await.access;
        let text = "# Notes\n\nSome *markdown* é.\n".as_bytes();
        let res = upload(app, &token, "../../notes.md", "text/markdown", text).await;
        assert_eq!(
            res.status,
            StatusCode::CREATED,
            "{}: {}",
            setup.name(),
            res.text()
        );
        let a = res.json();
        let id = a["id"].as_str().unwrap().to_string();
        assert_eq!(a["filename"], "notes.md", "path parts never survive");
        assert_eq!(a["content_type"], "text/markdown");
        assert_eq!(a["size"], text.len());
        assert_eq!(a["sha256"], sha256_hex(text));
        assert_eq!(a["status"], "ready");

        let user_id = app.me(&token).await.json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            setup.blobs(),
            vec![format!("attachments/{user_id}/{id}")],
            "{}",
            setup.name()
        );

        let got = app
            .get(&format!("/api/v1/attachments/{id}"), Some(&token))
            .await;
        assert_eq!(got.json(), a);
        let (bytes, ct, cd) = content(&setup, &token, &id).await;
        assert_eq!(bytes, text, "{}", setup.name());
        assert!(ct.starts_with("text/markdown"), "{ct}");
        assert_eq!(cd, "attachment; filename*=UTF-8''notes.md");

        let listed = app.get("/api/v1/attachments", Some(&token)).await.json();
        assert_eq!(listed["items"][0]["id"], id.as_str());

        let res = app
            .delete(&format!("/api/v1/attachments/{id}"), Some(&token))
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT);
        app.get(&format!("/api/v1/attachments/{id}"), Some(&token))
            .await
            .problem(StatusCode::NOT_FOUND);
        assert!(
            setup.blobs().is_empty(),
            "{}: {:?}",
            setup.name(),
            setup.blobs()
        );
    }
}

#[tokio::test]
async fn the_inline_limit_holds_at_its_edge_and_a_refused_upload_keeps_nothing() {
    for setup in Setup::both(&[("MAX_INLINE_UPLOAD_BYTES", "1024")]).await {
        let app = &setup.app;
        let token = app.register("edge@example.com").await.access;
        let at_limit = vec![b'a'; 1024];
        let res = upload(app, &token, "a.txt", "text/plain", &at_limit).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        let kept = setup.blobs();

        let over = vec![b'a'; 1025];
        upload(app, &token, "b.txt", "text/plain", &over)
            .await
            .problem(StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            setup.blobs(),
            kept,
            "{}: no blob from the refused upload",
            setup.name()
        );
        let listed = app.get("/api/v1/attachments", Some(&token)).await.json();
        assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn types_are_sniffed_and_bad_parts_are_refused() {
    for setup in Setup::both(&[]).await {
        let app = &setup.app;
        let token = app.register("types@example.com").await.access;
        let ok = upload(app, &token, "pixel.png", "image/png", PNG).await;
        assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text());
        // No type but a telling name: guessed from the name, then sniffed.
        let guessed = upload(
            app,
            &token,
            "main.rs",
            "application/octet-stream",
            b"fn main() {}\n",
        )
        .await;
        assert_eq!(guessed.status, StatusCode::CREATED, "{}", guessed.text());
        assert_eq!(guessed.json()["content_type"], "text/x-rust");
        let kept = setup.blobs();

        let lying = upload(app, &token, "fake.png", "image/png", b"just text").await;
        assert_eq!(lying.invalid_fields(), vec!["content_type"]);
        let pdf_as_text = upload(
            app,
            &token,
            "doc.txt",
            "text/plain",
            b"%PDF-1.7\n\0\x01\x02binary",
        )
        .await;
        assert_eq!(pdf_as_text.invalid_fields(), vec!["content_type"]);
        let exe = upload(
            app,
            &token,
            "tool.exe",
            "application/x-msdownload",
            b"MZ\x90\0",
        )
        .await;
        assert_eq!(exe.invalid_fields(), vec!["content_type"]);
        let empty = upload(app, &token, "empty.txt", "text/plain", b"").await;
        assert_eq!(empty.invalid_fields(), vec!["file"]);
        let nameless = upload(app, &token, "../", "text/plain", b"x").await;
        assert_eq!(nameless.invalid_fields(), vec!["filename"]);

        let missing = post_multipart(app, &token, &[("note", None, None, b"no file here")]).await;
        assert_eq!(missing.invalid_fields(), vec!["file"]);
        let two = post_multipart(
            app,
            &token,
            &[
                ("file", Some("a.txt"), Some("text/plain"), b"one"),
                ("file", Some("b.txt"), Some("text/plain"), b"two"),
            ],
        )
        .await;
        assert_eq!(two.invalid_fields(), vec!["file"]);
        let json = app
            .post("/api/v1/attachments", json!({"file": "x"}), Some(&token))
            .await;
        json.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);

        assert_eq!(
            setup.blobs(),
            kept,
            "{}: refused uploads keep nothing",
            setup.name()
        );
        let listed = app.get("/api/v1/attachments", Some(&token)).await.json();
        assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn a_presigned_upload_is_checked_then_completed_on_both_stores() {
    for setup in Setup::both(&[]).await {
        let app = &setup.app;
        let token = app.register("big@example.com").await.access;
        let bytes: Vec<u8> = "line of a large text file\n".repeat(400).into_bytes();
        let res = app
            .post(
                "/api/v1/attachments/uploads",
                json!({"filename": "big.txt", "content_type": "text/plain", "size": bytes.len()}),
                Some(&token),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        let started = res.json();
        let id = started["attachment"]["id"].as_str().unwrap().to_string();
        assert_eq!(started["attachment"]["status"], "pending");
        assert_eq!(started["upload"]["method"], "PUT");
        let upload = &started["upload"];

        // Completing before any PUT: nothing there yet.
        let early = app
            .post(
                &format!("/api/v1/attachments/{id}/complete"),
                json!({}),
                Some(&token),
            )
            .await;
        early.problem(StatusCode::CONFLICT);

        // The store itself refuses bytes other than those the URL was made for.
        let wrong_type = setup
            .app
            .put_upload(upload, &bytes, &[("content-type", "image/png")])
            .await;
        assert_eq!(wrong_type, 403, "{}: another type", setup.name());
        let shorter = setup.app.put_upload(upload, &bytes[1..], &[]).await;
        assert!(
            shorter >= 400,
            "{}: another length answered {shorter}",
            setup.name()
        );
        assert!(
            setup.blobs().is_empty(),
            "{}: {:?}",
            setup.name(),
            setup.blobs()
        );

        let ok = setup.app.put_upload(upload, &bytes, &[]).await;
        assert!(ok == 200 || ok == 204, "{}: {ok}", setup.name());
        let done = app
            .post(
                &format!("/api/v1/attachments/{id}/complete"),
                json!({}),
                Some(&token),
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text());
        let done = done.json();
        assert_eq!(done["status"], "ready");
        assert_eq!(done["sha256"], sha256_hex(&bytes));
        // Completing again is safe and changes nothing.
        let again = app
            .post(
                &format!("/api/v1/attachments/{id}/complete"),
                json!({}),
                Some(&token),
            )
            .await;
        assert_eq!(again.json(), done);

        let user_id = app.me(&token).await.json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            setup.blobs(),
            vec![format!("attachments/{user_id}/{id}")],
            "{}",
            setup.name()
        );
        let (got, _, _) = content(&setup, &token, &id).await;
        assert_eq!(got, bytes);
    }
}

#[tokio::test]
async fn a_completed_upload_that_is_not_what_it_claimed_is_removed() {
    for setup in Setup::both(&[]).await {
        let app = &setup.app;
        let token = app.register("liar@example.com").await.access;
        let bytes = b"plain text, not a PDF at all";
        let started = app
            .post(
                "/api/v1/attachments/uploads",
                json!({"filename": "doc.pdf", "content_type": "application/pdf", "size": bytes.len()}),
                Some(&token),
            )
            .await
            .json();
        let id = started["attachment"]["id"].as_str().unwrap().to_string();
        let put = setup.app.put_upload(&started["upload"], bytes, &[]).await;
        assert!(put == 200 || put == 204, "{}: {put}", setup.name());
        let res = app
            .post(
                &format!("/api/v1/attachments/{id}/complete"),
                json!({}),
                Some(&token),
            )
            .await;
        assert_eq!(res.invalid_fields(), vec!["content_type"]);
        assert!(
            setup.blobs().is_empty(),
            "{}: {:?}",
            setup.name(),
            setup.blobs()
        );
        app.get(&format!("/api/v1/attachments/{id}"), Some(&token))
            .await
            .problem(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn upload_requests_are_validated_and_limited() {
    let setup = Setup::local(&[("MAX_UPLOAD_BYTES", "5000")]).await;
    let app = &setup.app;
    let token = app.register("limits@example.com").await.access;
    let start = |body: Value| app.post("/api/v1/attachments/uploads", body, Some(&token));
    let ok = start(json!({"filename": "a.txt", "content_type": "text/plain", "size": 5000})).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text());
    let over =
        start(json!({"filename": "a.txt", "content_type": "text/plain", "size": 5001})).await;
    assert_eq!(over.invalid_fields(), vec!["size"]);
    let bad =
        start(json!({"filename": "", "content_type": "application/x-msdownload", "size": 0})).await;
    let mut fields = bad.invalid_fields();
    fields.sort();
    assert_eq!(fields, vec!["content_type", "filename", "size"]);
}

#[tokio::test]
async fn the_local_upload_url_is_bound_to_its_token() {
    let setup = Setup::local(&[]).await;
    let app = &setup.app;
    let token = app.register("tok@example.com").await.access;
    let started = app
        .post(
            "/api/v1/attachments/uploads",
            json!({"filename": "a.txt", "content_type": "text/plain", "size": 3}),
            Some(&token),
        )
        .await
        .json();
    let url = started["upload"]["url"].as_str().unwrap();
    assert!(url.starts_with("http://"), "{url}");
    let path = &url[url.find("/api/").unwrap()..];
    let (base, _) = path.split_once("?token=").unwrap();
    let put = |uri: String| {
        app.send(
            Request::builder()
                .method(Method::PUT)
                .uri(uri)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("abc"))
                .unwrap(),
        )
    };
    put(base.to_string())
        .await
        .problem(StatusCode::UNAUTHORIZED);
    put(format!("{base}?token=forged"))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    // An access token is not an upload grant.
    put(format!("{base}?token={token}"))
        .await
        .problem(StatusCode::UNAUTHORIZED);
    // A grant for one upload does not open another.
    let other = app
        .post(
            "/api/v1/attachments/uploads",
            json!({"filename": "b.txt", "content_type": "text/plain", "size": 3}),
            Some(&token),
        )
        .await
        .json();
    let other_id = other["attachment"]["id"].as_str().unwrap();
    let grant = path.split_once("?token=").unwrap().1;
    put(format!(
        "/api/v1/attachments/uploads/{other_id}?token={grant}"
    ))
    .await
    .problem(StatusCode::FORBIDDEN);
    assert_eq!(put(path.to_string()).await.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn another_users_attachment_is_not_found() {
    let setup = Setup::local(&[]).await;
    let app = &setup.app;
    let owner = app.register("owner@example.com").await.access;
    let other = app.register("other@example.com").await.access;
    let id = upload(app, &owner, "a.txt", "text/plain", b"mine")
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (method, path) in [
        (Method::GET, format!("/api/v1/attachments/{id}")),
        (Method::GET, format!("/api/v1/attachments/{id}/content")),
        (Method::POST, format!("/api/v1/attachments/{id}/complete")),
        (Method::DELETE, format!("/api/v1/attachments/{id}")),
    ] {
        let res = app
            .send(request(method.clone(), &path, Some(&other), None))
            .await;
        res.problem(StatusCode::NOT_FOUND);
    }
    let listed = app.get("/api/v1/attachments", Some(&other)).await.json();
    assert!(listed["items"].as_array().unwrap().is_empty());
    app.get("/api/v1/attachments/not-an-id", Some(&owner))
        .await
        .problem(StatusCode::NOT_FOUND);
    app.get("/api/v1/attachments", None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get(&format!("/api/v1/attachments/{id}"), Some(&owner))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn health_checks_the_s3_bucket() {
    let setup = Setup::s3(&[]).await;
    let health = setup.app.get("/api/v1/health", None).await.json();
    assert_eq!(health["checks"]["blobs"], "ok", "{health}");
}

async fn upload_id(
    app: &TestApp,
    token: &str,
    filename: &str,
    content_type: &str,
    bytes: &[u8],
) -> String {
    let res = upload(app, token, filename, content_type, bytes).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn attachments_go_with_one_chat_message_and_show_on_it() {
    let setup = Setup::local(&[("MAX_CHAT_ATTACHMENTS", "2")]).await;
    let app = &setup.app;
    let token = app.register("chatfiles@example.com").await.access;
    let notes = upload_id(
        app,
        &token,
        "notes.md",
        "text/markdown",
        b"# Plan\n- ship\n",
    )
    .await;
    let pixel = upload_id(app, &token, "pixel.png", "image/png", PNG).await;

    let res = app
        .chat(
            &token,
            json!({"message": "Read these", "attachment_ids": [notes, pixel]}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let turn = res.json();
    let answer = turn["assistant_message"]["content"].as_str().unwrap();
    assert!(
        answer.contains("notes.md (14 bytes, text/markdown)"),
        "{answer}"
    );
    assert!(
        answer.contains(&format!("pixel.png ({} bytes, image/png)", PNG.len())),
        "{answer}"
    );
    let sent = &turn["user_message"]["attachments"];
    assert_eq!(sent[0]["id"], notes.as_str());
    assert_eq!(sent[1]["filename"], "pixel.png");

    let conversation = turn["conversation_id"].as_str().unwrap().to_string();
    let messages = app.messages(&token, &conversation).await;
    assert_eq!(messages[0]["attachments"], *sent);
    assert!(
        messages[1].get("attachments").is_none(),
        "answers carry none"
    );
    let a = app
        .get(&format!("/api/v1/attachments/{notes}"), Some(&token))
        .await
        .json();
    assert_eq!(a["conversation_id"], conversation.as_str());
    assert_eq!(a["message_id"], turn["user_message"]["id"]);

    // Refused, naming the id, and nothing stored: sent before, unknown, another user's, pending,
    // too many.
    let other = app.register("someone@example.com").await.access;
    let theirs = upload_id(app, &other, "theirs.txt", "text/plain", b"not yours").await;
    let pending = app
        .post(
            "/api/v1/attachments/uploads",
            json!({"filename": "p.txt", "content_type": "text/plain", "size": 3}),
            Some(&token),
        )
        .await
        .json()["attachment"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let fresh = upload_id(app, &token, "fresh.txt", "text/plain", b"fresh").await;
    for (ids, field) in [
        (json!([notes]), "attachment_ids[0]"),
        (
            json!([fresh, "01900000-0000-7000-8000-000000000000"]),
            "attachment_ids[1]",
        ),
        (json!([theirs]), "attachment_ids[0]"),
        (json!([pending]), "attachment_ids[0]"),
        (json!(["nonsense"]), "attachment_ids[0]"),
        (json!([fresh, notes, pixel]), "attachment_ids"),
    ] {
        let res = app
            .chat(
                &token,
                json!({"conversation_id": conversation, "message": "again", "attachment_ids": ids}),
                None,
            )
            .await;
        assert!(
            res.invalid_fields().contains(&field.to_string()),
            "{ids}: {}",
            res.text()
        );
    }
    assert_eq!(
        app.messages(&token, &conversation).await.len(),
        2,
        "nothing stored"
    );
    let f = app
        .get(&format!("/api/v1/attachments/{fresh}"), Some(&token))
        .await
        .json();
    assert!(f["message_id"].is_null(), "a refused turn attaches nothing");
}

#[tokio::test]
async fn deleting_a_conversation_deletes_its_attachments_on_both_stores() {
    for setup in Setup::both(&[]).await {
        let app = &setup.app;
        let token = app.register("cascade@example.com").await.access;
        let sent = upload_id(app, &token, "a.txt", "text/plain", b"sent").await;
        let kept = upload_id(app, &token, "b.txt", "text/plain", b"kept").await;
        let turn = app
            .chat(
                &token,
                json!({"message": "with a file", "attachment_ids": [sent]}),
                None,
            )
            .await
            .json();
        let conversation = turn["conversation_id"].as_str().unwrap();
        assert_eq!(setup.blobs().len(), 2);
        let res = app
            .delete(
                &format!("/api/v1/conversations/{conversation}"),
                Some(&token),
            )
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT);
        app.get(&format!("/api/v1/attachments/{sent}"), Some(&token))
            .await
            .problem(StatusCode::NOT_FOUND);
        assert_eq!(
            app.get(&format!("/api/v1/attachments/{kept}"), Some(&token))
                .await
                .status,
            StatusCode::OK
        );
        let user_id = app.me(&token).await.json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            setup.blobs(),
            vec![format!("attachments/{user_id}/{kept}")],
            "{}",
            setup.name()
        );
    }
}

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn bedrock_receives_image_and_document_blocks() {
    use wiremock::{
        matchers::{method, path_regex},
        Mock, MockServer, ResponseTemplate,
    };
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/model/[^/]+/converse$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(codechat_api_tests::fakes::bedrock_converse("Seen", 50, 2)),
        )
        .mount(&server)
        .await;
    let app = &TestApp::with_bedrock_fake(&server.uri(), &[]).await;
    let token = app.register("bedrock-files@example.com").await.access;
    let image = upload_id(app, &token, "chart.png", "image/png", PNG).await;
    let pdf = upload_id(app, &token, "Q3 report (final).pdf", "application/pdf", PDF).await;
    let notes = upload_id(app, &token, "notes.md", "text/markdown", b"# Notes").await;
    let res = app
        .chat(
            &token,
            json!({"message": "Summarise", "attachment_ids": [image, pdf, notes]}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    let body: Value = server.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    let content = &body["messages"][0]["content"];
    assert_eq!(
        content[0],
        json!({"image": {"format": "png", "source": {"bytes": b64(PNG)}}})
    );
    assert_eq!(
        content[1],
        json!({"document": {"format": "pdf", "name": "Q3 report (final) pdf (2)", "source": {"bytes": b64(PDF)}}})
    );
    assert_eq!(
        content[2],
        json!({"document": {"format": "md", "name": "notes md (3)", "source": {"bytes": b64(b"# Notes")}}})
    );
    assert_eq!(content[3], json!({"text": "Summarise"}));
}

#[tokio::test]
async fn openai_receives_image_and_file_parts_within_the_models_capabilities() {
    use wiremock::{
        matchers::{method, path},
        Mock, MockServer, ResponseTemplate,
    };
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            codechat_api_tests::fakes::openai_completion("Seen", 50, 2, 0),
        ))
        .mount(&server)
        .await;
    let base = format!("{}/v1", server.uri());
    let app = &TestApp::with_openai_fake(&base, &[]).await;
    let token = app.register("openai-files@example.com").await.access;
    let image = upload_id(app, &token, "chart.png", "image/png", PNG).await;
    let notes = upload_id(app, &token, "notes.md", "text/markdown", b"# Notes").await;
    let pdf = upload_id(app, &token, "report.pdf", "application/pdf", PDF).await;

    // gpt-4o-mini reads images but not documents (the catalog says so): the PDF is refused.
    let refused = app
        .chat(
            &token,
            json!({"message": "Read", "attachment_ids": [pdf]}),
            None,
        )
        .await;
    assert_eq!(refused.invalid_fields(), vec!["attachment_ids[0]"]);
    assert!(server.received_requests().await.unwrap().is_empty());

    let res = app
        .chat(
            &token,
            json!({"message": "Describe", "attachment_ids": [image, notes]}),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let body: Value = server.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", b64(PNG))}},
            {"type": "text", "text": "File notes.md:\n# Notes"},
            {"type": "text", "text": "Describe"},
        ])
    );
}

#[tokio::test]
async fn pending_uploads_past_their_deadline_are_swept_with_their_blobs() {
    let setup = Setup::local(&[]).await;
    let app = &setup.app;
    let token = app.register("sweep@example.com").await.access;
    let start = || {
        app.post(
            "/api/v1/attachments/uploads",
            json!({"filename": "a.txt", "content_type": "text/plain", "size": 3}),
            Some(&token),
        )
    };
    let abandoned = start().await.json();
    assert_eq!(
        setup
            .app
            .put_upload(&abandoned["upload"], b"abc", &[])
            .await,
        204
    );
    assert_eq!(setup.blobs().len(), 1);
    let id = abandoned["attachment"]["id"].as_str().unwrap().to_string();

    // Its deadline passes (as if a day went by): the next upload to start sweeps it.
    let db = libsql::Builder::new_local(app.data_dir().join("codechat.db"))
        .build()
        .await
        .unwrap();
    db.connect()
        .unwrap()
        .execute(
            "UPDATE attachments SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = ?1",
            [id.as_str()],
        )
        .await
        .unwrap();
    let next = start().await;
    assert_eq!(next.status, StatusCode::CREATED);
    app.get(&format!("/api/v1/attachments/{id}"), Some(&token))
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(setup.blobs().is_empty(), "{:?}", setup.blobs());
    let listed = app.get("/api/v1/attachments", Some(&token)).await.json();
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "the new one stays"
    );
}

/// The upload URL stays valid after a completion checked it: the bytes moved are the version that
/// was checked, never bytes put in between (S3's copy precondition on the ETag read).
#[tokio::test]
async fn bytes_put_after_the_check_are_never_moved() {
    let setup = Setup::s3(&[]).await;
    let app = &setup.app;
    let token = app.register("upload-race@example.com").await.access;
    let checked = b"checked bytes";
    let started = app
        .post(
            "/api/v1/attachments/uploads",
            json!({"filename": "a.txt", "content_type": "text/plain", "size": checked.len()}),
            Some(&token),
        )
        .await
        .json();
    let id = started["attachment"]["id"].as_str().unwrap().to_string();
    let put = app.put_upload(&started["upload"], checked, &[]).await;
    assert!(put == 200 || put == 204, "{put}");

    // A completion read (and checked) this version...
    let user: codechat::ids::UserId = app.me(&token).await.json()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let attachment: codechat::ids::AttachmentId = id.parse().unwrap();
    let key = codechat::blobs::BlobKey::upload(user, attachment);
    let (_, version) = app.state.blobs().read_tagged(&key).await.unwrap();
    assert!(version.is_some(), "S3 answers an ETag");
    // ...then other bytes of the same size arrive through the still-valid URL...
    let put = app
        .put_upload(&started["upload"], b"swapped bytes", &[])
        .await;
    assert!(put == 200 || put == 204, "{put}");
    // ...and moving the checked version refuses.
    let target = codechat::blobs::BlobKey::checked(
        user,
        attachment,
        codechat::kinds::UploadPurpose::Attachment,
    );
    let moved = app
        .state
        .blobs()
        .rename_if_unchanged(&key, &target, version.as_deref())
        .await;
    assert!(
        matches!(moved, Err(codechat::blobs::BlobError::Changed)),
        "{moved:?}"
    );
    // A completion now checks the new bytes, and moves those.
    let res = app
        .post(
            &format!("/api/v1/attachments/{id}/complete"),
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let stored = app.state.blobs().read_all(&target).await.unwrap();
    assert_eq!(&stored[..], b"swapped bytes");
}
