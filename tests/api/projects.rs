//! Projects through HTTP: CRUD, files (text in the store, binaries in the blob store), the tree,
//! path rules, limits at their edge, export/import round trips, and nothing half-written.

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use codechat_api_tests::{TestApp, TestResponse};
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

fn blob_files(app: &TestApp) -> Vec<String> {
    let root = app.data_dir().join("blobs");
    let mut found = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            } else {
                found.push(
                    entry
                        .path()
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .to_string(),
                );
            }
        }
    }
    found
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
