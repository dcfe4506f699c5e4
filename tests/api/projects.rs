//! Projects through HTTP: CRUD, files (text in the store, binaries in the blob store), the tree,
//! path rules, limits at their edge, export/import round trips, and nothing half-written.

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use codechat_api_tests::{zip_of, TestApp, TestResponse};
use serde_json::{json, Value};

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

async fn put_file(
    app: &TestApp,
    token: &str,
    project: &str,
    path: &str,
    bytes: &[u8],
) -> TestResponse {
    app.send(
        Request::builder()
            .method(Method::PUT)
            .uri(format!("/api/v1/projects/{project}/files/{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(bytes.to_vec()))
            .unwrap(),
    )
    .await
}

async fn new_project(app: &TestApp, token: &str, name: &str) -> String {
    let res = app
        .post("/api/v1/projects", json!({"name": name}), Some(token))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json()["id"].as_str().unwrap().to_string()
}

/// The worker's run on a checked zip's "Object Created" event (`events/unpacker-object-created.json`),
/// as the Lambda runtime calls it.
async fn worker_run(
    app: &TestApp,
    user_id: &str,
    upload_id: &str,
) -> Result<Value, codechat::function::BoxError> {
    let event = codechat_api_tests::repo_file("events/unpacker-object-created.json")
        .replace("REPLACE_WITH_USER_ID", user_id)
        .replace("REPLACE_WITH_UPLOAD_ID", upload_id);
    let codechat::function::Transport::Worker(handler) =
        codechat::api::unpacker::FUNCTION.transport
    else {
        panic!("the unpacker is a worker");
    };
    handler(app.state.clone(), serde_json::from_str(&event).unwrap()).await
}

fn blob_files(app: &TestApp) -> Vec<String> {
    codechat_api_tests::files_under(&app.data_dir().join("blobs"))
}

#[tokio::test]
async fn projects_are_created_listed_renamed_and_deleted_by_their_owner_only() {
    let app = TestApp::spawn().await;
    let owner = app.register("proj@example.com").await.access;
    let other = app.register("else@example.com").await.access;
    let res = app
        .post(
            "/api/v1/projects",
            json!({"name": "  Demo  ", "description": "a demo"}),
            Some(&owner),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let p = res.json();
    assert_eq!(p["name"], "Demo");
    assert_eq!(
        (p["file_count"].as_i64(), p["total_bytes"].as_i64()),
        (Some(0), Some(0))
    );
    let id = p["id"].as_str().unwrap();

    let bad = app
        .post(
            "/api/v1/projects",
            json!({"name": "", "description": "x".repeat(2001)}),
            Some(&owner),
        )
        .await;
    let mut fields = bad.invalid_fields();
    fields.sort();
    assert_eq!(fields, vec!["description", "name"]);

    let listed = app.get("/api/v1/projects", Some(&owner)).await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(
        app.get("/api/v1/projects", Some(&other)).await.json()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    for path in [
        format!("/api/v1/projects/{id}"),
        format!("/api/v1/projects/{id}/tree"),
        format!("/api/v1/projects/{id}/export"),
        format!("/api/v1/projects/{id}/files/a.txt"),
    ] {
        app.get(&path, Some(&other))
            .await
            .problem(StatusCode::NOT_FOUND);
    }
    put_file(&app, &other, id, "a.txt", b"x")
        .await
        .problem(StatusCode::NOT_FOUND);

    let renamed = app
        .patch(
            &format!("/api/v1/projects/{id}"),
            json!({"name": "Renamed", "description": null}),
            Some(&owner),
        )
        .await
        .json();
    assert_eq!(renamed["name"], "Renamed");
    assert!(renamed["description"].is_null());
    assert_eq!(
        app.delete(&format!("/api/v1/projects/{id}"), Some(&other))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/v1/projects/{id}"), Some(&owner))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.get(&format!("/api/v1/projects/{id}"), Some(&owner))
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn files_text_and_binary_make_the_tree() {
    let app = TestApp::spawn().await;
    let token = app.register("files@example.com").await.access;
    let id = new_project(&app, &token, "Tree").await;
    for (path, bytes) in [
        ("src/main.rs", b"fn main() {}\n".as_slice()),
        ("src/lib/util.rs", b"pub fn f() {}\n"),
        ("README.md", b"# Tree\n"),
        ("assets/logo.png", PNG),
    ] {
        let res = put_file(&app, &token, &id, path, bytes).await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text());
        assert_eq!(res.json()["size"], bytes.len());
    }
    let logo = put_file(&app, &token, &id, "assets/logo.png", PNG)
        .await
        .json();
    assert_eq!(logo["kind"], "binary");
    assert_eq!(
        blob_files(&app).len(),
        1,
        "a replaced binary's old blob goes"
    );

    let got = app
        .get(
            &format!("/api/v1/projects/{id}/files/src/lib/util.rs"),
            Some(&token),
        )
        .await;
    assert_eq!(&got.body[..], b"pub fn f() {}\n");
    assert!(got.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let png = app
        .get(
            &format!("/api/v1/projects/{id}/files/assets/logo.png"),
            Some(&token),
        )
        .await;
    assert_eq!(&png.body[..], PNG);

    let tree = app
        .get(&format!("/api/v1/projects/{id}/tree"), Some(&token))
        .await
        .json();
    let names = |node: &Value| -> Vec<String> {
        node["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(tree["name"], "Tree");
    assert_eq!(
        names(&tree),
        vec!["assets", "src", "README.md"],
        "directories first, then files, by name"
    );
    let src = &tree["children"][1];
    assert_eq!(
        (src["kind"].as_str(), src["path"].as_str()),
        (Some("dir"), Some("src"))
    );
    assert_eq!(names(src), vec!["lib", "main.rs"]);
    assert_eq!(src["children"][0]["children"][0]["path"], "src/lib/util.rs");
    let total = 13 + 14 + 7 + PNG.len() as i64;
    assert_eq!(tree["size"], total);
    let p = app
        .get(&format!("/api/v1/projects/{id}"), Some(&token))
        .await
        .json();
    assert_eq!(
        (p["file_count"].as_i64(), p["total_bytes"].as_i64()),
        (Some(4), Some(total))
    );

    assert_eq!(
        app.delete(
            &format!("/api/v1/projects/{id}/files/assets/logo.png"),
            Some(&token)
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert!(blob_files(&app).is_empty());
    app.get(
        &format!("/api/v1/projects/{id}/files/assets/logo.png"),
        Some(&token),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    let p = app
        .get(&format!("/api/v1/projects/{id}"), Some(&token))
        .await
        .json();
    assert_eq!(p["file_count"], 3);
}

#[tokio::test]
async fn paths_and_sizes_are_checked_at_the_door() {
    let app = TestApp::with_env(&[("MAX_PROJECT_FILE_BYTES", "10")]).await;
    let token = app.register("rules@example.com").await.access;
    let id = new_project(&app, &token, "Rules").await;
    for bad in [
        "a//b.txt",
        "a/./b.txt",
        "a/%2E%2E/b.txt",
        "%2E%2E/x",
        "a%5Cb.txt",
        "a/%00.txt",
        "dir/",
    ] {
        let res = put_file(&app, &token, &id, bad, b"x").await;
        assert_eq!(res.invalid_fields(), vec!["path"], "{bad}");
    }
    assert_eq!(
        put_file(&app, &token, &id, "ten.txt", b"0123456789")
            .await
            .status,
        StatusCode::OK
    );
    put_file(&app, &token, &id, "eleven.txt", b"0123456789a")
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    let p = app
        .get(&format!("/api/v1/projects/{id}"), Some(&token))
        .await
        .json();
    assert_eq!(p["file_count"], 1, "nothing kept from refused writes");
}

#[tokio::test]
async fn export_and_import_round_trip_byte_for_byte() {
    let app = TestApp::spawn().await;
    let token = app.register("dump@example.com").await.access;
    let id = new_project(&app, &token, "Original").await;
    put_file(
        &app,
        &token,
        &id,
        "src/main.rs",
        "fn main() { println!(\"é\"); }\n".as_bytes(),
    )
    .await;
    put_file(&app, &token, &id, "img/a.png", PNG).await;
    let dump = app
        .get(&format!("/api/v1/projects/{id}/export"), Some(&token))
        .await
        .json();
    assert_eq!(dump["format"], "codechat.project");
    assert_eq!(dump["files"][0]["encoding"], "base64");

    let res = app
        .post("/api/v1/projects/import", dump.clone(), Some(&token))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let copy = res.json()["id"].as_str().unwrap().to_string();
    assert_ne!(copy, id);
    let again = app
        .get(&format!("/api/v1/projects/{copy}/export"), Some(&token))
        .await
        .json();
    assert_eq!(again, dump);
    let png = app
        .get(
            &format!("/api/v1/projects/{copy}/files/img/a.png"),
            Some(&token),
        )
        .await;
    assert_eq!(&png.body[..], PNG);
    assert_eq!(blob_files(&app).len(), 2, "each project has its own blob");
}

/// Clients that upload the exported file send it as multipart/form-data: the same import, the same
/// limit (a file of exactly `MAX_PROJECT_IMPORT_BYTES` is taken, one byte more is 413), and any
/// other body type is 415.
#[tokio::test]
async fn an_export_imports_as_a_multipart_file_within_the_same_limit() {
    let limit = 400;
    let app = TestApp::with_env(&[("MAX_PROJECT_IMPORT_BYTES", "400")]).await;
    let token = app.register("multipartimport@example.com").await.access;
    let dump = json!({"format": "codechat.project", "version": 1, "name": "From a file",
        "files": [{"path": "a.txt", "encoding": "utf-8", "content": "hello"}]})
    .to_string();
    // JSON with trailing spaces up to `size` bytes.
    let padded = |size: usize| format!("{dump}{}", " ".repeat(size - dump.len()));
    let import = |bytes: String| {
        let app = &app;
        let token = &token;
        async move {
            app.post_multipart(
                "/api/v1/projects/import",
                token,
                &[(
                    "file",
                    Some("project.json"),
                    Some("application/json"),
                    bytes.as_bytes(),
                )],
            )
            .await
        }
    };
    let res = import(padded(limit)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let id = res.json()["id"].as_str().unwrap().to_string();
    let file = app
        .get(&format!("/api/v1/projects/{id}/files/a.txt"), Some(&token))
        .await;
    assert_eq!(&file.body[..], b"hello");

    import(padded(limit + 1))
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    app.send(
        Request::post("/api/v1/projects/import")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(dump))
            .unwrap(),
    )
    .await
    .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let projects = app.get("/api/v1/projects", Some(&token)).await.json();
    assert_eq!(projects["items"].as_array().unwrap().len(), 1, "{projects}");
}

#[tokio::test]
async fn a_bad_import_creates_nothing() {
    let app = TestApp::with_env(&[("MAX_ZIP_ENTRIES", "3")]).await;
    let token = app.register("badimport@example.com").await.access;
    let file = |path: &str, encoding: &str, content: &str| json!({"path": path, "encoding": encoding, "content": content});
    let bad = json!({
        "format": "codechat.project", "version": 1, "name": "Bad",
        "files": [
            file("ok.bin", "base64", "iVBORw0KGgo="),
            file("../escape.txt", "utf-8", "x"),
            file("ok.bin", "utf-8", "dup"),
            file("c.txt", "rot13", "x"),
        ]
    });
    let res = app.post("/api/v1/projects/import", bad, Some(&token)).await;
    let mut fields = res.invalid_fields();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "files",
            "files[1].path",
            "files[2].path",
            "files[3].encoding"
        ]
    );
    assert!(
        app.get("/api/v1/projects", Some(&token)).await.json()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(blob_files(&app).is_empty());

    let wrong = app
        .post(
            "/api/v1/projects/import",
            json!({"format": "zip", "version": 2, "name": "x", "files": []}),
            Some(&token),
        )
        .await;
    assert_eq!(wrong.invalid_fields(), vec!["format"]);
}

async fn upload_zip(app: &TestApp, token: &str, filename: &str, bytes: &[u8]) -> TestResponse {
    let boundary = "zip-boundary-0c1d";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    app.send(
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/projects/upload")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_zip_becomes_a_project_with_its_real_tree() {
    let app = TestApp::spawn().await;
    let token = app.register("zip@example.com").await.access;
    let inner = zip_of(&[("x.txt", b"nested")]);
    let archive = {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.add_directory("src/", o).unwrap();
        for (name, bytes) in [
            ("src/main.rs", b"fn main() {}\n".as_slice()),
            ("logo.png", PNG),
            ("vendor/dep.zip", &inner),
            ("README.md", b"# Zipped\n"),
        ] {
            w.start_file(name, o).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    let res = upload_zip(&app, &token, "demo.zip", &archive).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let p = res.json();
    assert_eq!(p["name"], "demo");
    assert_eq!(p["file_count"], 4);
    let id = p["id"].as_str().unwrap();
    let logo = app
        .get(
            &format!("/api/v1/projects/{id}/files/logo.png"),
            Some(&token),
        )
        .await;
    assert_eq!(&logo.body[..], PNG);
    let nested = app
        .get(
            &format!("/api/v1/projects/{id}/files/vendor/dep.zip"),
            Some(&token),
        )
        .await;
    assert_eq!(
        &nested.body[..],
        &inner[..],
        "a nested archive is a plain binary file"
    );
    let tree = app
        .get(&format!("/api/v1/projects/{id}/tree"), Some(&token))
        .await
        .json();
    let names: Vec<&str> = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["src", "vendor", "README.md", "logo.png"]);
}

/// Sets the "encrypted" flag of every entry, in the local and the central headers.
fn mark_encrypted(mut zip: Vec<u8>) -> Vec<u8> {
    let mut i = 0;
    while i + 10 < zip.len() {
        match &zip[i..i + 4] {
            b"PK\x03\x04" => zip[i + 6] |= 1,
            b"PK\x01\x02" => zip[i + 8] |= 1,
            _ => {}
        }
        i += 1;
    }
    zip
}

/// Rewrites every entry's declared uncompressed size to `size`, in both headers.
fn lie_about_sizes(mut zip: Vec<u8>, size: u32) -> Vec<u8> {
    let mut i = 0;
    while i + 30 < zip.len() {
        match &zip[i..i + 4] {
            b"PK\x03\x04" => zip[i + 22..i + 26].copy_from_slice(&size.to_le_bytes()),
            b"PK\x01\x02" => zip[i + 24..i + 28].copy_from_slice(&size.to_le_bytes()),
            _ => {}
        }
        i += 1;
    }
    zip
}

#[tokio::test]
async fn hostile_zips_are_refused_naming_the_entry_and_leave_nothing() {
    let app = TestApp::with_env(&[
        ("MAX_ZIP_ENTRIES", "3"),
        ("MAX_ZIP_UNCOMPRESSED_BYTES", "3000000"),
        ("MAX_PROJECT_FILE_BYTES", "20000000"),
    ])
    .await;
    let token = app.register("hostile@example.com").await.access;
    let symlink = {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_symlink(
            "link",
            "/etc/passwd",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.finish().unwrap().into_inner()
    };
    let bomb = zip_of(&[("ok.txt", b"fine"), ("zeros.bin", &vec![0u8; 2_000_000])]);
    assert!(
        bomb.len() < 10_000,
        "the bomb compresses {}:1",
        2_000_000 / bomb.len()
    );
    let noise: Vec<u8> = (0..1_600_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "traversal",
            zip_of(&[("ok.txt", b"fine"), ("../evil.txt", b"x")]),
            "../evil.txt",
        ),
        (
            "absolute",
            zip_of(&[("/etc/cron.d/x", b"x")]),
            "/etc/cron.d/x",
        ),
        ("backslash", zip_of(&[("a\\b.txt", b"x")]), "a\\\\b.txt"),
        ("symlink", symlink, "symbolic links"),
        (
            "encrypted",
            mark_encrypted(zip_of(&[("secret.txt", b"x")])),
            "encrypted",
        ),
        (
            "too many",
            zip_of(&[("a", b"1"), ("b", b"2"), ("c", b"3"), ("d", b"4")]),
            "at most 3",
        ),
        (
            "too large in all",
            zip_of(&[("n1.bin", &noise), ("n2.bin", &noise)]),
            "in all",
        ),
        ("bomb", bomb, "zeros.bin"),
        (
            "lying sizes",
            lie_about_sizes(
                zip_of(&[("ok.txt", b"fine"), ("big.txt", &vec![b'a'; 100_000])]),
                5,
            ),
            "big.txt",
        ),
        (
            "not a zip",
            b"just some text, not an archive".to_vec(),
            "not a zip",
        ),
    ];
    for (what, archive, named) in cases {
        let res = upload_zip(&app, &token, "x.zip", &archive).await;
        let problem = res.problem(StatusCode::UNPROCESSABLE_ENTITY);
        let message = problem["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains(named), "{what}: {message}");
        assert!(
            app.get("/api/v1/projects", Some(&token)).await.json()["items"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{what}"
        );
        assert!(
            blob_files(&app).is_empty(),
            "{what}: {:?}",
            blob_files(&app)
        );
    }
}

#[tokio::test]
async fn the_archive_round_trips_byte_for_byte() {
    let app = TestApp::spawn().await;
    let token = app.register("archive@example.com").await.access;
    let id = new_project(&app, &token, "Zip me").await;
    let files: [(&str, &[u8]); 3] = [
        ("src/main.rs", b"fn main() {}\n"),
        ("img/logo.png", PNG),
        ("notes/é.md", "# é\n".as_bytes()),
    ];
    for (path, bytes) in files {
        assert_eq!(
            put_file(&app, &token, &id, path, bytes).await.status,
            StatusCode::OK
        );
    }
    let res = app
        .get(&format!("/api/v1/projects/{id}/archive"), Some(&token))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.headers[header::CONTENT_TYPE], "application/zip");
    assert_eq!(
        res.headers[header::CONTENT_DISPOSITION],
        "attachment; filename*=UTF-8''Zip%20me.zip"
    );
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(res.body.to_vec())).unwrap();
    let mut seen = Vec::new();
    for i in 0..archive.len() {
        use std::io::Read;
        let mut entry = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        seen.push((entry.name().unwrap().to_string(), bytes));
    }
    seen.sort();
    let mut expected: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect();
    expected.sort();
    assert_eq!(seen, expected);

    // The archive uploads back into the same project, file for file.
    let back = upload_zip(&app, &token, "Zip me.zip", &res.body).await;
    assert_eq!(back.status, StatusCode::CREATED, "{}", back.text());
    let copy = back.json()["id"].as_str().unwrap().to_string();
    let strip = |mut dump: Value| {
        dump["name"] = json!("");
        dump
    };
    let a = app
        .get(&format!("/api/v1/projects/{id}/export"), Some(&token))
        .await
        .json();
    let b = app
        .get(&format!("/api/v1/projects/{copy}/export"), Some(&token))
        .await
        .json();
    assert_eq!(strip(a), strip(b));
    app.get(
        "/api/v1/projects/00000000-0000-7000-8000-000000000000/archive",
        Some(&token),
    )
    .await
    .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_presigned_zip_upload_becomes_a_project_on_both_stores() {
    let s3 = codechat_api_tests::s3::S3Server::start().await;
    let s3_env: Vec<(&str, String)> = s3.env();
    let s3_env: Vec<(&str, &str)> = s3_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (app, on_s3) in [
        (TestApp::spawn().await, false),
        (TestApp::with_env(&s3_env).await, true),
    ] {
        let token = app.register("bigzip@example.com").await.access;
        let archive = zip_of(&[("src/lib.rs", b"pub fn f() {}\n"), ("logo.png", PNG)]);
        let start = |filename: &str, size: usize| {
            app.post(
                "/api/v1/projects/uploads",
                json!({"filename": filename, "size": size}),
                Some(&token),
            )
        };
        let res = start("big.zip", archive.len()).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        let started = res.json();
        let id = started["upload_id"].as_str().unwrap().to_string();
        let put = app.put_upload(&started["upload"], &archive, &[]).await;
        assert!(put == 200 || put == 204, "{on_s3}: {put}");
        // A project upload is not an attachment.
        app.get(&format!("/api/v1/attachments/{id}"), Some(&token))
            .await
            .problem(StatusCode::NOT_FOUND);
        assert!(
            app.get("/api/v1/attachments", Some(&token)).await.json()["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let done = app
            .post(
                &format!("/api/v1/projects/uploads/{id}/complete"),
                json!({}),
                Some(&token),
            )
            .await;
        assert_eq!(done.status, StatusCode::CREATED, "{on_s3}: {}", done.text());
        let project = done.json();
        assert_eq!(
            (project["name"].as_str(), project["file_count"].as_i64()),
            (Some("big"), Some(2))
        );
        let pid = project["id"].as_str().unwrap();
        let logo = app
            .get(
                &format!("/api/v1/projects/{pid}/files/logo.png"),
                Some(&token),
            )
            .await;
        assert_eq!(&logo.body[..], PNG);
        // Completing again (a retry) answers the same project, and its status says so.
        let again = app
            .post(
                &format!("/api/v1/projects/uploads/{id}/complete"),
                json!({}),
                Some(&token),
            )
            .await;
        assert_eq!(again.status, StatusCode::CREATED, "{}", again.text());
        assert_eq!(again.json()["id"], project["id"]);
        let status = app
            .get(&format!("/api/v1/projects/uploads/{id}"), Some(&token))
            .await
            .json();
        assert_eq!(
            (status["status"].as_str(), status["project_id"].as_str()),
            (Some("done"), Some(pid))
        );

        // Bytes that are not a zip: refused at the check, and nothing stays (no project, no upload:
        // completing it again is a 404, as for an attachment refused at its check).
        let text = b"not a zip, just text".to_vec();
        let started = start("fake.zip", text.len()).await.json();
        let id = started["upload_id"].as_str().unwrap().to_string();
        let put = app.put_upload(&started["upload"], &text, &[]).await;
        assert!(put == 200 || put == 204, "{on_s3}: {put}");
        let refused = app
            .post(
                &format!("/api/v1/projects/uploads/{id}/complete"),
                json!({}),
                Some(&token),
            )
            .await;
        assert_eq!(refused.invalid_fields(), vec!["content_type"], "{on_s3}");
        let again = app
            .post(
                &format!("/api/v1/projects/uploads/{id}/complete"),
                json!({}),
                Some(&token),
            )
            .await;
        again.problem(StatusCode::NOT_FOUND);
        let listed = app.get("/api/v1/projects", Some(&token)).await.json();
        assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{on_s3}");
        // An attachment cannot be completed as a project upload.
        let started = app
            .post(
                "/api/v1/attachments/uploads",
                json!({"filename": "a.txt", "content_type": "text/plain", "size": 3}),
                Some(&token),
            )
            .await
            .json();
        let attachment = started["attachment"]["id"].as_str().unwrap();
        app.post(
            &format!("/api/v1/projects/uploads/{attachment}/complete"),
            json!({}),
            Some(&token),
        )
        .await
        .problem(StatusCode::NOT_FOUND);
    }
    let blobs = s3.keys();
    assert!(
        blobs.iter().all(|k| k.starts_with("projects/")),
        "{blobs:?}"
    );
}

/// At the line a zip unpacks inside the request (201); one byte past it, after it (202).
#[tokio::test]
async fn the_in_request_unpack_line_holds_at_its_edge() {
    let archive = zip_of(&[("a.txt", b"a"), ("b.txt", b"b")]);
    let limit = archive.len().to_string();
    let app = TestApp::with_env(&[("MAX_UNPACK_IN_REQUEST_BYTES", &limit)]).await;
    let token = app.register("unpack-limit@example.com").await.access;
    for (extra, expect) in [(0usize, StatusCode::CREATED), (1, StatusCode::ACCEPTED)] {
        let mut bytes = archive.clone();
        // A zip may carry trailing bytes after its end record; one more byte crosses the line.
        bytes.extend(std::iter::repeat_n(b' ', extra));
        let id = upload_zip_presigned(&app, &token, "x.zip", &bytes).await;
        let res = app
            .post(
                &format!("/api/v1/projects/uploads/{id}/complete"),
                json!({}),
                Some(&token),
            )
            .await;
        assert_eq!(res.status, expect, "{}", res.text());
    }
    let both = codechat_api_tests::eventually(|| async {
        app.get("/api/v1/projects", Some(&token)).await.json()["items"]
            .as_array()
            .unwrap()
            .len()
            == 2
    })
    .await;
    assert!(both);
    let left = codechat_api_tests::eventually(|| async { blob_files(&app).is_empty() }).await;
    assert!(left, "{:?}", blob_files(&app));
}

/// Starts a presigned zip upload and PUTs `bytes` to its URL; answers the upload id.
async fn upload_zip_presigned(app: &TestApp, token: &str, filename: &str, bytes: &[u8]) -> String {
    let started = app
        .post(
            "/api/v1/projects/uploads",
            json!({"filename": filename, "size": bytes.len()}),
            Some(token),
        )
        .await
        .json();
    let put = app.put_upload(&started["upload"], bytes, &[]).await;
    assert!(put == 200 || put == 204, "{put}");
    started["upload_id"].as_str().unwrap().to_string()
}

/// Past the in-request line the completion answers 202 and the zip is unpacked next: locally by a
/// background task, deployed by the unpacker worker on the checked object's event (fed here as
/// EventBridge delivers it, twice, since delivery is at least once).
#[tokio::test]
async fn a_large_zip_is_unpacked_after_the_request_locally_and_by_the_worker() {
    let archive = zip_of(&[("src/lib.rs", b"pub fn f() {}\n"), ("logo.png", PNG)]);
    let bomb = zip_of(&[("zeros.bin", &vec![0u8; 2_000_000])]);
    for in_worker in [false, true] {
        let mut env = vec![("MAX_UNPACK_IN_REQUEST_BYTES", "10")];
        if in_worker {
            env.push(("UNPACK_IN_WORKER", "true"));
        }
        let app = TestApp::with_env(&env).await;
        let token = app.register("later@example.com").await.access;
        let user_id = app.me(&token).await.json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut outcomes = Vec::new();
        for bytes in [&archive, &bomb] {
            let started = app
                .post(
                    "/api/v1/projects/uploads",
                    json!({"filename": "later.zip", "size": bytes.len()}),
                    Some(&token),
                )
                .await
                .json();
            let id = started["upload_id"].as_str().unwrap().to_string();
            let status_url = format!("/api/v1/projects/uploads/{id}");
            assert_eq!(
                app.get(&status_url, Some(&token)).await.json()["status"],
                "pending"
            );
            assert_eq!(app.put_upload(&started["upload"], bytes, &[]).await, 204);
            let res = app
                .post(
                    &format!("/api/v1/projects/uploads/{id}/complete"),
                    json!({}),
                    Some(&token),
                )
                .await;
            assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text());
            assert_eq!(res.headers[header::LOCATION], status_url.as_str());
            if in_worker {
                assert_eq!(res.json()["status"], "unpacking");
                for _ in 0..2 {
                    let answer = worker_run(&app, &user_id, &id).await.unwrap();
                    assert_eq!(answer["uploads"], 1);
                }
            }
            let finished = codechat_api_tests::eventually(|| async {
                let s = app.get(&status_url, Some(&token)).await.json();
                s["status"] == "done" || s["status"] == "failed"
            })
            .await;
            assert!(finished, "in_worker={in_worker}");
            outcomes.push(app.get(&status_url, Some(&token)).await.json());
        }
        assert_eq!(outcomes[0]["status"], "done", "{}", outcomes[0]);
        let project = outcomes[0]["project_id"].as_str().unwrap();
        let logo = app
            .get(
                &format!("/api/v1/projects/{project}/files/logo.png"),
                Some(&token),
            )
            .await;
        assert_eq!(&logo.body[..], PNG);
        assert_eq!(outcomes[1]["status"], "failed");
        assert!(
            outcomes[1]["error"].as_str().unwrap().contains("zeros.bin"),
            "{}",
            outcomes[1]
        );
        let projects = app.get("/api/v1/projects", Some(&token)).await.json();
        assert_eq!(
            projects["items"].as_array().unwrap().len(),
            1,
            "the refused zip made nothing"
        );
        let blobs = blob_files(&app);
        assert!(
            blobs.iter().all(|k| k.starts_with("projects/")),
            "zips removed: {blobs:?}"
        );
    }
}

/// A completion refused while unpacking keeps its refusal: a retry answers it again, the status
/// says `failed`, and the zip is gone.
#[tokio::test]
async fn a_retried_completion_answers_the_first_outcome() {
    let app = TestApp::with_env(&[("MAX_PROJECT_FILE_BYTES", "20000000")]).await;
    let token = app.register("retry-unpack@example.com").await.access;
    let bomb = zip_of(&[("zeros.bin", &vec![0u8; 2_000_000])]);
    let id = upload_zip_presigned(&app, &token, "bomb.zip", &bomb).await;
    let complete = format!("/api/v1/projects/uploads/{id}/complete");
    let first = app
        .post(&complete, json!({}), Some(&token))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    let again = app
        .post(&complete, json!({}), Some(&token))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(first["errors"], again["errors"]);
    assert!(
        first["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("zeros.bin"),
        "{first}"
    );
    let status = app
        .get(&format!("/api/v1/projects/uploads/{id}"), Some(&token))
        .await
        .json();
    assert_eq!(status["status"], "failed");
    assert!(blob_files(&app).is_empty(), "{:?}", blob_files(&app));
    assert!(
        app.get("/api/v1/projects", Some(&token)).await.json()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// Two deliveries of the same event at once (S3 delivers at least once) unpack the zip once: the
/// first run claims the upload, the other finds it claimed.
#[tokio::test]
async fn concurrent_deliveries_unpack_once() {
    let app = TestApp::with_env(&[
        ("MAX_UNPACK_IN_REQUEST_BYTES", "10"),
        ("UNPACK_IN_WORKER", "true"),
    ])
    .await;
    let token = app.register("twice@example.com").await.access;
    let user_id = app.me(&token).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let archive = zip_of(&[("a.txt", b"a"), ("b.txt", b"b")]);
    let id = upload_zip_presigned(&app, &token, "twice.zip", &archive).await;
    let res = app
        .post(
            &format!("/api/v1/projects/uploads/{id}/complete"),
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text());
    let (a, b) = tokio::join!(
        worker_run(&app, &user_id, &id),
        worker_run(&app, &user_id, &id)
    );
    a.unwrap();
    b.unwrap();
    let projects = app.get("/api/v1/projects", Some(&token)).await.json();
    assert_eq!(projects["items"].as_array().unwrap().len(), 1, "{projects}");
    let status = app
        .get(&format!("/api/v1/projects/uploads/{id}"), Some(&token))
        .await
        .json();
    assert_eq!(status["status"], "done");
}

/// A project made from many files is written in batches behind `importing`: no read sees it until
/// the last batch lands. A run that died part-way leaves it `importing` past its lease; the sweep
/// before the next import removes it, its blobs included, and the dead run can no longer finish it.
#[tokio::test]
async fn an_import_that_died_part_way_is_invisible_and_swept() {
    use codechat::{blobs::BlobKey, ids::ProjectId};
    let app = TestApp::spawn().await;
    let token = app.register("swept@example.com").await.access;
    let user_id = app.user_id(&token).await;
    let conn = app.state.store().conn().await.unwrap();
    let id = ProjectId::new();
    conn.insert_importing_project(
        id,
        user_id,
        "half",
        None,
        "2000-01-01T00:00:00.000000Z",
        u64::MAX,
    )
    .await
    .unwrap();
    let blob = BlobKey::project_file(user_id, id, "b1");
    app.state
        .blobs()
        .put(&blob, "application/octet-stream", PNG.to_vec().into())
        .await
        .unwrap();
    let rows = json!([
        {"path": "a.txt", "size": 2, "sha256": "0", "text": "hi", "blob_key": null},
        {"path": "b.png", "size": PNG.len(), "sha256": "0", "text": null, "blob_key": blob.as_str()},
    ]);
    assert!(conn
        .add_project_files(id, &rows.to_string(), u64::MAX)
        .await
        .unwrap());
    // Invisible while importing: not listed, not found.
    let list = app.get("/api/v1/projects", Some(&token)).await.json();
    assert_eq!(list["items"], json!([]), "{list}");
    app.get(&format!("/api/v1/projects/{id}"), Some(&token))
        .await
        .problem(StatusCode::NOT_FOUND);

    let res = app
        .post(
            "/api/v1/projects/import",
            json!({"format": "codechat.project", "version": 1, "name": "next",
                   "files": [{"path": "x.txt", "encoding": "utf-8", "content": "x"}]}),
            Some(&token),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert!(conn
        .stale_imports(&codechat::ids::now(), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(
        conn.remove_import(id).await.unwrap().is_empty(),
        "its rows are gone"
    );
    assert!(
        app.state.blobs().read_all(&blob).await.is_err(),
        "its blob is gone"
    );
    assert!(conn.finish_import(id).await.unwrap().is_none());
    let list = app.get("/api/v1/projects", Some(&token)).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}

/// A completed upload whose worker event never comes (EventBridge gave up, every run died) does not
/// say `unpacking` for ever: past `UNPACK_DEADLINE_SECONDS` from its start, with no run holding it,
/// the sweep marks it failed and removes its zip; a late event then unpacks nothing. Within the
/// deadline it waits, and a run that holds it is never swept.
#[tokio::test]
async fn an_upload_never_unpacked_is_marked_failed_past_its_deadline() {
    for (deadline, swept) in [("3600", false), ("0", true)] {
        let app = TestApp::with_env(&[
            ("MAX_UNPACK_IN_REQUEST_BYTES", "10"),
            ("UNPACK_IN_WORKER", "true"),
            ("UNPACK_DEADLINE_SECONDS", deadline),
        ])
        .await;
        let token = app.register("stuck@example.com").await.access;
        let user_id = app.me(&token).await.json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let archive = zip_of(&[("a.txt", b"a")]);
        let id = upload_zip_presigned(&app, &token, "stuck.zip", &archive).await;
        let complete = format!("/api/v1/projects/uploads/{id}/complete");
        let res = app.post(&complete, json!({}), Some(&token)).await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;

        let status = app
            .get(&format!("/api/v1/projects/uploads/{id}"), Some(&token))
            .await
            .json();
        if !swept {
            assert_eq!(status["status"], "unpacking", "{status}");
            assert_eq!(blob_files(&app).len(), 1, "the zip waits for its worker");
            continue;
        }
        assert_eq!(status["status"], "failed", "{status}");
        assert!(
            status["error"]
                .as_str()
                .unwrap()
                .contains("not unpacked in time"),
            "{status}"
        );
        assert!(blob_files(&app).is_empty(), "{:?}", blob_files(&app));
        // A completion retried, or the event arriving late, answers the failure and unpacks nothing.
        let again = app.post(&complete, json!({}), Some(&token)).await;
        assert_eq!(again.invalid_fields(), vec!["file"], "{}", again.text());
        let _ = worker_run(&app, &user_id, &id).await;
        assert!(
            app.get("/api/v1/projects", Some(&token)).await.json()["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
}

/// Lambda answers at most 6 MB: past `MAX_INLINE_ANSWER_BYTES` an archive or an export on S3 is
/// stored (in parts, past 8 MiB) and answered 303 See Other to a presigned GET of it; locally,
/// with no such limit, it is answered whatever its size. A project of 7 MB here.
#[tokio::test]
async fn exports_past_lambdas_limit_are_answered_through_the_bucket() {
    let s3 = codechat_api_tests::s3::S3Server::start().await;
    let s3_env: Vec<(&str, String)> = s3.env();
    let s3_env: Vec<(&str, &str)> = s3_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Incompressible bytes (a zip of them is as large), with a NUL: a binary file.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .chain([0])
            .collect()
    };
    let files = [noise(3_500_000), noise(3_500_000)];
    for (app, on_s3) in [
        (TestApp::spawn().await, false),
        (TestApp::with_env(&s3_env).await, true),
    ] {
        let token = app.register("big-export@example.com").await.access;
        let pid = app
            .post("/api/v1/projects", json!({"name": "big"}), Some(&token))
            .await
            .json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        for (i, bytes) in files.iter().enumerate() {
            let req = axum::http::Request::put(format!("/api/v1/projects/{pid}/files/blob{i}.bin"))
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::from(bytes.clone()))
                .unwrap();
            let res = app.send(req).await;
            assert!(res.status.is_success(), "{}", res.text());
        }
        for what in ["archive", "export"] {
            let res = app
                .get(&format!("/api/v1/projects/{pid}/{what}"), Some(&token))
                .await;
            let body = if on_s3 {
                assert_eq!(res.status, StatusCode::SEE_OTHER, "{what}: {}", res.text());
                let url = res.headers[header::LOCATION].to_str().unwrap();
                let got = reqwest::get(url).await.unwrap();
                assert_eq!(got.status(), 200, "{what}");
                got.bytes().await.unwrap().to_vec()
            } else {
                assert_eq!(res.status, StatusCode::OK, "{what}");
                res.body.to_vec()
            };
            assert!(body.len() > 6_000_000, "{what}: {} bytes", body.len());
            match what {
                "archive" => {
                    let zip = zip::ZipArchive::new(std::io::Cursor::new(body)).unwrap();
                    assert_eq!(zip.len(), 2, "{what}");
                }
                _ => {
                    let dump: Value = serde_json::from_slice(&body).unwrap();
                    assert_eq!(dump["files"].as_array().unwrap().len(), 2, "{dump:.200}");
                }
            }
        }
    }
}

/// The project routes that take JSON keep the JSON body limit (413, nothing stored); only the
/// import and the inline zip have their own; a multipart `name` part is bounded too.
#[tokio::test]
async fn project_json_bodies_and_names_are_bounded() {
    let app = TestApp::with_env(&[("MAX_JSON_BODY_BYTES", "1000")]).await;
    let token = app.register("bounded-projects@example.com").await.access;
    let long = "x".repeat(2000);
    app.post(
        "/api/v1/projects",
        json!({"name": "P", "description": long}),
        Some(&token),
    )
    .await
    .problem(StatusCode::PAYLOAD_TOO_LARGE);
    let list = app.get("/api/v1/projects", Some(&token)).await.json();
    assert_eq!(list["items"], json!([]), "{list}");

    let id = app
        .post("/api/v1/projects", json!({"name": "P"}), Some(&token))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.patch(
        &format!("/api/v1/projects/{id}"),
        json!({"description": long}),
        Some(&token),
    )
    .await
    .problem(StatusCode::PAYLOAD_TOO_LARGE);
    app.post(
        "/api/v1/projects/uploads",
        json!({"filename": long, "size": 10}),
        Some(&token),
    )
    .await
    .problem(StatusCode::PAYLOAD_TOO_LARGE);

    let zip = zip_of(&[("a.txt", b"a")]);
    let name = "n".repeat(5000);
    let res = app
        .post_multipart(
            "/api/v1/projects/upload",
            &token,
            &[
                ("name", None, None, name.as_bytes()),
                ("file", Some("p.zip"), Some("application/zip"), &zip),
            ],
        )
        .await;
    assert_eq!(res.invalid_fields(), vec!["name"], "{}", res.text());
    let list = app.get("/api/v1/projects", Some(&token)).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}

/// The project's limits hold under concurrent writes: they are checked in the statement that
/// writes, not only before it. A second writer whose check passed before the first one wrote (what
/// two requests at once do) is refused by the statement itself.
#[tokio::test]
async fn the_write_statement_holds_the_project_limits() {
    let app = TestApp::spawn().await;
    let token = app.register("statement-limits@example.com").await.access;
    let id = new_project(&app, &token, "P").await;
    let res = put_file(&app, &token, &id, "a.txt", b"a").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let conn = app.state.store().conn().await.unwrap();
    let project: codechat::ids::ProjectId = id.parse().unwrap();
    let limits = codechat::store::FileLimits {
        project_files: 2,
        project_bytes: 1000,
        user_bytes: u64::MAX,
    };
    let file = |path: &'static str, size: i64| codechat::store::NewProjectFile {
        path,
        size,
        sha256: "0",
        text: Some(""),
        blob_key: None,
    };
    conn.put_project_file(project, file("b.txt", 1), limits)
        .await
        .unwrap();
    let err = conn
        .put_project_file(project, file("c.txt", 1), limits)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("as many files"), "{err}");
    // Replacing a file is not a new file; growing past the bytes is refused.
    conn.put_project_file(project, file("b.txt", 500), limits)
        .await
        .unwrap();
    let err = conn
        .put_project_file(project, file("b.txt", 1000), limits)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("larger than it may be"), "{err}");
    let project = app
        .get(&format!("/api/v1/projects/{id}"), Some(&token))
        .await
        .json();
    assert_eq!(project["file_count"], 2, "{project}");
}
